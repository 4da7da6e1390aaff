/**
 * The file store's run records: where a run lives (found through a run-id index learnt from reads, else by a scan of
 * every experiment), a run read whole from its meta.yaml and tags, and the runs of an experiment that a search reads.
 *
 * @internal
 */
import { Effect } from "effect"
import { NotFound, type StorageError } from "../../errors.js"
import * as Confined from "../Confined.js"
import type * as Filter from "../Filter.js"
import { Run, RunInfo, type ViewType } from "../Mlflow.js"
import type { Disk } from "./fileStoreDisk.js"
import { type ExperimentLoc, META, RUN_ID, RUN_NAME_TAG, type RunLoc, statusOf, TAGS } from "./fileStoreLayout.js"
import { num, str } from "./metaYaml.js"

/** What run records need of the experiment records. */
export interface ExperimentPlaces {
  readonly experimentLoc: (experimentId: string, deleted: boolean) => ExperimentLoc
  readonly experimentLocs: (viewType: ViewType | undefined) => Effect.Effect<ReadonlyArray<ExperimentLoc>, StorageError>
}

/** Locating and reading the runs of one store. */
export const makeRunRecords = (disk: Disk, experiments: ExperimentPlaces) => {
  const { exists, path, readDir, readRunFiles, realInside } = disk
  const { experimentLoc, experimentLocs } = experiments
  /** Run id → experiment id, learnt from reads: a hint that spares a scan of every experiment. */
  const runIndex = new Map<string, string>()

  const runDirs = (loc: ExperimentLoc) =>
    Effect.map(readDir(loc.dir), (names) => names.filter((n) => RUN_ID.test(n) && n !== TAGS))

  const readRun = (loc: RunLoc): Effect.Effect<Run | undefined, StorageError> =>
    Effect.gen(function*() {
      const files = yield* readRunFiles(loc.dir)
      if (files === undefined) return undefined
      const { meta, tags } = files
      const runId = str(meta.run_id) ?? str(meta.run_uuid)
      const experimentId = str(meta.experiment_id)
      // MLflow reads a run whose recorded ids differ from its place as "metadata in invalid state".
      if (runId !== loc.runId || (experimentId !== undefined && experimentId !== loc.experiment.experimentId)) {
        return undefined
      }
      runIndex.set(loc.runId, loc.experiment.experimentId)
      const endTime = num(meta.end_time)
      return new Run({
        info: new RunInfo({
          runId,
          experimentId: loc.experiment.experimentId,
          runName: str(meta.run_name) ?? tags.find((t) => t.key === RUN_NAME_TAG)?.value ?? "",
          userId: str(meta.user_id) ?? "",
          status: statusOf(meta.status),
          startTime: num(meta.start_time) ?? 0,
          ...(endTime === undefined ? {} : { endTime }),
          artifactUri: str(meta.artifact_uri) ?? "",
          lifecycleStage: str(meta.lifecycle_stage) === "deleted" ? "deleted" : "active"
        }, true),
        tags
      }, true)
    })

  /**
   * Whether a run may pass the tag clauses of a search, judged from its tag files named by them alone: a clause
   * that one read of one tag file shows failing rules the run out (the run did not match at that moment, as a whole
   * read at that moment would show). Undecided cases (a symlink, a key below a `/`) are left to the whole read.
   */
  const mayMatch = (dir: string, clauses: ReadonlyArray<Filter.Clause>): Effect.Effect<boolean, StorageError> =>
    Effect.gen(function*() {
      if (clauses.length === 0) return true
      const tagsDir = yield* realInside(path.join(dir, TAGS))
      const listed = new Map(
        tagsDir === undefined ? [] : (yield* Confined.entries(tagsDir)).map((entry) => [entry.name, entry] as const)
      )
      // absent tags rule a run out before any file is read; then values, last clause first (filters are built
      // from the general to the particular: `forml.repoid` matches every run of a repository, a parent id few)
      if (clauses.some((c) => !listed.has(c.key))) return false
      for (const clause of [...clauses].reverse()) {
        const entry = listed.get(clause.key)
        let value: string | undefined
        if (entry !== undefined && tagsDir !== undefined) {
          if (entry.isFile()) {
            const read = yield* Confined.readTextNoFollow(path.join(tagsDir, clause.key))
            if (read._tag === "Symlink") return true
            value = read._tag === "Text" ? read.text : undefined
          } else if (entry.isSymbolicLink() || !Confined.typeKnown(entry)) return true
        }
        // MLflow's semantics: a run without the tag matches neither `=` nor `!=`
        if (value === undefined || (clause.comparator === "=") !== (value === clause.value)) return false
      }
      return true
    })

  /** The runs of an experiment; with clauses, only those that `mayMatch` them are read whole. */
  const runsIn = (loc: ExperimentLoc, clauses: ReadonlyArray<Filter.Clause> = []) =>
    Effect.flatMap(runDirs(loc), (ids) =>
      Effect.map(
        Effect.forEach(ids, (runId) => {
          const dir = path.join(loc.dir, runId)
          return Effect.flatMap(
            mayMatch(dir, clauses),
            (may) => may ? readRun({ runId, experiment: loc, dir }) : Effect.succeed(undefined)
          )
        }, { concurrency: 16 }),
        (runs) => runs.filter((r): r is Run => r !== undefined)
      ))

  const locateRun = (runId: string): Effect.Effect<RunLoc | undefined, StorageError> =>
    Effect.gen(function*() {
      if (!RUN_ID.test(runId) || runId === TAGS) return undefined
      const at = (experiment: ExperimentLoc): RunLoc => ({ runId, experiment, dir: path.join(experiment.dir, runId) })
      const hint = runIndex.get(runId)
      if (hint !== undefined) {
        for (const deleted of [false, true]) {
          const loc = at(experimentLoc(hint, deleted))
          if (yield* exists(path.join(loc.dir, META))) return loc
        }
      }
      const locs = yield* experimentLocs("ALL")
      const found = yield* Effect.forEach(
        locs,
        (e) => Effect.map(exists(path.join(e.dir, runId, META)), (ok) => (ok ? at(e) : undefined)),
        { concurrency: 16 }
      )
      const loc = found.find((l): l is RunLoc => l !== undefined)
      if (loc !== undefined) runIndex.set(runId, loc.experiment.experimentId)
      return loc
    })

  const findRun = (runId: string) =>
    Effect.gen(function*() {
      const loc = yield* locateRun(runId)
      const run = loc === undefined ? undefined : yield* readRun(loc)
      if (loc === undefined || run === undefined) return yield* new NotFound({ entity: "run", key: runId })
      return { loc, run }
    })

  return {
    runsIn,
    locateRun,
    findRun,
    /** Records that `runId` lives in `experimentId` (a run just created). */
    indexRun: (runId: string, experimentId: string) => {
      runIndex.set(runId, experimentId)
    }
  }
}
