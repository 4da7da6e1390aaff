/**
 * What every subcommand shares: the global options (accepted before the command name and after it), the arguments
 * that name a project, release or generation, and `provideStore`, the one provision that turns a command's handler
 * into its body alone (the settings, the store, progress reporting and the registry are provided around it).
 */
import { Args, Command, Options } from "@effect/cli"
import { Context, Effect, Layer, Option } from "effect"
import { TransportError } from "../errors.js"
import * as MlflowRegistry from "../registry/MlflowRegistry.js"
import * as Progress from "./Progress.js"
import * as Store from "./Store.js"
import { parseArg, parseGeneration, parseProject, parseRelease } from "./Values.js"

// ---------------------------------------------------------------------------------------------------------------
// Global options
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

/** The command without a subcommand: its global options only. */
export const root = Command.make("forml-mlflow", globalOptions).pipe(
  Command.withDescription("A ForML model registry (projects, releases, generations) on an MLflow tracking store")
)

/** The settings of a run, for a command's body: the global options (after the command name winning) and the store. */
export class Settings extends Context.Tag("forml-mlflow/cli/Settings")<
  Settings,
  Globals & { readonly target: Store.Target }
>() {}

/** The global settings: the ones given after the command name win over the ones before it. */
const globals = (local: Globals) =>
  Effect.map(root, (top): Globals => ({
    trackingUri: Option.orElse(local.trackingUri, () => top.trackingUri),
    repoid: Option.orElse(local.repoid, () => top.repoid),
    json: local.json || top.json
  }))

/**
 * The services of a command's body for the settings: the store layer, progress reporting on a terminal (never with
 * --json), and the registry over it.
 */
const services = (local: Globals) =>
  Layer.unwrapEffect(Effect.gen(function*() {
    const g = yield* globals(local)
    const target = yield* Store.parseTarget(Store.trackingUri(Option.getOrUndefined(g.trackingUri)))
    const store = Store.layer(target)
    const progress = !g.json && process.stderr.isTTY === true
      ? Layer.provide(Progress.layer(Progress.stderrScreen), store)
      : store
    const registry = MlflowRegistry.layer({ repoid: Option.getOrUndefined(g.repoid) })
    return Layer.merge(Layer.succeed(Settings, { ...g, target }), Layer.provideMerge(registry, progress))
  }))

/** Says which server could not be reached (the URI without credentials). */
const nameServer = <A, E, R>(body: Effect.Effect<A, E, R>) =>
  Effect.flatMap(Settings, ({ target }) =>
    Effect.mapError(body, (e) =>
      e instanceof TransportError
        ? new TransportError({
          operation: `MLflow at ${Store.describeTarget(target)}: ${e.operation}`,
          reason: e.reason
        })
        : e))

/**
 * Runs a command's handler against the registry its settings point to: `Settings`, `Registry` and `Mlflow` are
 * provided (file system and path come from the platform).
 */
export const provideStore = <Name extends string, R, E, A extends Globals>(self: Command.Command<Name, R, E, A>) =>
  Command.provide(Command.transformHandler(self, nameServer), services)

// ---------------------------------------------------------------------------------------------------------------
// Arguments
// ---------------------------------------------------------------------------------------------------------------

export const projectArg = Args.text({ name: "PROJECT" }).pipe(
  Args.withDescription("A project name (ForML's project, an MLflow experiment)"),
  Args.mapEffect(parseArg(parseProject))
)
export const releaseArg = Args.text({ name: "RELEASE" }).pipe(
  Args.withDescription("A release of the project: its PEP 440 version, such as 0.2.0"),
  Args.mapEffect(parseArg(parseRelease))
)
export const generationArg = Args.text({ name: "GENERATION" }).pipe(
  Args.withDescription("A generation of the release: its number, 1, 2, 3 …"),
  Args.mapEffect(parseArg(parseGeneration))
)
export const outputOption = (description: string) =>
  Options.file("output").pipe(Options.withAlias("o"), Options.withDescription(description), Options.optional)
