/**
 * The behaviour every Mlflow layer shares (Memory, Http against the emulator or a server, FileStore), as one suite.
 * It assumes no id format for experiments (sqlite "1", file store 18 digits) and never deletes the Default experiment.
 */
import type { Layer } from "effect"
import { Chunk, Effect, Either, ManagedRuntime, Option, Stream } from "effect"
import { createHash } from "node:crypto"
import { readFileSync } from "node:fs"
import { mkdtemp, rm, writeFile } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { afterAll, describe, expect, it } from "vitest"
import { filterOfText } from "../../emulator/filters.js"
import * as Filter from "../../src/mlflow/Filter.js"
import { concatBytes, downloadBytes, Mlflow } from "../../src/mlflow/Mlflow.js"
import type { Run, ViewType } from "../../src/mlflow/Mlflow.js"
import { sharedPath } from "../support/shared.js"

export interface MlflowContractOptions {
  /** Size of the large streamed artifact round trip; default 50 MiB. */
  readonly largeArtifactBytes?: number | undefined
  /** Per-test timeout in milliseconds; default 30 000. */
  readonly timeout?: number | undefined
  /**
   * How the store refuses a changed param: 400 INVALID_PARAMETER_VALUE (sqlite, the default) or, as MLflow's file
   * store does, 500 INTERNAL_ERROR; "unknown" skips the check (a real server of either backend: a 500 is retried).
   */
  readonly paramRefusal?: "sqlite" | "file" | "unknown" | undefined
}

// ---------------------------------------------------------------------------------------------------------------
// Ground truth: the runs scenario of the MLflow 2.17.2 recording (runs r1..r6 and the filter strings sent to them)
// ---------------------------------------------------------------------------------------------------------------

interface WireLine {
  readonly scenario: string
  readonly step: string
  readonly request: { readonly path: string; readonly json?: Record<string, unknown> }
  readonly response: { readonly status: number; readonly json?: Record<string, unknown> | null }
}

interface RecordedRun {
  readonly runName: string
  readonly startTime: number
  readonly userId: string
  readonly tags: ReadonlyArray<{ readonly key: string; readonly value: string }>
}

interface RecordedFilter {
  readonly step: string
  readonly text: string
  readonly status: number
  /** Run names in the order the server returned them. */
  readonly runNames: ReadonlyArray<string>
}

const readRecording = (file: string): ReadonlyArray<WireLine> =>
  readFileSync(sharedPath("mlflow-wire", file), "utf-8")
    .split("\n")
    .filter((line) => line.trim() !== "")
    .slice(1)
    .map((line) => JSON.parse(line) as WireLine)

const recording = readRecording("mlflow-2.17.2-sqlite.jsonl")

const recordedRuns: ReadonlyArray<RecordedRun> = recording
  .filter((l) => l.scenario === "runs" && /^create-r\d/.test(l.step))
  .map((l) => {
    const json = l.request.json ?? {}
    return {
      runName: String(json["run_name"]),
      startTime: Number(json["start_time"]),
      userId: String(json["user_id"]),
      tags: (json["tags"] ?? []) as ReadonlyArray<{ readonly key: string; readonly value: string }>
    }
  })

const recordedFilters: ReadonlyArray<RecordedFilter> = recording
  .filter((l) =>
    l.scenario === "runs" && l.request.path.endsWith("/runs/search") && typeof l.request.json?.["filter"] === "string"
  )
  .map((l) => ({
    step: l.step,
    text: String(l.request.json?.["filter"]),
    status: l.response.status,
    runNames: ((l.response.json?.["runs"] ?? []) as ReadonlyArray<{ readonly info: { readonly run_name: string } }>)
      .map((r) => r.info.run_name)
  }))

/**
 * The Filter a recorded filter string means, when the builder can express it (equality clauses joined by AND,
 * plain values); `undefined` for LIKE, IN, OR, escapes, unquoted values and the like. The emulator's reading of
 * MLflow's filter grammar, without its attribute-key check (each layer's own check is what the recording tests).
 */
export const parseRecordedFilter = (text: string): Filter.Filter | undefined => filterOfText(text)

export const expressibleRecordedFilters = recordedFilters.flatMap((f) => {
  const filter = parseRecordedFilter(f.text)
  return filter === undefined ? [] : [{ ...f, filter }]
})

// ---------------------------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------------------------

const text = (s: string) => new TextEncoder().encode(s)
const sha256 = (b: Uint8Array) => createHash("sha256").update(b).digest("hex")
const tagValue = (run: Run, key: string) => Option.getOrUndefined(run.tag(key))
const MISSING_RUN = "0000000000000000000000000000dead"
const MISSING_EXPERIMENT = "424242424242424242"

