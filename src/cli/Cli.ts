/**
 * The `forml-mlflow` command: list, push, pull, show, state, commit and demo over a registry on an MLflow store,
 * a thin shell over Directory (parsing arguments, printing tables or JSON) with @effect/cli.
 */
import { Args, Command, HelpDoc, Options } from "@effect/cli"
import * as FileSystem from "@effect/platform/FileSystem"
import * as Path from "@effect/platform/Path"
import * as NodeSink from "@effect/platform-node/NodeSink"
import { Effect, Either, Layer, Option, Stream } from "effect"
import { createRequire } from "node:module"
import type { GenerationKey } from "../asset/GenerationKey.js"
import { Package } from "../asset/Package.js"
import type { ProjectKey } from "../asset/ProjectKey.js"
import { ReleaseKey } from "../asset/ReleaseKey.js"
import { Tag, Timestamp } from "../asset/Tag.js"
import { NotFound, StorageError, TransportError } from "../errors.js"
import { Mlflow } from "../mlflow/Mlflow.js"
import * as Directory from "../registry/Directory.js"
import * as MlflowRegistry from "../registry/MlflowRegistry.js"
import { Registry } from "../registry/Registry.js"
import * as Demo from "./Demo.js"
import * as Gc from "./gc.js"
import { fields, printJson, printLine, table } from "./Output.js"
import * as Progress from "./Progress.js"
import * as Store from "./Store.js"
import {
  orDash,
  parseArg,
  parseGeneration,
  parseOrdinal,
  parseProject,
  parseRelease,
  parseStateRef,
  pickState,
  type StateRef,
  tagJson,
  timestampText
} from "./Values.js"

// ---------------------------------------------------------------------------------------------------------------
// Global options (accepted before the command name and after it)
// ---------------------------------------------------------------------------------------------------------------

/** The options every command takes (spread them into a new command's config). */
export const globalOptions = {
  trackingUri: Options.text("tracking-uri").pipe(
    Options.withDescription(
      "The MLflow store: an http(s):// server, a sqlite:///, postgresql:// or mysql:// database, a file: URI or a local path (default: MLFLOW_TRACKING_URI, else ./mlruns)"
    ),
    Options.optional
  ),
  repoid: Options.text("repoid").pipe(
    Options.withDescription("The virtual repository: projects are kept as experiments named <project>@<repoid>"),
    Options.optional
  ),
  json: Options.boolean("json").pipe(Options.withDescription("Print one JSON document instead of text"))
}

export interface Globals {
  readonly trackingUri: Option.Option<string>
  readonly repoid: Option.Option<string>
  readonly json: boolean
}

const root = Command.make("forml-mlflow", globalOptions).pipe(
  Command.withDescription("A ForML model registry (projects, releases, generations) on an MLflow tracking store")
)

/** The global settings: the ones given after the command name win over the ones before it. */
export const globals = (local: Globals) =>
  Effect.map(root, (top): Globals => ({
    trackingUri: Option.orElse(local.trackingUri, () => top.trackingUri),
    repoid: Option.orElse(local.repoid, () => top.repoid),
    json: local.json || top.json
  }))

/**
 * Runs a command body against the registry the settings point to: the store layer, progress reporting on a
 * terminal (never with --json), and the registry over it.
 */
export const withRegistry = <A, E>(
  g: Globals,
  body: Effect.Effect<A, E, Registry | Mlflow | FileSystem.FileSystem | Path.Path>
) =>
  Effect.gen(function*() {
    const uri = Store.trackingUri(Option.getOrUndefined(g.trackingUri))
    const target = yield* Store.parseTarget(uri)
    const store = Store.layer(target)
    const progress = !g.json && process.stderr.isTTY === true
      ? Layer.provide(Progress.layer(Progress.stderrScreen), store)
      : store
    const registry = MlflowRegistry.layer({ repoid: Option.getOrUndefined(g.repoid) })
    return yield* body.pipe(
      Effect.provide(Layer.provideMerge(registry, progress)),
      // say which server could not be reached (the URI without credentials)
      Effect.mapError((e) =>
        e instanceof TransportError
          ? new TransportError({ operation: `MLflow at ${Store.describeTarget(target)}: ${e.operation}`, reason: e.reason })
          : e
      )
    )
  })

// ---------------------------------------------------------------------------------------------------------------
// Arguments
// ---------------------------------------------------------------------------------------------------------------

