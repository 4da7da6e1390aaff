/**
 * MlflowMemory's experiment operations: the Mlflow service's, and the server's own (tags, rename) for the emulator.
 *
 * @internal
 */
import { Clock, Effect } from "effect"
import { AlreadyExists, InvalidInput, NotFound } from "../../errors.js"
import { validateTagKey } from "../Mlflow.js"
import type { KeyValue, LifecycleStage, SearchExperimentsOptions } from "../Mlflow.js"
import type { SearchExperimentsPageOptions } from "../MlflowMemory.js"
import { DEFAULT_PAGE_SIZE, notActiveExperiment, validateTags } from "../semantics.js"
import { experimentsPage, findExperiment, findExperimentByName, toExperiment, walkPages } from "./memoryStore.js"
import type { Memory } from "./memoryStore.js"

export const getExperiment = (m: Memory) =>
  Effect.fn("MlflowMemory.getExperiment")(function*(experimentId: string) {
    yield* m.enter("getExperiment")
    return toExperiment(yield* findExperiment(m.store, experimentId))
  })

export const getExperimentByName = (m: Memory) =>
  Effect.fn("MlflowMemory.getExperimentByName")(function*(name: string) {
    yield* m.enter("getExperimentByName")
    const e = findExperimentByName(m.store, name)
    if (e === undefined) return yield* new NotFound({ entity: "experiment", key: name })
    return toExperiment(e)
  })

export const createExperiment = (m: Memory) =>
  Effect.fn("MlflowMemory.createExperiment")(function*(
    name: string,
    options?: { readonly tags?: ReadonlyArray<KeyValue> }
  ) {
    yield* m.enter("createExperiment")
    if (name === "") {
      return yield* new InvalidInput({ kind: "ExperimentName", input: name, reason: "empty" })
    }
    const tags = options?.tags ?? []
    yield* validateTags(tags)
    const now = yield* Clock.currentTimeMillis
    const store = m.store
    if (findExperimentByName(store, name) !== undefined) {
      return yield* new AlreadyExists({ entity: "experiment", key: name })
    }
    while (store.experiments.has(String(store.nextExperimentId))) store.nextExperimentId += 1n
    const experimentId = String(store.nextExperimentId)
    store.nextExperimentId += 1n
    store.experiments.set(experimentId, {
      experimentId,
      name,
      artifactLocation: `${store.artifactRoot}/${experimentId}`,
      lifecycleStage: "active",
      creationTime: now,
      lastUpdateTime: now,
      tags: new Map(tags.map((t) => [t.key, t.value])),
      seq: store.seq++
    })
    return experimentId
  })

const setExperimentStage = (m: Memory, experimentId: string, from: LifecycleStage, to: LifecycleStage) =>
  Effect.gen(function*() {
    const e = yield* findExperiment(m.store, experimentId)
    if (e.lifecycleStage !== from) return yield* new NotFound({ entity: "experiment", key: experimentId })
    const now = yield* Clock.currentTimeMillis
    e.lifecycleStage = to
    e.lastUpdateTime = now
    // sqlite marks every run of the experiment with the experiment's stage
    for (const run of m.store.runs.values()) if (run.experimentId === experimentId) run.lifecycleStage = to
  })

export const deleteExperiment = (m: Memory) =>
  Effect.fn("MlflowMemory.deleteExperiment")(function*(experimentId: string) {
    yield* m.enter("deleteExperiment")
    yield* setExperimentStage(m, experimentId, "active", "deleted")
  })

export const restoreExperiment = (m: Memory) =>
  Effect.fn("MlflowMemory.restoreExperiment")(function*(experimentId: string) {
    yield* m.enter("restoreExperiment")
    yield* setExperimentStage(m, experimentId, "deleted", "active")
  })

export const searchExperimentsPage = (m: Memory) =>
  Effect.fn("MlflowMemory.searchExperimentsPage")(function*(options: SearchExperimentsPageOptions) {
    yield* m.enter("searchExperimentsPage")
    return yield* experimentsPage(m.store, options)
  })

export const searchExperiments = (m: Memory) => {
  const page = searchExperimentsPage(m)
  return (options: SearchExperimentsOptions = {}) =>
    walkPages(m, "searchExperiments", (pageToken) =>
      Effect.map(
        page({ ...options, pageToken, maxResults: options.pageSize ?? DEFAULT_PAGE_SIZE }),
        (p) => [p.experiments, p.nextPageToken] as const
      ))
}

export const setExperimentTag = (m: Memory) =>
  Effect.fn("MlflowMemory.setExperimentTag")(function*(experimentId: string, key: string, value: string) {
    const e = yield* findExperiment(m.store, experimentId)
    yield* validateTagKey(key)
    if (e.lifecycleStage !== "active") return yield* notActiveExperiment(experimentId)
    e.tags.set(key, value)
  })

export const renameExperiment = (m: Memory) =>
  Effect.fn("MlflowMemory.renameExperiment")(function*(experimentId: string, name: string) {
    const e = yield* findExperiment(m.store, experimentId)
    if (name === "") return yield* new InvalidInput({ kind: "ExperimentName", input: name, reason: "empty" })
    if (e.lifecycleStage !== "active") return yield* notActiveExperiment(experimentId)
    const owner = findExperimentByName(m.store, name)
    if (owner !== undefined && owner !== e) return yield* new AlreadyExists({ entity: "experiment", key: name })
    e.name = name
    e.lastUpdateTime = yield* Clock.currentTimeMillis
  })
