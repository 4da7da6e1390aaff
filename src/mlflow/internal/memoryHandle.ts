/**
 * MlflowMemory's handle: the store's snapshot, seeding and reset, and the assembly of the service and the handle
 * over one store.
 *
 * @internal
 */
import { Clock, Effect } from "effect"
import { InvalidInput } from "../../errors.js"
import { validateArtifactPath, validateTagKey } from "../Mlflow.js"
import type { KeyValue, MetricPoint, Mlflow } from "../Mlflow.js"
import type {
  ArtifactsInput,
  MlflowMemoryHandle,
  MlflowMemoryOptions,
  Seed,
  Snapshot,
  TagsInput
} from "../MlflowMemory.js"
import { compareStrings, randomRunName } from "../semantics.js"
import { downloadArtifact, listArtifacts, proxyArtifacts, readArtifact, uploadArtifact } from "./memoryArtifacts.js"
import { makeCalls } from "./memoryCalls.js"
import * as Experiments from "./memoryExperiments.js"
import * as Runs from "./memoryRuns.js"
import { addDefault, ARTIFACTS_SCHEME, joinKey, makeStore, rootKey, toExperiment, toRun } from "./memoryStore.js"
import type { Memory, RunRecord, Store } from "./memoryStore.js"

const tagsOf = (tags: TagsInput | undefined): ReadonlyArray<KeyValue> => {
  if (tags === undefined) return []
  if (Array.isArray(tags)) return tags as ReadonlyArray<KeyValue>
  return Object.entries(tags as Readonly<Record<string, string>>).map(([key, value]) => ({ key, value }))
}

const artifactsOf = (
  artifacts: ArtifactsInput | undefined
): ReadonlyArray<{ readonly path: string; readonly bytes: Uint8Array }> => {
  if (artifacts === undefined) return []
  if (Array.isArray(artifacts)) return artifacts as ReadonlyArray<{ readonly path: string; readonly bytes: Uint8Array }>
  return Object.entries(artifacts as Readonly<Record<string, Uint8Array>>).map(([path, bytes]) => ({ path, bytes }))
}

const snapshot = (store: Store) =>
  Effect.sync((): Snapshot => {
    const byRun = new Map<string, Map<string, Uint8Array>>()
    const runsInOrder = [...store.runs.values()].sort((a, b) => a.seq - b.seq)
    for (const run of runsInOrder) {
      const prefix = `${rootKey(run.artifactUri)}/`
      const files = new Map<string, Uint8Array>()
      for (const [key, bytes] of [...store.artifacts].sort(([a], [b]) => compareStrings(a, b))) {
        if (key.startsWith(prefix)) files.set(key.slice(prefix.length), bytes)
      }
      if (files.size > 0) byRun.set(run.runId, files)
    }
    const metrics = new Map<string, ReadonlyArray<MetricPoint>>()
    const params = new Map<string, ReadonlyMap<string, string>>()
    for (const run of runsInOrder) {
      if (run.metrics.length > 0) metrics.set(run.runId, [...run.metrics])
      if (run.params.size > 0) params.set(run.runId, new Map(run.params))
    }
    return {
      experiments: [...store.experiments.values()].sort((a, b) => a.seq - b.seq).map(toExperiment),
      runs: runsInOrder.map(toRun),
      artifacts: byRun,
      metrics,
      params
    }
  })

/** Checks a whole seed before anything is written, so that a rejected seed changes nothing. */
const checkSeed = (store: Store, seed: Seed): Effect.Effect<void, InvalidInput> =>
  Effect.gen(function*() {
    const bad = (input: string, reason: string) => new InvalidInput({ kind: "Seed", input, reason })
    const seedExperiments = seed.experiments ?? []
    const names = new Map<string, string>()
    for (const e of store.experiments.values()) names.set(e.name, e.experimentId)
    for (const e of seedExperiments) {
      for (const t of tagsOf(e.tags)) yield* validateTagKey(t.key)
      const owner = names.get(e.name)
      if (owner !== undefined && owner !== e.experimentId) {
        return yield* bad(e.name, `the experiment name is taken by experiment ${owner}`)
      }
      names.set(e.name, e.experimentId)
    }
    const experimentIds = new Set([...store.experiments.keys(), ...seedExperiments.map((e) => e.experimentId)])
    for (const r of seed.runs ?? []) {
      if (!experimentIds.has(r.experimentId)) return yield* bad(r.runId, `no experiment ${r.experimentId}`)
      for (const t of tagsOf(r.tags)) yield* validateTagKey(t.key)
      for (const a of artifactsOf(r.artifacts)) yield* validateArtifactPath(a.path)
    }
  })

