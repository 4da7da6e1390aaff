/**
 * MlflowMemory's run operations: the Mlflow service's, and the server's tag deletion for the emulator.
 *
 * @internal
 */
import { Clock, Effect } from "effect"
import { MlflowApiError, NotFound } from "../../errors.js"
import { validateExtras, validateTagKey } from "../Mlflow.js"
import type {
  CreateRunOptions,
  KeyValue,
  LifecycleStage,
  LogBatchExtras,
  SearchRunsOptions,
  UpdateRunOptions
} from "../Mlflow.js"
import type { SearchRunsPageOptions } from "../MlflowMemory.js"
import {
  DEFAULT_PAGE_SIZE,
  newRunId,
  newRunName,
  notActiveExperiment,
  notActiveRun,
  validateTags
} from "../semantics.js"
import { activeRun, findExperiment, findRun, runsPage, setRunTag, toRun, toRunInfo, walkPages } from "./memoryStore.js"
import type { Memory, RunRecord } from "./memoryStore.js"

export const createRun = (m: Memory) =>
  Effect.fn("MlflowMemory.createRun")(function*(options: CreateRunOptions) {
    yield* m.enter("createRun")
    const experiment = yield* findExperiment(m.store, options.experimentId)
    if (experiment.lifecycleStage !== "active") return yield* notActiveExperiment(options.experimentId)
    const tags = options.tags ?? []
    yield* validateTags(tags)
    const { runName, tagged } = yield* newRunName(options.runName, tags)
    const startTime = options.startTime ?? (yield* Clock.currentTimeMillis)
    const runId = newRunId()
    const record: RunRecord = {
      runId,
      experimentId: experiment.experimentId,
      runName,
      userId: options.userId ?? "",
      status: "RUNNING",
      startTime,
      endTime: undefined,
      artifactUri: `${experiment.artifactLocation}/${runId}/artifacts`,
      lifecycleStage: "active",
      tags: new Map(),
      metrics: [],
      params: new Map(),
      seq: m.store.seq++
    }
    for (const t of tags) record.tags.set(t.key, t.value)
    if (!tagged) record.tags.set("mlflow.runName", runName)
    m.store.runs.set(runId, record)
    return toRun(record)
  })

export const getRun = (m: Memory) =>
  Effect.fn("MlflowMemory.getRun")(function*(runId: string) {
    yield* m.enter("getRun")
    return toRun(yield* findRun(m.store, runId))
  })

export const searchRunsPage = (m: Memory) =>
  Effect.fn("MlflowMemory.searchRunsPage")(function*(options: SearchRunsPageOptions) {
    yield* m.enter("searchRunsPage")
    return yield* runsPage(m.store, options)
  })

export const searchRuns = (m: Memory) => {
  const page = searchRunsPage(m)
  return (options: SearchRunsOptions) =>
    walkPages(m, "searchRuns", (pageToken) =>
      Effect.map(
        page({ ...options, pageToken, maxResults: options.pageSize ?? DEFAULT_PAGE_SIZE }),
        (p) => [p.runs, p.nextPageToken] as const
      ))
}

export const setTag = (m: Memory) =>
  Effect.fn("MlflowMemory.setTag")(function*(runId: string, key: string, value: string) {
    yield* m.enter("setTag")
    const run = yield* findRun(m.store, runId)
    yield* validateTagKey(key)
    if (run.lifecycleStage !== "active") return yield* notActiveRun(runId)
    setRunTag(run, key, value)
  })

export const setTags = (m: Memory) =>
  Effect.fn("MlflowMemory.setTags")(function*(
    runId: string,
    tags: ReadonlyArray<KeyValue>,
    extras?: LogBatchExtras
  ) {
    yield* m.enter("setTags")
    const metrics = extras?.metrics ?? []
    const params = extras?.params ?? []
    if (tags.length === 0 && metrics.length === 0 && params.length === 0) return
    // everything is checked before anything is written, so a rejected call changes nothing
    yield* validateTags(tags)
    yield* validateExtras(extras)
    const run = yield* activeRun(m.store, runId)
    const changed = params.find((p) => run.params.has(p.key) && run.params.get(p.key) !== p.value)
    if (changed !== undefined) {
      return yield* new MlflowApiError({
        status: 400,
        errorCode: "INVALID_PARAMETER_VALUE",
        detail: `Changing param values is not allowed. Param with key='${changed.key}' was already logged.`
      })
    }
    for (const p of params) run.params.set(p.key, p.value)
    for (const x of metrics) run.metrics.push({ key: x.key, value: x.value, timestamp: x.timestamp, step: x.step })
    for (const t of tags) setRunTag(run, t.key, t.value)
  })

const setRunStage = (m: Memory, runId: string, to: LifecycleStage) =>
  Effect.map(findRun(m.store, runId), (run) => {
    run.lifecycleStage = to
  })

export const deleteRun = (m: Memory) =>
  Effect.fn("MlflowMemory.deleteRun")(function*(runId: string) {
    yield* m.enter("deleteRun")
    yield* setRunStage(m, runId, "deleted")
  })

export const restoreRun = (m: Memory) =>
  Effect.fn("MlflowMemory.restoreRun")(function*(runId: string) {
    yield* m.enter("restoreRun")
    yield* setRunStage(m, runId, "active")
  })

export const updateRun = (m: Memory) =>
  Effect.fn("MlflowMemory.updateRun")(function*(runId: string, options: UpdateRunOptions) {
    yield* m.enter("updateRun")
    const run = yield* activeRun(m.store, runId)
    if (options.status !== undefined) run.status = options.status
    if (options.endTime !== undefined) run.endTime = options.endTime
    if (options.runName !== undefined && options.runName !== "") setRunTag(run, "mlflow.runName", options.runName)
    return toRunInfo(run)
  })

export const deleteTag = (m: Memory) =>
  Effect.fn("MlflowMemory.deleteTag")(function*(runId: string, key: string) {
    const run = yield* activeRun(m.store, runId)
    if (!run.tags.has(key)) return yield* new NotFound({ entity: "tag", key })
    run.tags.delete(key)
  })
