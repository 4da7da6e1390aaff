/**
 * Whether the command writes colour to a stream. Kept free of imports: the executable (`launch.ts`) answers `--help`
 * with the text the build stored, and decides its colour by the same rule as the program.
 */

/**
 * Colour on a terminal, unless `NO_COLOR` is set to anything non-empty or `TERM` is `dumb`. `FORCE_COLOR` decides
 * before all of these, as in Node itself: `0` (or `false`) never, any other non-empty value always, terminal or not.
 */
export const colour = (
  stream: { readonly isTTY?: boolean | undefined },
  env: NodeJS.ProcessEnv = process.env
): boolean => {
  const force = env["FORCE_COLOR"]
  if (force !== undefined && force !== "") return force !== "0" && force.toLowerCase() !== "false"
  return stream.isTTY === true && (env["NO_COLOR"] === undefined || env["NO_COLOR"] === "") && env["TERM"] !== "dumb"
}
