/**
 * `forml-mlflow commit`: files as the states of a new generation of a release, trained now (and tuned, with a score).
 */
import { Args, Command, HelpDoc, Options } from "@effect/cli"
import * as FileSystem from "@effect/platform/FileSystem"
import { Effect, Either, Option, Stream } from "effect"
import { ReleaseKey } from "../../asset/ReleaseKey.js"
import { Timestamp } from "../../asset/Tag.js"
import { StorageError } from "../../errors.js"
import * as Directory from "../../registry/Directory.js"
import { printJson, printLine } from "../Output.js"
import { globalOptions, projectArg, provideStore, Settings } from "../Shell.js"
import { parseOrdinal } from "../Values.js"

interface CommitInputs {
  readonly release: Option.Option<ReleaseKey>
  readonly files: ReadonlyArray<string>
}

/**
 * Splits `[RELEASE] STATE_FILE...`: the first word is the release when more than one is given and it is not an
 * existing file. Every state file must exist and be a regular file.
 */
const commitInputs = (words: ReadonlyArray<string>) =>
  Effect.gen(function*() {
    const fs = yield* FileSystem.FileSystem
    const isFile = (p: string) =>
      fs.stat(p).pipe(Effect.map((info) => info.type === "File"), Effect.orElseSucceed(() => false))
    const exists = (p: string) => fs.exists(p).pipe(Effect.orElseSucceed(() => false))
    const [first, ...others] = words
    let release = Option.none<ReleaseKey>()
    let files = words
    if (first !== undefined && others.length > 0 && !(yield* exists(first))) {
      const key = ReleaseKey.parse(first)
      if (Either.isLeft(key)) {
        return yield* Effect.fail(HelpDoc.p(`${key.left.message}, and not a file either`))
      }
      release = Option.some(key.right)
      files = others
    }
    for (const file of files) {
      if (!(yield* isFile(file))) return yield* Effect.fail(HelpDoc.p(`state file not found: ${file}`))
    }
    return { release, files } satisfies CommitInputs
  })

export const commit = Command.make(
  "commit",
  {
    ...globalOptions,
    project: projectArg,
    inputs: Args.text({ name: "[RELEASE] STATE_FILE" }).pipe(
      Args.atLeast(1),
      Args.withDescription("The release (default: the latest), then the state files in order"),
      Args.mapEffect(commitInputs)
    ),
    ordinal: Options.text("ordinal").pipe(
      Options.withDescription("The training ordinal (an integer, float, RFC 3339 date-time or text)"),
      Options.optional
    ),
    score: Options.float("score").pipe(
      Options.withDescription("A tuning score (marks the generation tuned now)"),
      Options.optional
    )
  },
  (a) =>
    Effect.gen(function*() {
      const { json } = yield* Settings
      const fs = yield* FileSystem.FileSystem
      const release = yield* Directory.release(a.project, Option.getOrUndefined(a.inputs.release))
      const states = a.inputs.files.map((file) =>
        fs.stream(file).pipe(Stream.mapError((e) => new StorageError({ path: file, reason: e.message })))
      )
      const now = yield* Timestamp.now
      const generation = yield* Directory.commit(a.project, release, states, {
        ordinal: Option.map(a.ordinal, parseOrdinal),
        tuning: Option.match(a.score, {
          onNone: () => undefined,
          onSome: (score) => ({ timestamp: now, score })
        })
      })
      if (json) return yield* printJson({ project: a.project, release: release.toString(), generation })
      yield* printLine(String(generation))
    })
).pipe(
  Command.withDescription(
    "Write the files as the states of a new generation (the next number) trained now; prints its number"
  ),
  provideStore
)
