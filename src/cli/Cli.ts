/**
 * The `forml-mlflow` command: list, push, pull, show, state, commit, demo and gc over a registry on an MLflow store,
 * a thin shell over Directory (parsing arguments, printing tables or JSON) with @effect/cli. Each subcommand is its
 * body in `commands/`; `Shell.ts` holds what they share and provides the store around them.
 */
import { Command } from "@effect/cli"
import { createRequire } from "node:module"
import { commit } from "./commands/commit.js"
import { demo } from "./commands/demo.js"
import { gc } from "./commands/gc.js"
import { list } from "./commands/list.js"
import { pull, push } from "./commands/packages.js"
import { show, state } from "./commands/show.js"
import { root } from "./Shell.js"

/** The package version, for --version (0.0.0 when package.json cannot be read). */
export const version = (): string => {
  try {
    const pkg: unknown = createRequire(import.meta.url)("../../package.json")
    return typeof pkg === "object" && pkg !== null && "version" in pkg && typeof pkg.version === "string"
      ? pkg.version
      : "0.0.0"
  } catch {
    return "0.0.0"
  }
}

export const command = root.pipe(Command.withSubcommands([list, push, pull, show, state, commit, demo, gc]))

/** Parses `argv` (as `process.argv`: runtime and script first) and runs the command it names. */
export const run = Command.run(command, { name: "forml-mlflow", version: version() })
