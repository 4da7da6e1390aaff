/**
 * `forml-mlflow gc`: finds the orphaned trainings of a repository (generation runs never committed, such as those of
 * a process killed before it closed) older than a given age, and deletes them unless it is a dry run (the default).
 */
import { Command, HelpDoc, Options, ValidationError } from "@effect/cli"
import { Array as Arr, Chunk, Clock, Duration, Effect, Either, Option, Order, Stream } from "effect"
import { InvalidInput } from "../errors.js"
import * as Filter from "../mlflow/Filter.js"
import { Mlflow } from "../mlflow/Mlflow.js"
import type { Run } from "../mlflow/Mlflow.js"
import * as Layout from "../registry/layout.js"
import { printJson, printLine, table } from "./Output.js"
import { globalOptions, provideStore, Settings } from "./Shell.js"

/** One orphaned training: an uncommitted generation run of this repository. */
export interface Orphan {
  readonly project: string
  /** The release version of its parent run, when that run is still there. */
  readonly release: Option.Option<string>
  readonly run: Run
}

const UNITS: Readonly<Record<string, number>> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000 }

/** A duration such as `90s`, `30m`, `12h`, `7d`, `2w` (several parts add up: `1d12h`); `0` is no age at all. */
export const parseDuration = (text: string): Either.Either<Duration.Duration, InvalidInput> => {
  const compact = text.replace(/\s+/g, "").toLowerCase()
  if (compact === "0") return Either.right(Duration.zero)
  const parts = [...compact.matchAll(/(\d+(?:\.\d+)?)(ms|s|m|h|d|w)/g)]
  if (!/^(?:\d+(?:\.\d+)?(?:ms|s|m|h|d|w))+$/.test(compact)) {
    return Either.left(
      new InvalidInput({ kind: "Duration", input: text, reason: "expected a number and a unit (ms, s, m, h, d, w), such as 12h or 7d" })
    )
  }
  return Either.right(Duration.millis(parts.reduce((ms, p) => ms + Number(p[1]) * UNITS[p[2]!]!, 0)))
}

const collect = <A, E>(stream: Stream.Stream<A, E>) => Effect.map(Stream.runCollect(stream), Chunk.toReadonlyArray)

/**
 * The orphaned trainings of repository `repoid` that started at least `olderThan` ago, oldest first. A run with the
 * commit tag is a generation and never an orphan, whatever its age.
 */
export const orphans = (repoid: string, olderThan: Duration.Duration) =>
  Effect.gen(function*() {
    const mlflow = yield* Mlflow
    const now = yield* Clock.currentTimeMillis
    const cutoff = now - Duration.toMillis(olderThan)
    const experiments = Arr.filterMap(
      yield* collect(mlflow.searchExperiments({ viewType: "ACTIVE_ONLY" })),
      (e) => Option.map(Layout.projectOf(e.name, repoid), (project) => ({ project, experiment: e }))
    )
    const found: Array<Orphan> = []
    for (const { project, experiment } of experiments) {
      const ids = [experiment.experimentId]
      const generations = yield* collect(mlflow.searchRuns({
        experimentIds: ids,
        filter: Filter.and(Filter.tag(Layout.TAG.repoid, repoid), Filter.tag(Layout.TAG.level, Layout.LEVEL.generation))
      }))
      const unbound = generations.filter((r) => !Layout.isCommitted(r) && r.info.startTime <= cutoff)
      if (unbound.length === 0) continue
      const releases = yield* collect(mlflow.searchRuns({ experimentIds: ids, filter: Layout.releaseRuns(repoid), viewType: "ALL" }))
      const versionOf = new Map(releases.map((r) => [r.runId, Option.getOrUndefined(r.tag(Layout.TAG.commit))]))
      for (const run of unbound) {
        const parent = Option.getOrUndefined(run.tag(Layout.TAG.parent))
        found.push({ project, release: Option.fromNullable(parent === undefined ? undefined : versionOf.get(parent)), run })
      }
    }
    return Arr.sort(found, Order.mapInput(Layout.byStart, (o: Orphan) => o.run))
  })

/**
 * Deletes an orphan (MLflow's soft delete: the run moves to the deleted stage, where MLflow's own `gc` purges it),
 * after reading it again: a run that was committed in the meantime is left alone. True when it was deleted.
 */
export const remove = (orphan: Orphan) =>
  Effect.gen(function*() {
    const mlflow = yield* Mlflow
    const current = yield* Effect.option(mlflow.getRun(orphan.run.runId))
    if (Option.isNone(current) || Layout.isCommitted(current.value) || current.value.info.lifecycleStage !== "active") {
      return false
    }
    yield* mlflow.deleteRun(orphan.run.runId)
    return true
  })

// ---------------------------------------------------------------------------------------------------------------
// The command
// ---------------------------------------------------------------------------------------------------------------

const olderThan = Options.text("older-than").pipe(
  Options.withDescription("Only trainings started at least this long ago: 90s, 30m, 12h, 7d, 2w (default 1d)"),
  Options.withDefault("1d"),
  Options.mapEffect((s) =>
    Either.match(parseDuration(s), {
      onLeft: (e) => Effect.fail(ValidationError.invalidValue(HelpDoc.p(e.message))),
      onRight: Effect.succeed
    })
  )
)

/** The `gc` subcommand, for `Command.withSubcommands`. */
export const command = Command.make(
  "gc",
  {
    ...globalOptions,
    olderThan,
    dryRun: Options.boolean("dry-run").pipe(Options.withDescription("Only print what would be deleted (the default)")),
    noDryRun: Options.boolean("no-dry-run").pipe(Options.withDescription("Delete the orphaned trainings found"))
  },
  (a) =>
    Effect.gen(function*() {
      const { json, repoid } = yield* Settings
      const dryRun = a.dryRun || !a.noDryRun
      const found = yield* orphans(Option.getOrElse(repoid, () => ""), a.olderThan)
      const deleted: Array<Orphan> = []
      if (!dryRun) for (const o of found) if (yield* remove(o)) deleted.push(o)
      const row = (o: Orphan) => ({
        project: o.project,
        release: Option.getOrNull(o.release),
        runId: o.run.runId,
        started: new Date(o.run.info.startTime).toISOString()
      })
      if (json) return yield* printJson({ dryRun, orphans: found.map(row), deleted: deleted.map((o) => o.run.runId) })
      if (found.length === 0) return yield* printLine("no orphaned trainings")
      yield* printLine(table(
        ["PROJECT", "RELEASE", "RUN", "STARTED"],
        found.map(row).map((r) => [r.project, r.release ?? "-", r.runId, r.started])
      ))
      yield* printLine(
        dryRun
          ? `${found.length} orphaned training(s) would be deleted (dry run; --no-dry-run deletes them)`
          : `deleted ${deleted.length} orphaned training(s)`
      )
    })
).pipe(
  Command.withDescription(
    "List orphaned trainings (generation runs never committed) older than --older-than, and delete them with " +
      "--no-dry-run; a committed generation is never touched"
  ),
  provideStore
)
