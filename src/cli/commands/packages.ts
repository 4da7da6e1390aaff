/**
 * `forml-mlflow push` and `pull`: a package in as a new release, the package of a release out to a file.
 */
import { Args, Command } from "@effect/cli"
import * as FileSystem from "@effect/platform/FileSystem"
import * as Path from "@effect/platform/Path"
import { Effect, Option } from "effect"
import { Package } from "../../asset/Package.js"
import { StorageError } from "../../errors.js"
import * as Directory from "../../registry/Directory.js"
import { writeAtomically } from "../internal/files.js"
import { printJson, printLine } from "../Output.js"
import { globalOptions, outputOption, projectArg, provideStore, releaseArg, Settings } from "../Shell.js"

export const push = Command.make(
  "push",
  {
    ...globalOptions,
    package: Args.path({ name: "PACKAGE", exists: "yes" }).pipe(
      Args.withDescription("A .4ml package file or a package directory (with __4ml__.py at its root)")
    )
  },
  (a) =>
    Effect.gen(function*() {
      const { json } = yield* Settings
      const pkg = yield* Package.open(a.package)
      const published = yield* Directory.publish(pkg)
      if (json) return yield* printJson({ project: published.project, release: published.release.toString() })
      yield* printLine(`published ${published.project} ${published.release}`)
    })
).pipe(
  Command.withDescription("Publish a package as a new release (its version must be above the latest release)"),
  provideStore
)

export const pull = Command.make(
  "pull",
  {
    ...globalOptions,
    project: projectArg,
    release: Args.optional(releaseArg),
    output: outputOption("Where to write the package (default: ./<project>-<release>.4ml)")
  },
  (a) =>
    Effect.gen(function*() {
      const { json } = yield* Settings
      const path = yield* Path.Path
      const fs = yield* FileSystem.FileSystem
      const release = yield* Directory.release(a.project, Option.getOrUndefined(a.release))
      const pkg = yield* Directory.pull(a.project, release)
      const target = path.resolve(Option.getOrElse(a.output, () => `${a.project}-${release}.4ml`))
      yield* writeAtomically(target, (part) => fs.copyFile(pkg.path, part))
      const size = yield* fs.stat(target).pipe(
        Effect.map((info) => Number(info.size)),
        Effect.mapError((e) => new StorageError({ path: target, reason: e.message }))
      )
      if (json) return yield* printJson({ project: a.project, release: release.toString(), path: target, size })
      yield* printLine(`pulled ${a.project} ${release} to ${target} (${size} bytes)`)
    })
).pipe(Command.withDescription("Download the package of a release (default: the latest release)"), provideStore)
