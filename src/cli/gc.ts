/**
 * What `forml-mlflow gc` does: finds the orphaned trainings of a repository (generation runs never committed, such as
 * those of a process killed before it closed) older than a given age, and deletes them (the command is
 * `commands/gc.ts`).
 */
import { Array as Arr, Chunk, Clock, Duration, Effect, Either, Option, Order, Stream } from "effect"
import { InvalidInput } from "../errors.js"
import * as Filter from "../mlflow/Filter.js"
import { Mlflow } from "../mlflow/Mlflow.js"
import type { Run } from "../mlflow/Mlflow.js"
import * as Layout from "../registry/layout.js"

/** One orphaned training: an uncommitted generation run of this repository. */
export interface Orphan {
  readonly project: string
  /** The release version of its parent run, when that run is still there. */
  readonly release: Option.Option<string>
  readonly run: Run
}

const UNITS: Readonly<Record<string, number>> = {
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
  d: 86_400_000,
  w: 604_800_000
}

/** A duration such as `90s`, `30m`, `12h`, `7d`, `2w` (several parts add up: `1d12h`); `0` is no age at all. */
export const parseDuration = (text: string): Either.Either<Duration.Duration, InvalidInput> => {
  const compact = text.replace(/\s+/g, "").toLowerCase()
  if (compact === "0") return Either.right(Duration.zero)
  const parts = [...compact.matchAll(/(\d+(?:\.\d+)?)(ms|s|m|h|d|w)/g)]
  if (!/^(?:\d+(?:\.\d+)?(?:ms|s|m|h|d|w))+$/.test(compact)) {
    return Either.left(
      new InvalidInput({
        kind: "Duration",
        input: text,
        reason: "expected a number and a unit (ms, s, m, h, d, w), such as 12h or 7d"
      })
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
      const releases = yield* collect(
        mlflow.searchRuns({ experimentIds: ids, filter: Layout.releaseRuns(repoid), viewType: "ALL" })
      )
      const versionOf = new Map(releases.map((r) => [r.runId, Option.getOrUndefined(r.tag(Layout.TAG.commit))]))
      for (const run of unbound) {
        const parent = Option.getOrUndefined(run.tag(Layout.TAG.parent))
        found.push({
          project,
          release: Option.fromNullable(parent === undefined ? undefined : versionOf.get(parent)),
          run
        })
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