const projectArg = Args.text({ name: "PROJECT" }).pipe(
  Args.withDescription("A project name (ForML's project, an MLflow experiment)"),
  Args.mapEffect(parseArg(parseProject))
)
const releaseArg = Args.text({ name: "RELEASE" }).pipe(
  Args.withDescription("A release of the project: its PEP 440 version, such as 0.2.0"),
  Args.mapEffect(parseArg(parseRelease))
)
const generationArg = Args.text({ name: "GENERATION" }).pipe(
  Args.withDescription("A generation of the release: its number, 1, 2, 3 …"),
  Args.mapEffect(parseArg(parseGeneration))
)
const outputOption = (description: string) =>
  Options.file("output").pipe(Options.withAlias("o"), Options.withDescription(description), Options.optional)

const undefinedIfNone = Option.getOrUndefined

// ---------------------------------------------------------------------------------------------------------------
// list
// ---------------------------------------------------------------------------------------------------------------

const CONCURRENCY = 8

const listProjects = (g: Globals) =>
  Effect.gen(function*() {
    const projects = yield* Directory.projects
    const rows = yield* Effect.forEach(
      projects,
      (project) => Effect.map(Directory.releases(project), (releases) => ({ project, releases })),
      { concurrency: CONCURRENCY }
    )
    if (g.json) {
      return yield* printJson({
        projects: rows.map((r) => ({
          name: r.project,
          releases: r.releases.length,
          latest: r.releases.length === 0 ? null : r.releases[r.releases.length - 1]!.toString()
        }))
      })
    }
    if (rows.length === 0) return yield* printLine("no projects")
    yield* printLine(table(
      ["PROJECT", "RELEASES", "LATEST"],
      rows.map((r) => [r.project, String(r.releases.length), r.releases.at(-1)?.toString() ?? "-"])
    ))
  })

const listReleases = (g: Globals, project: ProjectKey) =>
  Effect.gen(function*() {
    const releases = yield* Directory.releases(project)
    const rows = yield* Effect.forEach(
      releases,
      (release) => Effect.map(Directory.generations(project, release), (generations) => ({ release, generations })),
      { concurrency: CONCURRENCY }
    )
    if (g.json) {
      return yield* printJson({
        project,
        releases: rows.map((r) => ({
          release: r.release.toString(),
          generations: r.generations.length,
          latest: r.generations.at(-1) ?? null
        }))
      })
    }
    if (rows.length === 0) return yield* printLine(`no releases of ${project}`)
    yield* printLine(table(
      ["RELEASE", "GENERATIONS", "LATEST"],
      rows.map((r) => [r.release.toString(), String(r.generations.length), String(r.generations.at(-1) ?? "-")])
    ))
  })

const listGenerations = (g: Globals, project: ProjectKey, releaseKey: ReleaseKey) =>
  Effect.gen(function*() {
    const registry = yield* Registry
    const release = yield* Directory.release(project, releaseKey)
    const generations = yield* Directory.generations(project, release)
    const rows = yield* Effect.forEach(
      generations,
      (generation) => Effect.map(registry.open(project, release, generation), (tag) => ({ generation, tag })),
      { concurrency: CONCURRENCY }
    )
    if (g.json) {
      return yield* printJson({
        project,
        release: release.toString(),
        generations: rows.map((r) => ({ generation: r.generation, ...tagJson(r.tag) }))
      })
    }
    if (rows.length === 0) return yield* printLine(`no generations of ${project} ${release}`)
    yield* printLine(table(
      ["GENERATION", "TRAINED", "ORDINAL", "TUNED", "SCORE", "STATES"],
      rows.map((r) => [
        String(r.generation),
        timestampText(r.tag.training.timestamp),
        orDash(r.tag.training.ordinal),
        timestampText(r.tag.tuning.timestamp),
        orDash(r.tag.tuning.score),
        String(r.tag.states.length)
      ])
    ))
  })

const listStates = (g: Globals, project: ProjectKey, releaseKey: ReleaseKey, generationKey: GenerationKey) =>
  Effect.gen(function*() {
    const registry = yield* Registry
    const release = yield* Directory.release(project, releaseKey)
    const generation = yield* Directory.generation(project, release, generationKey)
    const tag = yield* registry.open(project, release, generation)
    if (g.json) {
      return yield* printJson({ project, release: release.toString(), generation, states: [...tag.states] })
    }
    if (tag.states.length === 0) return yield* printLine(`no states in ${project} ${release} generation ${generation}`)
    yield* printLine(table(["INDEX", "STATE"], tag.states.map((sid, i) => [String(i), sid])))
  })

