/**
 * The file store's records: where experiments live (active or in `.trash/`) and reading them whole from their
 * meta.yaml and tag files; with the run records (`fileStoreRunRecords.ts`), everything the methods read.
 *
 * @internal
 */
import { Effect } from "effect"
import { NotFound, type StorageError } from "../../errors.js"
import { Experiment, type ViewType } from "../Mlflow.js"
import type { Disk } from "./fileStoreDisk.js"
import { EXPERIMENT_ID, type ExperimentLoc, META, MODELS, TAGS } from "./fileStoreLayout.js"
import { makeRunRecords } from "./fileStoreRunRecords.js"
import { num, str } from "./metaYaml.js"

/** Locating and reading the experiments of one store. */
const makeExperimentRecords = (disk: Disk) => {
  const { exists, path, readDir, readMeta, readTags, root, trash } = disk

  const experimentLoc = (experimentId: string, deleted: boolean): ExperimentLoc => ({
    experimentId,
    dir: path.join(deleted ? trash : root, experimentId),
    deleted
  })

  const locateExperiment = (experimentId: string): Effect.Effect<ExperimentLoc | undefined, StorageError> =>
    Effect.gen(function*() {
      if (!EXPERIMENT_ID.test(experimentId)) return undefined
      for (const deleted of [false, true]) {
        const loc = experimentLoc(experimentId, deleted)
        if (yield* exists(path.join(loc.dir, META))) return loc
      }
      return undefined
    })

  const experimentLocs = (viewType: ViewType | undefined): Effect.Effect<ReadonlyArray<ExperimentLoc>, StorageError> =>
    Effect.gen(function*() {
      const view = viewType ?? "ACTIVE_ONLY"
      const ids = (names: ReadonlyArray<string>) => names.filter((n) => EXPERIMENT_ID.test(n) && n !== MODELS)
      const active = view === "DELETED_ONLY" ? [] : ids(yield* readDir(root)).map((id) => experimentLoc(id, false))
      const deleted = view === "ACTIVE_ONLY" ? [] : ids(yield* readDir(trash)).map((id) => experimentLoc(id, true))
      return [...active, ...deleted]
    })

  const readExperiment = (loc: ExperimentLoc): Effect.Effect<Experiment | undefined, StorageError> =>
    Effect.gen(function*() {
      const meta = yield* readMeta(loc.dir)
      if (meta === undefined) return undefined
      const name = str(meta.name)
      const recordedId = str(meta.experiment_id)
      if (name === undefined || (recordedId !== undefined && recordedId !== loc.experimentId)) return undefined
      const creationTime = num(meta.creation_time)
      const lastUpdateTime = num(meta.last_update_time)
      return new Experiment({
        experimentId: loc.experimentId,
        name,
        artifactLocation: str(meta.artifact_location) ?? "",
        lifecycleStage: loc.deleted ? "deleted" : "active",
        ...(creationTime === undefined ? {} : { creationTime }),
        ...(lastUpdateTime === undefined ? {} : { lastUpdateTime }),
        tags: yield* readTags(path.join(loc.dir, TAGS))
      }, true)
    })

  const allExperiments = (viewType: ViewType | undefined) =>
    Effect.flatMap(experimentLocs(viewType), (locs) =>
      Effect.map(
        Effect.forEach(locs, readExperiment, { concurrency: 16 }),
        (es) => es.filter((e): e is Experiment => e !== undefined)
      ))

  /** The experiments (active or deleted) recorded under `name`: only their meta.yaml files are read. */
  const locsNamed = (name: string): Effect.Effect<ReadonlyArray<ExperimentLoc>, StorageError> =>
    Effect.flatMap(experimentLocs("ALL"), (locs) =>
      Effect.map(
        Effect.forEach(
          locs,
          (loc) => Effect.map(readMeta(loc.dir), (meta) => (str(meta?.name) === name ? loc : undefined)),
          { concurrency: 16 }
        ),
        (found) => found.filter((loc): loc is ExperimentLoc => loc !== undefined)
      ))

  const findExperiment = (experimentId: string) =>
    Effect.gen(function*() {
      const loc = yield* locateExperiment(experimentId)
      const experiment = loc === undefined ? undefined : yield* readExperiment(loc)
      if (loc === undefined || experiment === undefined) {
        return yield* new NotFound({ entity: "experiment", key: experimentId })
      }
      return { loc, experiment }
    })

  return { experimentLoc, experimentLocs, locateExperiment, readExperiment, allExperiments, locsNamed, findExperiment }
}

/** Locating and reading the experiments and runs of one store. */
export const makeRecords = (disk: Disk) => {
  const experiments = makeExperimentRecords(disk)
  return { ...experiments, ...makeRunRecords(disk, experiments) }
}

/** The record functions of one store. */
export type Records = ReturnType<typeof makeRecords>
