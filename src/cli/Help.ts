/**
 * How @effect/cli's own output (help, version, completion scripts, usage errors) reaches the screen: in colour only
 * on a terminal and never with NO_COLOR (FORCE_COLOR decides first), and without the sentence it writes under every option for its type alone
 * ("A user-defined piece of text."), since each option here says what it is for and the usage line names its type.
 *
 * @effect/cli renders its help with ANSI styles whatever the output, and has no setting for either (its `CliConfig`
 * covers parsing and which names and built-in options are shown): both are done on the text, through the `Console`
 * it prints with.
 */
import { Args, HelpDoc } from "@effect/cli"
import type { Console } from "effect"
import { Effect } from "effect"
import { colour } from "./terminal.js"

/** Whether to write colour to a stream (see `terminal.ts`). */
export { colour } from "./terminal.js"

// ECMA-48 control sequences (what @effect/printer-ansi writes: SGR styles)
const ESCAPE = /\u001b\[[0-?]*[ -/]*[@-~]/g

/** The text without ANSI escape sequences. */
export const plain = (text: string): string => text.replace(ESCAPE, "")

let sentences: ReadonlySet<string> | undefined

/**
 * The sentences @effect/cli writes for a type alone, taken from @effect/cli itself: the help of an argument of each
 * type without a description (a choice's sentence lists the choices, and stays).
 */
export const typeSentences = (): ReadonlySet<string> => {
  if (sentences === undefined) {
    const exists = ["yes", "no", "either"] as const
    const bare: ReadonlyArray<Args.Args<unknown>> = [
      Args.text(),
      Args.boolean(),
      Args.float(),
      Args.integer(),
      Args.date(),
      Args.redacted(),
      ...exists.flatMap((e) => [Args.path({ exists: e }), Args.file({ exists: e }), Args.directory({ exists: e })])
    ]
    sentences = new Set(
      bare.flatMap((args) =>
        plain(HelpDoc.toAnsiText(Args.getHelp(args)))
          .split("\n")
          .filter((line) => /^\s/.test(line))
          .map((line) => line.trim())
          .filter((line) => line !== "")
      )
    )
  }
  return sentences
}

/** The help text without the type sentences (each an indented paragraph of its own, with the blank line after it). */
export const withoutTypeSentences = (text: string): string => {
  if (!text.includes("\n")) return text
  const generic = typeSentences()
  const lines = text.split("\n")
  const kept: Array<string> = []
  for (let i = 0; i < lines.length; i++) {
    const line = plain(lines[i]!)
    if (/^\s/.test(line) && generic.has(line.trim())) {
      if (lines[i + 1] !== undefined && plain(lines[i + 1]!).trim() === "") i++
      continue
    }
    kept.push(lines[i]!)
  }
  return kept.join("\n")
}

/** A console over `base` whose `log` (stdout) and `error` (stderr) text is edited for the streams' terminals. */
export const console = (
  base: Console.Console,
  options: { readonly stdoutColour: boolean; readonly stderrColour: boolean }
): Console.Console => {
  const out = (text: string) => withoutTypeSentences(options.stdoutColour ? text : plain(text))
  const err = (text: string) => (options.stderrColour ? text : plain(text))
  const map = (f: (s: string) => string, args: ReadonlyArray<unknown>) =>
    args.map((a) => (typeof a === "string" ? f(a) : a))
  return {
    ...base,
    log: (...args) => base.log(...map(out, args)),
    error: (...args) => base.error(...map(err, args)),
    unsafe: {
      ...base.unsafe,
      log: (...args) => base.unsafe.log(...map(out, args)),
      error: (...args) => base.unsafe.error(...map(err, args))
    }
  }
}

/** Runs `effect` with the command's console: colour per stream as `colour` decides, no type sentences. */
export const withHelpConsole = <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
  Effect.consoleWith((base) =>
    Effect.withConsole(
      effect,
      console(base, { stdoutColour: colour(process.stdout), stderrColour: colour(process.stderr) })
    )
  )