const list = Command.make(
  "list",
  {
    ...globalOptions,
    project: Args.optional(projectArg),
    release: Args.optional(releaseArg),
    generation: Args.optional(generationArg)
  },
  (a) =>
    Effect.flatMap(globals(a), (g) =>
      withRegistry(
        g,
        Option.match(a.project, {
          onNone: () => listProjects(g),
          onSome: (project) =>
            Option.match(a.release, {
              onNone: () => listReleases(g, project),
              onSome: (release) =>
                Option.match(a.generation, {
                  onNone: () => listGenerations(g, project, release),
                  onSome: (generation) => listStates(g, project, release, generation)
                })
            })
        })
      ))
).pipe(Command.withDescription(
  "List projects; the releases of a project; the generations of a release; the states of a generation"
))

// ---------------------------------------------------------------------------------------------------------------
// push, pull
// ---------------------------------------------------------------------------------------------------------------

const push = Command.make(
  "push",
  {
    ...globalOptions,
    package: Args.path({ name: "PACKAGE", exists: "yes" }).pipe(
      Args.withDescription("A .4ml package file or a package directory (with __4ml__.py at its root)")
    )
  },
  (a) =>
    Effect.flatMap(globals(a), (g) =>
      withRegistry(
        g,
        Effect.gen(function*() {
          const pkg = yield* Package.open(a.package)
          const published = yield* Directory.publish(pkg)
          if (g.json) {
            return yield* printJson({ project: published.project, release: published.release.toString() })
          }
          yield* printLine(`published ${published.project} ${published.release}`)
        })
      ))
).pipe(Command.withDescription("Publish a package as a new release (its version must be above the latest release)"))

/** Copies a file next to `target` and renames it into place, so that `target` is never half-written. */
const copyInto = (source: string, target: string) =>
  Effect.gen(function*() {
    const fs = yield* FileSystem.FileSystem
    const part = `${target}.part-${process.pid}`
    yield* fs.copyFile(source, part).pipe(
      Effect.zipRight(fs.rename(part, target)),
      Effect.tapError(() => Effect.ignore(fs.remove(part))),
      Effect.mapError((e) => new StorageError({ path: target, reason: e.message }))
    )
  })

const pull = Command.make(
  "pull",
  {
    ...globalOptions,
    project: projectArg,
    release: Args.optional(releaseArg),
    output: outputOption("Where to write the package (default: ./<project>-<release>.4ml)")
  },
  (a) =>
    Effect.flatMap(globals(a), (g) =>
      withRegistry(
        g,
        Effect.gen(function*() {
          const path = yield* Path.Path
          const fs = yield* FileSystem.FileSystem
          const release = yield* Directory.release(a.project, undefinedIfNone(a.release))
          const pkg = yield* Directory.pull(a.project, release)
          const target = path.resolve(Option.getOrElse(a.output, () => `${a.project}-${release}.4ml`))
          yield* copyInto(pkg.path, target)
          const size = yield* fs.stat(target).pipe(
            Effect.map((info) => Number(info.size)),
            Effect.mapError((e) => new StorageError({ path: target, reason: e.message }))
          )
          if (g.json) {
            return yield* printJson({ project: a.project, release: release.toString(), path: target, size })
          }
          yield* printLine(`pulled ${a.project} ${release} to ${target} (${size} bytes)`)
        })
      ))
).pipe(Command.withDescription("Download the package of a release (default: the latest release)"))

// ---------------------------------------------------------------------------------------------------------------
// show, state
// ---------------------------------------------------------------------------------------------------------------