const load = (store: Store) => (seed: Seed): Effect.Effect<void, InvalidInput> =>
  Effect.gen(function*() {
    const now = yield* Clock.currentTimeMillis
    yield* checkSeed(store, seed)
    for (const e of seed.experiments ?? []) {
      const previous = store.experiments.get(e.experimentId)
      store.experiments.set(e.experimentId, {
        experimentId: e.experimentId,
        name: e.name,
        artifactLocation: e.artifactLocation ?? `${ARTIFACTS_SCHEME}/${e.experimentId}`,
        lifecycleStage: e.lifecycleStage ?? "active",
        creationTime: e.creationTime ?? now,
        lastUpdateTime: e.lastUpdateTime ?? e.creationTime ?? now,
        tags: new Map(tagsOf(e.tags).map((t) => [t.key, t.value])),
        seq: previous?.seq ?? store.seq++
      })
      if (/^\d+$/.test(e.experimentId)) {
        const n = BigInt(e.experimentId)
        if (n >= store.nextExperimentId) store.nextExperimentId = n + 1n
      }
    }
    for (const r of seed.runs ?? []) {
      const location = store.experiments.get(r.experimentId)?.artifactLocation ?? ""
      const tags = new Map(tagsOf(r.tags).map((t) => [t.key, t.value]))
      const runName = r.runName ?? tags.get("mlflow.runName") ?? (yield* randomRunName)
      const previous = store.runs.get(r.runId)
      const record: RunRecord = {
        runId: r.runId,
        experimentId: r.experimentId,
        runName,
        userId: r.userId ?? "",
        status: r.status ?? "RUNNING",
        startTime: r.startTime ?? now,
        endTime: r.endTime,
        artifactUri: r.artifactUri ?? `${location}/${r.runId}/artifacts`,
        lifecycleStage: r.lifecycleStage ?? "active",
        tags,
        metrics: [],
        params: new Map(),
        seq: previous?.seq ?? store.seq++
      }
      store.runs.set(r.runId, record)
      const root = rootKey(record.artifactUri)
      for (const a of artifactsOf(r.artifacts)) store.artifacts.set(joinKey(root, a.path), a.bytes.slice())
    }
  })

const reset = (store: Store) =>
  Effect.flatMap(Clock.currentTimeMillis, (now) =>
    Effect.sync(() => {
      store.experiments.clear()
      store.runs.clear()
      store.artifacts.clear()
      store.nextExperimentId = 1n
      addDefault(store, now)
    }))

const service = (m: Memory): Mlflow.Service => ({
  getExperiment: Experiments.getExperiment(m),
  getExperimentByName: Experiments.getExperimentByName(m),
  createExperiment: Experiments.createExperiment(m),
  deleteExperiment: Experiments.deleteExperiment(m),
  restoreExperiment: Experiments.restoreExperiment(m),
  searchExperiments: Experiments.searchExperiments(m),
  createRun: Runs.createRun(m),
  getRun: Runs.getRun(m),
  searchRuns: Runs.searchRuns(m),
  setTag: Runs.setTag(m),
  setTags: Runs.setTags(m),
  deleteRun: Runs.deleteRun(m),
  restoreRun: Runs.restoreRun(m),
  updateRun: Runs.updateRun(m),
  uploadArtifact: uploadArtifact(m),
  downloadArtifact: downloadArtifact(m),
  readArtifact: readArtifact(m),
  listArtifacts: listArtifacts(m)
})

/** A store created at `createdAt`, with the Mlflow service and the handle over it. */
export const makeHandle = (config: MlflowMemoryOptions, createdAt: number): MlflowMemoryHandle.Service => {
  const store = makeStore(config, createdAt)
  const { enter, ...calls } = makeCalls()
  const m: Memory = { store, enter }
  return {
    mlflow: service(m),
    snapshot: snapshot(store),
    load: load(store),
    reset: reset(store),
    ...calls,
    searchRunsPage: Runs.searchRunsPage(m),
    searchExperimentsPage: Experiments.searchExperimentsPage(m),
    setExperimentTag: Experiments.setExperimentTag(m),
    renameExperiment: Experiments.renameExperiment(m),
    deleteTag: Runs.deleteTag(m),
    ...proxyArtifacts(store)
  }
}