/** Deterministic bytes: block i of a xorshift32 stream seeded by i, `size` bytes in 1 MiB chunks. */
const LARGE_CHUNK = 1 << 20
const largeChunk = (index: number, size: number): Uint8Array => {
  const words = new Uint32Array(Math.ceil(size / 4))
  let x = (index + 1) * 0x9e3779b1 >>> 0 || 1
  for (let i = 0; i < words.length; i++) {
    x ^= x << 13
    x >>>= 0
    x ^= x >>> 17
    x ^= x << 5
    x >>>= 0
    words[i] = x
  }
  return new Uint8Array(words.buffer, 0, size)
}
const largeChunks = (total: number) => Math.ceil(total / LARGE_CHUNK)
const largeStream = (total: number): Stream.Stream<Uint8Array> =>
  total === 0
    ? Stream.empty
    : Stream.range(0, largeChunks(total) - 1).pipe(
      Stream.map((i) => largeChunk(i, Math.min(LARGE_CHUNK, total - i * LARGE_CHUNK)))
    )
const largeSha256 = (total: number): string => {
  const hash = createHash("sha256")
  for (let i = 0; i < largeChunks(total); i++) {
    hash.update(largeChunk(i, Math.min(LARGE_CHUNK, total - i * LARGE_CHUNK)))
  }
  return hash.digest("hex")
}

class StreamBroke {
  readonly _tag = "StreamBroke"
}

// ---------------------------------------------------------------------------------------------------------------
// The suite
// ---------------------------------------------------------------------------------------------------------------

/**
 * Registers the Mlflow behaviour suite for one layer. The layer is built once and shared by every test, so each
 * test works in experiments of its own (names carry a per-run prefix) and looks only at what it made.
 */