const show = Command.make(
  "show",
  {
    ...globalOptions,
    project: projectArg,
    release: Args.optional(releaseArg),
    generation: Args.optional(generationArg)
  },
  (a) =>
    Effect.flatMap(globals(a), (g) =>
      withRegistry(
        g,
        Effect.gen(function*() {
          const registry = yield* Registry
          const position = yield* Directory.resolve(a.project, undefinedIfNone(a.release), undefinedIfNone(a.generation))
          const tag = yield* Option.match(position.generation, {
            onNone: () => Effect.succeed(Tag.empty),
            onSome: (generation) => registry.open(a.project, position.release, generation)
          })
          const generation = Option.getOrNull(position.generation)
          if (g.json) {
            return yield* printJson({ project: a.project, release: position.release.toString(), generation, ...tagJson(tag) })
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
      ))
).pipe(Command.withDescription(
  "Show the tag (training, tuning, states) of a generation (default: the latest release and generation)"
))

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

/** A sink into stdout that leaves it open; a closed pipe (`| head`) is a storage failure of "stdout". */
const stdoutSink = NodeSink.fromWritable<StorageError, Uint8Array>(
  () => process.stdout,
  (e) => new StorageError({ path: "stdout", reason: e instanceof Error ? e.message : String(e) }),
  { endOnDone: false }
)

const state = Command.make(
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
    Effect.flatMap(globals(a), (g) =>
      withRegistry(
        g,
        Effect.gen(function*() {
          const registry = yield* Registry
          const fs = yield* FileSystem.FileSystem
          const path = yield* Path.Path
          const found = yield* findState(a.project, a.release, a.generation, a.state)
          const bytes = registry.readStream(a.project, found.release, found.generation, found.sid)
          const describe = { project: a.project, release: found.release.toString(), generation: found.generation }
          if (Option.isSome(a.output)) {
            const target = path.resolve(a.output.value)
            const part = `${target}.part-${process.pid}`
            yield* bytes.pipe(
              Stream.run(fs.sink(part)),
              Effect.zipRight(fs.rename(part, target)),
              Effect.tapError(() => Effect.ignore(fs.remove(part))),
              Effect.catchTags({
                SystemError: (e) => new StorageError({ path: target, reason: e.message }),
                BadArgument: (e) => new StorageError({ path: target, reason: e.message })
              })
            )
            const size = Number((yield* Effect.orDie(fs.stat(target))).size)
            if (g.json) {
              return yield* printJson({ ...describe, index: found.index, state: found.sid, path: target, size })
            }
            return yield* printLine(`wrote state ${found.index} (${found.sid}) to ${target} (${size} bytes)`)
          }
          if (g.json) {
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
            Effect.catchIf((e) => e instanceof StorageError && e.path === "stdout" && /EPIPE/.test(e.reason), () => Effect.void)
          )
        })
      ))
).pipe(Command.withDescription("Write one state blob of a generation to stdout (raw bytes) or to a file"))

// ---------------------------------------------------------------------------------------------------------------
// commit
// ---------------------------------------------------------------------------------------------------------------

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

const commit = Command.make(
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
    score: Options.float("score").pipe(Options.withDescription("A tuning score (marks the generation tuned now)"), Options.optional)
  },
  (a) =>
    Effect.flatMap(globals(a), (g) =>
      withRegistry(
        g,
        Effect.gen(function*() {
          const fs = yield* FileSystem.FileSystem
          const release = yield* Directory.release(a.project, undefinedIfNone(a.inputs.release))
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
          if (g.json) {
            return yield* printJson({ project: a.project, release: release.toString(), generation })
          }
          yield* printLine(String(generation))
        })
      ))
).pipe(Command.withDescription(
  "Write the files as the states of a new generation (the next number) trained now; prints its number"
))

// ---------------------------------------------------------------------------------------------------------------
// demo
// ---------------------------------------------------------------------------------------------------------------

const demo = Command.make("demo", globalOptions, (a) =>
  Effect.flatMap(globals(a), (g) =>
    withRegistry(
      g,
      Effect.gen(function*() {
        const done = yield* Effect.scoped(Demo.run())
        if (g.json) {
          return yield* printJson({
            project: Demo.PROJECT,
            releases: done.map((r) => ({ release: r.release.toString(), generations: r.generations }))
          })
        }
        for (const r of done) {
          yield* printLine(`published ${Demo.PROJECT} ${r.release} with generations ${r.generations.join(", ")}`)
        }
      })
    ))).pipe(Command.withDescription(`Fill the store with an example project (${Demo.PROJECT}): releases, generations, states`))

// ---------------------------------------------------------------------------------------------------------------
// The application
// ---------------------------------------------------------------------------------------------------------------

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

export const command = root.pipe(
  Command.withSubcommands([
    list, push, pull, show, state, commit, demo, Gc.command({ globalOptions, globals, withRegistry })
  ])
)

/** Parses `argv` (as `process.argv`: runtime and script first) and runs the command it names. */
export const run = Command.run(command, { name: "forml-mlflow", version: version() })
