/**
 * The experiment methods of the file store: an experiment is created whole under a temporary name and renamed into
 * place under the creation lock; deleting or restoring it moves its directory to or from `.trash/`.
 *
 * @internal
 */
import { Clock, Effect, Option, Stream } from "effect"
import { AlreadyExists, InvalidInput, NotFound, type StorageError } from "../../errors.js"
import * as LocalArtifacts from "../LocalArtifacts.js"
import type { Experiment, SearchExperimentsOptions } from "../Mlflow.js"
import { checkExperimentsSearch, compareStrings, DEFAULT_PAGE_SIZE, experimentAdmitted } from "../semantics.js"
import type { Disk } from "./fileStoreDisk.js"
import {
  apiError,
  checkTags,
  DEFAULT_EXPERIMENT_ID,
  type ExperimentLoc,
  experimentMeta,
  lastWins,
  META,
  paged,
  randomExperimentId,
  runDeleted,
  runRestored,
  type TagInput,
  TAGS
} from "./fileStoreLayout.js"
import type { Records } from "./fileStoreRecords.js"

/** The experiment methods over one store's disk and records; `withCreateLock` serialises creation across processes. */
export const makeExperiments = (
  disk: Disk,
  records: Records,
  withCreateLock: <A, E>(effect: Effect.Effect<A, E>) => Effect.Effect<A, E | StorageError>
) => {
  const { exists, fs, mkdir, path, removeQuietly, root, rootUri, storage, trash, updateMeta, writeTags, writeYaml } =
    disk
  const { allExperiments, experimentLoc, findExperiment, locsNamed, readExperiment, runsIn } = records

  const getExperiment = Effect.fn("MlflowFileStore.getExperiment")(function*(experimentId: string) {
    return (yield* findExperiment(experimentId)).experiment
  })

  const getExperimentByName = Effect.fn("MlflowFileStore.getExperimentByName")(function*(name: string) {
    for (const loc of yield* locsNamed(name)) {
      const found = yield* readExperiment(loc)
      if (found !== undefined && found.name === name) return found
    }
    return yield* new NotFound({ entity: "experiment", key: name })
  })

  const createExperiment = Effect.fn("MlflowFileStore.createExperiment")(function*(
    name: string,
    options?: { readonly tags?: ReadonlyArray<TagInput> }
  ) {
    if (name === "") return yield* new InvalidInput({ kind: "ExperimentName", input: name, reason: "empty" })
    const tags = lastWins(options?.tags ?? [])
    yield* checkTags(tags)
    const now = yield* Clock.currentTimeMillis
    // Built whole under a temporary name, then renamed into place: no reader sees half an experiment.
    const staged = path.join(root, LocalArtifacts.tempName())
    const stage = (experimentId: string) =>
      writeYaml(path.join(staged, META), experimentMeta(rootUri, experimentId, name, now))
    const build = Effect.gen(function*() {
      yield* mkdir(staged)
      if (tags.length > 0) yield* writeTags(path.join(staged, TAGS), tags, true)
      let experimentId = randomExperimentId()
      yield* stage(experimentId)
      return yield* withCreateLock(
        Effect.gen(function*() {
          if ((yield* locsNamed(name)).length > 0) {
            return yield* new AlreadyExists({ entity: "experiment", key: name })
          }
          while ((yield* exists(path.join(root, experimentId))) || (yield* exists(path.join(trash, experimentId)))) {
            experimentId = randomExperimentId()
            yield* stage(experimentId)
          }
          const target = path.join(root, experimentId)
          yield* fs.rename(staged, target).pipe(Effect.mapError(storage(target)))
          return experimentId
        })
      )
    })
    return yield* build.pipe(Effect.onError(() => removeQuietly(staged)))
  })

  /**
   * Moves an experiment between the root and `.trash/` (the move is the change: one rename), then records its new
   * lifecycle in its meta.yaml and in those of its runs, as MLflow does (a restore brings every deleted run back).
   */
  const moveExperiment = (experiment: Experiment, from: ExperimentLoc, to: ExperimentLoc) =>
    Effect.gen(function*() {
      const stage = to.deleted ? "deleted" : "active"
      const now = yield* Clock.currentTimeMillis
      yield* fs.rename(from.dir, to.dir).pipe(Effect.mapError(storage(to.dir)))
      yield* updateMeta(to.dir, (meta) => ({
        ...meta,
        lifecycle_stage: stage,
        last_update_time: now,
        tags: Object.fromEntries(experiment.tags.map((t) => [t.key, t.value]))
      }))
      const runs = yield* runsIn(to)
      yield* Effect.forEach(
        runs.filter((r) => r.info.lifecycleStage !== stage),
        (r) => updateMeta(path.join(to.dir, r.runId), to.deleted ? runDeleted(now) : runRestored),
        { discard: true }
      )
    })

  const deleteExperiment = Effect.fn("MlflowFileStore.deleteExperiment")(function*(experimentId: string) {
    if (experimentId === DEFAULT_EXPERIMENT_ID) {
      return yield* apiError(
        500,
        "INTERNAL_ERROR",
        `Cannot delete the default experiment '${DEFAULT_EXPERIMENT_ID}'. This is an internally reserved experiment.`
      )
    }
    const { experiment, loc } = yield* findExperiment(experimentId)
    if (loc.deleted) return yield* new NotFound({ entity: "experiment", key: experimentId })
    const target = experimentLoc(experimentId, true)
    if (yield* exists(target.dir)) {
      return yield* apiError(500, "INTERNAL_ERROR", `Destination path '${target.dir}' already exists`)
    }
    yield* moveExperiment(experiment, loc, target)
  })

  const restoreExperiment = Effect.fn("MlflowFileStore.restoreExperiment")(function*(experimentId: string) {
    const { experiment, loc } = yield* findExperiment(experimentId)
    if (!loc.deleted) return yield* new NotFound({ entity: "experiment", key: experimentId })
    const target = experimentLoc(experimentId, false)
    if (yield* exists(target.dir)) {
      return yield* apiError(
        500,
        "INTERNAL_ERROR",
        `Cannot restore experiment with ID ${experimentId}. An experiment with same ID already exists.`
      )
    }
    yield* moveExperiment(experiment, loc, target)
  })

  const searchExperiments = (options: SearchExperimentsOptions = {}) =>
    Stream.unwrap(
      Effect.gen(function*() {
        const { filter, maxResults } = yield* checkExperimentsSearch(options.pageSize ?? DEFAULT_PAGE_SIZE, options)
        const experiments = (yield* allExperiments(options.viewType)).filter((e) =>
          experimentAdmitted({ viewType: options.viewType, filter }, e, (key) => Option.getOrUndefined(e.tag(key)))
        )
        // MLflow's file store order: creation_time DESC, then experiment_id ASC.
        experiments.sort((a, b) =>
          (b.creationTime ?? 0) - (a.creationTime ?? 0) || compareStrings(a.experimentId, b.experimentId)
        )
        return paged(experiments, maxResults)
      })
    ).pipe(Stream.withSpan("MlflowFileStore.searchExperiments"))

  return {
    getExperiment,
    getExperimentByName,
    createExperiment,
    deleteExperiment,
    restoreExperiment,
    searchExperiments
  }
}