export const mlflowContract = <E>(
  name: string,
  layer: Layer.Layer<Mlflow, E>,
  options: MlflowContractOptions = {}
): void => {
  const prefix = `contract-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`
  let counter = 0
  const unique = (label: string) => `${prefix}-${label}-${++counter}`
  const largeBytes = options.largeArtifactBytes ?? 50 * 1024 * 1024
  const timeout = options.timeout ?? 30_000

  /** A fresh experiment for one test. */
  const experiment = (label: string) => Effect.flatMap(Mlflow, (m) => m.createExperiment(unique(label)))
  const run = (
    label: string,
    extra: { readonly startTime?: number; readonly tags?: ReadonlyArray<{ key: string; value: string }> } = {}
  ) =>
    Effect.gen(function*() {
      const m = yield* Mlflow
      const experimentId = yield* experiment(label)
      return yield* m.createRun({ experimentId, runName: label, ...extra })
    })
  const runsOf = (
    experimentIds: ReadonlyArray<string>,
    more: {
      readonly filter?: Filter.Filter
      readonly viewType?: ViewType
      readonly pageSize?: number
      readonly orderBy?: ReadonlyArray<string>
    } = {}
  ) =>
    Effect.flatMap(
      Mlflow,
      (m) => Effect.map(Stream.runCollect(m.searchRuns({ experimentIds, ...more })), Chunk.toReadonlyArray)
    )

  describe(`Mlflow contract: ${name}`, () => {
    // One runtime for the whole suite, on the live clock. (@effect/vitest's `layer` is not used: it rebinds the
    // shared `it.effect` for every later test of the file.)
    const runtime = ManagedRuntime.make(layer)
    afterAll(() => runtime.dispose(), 120_000)
    const test = <A, X>(title: string, body: () => Effect.Effect<A, X, Mlflow>, ms: number = timeout) =>
      it(title, () => runtime.runPromise(Effect.asVoid(body())), ms)
    {
      // -- experiments ------------------------------------------------------------------------------------------

      test("creates an experiment with tags and gets it by id and by name", () =>
        Effect.gen(function*() {
          const m = yield* Mlflow
          const name = unique("exp")
          const id = yield* m.createExperiment(name, {
            tags: [{ key: "team", value: "ml" }, { key: "ns/sub key", value: "x" }]
          })
          expect(typeof id).toBe("string")
          expect(id).not.toBe("")
          const byId = yield* m.getExperiment(id)
          expect(byId.experimentId).toBe(id)
          expect(byId.name).toBe(name)
          expect(byId.lifecycleStage).toBe("active")
          expect(byId.artifactLocation).not.toBe("")
          expect(byId.tag("team")).toEqual(Option.some("ml"))
          expect(byId.tag("ns/sub key")).toEqual(Option.some("x"))
          const byName = yield* m.getExperimentByName(name)
          expect(byName.experimentId).toBe(id)
          const other = yield* m.createExperiment(unique("exp"))
          expect(other).not.toBe(id)
        }))

      test("the Default experiment exists", () =>
        Effect.gen(function*() {
          const m = yield* Mlflow
          const byName = yield* m.getExperimentByName("Default")
          expect(byName.experimentId).toBe("0")
          expect((yield* m.getExperiment("0")).name).toBe("Default")
        }))

      test("a missing experiment is NotFound by id and by name", () =>
        Effect.gen(function*() {
          const m = yield* Mlflow
          const byId = yield* Effect.flip(m.getExperiment(MISSING_EXPERIMENT))
          expect(byId).toMatchObject({ _tag: "NotFound", entity: "experiment", key: MISSING_EXPERIMENT })
          const name = unique("missing")
          const byName = yield* Effect.flip(m.getExperimentByName(name))
          expect(byName).toMatchObject({ _tag: "NotFound", entity: "experiment", key: name })
          expect(yield* Effect.flip(m.deleteExperiment(MISSING_EXPERIMENT))).toMatchObject({ _tag: "NotFound" })
          expect(yield* Effect.flip(m.restoreExperiment(MISSING_EXPERIMENT))).toMatchObject({ _tag: "NotFound" })
        }))

      test("a taken name is AlreadyExists, also when its experiment is deleted", () =>
        Effect.gen(function*() {
          const m = yield* Mlflow
          const name = unique("dup")
          const id = yield* m.createExperiment(name)
          expect(yield* Effect.flip(m.createExperiment(name))).toMatchObject({ _tag: "AlreadyExists", key: name })
          yield* m.deleteExperiment(id)
          expect(yield* Effect.flip(m.createExperiment(name))).toMatchObject({ _tag: "AlreadyExists", key: name })
        }))

      test("an empty experiment name is InvalidInput", () =>
        Effect.gen(function*() {
          const m = yield* Mlflow
          expect(yield* Effect.flip(m.createExperiment(""))).toMatchObject({ _tag: "InvalidInput" })
        }))

      test("deletes and restores an experiment; doing either twice is NotFound", () =>
        Effect.gen(function*() {
          const m = yield* Mlflow
          const name = unique("del")
          const id = yield* m.createExperiment(name)
          yield* m.deleteExperiment(id)
          expect((yield* m.getExperiment(id)).lifecycleStage).toBe("deleted")
          expect((yield* m.getExperimentByName(name)).lifecycleStage).toBe("deleted")
          expect(yield* Effect.flip(m.deleteExperiment(id))).toMatchObject({ _tag: "NotFound" })
          yield* m.restoreExperiment(id)
          expect((yield* m.getExperiment(id)).lifecycleStage).toBe("active")
          expect(yield* Effect.flip(m.restoreExperiment(id))).toMatchObject({ _tag: "NotFound" })
        }))

      test("searches experiments by name and tag, with each view type", () =>
        Effect.gen(function*() {
          const m = yield* Mlflow
          const group = unique("group")
          const tags = [{ key: "contract.group", value: group }]
          const a = yield* m.createExperiment(unique("view-a"), { tags })
          const b = yield* m.createExperiment(unique("view-b"), { tags })
          yield* m.deleteExperiment(b)
          const search = (viewType?: ViewType) =>
            Effect.map(
              Stream.runCollect(
                m.searchExperiments({ filter: Filter.and(Filter.tag("contract.group", group)), viewType })
              ),
              (c) => Chunk.toReadonlyArray(c).map((e) => e.experimentId).sort()
            )
          expect(yield* search()).toEqual([a])
          expect(yield* search("ACTIVE_ONLY")).toEqual([a])
          expect(yield* search("DELETED_ONLY")).toEqual([b])
          expect(yield* search("ALL")).toEqual([a, b].sort())
          const aName = (yield* m.getExperiment(a)).name
          const byName = yield* Stream.runCollect(
            m.searchExperiments({ filter: Filter.and(Filter.attribute("name", aName)) })
          )
          expect(Chunk.toReadonlyArray(byName).map((e) => e.experimentId)).toEqual([a])
          const all = yield* Stream.runCollect(m.searchExperiments())
          expect(Chunk.toReadonlyArray(all).some((e) => e.name === "Default")).toBe(true)
        }))

      test("walks experiment pages to the end with small page sizes", () =>
        Effect.gen(function*() {
          const m = yield* Mlflow
          const group = unique("pages")
          const ids: Array<string> = []
          for (let i = 0; i < 5; i++) {
            ids.push(yield* m.createExperiment(unique("page"), { tags: [{ key: "contract.group", value: group }] }))
          }
          for (const pageSize of [1, 2, 5, 6]) {
            const found = yield* Stream.runCollect(
              m.searchExperiments({ filter: Filter.and(Filter.tag("contract.group", group)), pageSize })
            )
            const got = Chunk.toReadonlyArray(found).map((e) => e.experimentId)
            expect(got.length).toBe(5)
            expect([...got].sort()).toEqual([...ids].sort())
          }
        }))

      test("rejects page sizes outside 1..50000 as InvalidInput", () =>
        Effect.gen(function*() {
          const m = yield* Mlflow
          for (const pageSize of [0, -1, 50001]) {
            expect(yield* Effect.flip(Stream.runCollect(m.searchExperiments({ pageSize })))).toMatchObject({
              _tag: "InvalidInput"
            })
            expect(yield* Effect.flip(Stream.runCollect(m.searchRuns({ experimentIds: ["0"], pageSize }))))
              .toMatchObject({
                _tag: "InvalidInput"
              })
          }
        }))

      // -- runs -------------------------------------------------------------------------------------------------

      test("creates a run with a name, tags, user and start time, and gets it", () =>
        Effect.gen(function*() {
          const m = yield* Mlflow
          const experimentId = yield* experiment("run")
          const created = yield* m.createRun({
            experimentId,
            runName: "r1",
            startTime: 1700000001000,
            userId: "alice",
            tags: [{ key: "forml.level", value: "release" }, { key: "q", value: "a'b\"c" }]
          })
          expect(created.runId).toMatch(/^[0-9a-f]{32}$/)
          expect(created.info).toMatchObject({
            experimentId,
            runName: "r1",
            userId: "alice",
            status: "RUNNING",
            startTime: 1700000001000,
            lifecycleStage: "active"
          })
          expect(created.info.endTime).toBeUndefined()
          expect(created.info.artifactUri).toContain(created.runId)
          expect(tagValue(created, "mlflow.runName")).toBe("r1")
          expect(tagValue(created, "q")).toBe("a'b\"c")
          const got = yield* m.getRun(created.runId)
          expect(got.info).toEqual(created.info)
          expect(tagValue(got, "forml.level")).toBe("release")
          expect(tagValue(got, "mlflow.runName")).toBe("r1")
        }))

      test("a run without a name gets a generated one, also as the mlflow.runName tag", () =>
        Effect.gen(function*() {
          const m = yield* Mlflow
          const experimentId = yield* experiment("noname")
          const created = yield* m.createRun({ experimentId })
          expect(created.info.runName).not.toBe("")
          expect(tagValue(created, "mlflow.runName")).toBe(created.info.runName)
          expect(created.info.userId).toBe("")
          expect(created.info.startTime).toBeGreaterThan(0)
        }))

      test("a missing run or experiment is NotFound", () =>
        Effect.gen(function*() {
          const m = yield* Mlflow
          expect(yield* Effect.flip(m.getRun(MISSING_RUN))).toMatchObject({
            _tag: "NotFound",
            entity: "run",
            key: MISSING_RUN
          })
          expect(yield* Effect.flip(m.createRun({ experimentId: MISSING_EXPERIMENT }))).toMatchObject({
            _tag: "NotFound",
            entity: "experiment"
          })
          for (
            const failing of [
              m.setTag(MISSING_RUN, "k", "v"),
              m.setTags(MISSING_RUN, [{ key: "k", value: "v" }]),
              m.deleteRun(MISSING_RUN),
              m.restoreRun(MISSING_RUN),
              m.updateRun(MISSING_RUN, { status: "FINISHED" })
            ]
          ) {
            expect(yield* Effect.flip(failing)).toMatchObject({ _tag: "NotFound", entity: "run" })
          }
          const none = yield* runsOf([MISSING_EXPERIMENT])
          expect(none).toEqual([])
          expect(yield* runsOf([])).toEqual([])
        }))

      test("filters runs as MLflow 2.17.2 did for every recorded filter the builder can express", () =>
        Effect.gen(function*() {
          const m = yield* Mlflow
          const experimentId = yield* experiment("filters")
          for (const r of recordedRuns) yield* m.createRun({ experimentId, ...r })
          expect(expressibleRecordedFilters.length).toBeGreaterThanOrEqual(15)
          for (const recorded of expressibleRecordedFilters) {
            const result = yield* Effect.either(runsOf([experimentId], { filter: recorded.filter }))
            if (recorded.status === 200) {
              expect(Either.isRight(result), recorded.step).toBe(true)
              if (Either.isRight(result)) {
                expect(result.right.map((r) => r.info.runName), `${recorded.step}: ${recorded.text}`).toEqual(
                  recorded.runNames
                )
              }
            } else {
              expect(Either.isLeft(result), recorded.step).toBe(true)
              if (Either.isLeft(result)) expect(result.left._tag, recorded.step).toBe("InvalidInput")
            }
          }
        }))

      test("filters: != skips runs without the tag; quotes of either kind; both kinds is InvalidInput", () =>
        Effect.gen(function*() {
          const m = yield* Mlflow
          const experimentId = yield* experiment("quotes")
          const one = yield* m.createRun({
            experimentId,
            runName: "one",
            startTime: 3,
            tags: [{ key: "k", value: "it's" }]
          })
          const two = yield* m.createRun({
            experimentId,
            runName: "two",
            startTime: 2,
            tags: [{ key: "k", value: "say \"hi\"" }]
          })
          yield* m.createRun({ experimentId, runName: "three", startTime: 1 })
          const names = (filter: Filter.Filter) =>
            Effect.map(runsOf([experimentId], { filter }), (rs) => rs.map((r) => r.info.runName))
          expect(yield* names(Filter.and(Filter.tag("k", "it's")))).toEqual(["one"])
          expect(yield* names(Filter.and(Filter.tag("k", "say \"hi\"")))).toEqual(["two"])
          expect(yield* names(Filter.and(Filter.tag("k", "it's", "!=")))).toEqual(["two"])
          expect(yield* names(Filter.and(Filter.attribute("run_id", one.runId)))).toEqual(["one"])
          expect(yield* names(Filter.and(Filter.attribute("run_name", "two"), Filter.attribute("status", "RUNNING"))))
            .toEqual(["two"])
          expect(yield* names(Filter.and(Filter.tag("k", "it's"), Filter.attribute("run_id", two.runId)))).toEqual([])
          const both = yield* Effect.flip(runsOf([experimentId], { filter: Filter.and(Filter.tag("k", `a'b"c`)) }))
          expect(both).toMatchObject({ _tag: "InvalidInput" })
        }))

      test("searches runs with each view type", () =>
        Effect.gen(function*() {
          const m = yield* Mlflow
          const experimentId = yield* experiment("runview")
          const a = yield* m.createRun({ experimentId, runName: "a", startTime: 2 })
          const b = yield* m.createRun({ experimentId, runName: "b", startTime: 1 })
          yield* m.deleteRun(b.runId)
          const ids = (viewType?: ViewType) =>
            Effect.map(
              runsOf([experimentId], viewType === undefined ? {} : { viewType }),
              (rs) => rs.map((r) => r.runId)
            )
          expect(yield* ids()).toEqual([a.runId])
          expect(yield* ids("ACTIVE_ONLY")).toEqual([a.runId])
          expect(yield* ids("DELETED_ONLY")).toEqual([b.runId])
          expect(yield* ids("ALL")).toEqual([a.runId, b.runId])
        }))

      test("walks run pages to the end: every run exactly once, newest start first", () =>
        Effect.gen(function*() {
          const m = yield* Mlflow
          const experimentId = yield* experiment("runpages")
          const created: Array<Run> = []
          for (let i = 0; i < 5; i++) {
            created.push(yield* m.createRun({ experimentId, startTime: 1700000000000 + i * 1000 }))
          }
          const expected = [...created].reverse().map((r) => r.runId)
          for (const pageSize of [1, 2, 4, 5, 1000]) {
            const got = (yield* runsOf([experimentId], { pageSize })).map((r) => r.runId)
            expect(got, `page size ${pageSize}`).toEqual(expected)
          }
          yield* m.deleteRun(created[0]!.runId)
          const all = (yield* runsOf([experimentId], { pageSize: 2, viewType: "ALL" })).map((r) => r.runId)
          expect(all).toEqual(expected)
        }))

      test("orders runs by start time and run id, ties broken by run id", () =>
        Effect.gen(function*() {
          const m = yield* Mlflow
          const experimentId = yield* experiment("order")
          const starts = [1700002003000, 1700002001000, 1700002002000, 1700002002000, 1700002004000]
          const runs: Array<Run> = []
          for (const [i, startTime] of starts.entries()) {
            runs.push(yield* m.createRun({ experimentId, runName: `b${i + 1}`, startTime }))
          }
          const byStartThenId = (asc: boolean, idAsc: boolean) =>
            [...runs]
              .sort((x, y) =>
                (x.info.startTime - y.info.startTime) * (asc ? 1 : -1) ||
                (x.runId < y.runId ? -1 : x.runId > y.runId ? 1 : 0) * (idAsc ? 1 : -1)
              )
              .map((r) => r.runId)
          const ids = (orderBy?: ReadonlyArray<string>) =>
            Effect.map(
              runsOf([experimentId], { ...(orderBy === undefined ? {} : { orderBy }), pageSize: 2 }),
              (rs) => rs.map((r) => r.runId)
            )
          expect(yield* ids()).toEqual(byStartThenId(false, true))
          expect(yield* ids(["attributes.start_time ASC"])).toEqual(byStartThenId(true, true))
          expect(yield* ids(["attributes.start_time DESC"])).toEqual(byStartThenId(false, true))
          expect(yield* ids(["attributes.start_time ASC", "attributes.run_id DESC"])).toEqual(
            byStartThenId(true, false)
          )
          expect(yield* ids(["attributes.run_id ASC"])).toEqual(runs.map((r) => r.runId).sort())
          expect(yield* ids(["attributes.run_id DESC"])).toEqual(runs.map((r) => r.runId).sort().reverse())
        }))

      test("sets and overwrites tags; a long value is kept (or cut by sqlite at 8000, never shorter)", () =>
        Effect.gen(function*() {
          const m = yield* Mlflow
          const created = yield* run("settag")
          yield* m.setTag(created.runId, "forml.status", "ok")
          yield* m.setTag(created.runId, "forml.status", "ok2")
          yield* m.setTag(created.runId, "empty", "")
          yield* m.setTag(created.runId, "k".repeat(250), "v")
          const long = "x".repeat(10000)
          yield* m.setTag(created.runId, "long.value", long)
          const got = yield* m.getRun(created.runId)
          expect(tagValue(got, "forml.status")).toBe("ok2")
          expect(tagValue(got, "empty")).toBe("")
          expect(tagValue(got, "k".repeat(250))).toBe("v")
          const stored = tagValue(got, "long.value") ?? ""
          expect(stored.length).toBeGreaterThanOrEqual(8000)
          expect(long.startsWith(stored)).toBe(true)
          expect(got.tags.filter((t) => t.key === "forml.status").length).toBe(1)
        }))

      test("rejects bad tag keys as InvalidInput", () =>
        Effect.gen(function*() {
          const m = yield* Mlflow
          const created = yield* run("badkey")
          for (const key of ["bad key!", "../evil", "", "k".repeat(251), "a//b", "/abs"]) {
            expect(yield* Effect.flip(m.setTag(created.runId, key, "v")), JSON.stringify(key)).toMatchObject({
              _tag: "InvalidInput"
            })
          }
          const experimentId = created.info.experimentId
          expect(yield* Effect.flip(m.createRun({ experimentId, tags: [{ key: "bad key!", value: "v" }] })))
            .toMatchObject({
              _tag: "InvalidInput"
            })
        }))

      test("setTags writes 101 tags, the last value wins, and a batch with a bad key writes nothing", () =>
        Effect.gen(function*() {
          const m = yield* Mlflow
          const created = yield* run("settags")
          const tags = Array.from({ length: 101 }, (_, i) => ({ key: `batch.k${i}`, value: `v${i}` }))
          yield* m.setTags(created.runId, tags)
          yield* m.setTags(created.runId, [{ key: "dup", value: "first" }, { key: "dup", value: "second" }])
          const got = yield* m.getRun(created.runId)
          for (const t of tags) expect(tagValue(got, t.key)).toBe(t.value)
          expect(tagValue(got, "dup")).toBe("second")
          const bad = yield* Effect.flip(
            m.setTags(created.runId, [{ key: "valid.before", value: "x" }, { key: "bad key!", value: "v" }])
          )
          expect(bad).toMatchObject({ _tag: "InvalidInput" })
          expect(tagValue(yield* m.getRun(created.runId), "valid.before")).toBeUndefined()
        }))

      test("setTags sends metrics and params in the batch; mlflow.runName renames; a param keeps its value", () =>
        Effect.gen(function*() {
          const m = yield* Mlflow
          const created = yield* run("extras")
          const metrics = [
            { key: "forml.tuning.score", value: 0.5, timestamp: 1_700_000_000_000, step: 1 },
            { key: "forml.training.ordinal", value: 100, timestamp: 1_700_000_000_000, step: 1 }
          ]
          yield* m.setTags(created.runId, [{ key: "mlflow.runName", value: "renamed · 1" }], {
            metrics,
            params: [{ key: "p", value: "one" }]
          })
          const got = yield* m.getRun(created.runId)
          expect(got.info.runName).toBe("renamed · 1")
          expect(tagValue(got, "mlflow.runName")).toBe("renamed · 1")
          // the same param value again is accepted; another one is refused, and nothing of that batch is written
          yield* m.setTags(created.runId, [], { params: [{ key: "p", value: "one" }] })
          const refusal = options.paramRefusal ?? "sqlite"
          if (refusal !== "unknown") {
            const changed = yield* Effect.flip(
              m.setTags(created.runId, [{ key: "after.refusal", value: "x" }], { params: [{ key: "p", value: "two" }] })
            )
            expect(changed).toMatchObject(
              refusal === "sqlite"
                ? { _tag: "MlflowApiError", status: 400, errorCode: "INVALID_PARAMETER_VALUE" }
                : { _tag: "MlflowApiError", status: 500, errorCode: "INTERNAL_ERROR" }
            )
            expect(tagValue(yield* m.getRun(created.runId), "after.refusal")).toBeUndefined()
          }
          // a bad metric key or a value JSON cannot carry is refused before anything is sent
          for (const bad of [{ ...metrics[0]!, key: "bad key!" }, { ...metrics[0]!, value: Number.NaN }]) {
            expect(yield* Effect.flip(m.setTags(created.runId, [{ key: "k", value: "v" }], { metrics: [bad] })))
              .toMatchObject({ _tag: "InvalidInput" })
          }
          expect(tagValue(yield* m.getRun(created.runId), "k")).toBeUndefined()
        }))

      test("deletes and restores runs idempotently; a deleted run refuses tags and updates", () =>
        Effect.gen(function*() {
          const m = yield* Mlflow
          const created = yield* run("delrun")
          yield* m.deleteRun(created.runId)
          yield* m.deleteRun(created.runId)
          expect((yield* m.getRun(created.runId)).info.lifecycleStage).toBe("deleted")
          for (
            const failing of [
              m.setTag(created.runId, "k", "v"),
              m.setTags(created.runId, [{ key: "k", value: "v" }]),
              m.updateRun(created.runId, { status: "FINISHED", endTime: 1 })
            ]
          ) {
            expect(yield* Effect.flip(failing)).toMatchObject({
              _tag: "MlflowApiError",
              status: 400,
              errorCode: "INVALID_PARAMETER_VALUE"
            })
          }
          yield* m.restoreRun(created.runId)
          yield* m.restoreRun(created.runId)
          const restored = yield* m.getRun(created.runId)
          expect(restored.info.lifecycleStage).toBe("active")
          expect(tagValue(restored, "k")).toBeUndefined()
          yield* m.setTag(created.runId, "k", "v")
          expect(tagValue(yield* m.getRun(created.runId), "k")).toBe("v")
        }))

      test("updates a run: FINISHED with an end time, then a new name", () =>
        Effect.gen(function*() {
          const m = yield* Mlflow
          const created = yield* run("update", { startTime: 1700002002000 })
          const info = yield* m.updateRun(created.runId, { status: "FINISHED", endTime: 1700002060000 })
          expect(info).toMatchObject({ runId: created.runId, status: "FINISHED", endTime: 1700002060000 })
          const got = yield* m.getRun(created.runId)
          expect(got.info.status).toBe("FINISHED")
          expect(got.info.endTime).toBe(1700002060000)
          expect(got.info.startTime).toBe(1700002002000)
          const renamed = yield* m.updateRun(created.runId, { runName: "renamed" })
          expect(renamed.runName).toBe("renamed")
          expect(renamed.status).toBe("FINISHED")
          expect(tagValue(yield* m.getRun(created.runId), "mlflow.runName")).toBe("renamed")
          const killed = yield* run("killed")
          const k = yield* m.updateRun(killed.runId, { status: "KILLED" })
          expect(k.status).toBe("KILLED")
          expect(k.endTime).toBeUndefined()
        }))

      // -- artifacts --------------------------------------------------------------------------------------------

      test("round-trips artifacts of 0 and 1 bytes and lists their sizes", () =>
        Effect.gen(function*() {
          const m = yield* Mlflow
          const { info } = yield* run("small")
          yield* m.uploadArtifact(info, "empty.bin", new Uint8Array(0))
          yield* m.uploadArtifact(info, "one.bin", new Uint8Array([42]))
          expect((yield* downloadBytes(info, "empty.bin")).length).toBe(0)
          expect([...(yield* downloadBytes(info, "one.bin"))]).toEqual([42])
          const listed = yield* m.listArtifacts(info)
          expect(listed.map((f) => ({ ...f }))).toEqual([
            { path: "empty.bin", isDir: false, fileSize: 0 },
            { path: "one.bin", isDir: false, fileSize: 1 }
          ])
        }))

      test("nested paths list one level at a time, sorted, relative to the run root", () =>
        Effect.gen(function*() {
          const m = yield* Mlflow
          const { info } = yield* run("nested")
          yield* m.uploadArtifact(info, "model/sub/weights.bin", text("w".repeat(300)))
          yield* m.uploadArtifact(info, "model/a.txt", text("a"))
          yield* m.uploadArtifact(info, "dir a/my file+x.txt", text("encoded"))
          yield* m.uploadArtifact(info, "hello.txt", text("hello world\n"))
          const plain = (
            fs: ReadonlyArray<
              { readonly path: string; readonly isDir: boolean; readonly fileSize?: number | undefined }
            >
          ) =>
            fs.map((
              f
            ) => (f.isDir ? { path: f.path, isDir: true } : { path: f.path, isDir: false, fileSize: f.fileSize }))
          expect(plain(yield* m.listArtifacts(info))).toEqual([
            { path: "dir a", isDir: true },
            { path: "hello.txt", isDir: false, fileSize: 12 },
            { path: "model", isDir: true }
          ])
          expect(plain(yield* m.listArtifacts(info, "model"))).toEqual([
            { path: "model/a.txt", isDir: false, fileSize: 1 },
            { path: "model/sub", isDir: true }
          ])
          expect(plain(yield* m.listArtifacts(info, "model/sub"))).toEqual([
            { path: "model/sub/weights.bin", isDir: false, fileSize: 300 }
          ])
          expect(yield* m.listArtifacts(info, "nope")).toEqual([])
          expect(yield* m.listArtifacts(info, "hello.txt")).toEqual([])
          expect(new TextDecoder().decode(yield* downloadBytes(info, "dir a/my file+x.txt"))).toBe("encoded")
          yield* m.uploadArtifact(info, "hello.txt", text("overwritten"))
          expect(new TextDecoder().decode(yield* downloadBytes(info, "hello.txt"))).toBe("overwritten")
          const { info: other } = yield* run("nested-other")
          expect(yield* m.listArtifacts(other)).toEqual([])
        }))

      test("uploads from a stream and from a file; a failing stream fails the upload with its own error", () =>
        Effect.gen(function*() {
          const m = yield* Mlflow
          const { info } = yield* run("sources")
          yield* m.uploadArtifact(info, "streamed.txt", Stream.make(text("ab"), text(""), text("cd")))
          expect(new TextDecoder().decode(yield* downloadBytes(info, "streamed.txt"))).toBe("abcd")
          const dir = yield* Effect.promise(() => mkdtemp(join(tmpdir(), "forml-contract-")))
          yield* Effect.ensuring(
            Effect.gen(function*() {
              const file = join(dir, "src.bin")
              yield* Effect.promise(() => writeFile(file, text("from a file")))
              yield* m.uploadArtifact(info, "from/file.bin", { file })
              expect(new TextDecoder().decode(yield* downloadBytes(info, "from/file.bin"))).toBe("from a file")
            }),
            Effect.promise(() => rm(dir, { recursive: true, force: true }))
          )
          const broken = Stream.concat(Stream.make(text("partial")), Stream.fail(new StreamBroke()))
          const failure = yield* Effect.flip(m.uploadArtifact(info, "broken.bin", broken))
          expect(failure).toBeInstanceOf(StreamBroke)
        }))

      test("a missing artifact is NotFound; bad paths are InvalidInput", () =>
        Effect.gen(function*() {
          const m = yield* Mlflow
          const { info } = yield* run("badpaths")
          const missing = yield* Effect.flip(downloadBytes(info, "missing.txt"))
          expect(missing).toMatchObject({ _tag: "NotFound", entity: "artifact" })
          for (const path of ["../x", "/abs", "a/../b", "a//b", "./a", "a\\b"]) {
            expect(yield* Effect.flip(m.uploadArtifact(info, path, text("x"))), path).toMatchObject({
              _tag: "InvalidInput"
            })
            expect(yield* Effect.flip(downloadBytes(info, path)), path).toMatchObject({ _tag: "InvalidInput" })
            expect(yield* Effect.flip(m.listArtifacts(info, path)), path).toMatchObject({ _tag: "InvalidInput" })
          }
          expect(yield* m.listArtifacts(info)).toEqual([])
        }))

      test(`streams a ${largeBytes}-byte artifact up and down intact`, () =>
        Effect.gen(function*() {
          const m = yield* Mlflow
          const { info } = yield* run("large")
          const expected = largeSha256(largeBytes)
          yield* m.uploadArtifact(info, "big/blob.bin", largeStream(largeBytes))
          const hash = createHash("sha256")
          let size = 0
          yield* Stream.runForEach(m.downloadArtifact(info, "big/blob.bin"), (chunk) =>
            Effect.sync(() => {
              size += chunk.length
              hash.update(chunk)
            }))
          expect(size).toBe(largeBytes)
          expect(hash.digest("hex")).toBe(expected)
          const listed = yield* m.listArtifacts(info, "big")
          expect(listed.map((f) => [f.path, f.fileSize])).toEqual([["big/blob.bin", largeBytes]])
        }), Math.max(timeout, 60_000))

      test("artifacts of one run are not another's", () =>
        Effect.gen(function*() {
          const m = yield* Mlflow
          const { info: a } = yield* run("own-a")
          const experimentId = a.experimentId
          const b = (yield* m.createRun({ experimentId })).info
          yield* m.uploadArtifact(a, "tag.toml", text("a"))
          yield* m.uploadArtifact(b, "tag.toml", text("bb"))
          expect(sha256(yield* downloadBytes(a, "tag.toml"))).toBe(sha256(text("a")))
          expect(concatBytes([yield* downloadBytes(b, "tag.toml")]).length).toBe(2)
        }))
    }
  })
}
