/**
 * `forml-mlflow show` and `state`: the tag of a generation, and one of its state blobs (raw bytes on stdout, a
 * file, or base64 in a JSON document).
 */
import { Args, Command } from "@effect/cli"
import * as FileSystem from "@effect/platform/FileSystem"
import * as Path from "@effect/platform/Path"
import { Effect, Option, Stream } from "effect"
import type { GenerationKey } from "../../asset/GenerationKey.js"
import type { ProjectKey } from "../../asset/ProjectKey.js"
import type { ReleaseKey } from "../../asset/ReleaseKey.js"
import { Tag } from "../../asset/Tag.js"
import { NotFound, StorageError } from "../../errors.js"
import * as Directory from "../../registry/Directory.js"
import { Registry } from "../../registry/Registry.js"
import { stdoutSink, writeAtomically } from "../internal/files.js"
import { fields, printJson, printLine } from "../Output.js"
import { generationArg, globalOptions, outputOption, projectArg, provideStore, releaseArg, Settings } from "../Shell.js"
import { orDash, parseArg, parseStateRef, pickState, type StateRef, tagJson, timestampText } from "../Values.js"

export const show = Command.make(
  "show",
  {
    ...globalOptions,
    project: projectArg,
    release: Args.optional(releaseArg),
    generation: Args.optional(generationArg)
  },
  (a) =>
    Effect.gen(function*() {
      const { json } = yield* Settings
      const registry = yield* Registry
      const position = yield* Directory.resolve(
        a.project,
        Option.getOrUndefined(a.release),
        Option.getOrUndefined(a.generation)
      )
      const tag = yield* Option.match(position.generation, {
        onNone: () => Effect.succeed(Tag.empty),
        onSome: (generation) => registry.open(a.project, position.release, generation)
      })
      const generation = Option.getOrNull(position.generation)
      if (json) {
        return yield* printJson({
          project: a.project,
          release: position.release.toString(),
          generation,
          ...tagJson(tag)
        })
      }
      yield* printLine(fields([
        ["project", a.project],
        ["release", position.release.toString()],
        ["generation", generation === null ? "- (no generation yet)" : String(generation)],
        ["trained", timestampText(tag.training.timestamp)],
        ["ordinal", orDash(tag.training.ordinal)],
        ["tuned", timestampText(tag.tuning.timestamp)],
        ["score", orDash(tag.tuning.score)],
        ["states", String(tag.states.length)]
      ]))
      if (tag.states.length > 0) {
        yield* printLine(tag.states.map((sid, i) => `  ${String(i).padStart(3)}  ${sid}`).join("\n"))
      }
    })
).pipe(
  Command.withDescription(
    "Show the tag (training, tuning, states) of a generation (default: the latest release and generation)"
  ),
  provideStore
)

const stateRefArg = Args.text({ name: "STATE" }).pipe(
  Args.withDescription("A state id (UUID), or its index in the generation's state list (negative counts from the end)"),
  Args.mapEffect(parseArg(parseStateRef))
)

/** Finds a state of a committed generation by id or index; NotFound if the tag does not list it. */
const findState = (project: ProjectKey, releaseKey: ReleaseKey, generationKey: GenerationKey, ref: StateRef) =>
  Effect.gen(function*() {
    const registry = yield* Registry
    const release = yield* Directory.release(project, releaseKey)
    const generation = yield* Directory.generation(project, release, generationKey)
    const tag = yield* registry.open(project, release, generation)
    const where = `${project}-${release}-${generation}`
    const found = yield* Option.match(pickState(tag.states, ref), {
      onNone: () =>
        Effect.fail(
          new NotFound({
            entity: "state",
            key: ref._tag === "Id" ? `${where}/${ref.id}` : `${where}#${ref.index} (it has ${tag.states.length})`
          })
        ),
      onSome: Effect.succeed
    })
    return { release, generation, index: found[0], sid: found[1] }
  })

export const state = Command.make(
  "state",
  {
    ...globalOptions,
    project: projectArg,
    release: releaseArg,
    generation: generationArg,
    state: stateRefArg,
    output: outputOption("Write the state blob to this file instead of stdout")
  },
  (a) =>
    Effect.gen(function*() {
      const { json } = yield* Settings
      const registry = yield* Registry
      const fs = yield* FileSystem.FileSystem
      const path = yield* Path.Path
      const found = yield* findState(a.project, a.release, a.generation, a.state)
      const bytes = registry.readStream(a.project, found.release, found.generation, found.sid)
      const describe = { project: a.project, release: found.release.toString(), generation: found.generation }
      if (Option.isSome(a.output)) {
        const target = path.resolve(a.output.value)
        yield* writeAtomically(target, (part) => Stream.run(bytes, fs.sink(part)))
        const size = Number((yield* Effect.orDie(fs.stat(target))).size)
        if (json) return yield* printJson({ ...describe, index: found.index, state: found.sid, path: target, size })
        return yield* printLine(`wrote state ${found.index} (${found.sid}) to ${target} (${size} bytes)`)
      }
      if (json) {
        const data = yield* registry.read(a.project, found.release, found.generation, found.sid)
        return yield* printJson({
          ...describe,
          index: found.index,
          state: found.sid,
          size: data.length,
          base64: Buffer.from(data).toString("base64")
        })
      }
      // a reader that stops early (`| head`) is not a failure of this command
      yield* Stream.run(bytes, stdoutSink).pipe(
        Effect.catchIf((e) => e instanceof StorageError && e.path === "stdout" && /EPIPE/.test(e.reason), () =>
          Effect.void)
      )
    })
).pipe(
  Command.withDescription("Write one state blob of a generation to stdout (raw bytes) or to a file"),
  provideStore
)
