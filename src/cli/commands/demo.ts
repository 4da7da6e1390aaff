/**
 * `forml-mlflow demo`: fills the store with the example project of `Demo.ts`.
 */
import { Command } from "@effect/cli"
import { Effect } from "effect"
import * as Demo from "../Demo.js"
import { printJson, printLine } from "../Output.js"
import { globalOptions, provideStore, Settings } from "../Shell.js"

export const demo = Command.make("demo", globalOptions, () =>
  Effect.gen(function*() {
    const { json } = yield* Settings
    const done = yield* Effect.scoped(Demo.run())
    if (json) {
      return yield* printJson({
        project: Demo.PROJECT,
        releases: done.map((r) => ({ release: r.release.toString(), generations: r.generations }))
      })
    }
    for (const r of done) {
      yield* printLine(`published ${Demo.PROJECT} ${r.release} with generations ${r.generations.join(", ")}`)
    }
  })).pipe(
    Command.withDescription(`Fill the store with an example project (${Demo.PROJECT}): releases, generations, states`),
    provideStore
  )
