/**
 * The run methods of the file store: a run is built whole in a temporary directory and renamed into place; tags,
 * params and metrics are one file per key, each written atomically; status, name and lifecycle live in meta.yaml.
 *
 * @internal
 */
import { Clock, Effect, Either, Stream } from "effect"
import { InvalidInput } from "../../errors.js"
import * as LocalArtifacts from "../LocalArtifacts.js"
import {
  type CreateRunOptions,
  EntityTag,
  Run,
  RunInfo,
  type SearchRunsOptions,
  type UpdateRunOptions
} from "../Mlflow.js"
import {
  checkRunsSearch,
  compareStrings,
  DEFAULT_PAGE_SIZE,
  newRunId,
  randomRunName,
  selectRuns
} from "../semantics.js"
import type { Disk } from "./fileStoreDisk.js"
import {
  apiError,
  checkTags,
  lastWins,
  META,
  notActiveRun,
  paged,
  RUN_FOLDERS,
  RUN_NAME_TAG,
  runAccess,
  runDeleted,
  runMeta,
  runRestored,
  STATUS_CODES,
  TAGS
} from "./fileStoreLayout.js"
import type { Records } from "./fileStoreRecords.js"
import { makeRunData } from "./fileStoreRunData.js"

/** The run methods over one store's disk and records. */
export const makeRuns = (disk: Disk, records: Records) => {
  const { confined, fs, mkdir, path, removeQuietly, storage, updateMeta, writeTags, writeYaml } = disk
  const { findExperiment, findRun, indexRun, locateExperiment, runsIn } = records

  const createRun = Effect.fn("MlflowFileStore.createRun")(function*(options: CreateRunOptions) {
    const { experiment, loc } = yield* findExperiment(options.experimentId)
    if (loc.deleted) {
      return yield* apiError(
        400,
        "INVALID_PARAMETER_VALUE",
        `Could not create run under non-active experiment with ID ${options.experimentId}.`
      )
    }
    const given = lastWins(options.tags ?? [])
    yield* checkTags(given)
    const nameTag = given.find((t) => t.key === RUN_NAME_TAG)?.value
    const requested = options.runName === undefined || options.runName === "" ? undefined : options.runName
    if (requested !== undefined && nameTag !== undefined && requested !== nameTag) {
      return yield* new InvalidInput({
        kind: "RunName",
        input: requested,
        reason: `the run name differs from the ${RUN_NAME_TAG} tag '${nameTag}'`
      })
    }
    const runName = requested ?? nameTag ?? (yield* randomRunName)
    const tags = nameTag === undefined ? [...given, { key: RUN_NAME_TAG, value: runName }] : given
    const runId = newRunId()
    const info = new RunInfo({
      runId,
      experimentId: experiment.experimentId,
      runName,
      userId: options.userId ?? "",
      status: "RUNNING",
      startTime: options.startTime ?? (yield* Clock.currentTimeMillis),
      artifactUri: `${experiment.artifactLocation.replace(/\/+$/, "")}/${runId}/artifacts`,
      lifecycleStage: "active"
    })
    // Built whole in a temporary directory of the experiment, then renamed into place.
    const staged = path.join(loc.dir, LocalArtifacts.tempName())
    yield* Effect.gen(function*() {
      yield* confined(loc.dir)
      for (const folder of RUN_FOLDERS) yield* mkdir(path.join(staged, folder))
      yield* writeTags(path.join(staged, TAGS), tags, true)
      yield* writeYaml(path.join(staged, META), runMeta(info))
      const target = path.join(loc.dir, runId)
      yield* fs.rename(staged, target).pipe(Effect.mapError(storage(target)))
    }).pipe(Effect.onError(() => removeQuietly(staged)))
    indexRun(runId, experiment.experimentId)
    return new Run({ info, tags: [...tags].sort((a, b) => compareStrings(a.key, b.key)).map((t) => new EntityTag(t)) })
  })

  const getRun = Effect.fn("MlflowFileStore.getRun")(function*(runId: string) {
    return (yield* findRun(runId)).run
  })

  const searchRuns = (options: SearchRunsOptions) =>
    Stream.unwrap(
      Effect.gen(function*() {
        const { filter, maxResults, order } = yield* checkRunsSearch(options.pageSize ?? DEFAULT_PAGE_SIZE, options)
        // tag clauses on plain keys (one file right under `tags/`) are checked before a run is read whole
        const clauses = filter.clauses.filter((c) =>
          c.kind === "tag" && !c.key.includes("/") && Either.isRight(checkTags([{ key: c.key, value: "" }]))
        )
        const runs: Array<Run> = []
        for (const experimentId of new Set(options.experimentIds)) {
          const loc = yield* locateExperiment(experimentId)
          if (loc === undefined) continue
          for (const run of yield* runsIn(loc, clauses)) runs.push(run)
        }
        return paged(selectRuns(runs, runAccess, { ...options, filter, order }), maxResults)
      })
    ).pipe(Stream.withSpan("MlflowFileStore.searchRuns"))

  const deleteRun = Effect.fn("MlflowFileStore.deleteRun")(function*(runId: string) {
    const { loc } = yield* findRun(runId)
    const now = yield* Clock.currentTimeMillis
    yield* updateMeta(loc.dir, runDeleted(now))
  })

  const restoreRun = Effect.fn("MlflowFileStore.restoreRun")(function*(runId: string) {
    const { loc } = yield* findRun(runId)
    yield* updateMeta(loc.dir, runRestored)
  })

  const updateRun = Effect.fn("MlflowFileStore.updateRun")(function*(runId: string, options: UpdateRunOptions) {
    const { loc, run } = yield* findRun(runId)
    if (run.info.lifecycleStage !== "active") return yield* notActiveRun(runId)
    const runName = options.runName === undefined || options.runName === "" ? undefined : options.runName
    if (runName !== undefined) {
      yield* confined(loc.dir)
      yield* writeTags(path.join(loc.dir, TAGS), [{ key: RUN_NAME_TAG, value: runName }])
    }
    yield* updateMeta(loc.dir, (meta) => ({
      ...meta,
      ...(options.status === undefined ? {} : { status: STATUS_CODES[options.status] }),
      ...(options.endTime === undefined ? {} : { end_time: options.endTime }),
      ...(runName === undefined ? {} : { run_name: runName })
    }))
    const updated = yield* findRun(runId)
    return updated.run.info
  })

  return { createRun, getRun, searchRuns, deleteRun, restoreRun, updateRun, ...makeRunData(disk, records) }
}
