/**
 * MlflowMemory: the Mlflow contract, then what only the in-process layer has (sqlite ids and names, the handle,
 * seeding from ForML's recorded layout, call counts, faults, page tokens as 2.17 sends them).
 */
import { describe, expect, it } from "@effect/vitest"
import { Chunk, Effect, Either, Fiber, Option, Stream, TestClock } from "effect"
import { createHash } from "node:crypto"
import { readFileSync } from "node:fs"
import { MlflowApiError, TransportError } from "../src/errors.js"
import * as Filter from "../src/mlflow/Filter.js"
import { downloadBytes, Mlflow } from "../src/mlflow/Mlflow.js"
import type { Run } from "../src/mlflow/Mlflow.js"
import * as MlflowMemory from "../src/mlflow/MlflowMemory.js"
import { MlflowMemoryHandle } from "../src/mlflow/MlflowMemory.js"
import type { Seed } from "../src/mlflow/MlflowMemory.js"
import { mlflowContract } from "./contract/mlflow.js"
import { layoutSeed, readLayout } from "./support/layout.js"
import { sharedPath } from "./support/shared.js"

mlflowContract("MlflowMemory", MlflowMemory.layer())
mlflowContract("MlflowMemory (trailing empty pages)", MlflowMemory.layer({ trailingEmptyPage: true }), {
  largeArtifactBytes: 3 * 1024 * 1024 + 17
})

const text = (s: string) => new TextEncoder().encode(s)
const decode = (b: Uint8Array) => new TextDecoder().decode(b)
const tagValue = (run: Run, key: string) => Option.getOrUndefined(run.tag(key))
const fresh = <A, E>(self: Effect.Effect<A, E, Mlflow | MlflowMemoryHandle>) =>
  Effect.provide(self, MlflowMemory.layer())
const boom = new TransportError({ operation: "test", reason: "injected" })

// ---------------------------------------------------------------------------------------------------------------
// Recorded ground truth
// ---------------------------------------------------------------------------------------------------------------

interface WireLine {
  readonly scenario: string
  readonly step: string
  readonly request: { readonly json?: Record<string, unknown> }
  readonly response: { readonly status: number; readonly json?: Record<string, unknown> | null }
}
const recording: ReadonlyArray<WireLine> = readFileSync(
  sharedPath("mlflow-wire", "mlflow-2.17.2-sqlite.jsonl"),
  "utf-8"
)
  .split("\n")
  .filter((l) => l.trim() !== "")
  .slice(1)
  .map((l) => JSON.parse(l) as WireLine)
const step = (scenario: string, name: string): WireLine => {
  const line = recording.find((l) => l.scenario === scenario && l.step === name)
  if (line === undefined) throw new Error(`no recorded step ${scenario}/${name}`)
  return line
}

/** ForML's recorded layout as a seed: EXPn → "n", run placeholders → fixed hex ids, package bytes from the vectors. */
const seedOfLayout = (): Seed => {
  const layout = readLayout()
  const pkg = new Uint8Array(readFileSync(sharedPath("forml-vectors", "helloworld.4ml")))
  const ids = new Map<string, string>()
  for (const e of layout.experiments) {
    ids.set(e.id, e.id.replace(/^EXP/, ""))
    for (const r of e.runs) ids.set(r.id, createHash("sha256").update(r.id).digest("hex").slice(0, 32))
  }
  const subst = (s: string) => s.replace(/\b(EXP\d+|RUN_(?:RELEASE|GENERATION)_\d+)\b/g, (m) => ids.get(m) ?? m)
  return layoutSeed(layout, pkg, subst)
}

// ---------------------------------------------------------------------------------------------------------------
// Memory-only behaviour
// ---------------------------------------------------------------------------------------------------------------

describe("MlflowMemory", () => {
  it.effect("uses sqlite's ids, locations and generated run names", () =>
    fresh(Effect.gen(function*() {
      const m = yield* Mlflow
      const def = yield* m.getExperiment("0")
      expect(def).toMatchObject({ name: "Default", artifactLocation: "mlflow-artifacts:/0", lifecycleStage: "active" })
      expect(yield* m.createExperiment("a")).toBe("1")
      expect(yield* m.createExperiment("b")).toBe("2")
      const run = yield* m.createRun({ experimentId: "2" })
      expect(run.runId).toMatch(/^[0-9a-f]{32}$/)
      expect(run.info.artifactUri).toBe(`mlflow-artifacts:/2/${run.runId}/artifacts`)
      expect(run.info.runName).toMatch(/^[a-z]+-[a-z]+-\d{1,3}$/)
      expect(run.tags.map((t) => t.key)).toEqual(["mlflow.runName"])
      expect(run.info.startTime).toBe(0) // the test clock's now
      const named = yield* m.createRun({ experimentId: "2", runName: "given", tags: [{ key: "a", value: "1" }] })
      // sqlite order: the given tags, then mlflow.runName
      expect(named.tags.map((t) => [t.key, t.value])).toEqual([["a", "1"], ["mlflow.runName", "given"]])
    })))

  it.effect("takes the run name from an mlflow.runName tag; a different run name is InvalidInput", () =>
    fresh(Effect.gen(function*() {
      const m = yield* Mlflow
      const byTag = yield* m.createRun({ experimentId: "0", tags: [{ key: "mlflow.runName", value: "from-tag" }] })
      expect(byTag.info.runName).toBe("from-tag")
      expect(byTag.tags.length).toBe(1)
      const clash = yield* Effect.flip(
        m.createRun({ experimentId: "0", runName: "x", tags: [{ key: "mlflow.runName", value: "y" }] })
      )
      expect(clash).toMatchObject({ _tag: "InvalidInput", kind: "RunName" })
      yield* m.setTag(byTag.runId, "mlflow.runName", "renamed")
      expect((yield* m.getRun(byTag.runId)).info.runName).toBe("renamed")
    })))

  it.effect("keeps tag values over 8000 characters whole", () =>
    fresh(Effect.gen(function*() {
      const m = yield* Mlflow
      const run = yield* m.createRun({ experimentId: "0" })
      const long = "y".repeat(10000)
      yield* m.setTag(run.runId, "long", long)
      expect(tagValue(yield* m.getRun(run.runId), "long")).toBe(long)
    })))

  it.effect("a deleted experiment takes its runs along, refuses new runs, and brings them back on restore", () =>
    fresh(Effect.gen(function*() {
      const m = yield* Mlflow
      const id = yield* m.createExperiment("cascade")
      const run = yield* m.createRun({ experimentId: id })
      yield* m.deleteExperiment(id)
      expect((yield* m.getRun(run.runId)).info.lifecycleStage).toBe("deleted")
      expect(yield* Effect.flip(m.createRun({ experimentId: id }))).toMatchObject({
        _tag: "MlflowApiError",
        status: 400,
        errorCode: "INVALID_PARAMETER_VALUE"
      })
      yield* m.restoreExperiment(id)
      expect((yield* m.getRun(run.runId)).info.lifecycleStage).toBe("active")
      // sqlite lets the Default experiment go and come back
      yield* m.deleteExperiment("0")
      yield* m.restoreExperiment("0")
      expect((yield* m.getExperiment("0")).lifecycleStage).toBe("active")
    })))

  it.effect("searches experiments newest first", () =>
    fresh(Effect.gen(function*() {
      const m = yield* Mlflow
      yield* m.createExperiment("first")
      yield* TestClock.adjust("1 second")
      yield* m.createExperiment("second")
      yield* m.createExperiment("third")
      const names = Chunk.toReadonlyArray(yield* Stream.runCollect(m.searchExperiments({ pageSize: 2 }))).map((e) =>
        e.name
      )
      expect(names).toEqual(["third", "second", "first", "Default"])
    })))

  it.effect("filters: numeric or unknown attributes and bad order_by clauses are InvalidInput; tags order missing last", () =>
    fresh(Effect.gen(function*() {
      const m = yield* Mlflow
      const a = yield* m.createRun({ experimentId: "0", runName: "a", startTime: 1, tags: [{ key: "t", value: "2" }] })
      const b = yield* m.createRun({ experimentId: "0", runName: "b", startTime: 2 })
      const c = yield* m.createRun({ experimentId: "0", runName: "c", startTime: 3, tags: [{ key: "t", value: "1" }] })
      const search = (o: { filter?: Filter.Filter; orderBy?: ReadonlyArray<string> }) =>
        Effect.map(
          Stream.runCollect(m.searchRuns({ experimentIds: ["0"], ...o })),
          (c) => Chunk.toReadonlyArray(c).map((r) => r.info.runName)
        )
      for (const key of ["start_time", "end_time", "foo", "experiment_id"]) {
        expect(yield* Effect.flip(search({ filter: Filter.and(Filter.attribute(key, "1")) })), key).toMatchObject({
          _tag: "InvalidInput"
        })
      }
      for (const orderBy of [["metrics.loss"], ["attributes.bogus"], ["start_time", "attributes.start_time DESC"]]) {
        expect(yield* Effect.flip(search({ orderBy })), orderBy.join()).toMatchObject({ _tag: "InvalidInput" })
      }
      expect(yield* search({ orderBy: ["tags.`t` ASC"] })).toEqual(["c", "a", "b"])
      expect(yield* search({ orderBy: ["tags.t DESC"] })).toEqual(["a", "c", "b"])
      expect(yield* search({ orderBy: ["start_time"] })).toEqual(["a", "b", "c"])
      expect(yield* search({ filter: Filter.and(Filter.attribute("user_id", "")) })).toEqual(["c", "b", "a"])
      expect(yield* search({ filter: Filter.and(Filter.attribute("artifact_uri", b.info.artifactUri)) })).toEqual(["b"])
      void a
      void c
    })))

  it.effect("a directory is not a downloadable artifact; uploads cannot put a file over a directory", () =>
    fresh(Effect.gen(function*() {
      const m = yield* Mlflow
      const { info } = yield* m.createRun({ experimentId: "0" })
      yield* m.uploadArtifact(info, "model/sub/weights.bin", text("w"))
      expect(yield* Effect.flip(downloadBytes(info, "model"))).toMatchObject({ _tag: "NotFound", entity: "artifact" })
      expect(yield* Effect.flip(m.uploadArtifact(info, "model", text("x")))).toMatchObject({ _tag: "MlflowApiError" })
      expect(yield* Effect.flip(m.uploadArtifact(info, "model/sub/weights.bin/x", text("x")))).toMatchObject({
        _tag: "MlflowApiError"
      })
      const missingFile = yield* Effect.flip(m.uploadArtifact(info, "f.bin", { file: "/nonexistent/forml/file" }))
      expect(missingFile).toMatchObject({ _tag: "StorageError", path: "/nonexistent/forml/file" })
    })))

  it.effect("is safe under concurrent writers: one of many creators of a name wins", () =>
    fresh(Effect.gen(function*() {
      const m = yield* Mlflow
      const results = yield* Effect.all(
        Array.from({ length: 20 }, () => Effect.either(m.createExperiment("race"))),
        { concurrency: "unbounded" }
      )
      expect(results.filter(Either.isRight).length).toBe(1)
      expect(results.filter(Either.isLeft).every((r) => Either.isLeft(r) && r.left._tag === "AlreadyExists")).toBe(true)
      const run = yield* m.createRun({ experimentId: "0" })
      yield* Effect.all(
        Array.from({ length: 50 }, (_, i) => m.setTag(run.runId, `k${i}`, `v${i}`)),
        { concurrency: "unbounded" }
      )
      expect((yield* m.getRun(run.runId)).tags.length).toBe(51)
    })))
})

describe("MlflowMemoryHandle", () => {
  it.effect("seeds ForML's recorded layout and answers ForML's searches over it", () =>
    fresh(Effect.gen(function*() {
      const handle = yield* MlflowMemoryHandle
      const m = yield* Mlflow
      yield* handle.load(seedOfLayout())
      const hello = yield* m.getExperimentByName("helloworld")
      expect(hello.experimentId).toBe("1")
      expect(hello.artifactLocation).toBe("mlflow-artifacts:/1")
      expect((yield* m.getExperimentByName("helloworld@test1")).experimentId).toBe("2")
      // ForML's own filter for the releases of a project, rendered by the builder
      const releases = yield* Stream.runCollect(m.searchRuns({
        experimentIds: ["1"],
        viewType: "ALL",
        filter: Filter.and(Filter.tag("forml.repoid", ""), Filter.tag("forml.level", "release"))
      }))
      expect(Chunk.size(releases)).toBe(1)
      const release = Chunk.unsafeGet(releases, 0)
      expect(tagValue(release, "mlflow.source.git.commit")).toBe("1")
      const generations = Chunk.toReadonlyArray(
        yield* Stream.runCollect(m.searchRuns({
          experimentIds: ["1"],
          filter: Filter.and(Filter.tag("forml.level", "generation"), Filter.tag("mlflow.parentRunId", release.runId))
        }))
      )
      expect(generations.map((g) => tagValue(g, "mlflow.source.git.commit"))).toEqual(["2", "1"])
      const layout = readLayout()
      const gen1 = layout.experiments[1]!.runs.find((r) => r.id === "RUN_GENERATION_1")!
      const first = generations[1]!
      const listed = yield* m.listArtifacts(first.info)
      expect(listed.map((f) => [f.path, f.fileSize])).toEqual(gen1.artifacts.map((a) => [a.path, a.size]))
      for (const a of gen1.artifacts) {
        const bytes = yield* downloadBytes(first.info, a.path)
        expect(createHash("sha256").update(bytes).digest("hex"), a.path).toBe(a.sha256)
      }
      const snap = yield* handle.snapshot
      expect(snap.experiments.map((e) => e.name)).toEqual(["Default", "helloworld", "helloworld@test1"])
      expect(snap.runs.length).toBe(5)
      expect(snap.artifacts.get(first.runId)?.size).toBe(3)
      // ids continue after the loaded ones
      expect(yield* m.createExperiment("next")).toBe("3")
    })))

  it.effect("rejects a seed whose run has no experiment, and changes nothing", () =>
    fresh(Effect.gen(function*() {
      const handle = yield* MlflowMemoryHandle
      const bad = yield* Effect.flip(handle.load({
        experiments: [{ experimentId: "7", name: "seven" }],
        runs: [{ runId: "a".repeat(32), experimentId: "8" }]
      }))
      expect(bad).toMatchObject({ _tag: "InvalidInput", kind: "Seed" })
      expect((yield* handle.snapshot).experiments.map((e) => e.experimentId)).toEqual(["0"])
    })))

  it.effect("counts calls per method, including each page a search walks", () =>
    fresh(Effect.gen(function*() {
      const handle = yield* MlflowMemoryHandle
      const m = yield* Mlflow
      for (let i = 0; i < 5; i++) yield* m.createRun({ experimentId: "0", startTime: i })
      yield* Stream.runDrain(m.searchRuns({ experimentIds: ["0"], pageSize: 2 }))
      yield* Effect.flip(m.getRun("missing"))
      expect(yield* handle.calls).toEqual({ createRun: 5, searchRuns: 1, searchRunsPage: 3, getRun: 1 })
      yield* handle.resetCalls
      expect(yield* handle.calls).toEqual({})
    })))

  it.effect("failNext fails the next calls before they change anything, then recovers", () =>
    fresh(Effect.gen(function*() {
      const handle = yield* MlflowMemoryHandle
      const m = yield* Mlflow
      yield* handle.failNext("createExperiment", boom, 2)
      expect(yield* Effect.flip(m.createExperiment("x"))).toMatchObject({ _tag: "TransportError", reason: "injected" })
      expect(yield* Effect.flip(m.createExperiment("x"))).toMatchObject({ _tag: "TransportError", reason: "injected" })
      expect(yield* m.createExperiment("x")).toBe("1")
      expect((yield* handle.calls).createExperiment).toBe(3)
    })))

  it.effect("failNth fails exactly the n-th matching call, for one method or any", () =>
    fresh(Effect.gen(function*() {
      const handle = yield* MlflowMemoryHandle
      const m = yield* Mlflow
      const apiError = new MlflowApiError({ status: 503, errorCode: "TEMPORARILY_UNAVAILABLE", detail: "busy" })
      yield* handle.failNth("*", 3, apiError)
      yield* m.getExperiment("0")
      yield* m.createExperiment("a")
      expect(yield* Effect.flip(m.getExperimentByName("a"))).toMatchObject({ _tag: "MlflowApiError", status: 503 })
      yield* m.getExperimentByName("a")
      yield* handle.failNth("searchRunsPage", 2, boom)
      for (let i = 0; i < 3; i++) yield* m.createRun({ experimentId: "0" })
      // the second page of the walk fails the stream
      const pages = yield* Effect.flip(Stream.runCollect(m.searchRuns({ experimentIds: ["0"], pageSize: 2 })))
      expect(pages).toMatchObject({ _tag: "TransportError", reason: "injected" })
      expect(Chunk.size(yield* Stream.runCollect(m.searchRuns({ experimentIds: ["0"], pageSize: 2 })))).toBe(3)
      yield* handle.failNext("downloadArtifact", boom)
      expect(yield* Effect.flip(downloadBytes({ runId: "x", artifactUri: "mlflow-artifacts:/0/x/artifacts" }, "a")))
        .toMatchObject({
          _tag: "TransportError"
        })
      yield* handle.failNext("*", boom, 5)
      yield* handle.clearFaults
      yield* m.getExperiment("0")
    })))

  it.effect("delay holds a call until the clock has moved on", () =>
    fresh(Effect.gen(function*() {
      const handle = yield* MlflowMemoryHandle
      const m = yield* Mlflow
      yield* handle.delay("getExperiment", "10 seconds")
      const fiber = yield* Effect.fork(m.getExperiment("0"))
      yield* TestClock.adjust("5 seconds")
      expect(Option.isNone(yield* Fiber.poll(fiber))).toBe(true)
      yield* TestClock.adjust("5 seconds")
      expect((yield* Fiber.join(fiber)).name).toBe("Default")
      yield* handle.clearFaults
      expect((yield* m.getExperiment("0")).name).toBe("Default")
    })))

  it.effect("pages runs with 2.17's tokens; the trailing empty page is optional", () =>
    fresh(Effect.gen(function*() {
      const handle = yield* MlflowMemoryHandle
      const m = yield* Mlflow
      for (let i = 0; i < 6; i++) yield* m.createRun({ experimentId: "0", startTime: 1700000001000 + i * 1000 })
      const walk = (trailingEmptyPage: boolean) =>
        Effect.gen(function*() {
          const tokens: Array<string | undefined> = []
          const sizes: Array<number> = []
          let token: string | undefined
          do {
            const page = yield* handle.searchRunsPage({
              experimentIds: ["0"],
              viewType: "ALL",
              maxResults: 2,
              pageToken: token,
              trailingEmptyPage
            })
            sizes.push(page.runs.length)
            token = page.nextPageToken
            tokens.push(token)
          } while (token !== undefined)
          return { tokens, sizes }
        })
      // the recording's walk over six runs: tokens for offsets 2, 4, 6 and then an empty page
      const recorded = [2, 3, 4].map((n) => step("runs", `search-walk-all-max2-page${n}`).request.json?.["page_token"])
      expect(step("runs", "search-walk-all-max2-page4").response.json).toEqual({})
      expect(yield* walk(true)).toEqual({ tokens: [...recorded, undefined], sizes: [2, 2, 2, 0] })
      expect(yield* walk(false)).toEqual({ tokens: [recorded[0], recorded[1], undefined], sizes: [2, 2, 2] })
      const beyond = yield* handle.searchRunsPage({
        experimentIds: ["0"],
        maxResults: 2,
        pageToken: "eyJvZmZzZXQiOjEwMH0="
      })
      expect(beyond).toEqual({ runs: [] })
      for (const pageToken of ["garbage", "Zm9v"]) {
        expect(yield* Effect.flip(handle.searchRunsPage({ experimentIds: ["0"], maxResults: 2, pageToken })))
          .toMatchObject({
            _tag: "InvalidInput",
            kind: "PageToken"
          })
      }
      for (const maxResults of [0, -1, 50001, 2.5]) {
        expect(yield* Effect.flip(handle.searchRunsPage({ experimentIds: ["0"], maxResults }))).toMatchObject({
          _tag: "InvalidInput",
          kind: "PageSize"
        })
      }
      expect((yield* handle.searchRunsPage({ experimentIds: ["0"], maxResults: 50000 })).runs.length).toBe(6)
    })))

  it.effect("pages experiments without a trailing token, as every server does", () =>
    fresh(Effect.gen(function*() {
      const handle = yield* MlflowMemoryHandle
      const m = yield* Mlflow
      yield* m.createExperiment("one")
      yield* m.createExperiment("two")
      yield* m.createExperiment("three")
      const first = yield* handle.searchExperimentsPage({ maxResults: 2 })
      expect(first.experiments.map((e) => e.name)).toEqual(["three", "two"])
      expect(first.nextPageToken).toBe(step("experiments", "search-post-max2-page2").request.json?.["page_token"])
      const second = yield* handle.searchExperimentsPage({ maxResults: 2, pageToken: first.nextPageToken })
      expect(second.experiments.map((e) => e.name)).toEqual(["one", "Default"])
      expect(second.nextPageToken).toBeUndefined()
      // an offset of -1 reads from the start, and the next token adds the page size, as sqlite does
      const negative = yield* handle.searchExperimentsPage({ maxResults: 2, pageToken: "eyJvZmZzZXQiOi0xfQ==" })
      expect(negative.experiments.map((e) => e.name)).toEqual(["three", "two"])
      expect(MlflowMemory.decodePageToken(negative.nextPageToken)).toEqual(Either.right(1))
    })))

  it.effect("offers the server operations an emulator needs: experiment tags, renames, tag deletion, raw artifacts", () =>
    fresh(Effect.gen(function*() {
      const handle = yield* MlflowMemoryHandle
      const m = yield* Mlflow
      const id = yield* m.createExperiment("ops")
      yield* handle.setExperimentTag(id, "team", "ml")
      yield* handle.setExperimentTag(id, "team", "ml-ops")
      expect((yield* m.getExperiment(id)).tag("team")).toEqual(Option.some("ml-ops"))
      expect(yield* Effect.flip(handle.setExperimentTag(id, "bad key!", "v"))).toMatchObject({ _tag: "InvalidInput" })
      yield* m.createExperiment("taken")
      expect(yield* Effect.flip(handle.renameExperiment(id, "taken"))).toMatchObject({ _tag: "AlreadyExists" })
      yield* handle.renameExperiment(id, "renamed")
      expect((yield* m.getExperimentByName("renamed")).experimentId).toBe(id)
      const run = yield* m.createRun({ experimentId: id, tags: [{ key: "k", value: "v" }] })
      yield* handle.deleteTag(run.runId, "k")
      expect(tagValue(yield* m.getRun(run.runId), "k")).toBeUndefined()
      expect(yield* Effect.flip(handle.deleteTag(run.runId, "k"))).toMatchObject({ _tag: "NotFound", entity: "tag" })
      const root = `${id}/${run.runId}/artifacts`
      yield* handle.putArtifactAt(`${root}/dir/x.txt`, text("x"))
      expect(decode(yield* downloadBytes(run.info, "dir/x.txt"))).toBe("x")
      yield* m.uploadArtifact(run.info, "y.txt", text("yy"))
      expect(decode(yield* handle.getArtifactAt(`${root}/y.txt`))).toBe("yy")
      expect((yield* handle.listArtifactsAt(root)).map((f) => ({ ...f }))).toEqual([
        { path: "dir", isDir: true },
        { path: "y.txt", isDir: false, fileSize: 2 }
      ])
      expect((yield* handle.listArtifactsAt(id)).map((f) => f.path)).toEqual([run.runId])
      yield* handle.deleteArtifactAt(`${root}/y.txt`)
      yield* handle.deleteArtifactAt(`${root}/y.txt`)
      expect(yield* Effect.flip(handle.getArtifactAt(`${root}/y.txt`))).toMatchObject({ _tag: "NotFound" })
      expect(yield* Effect.flip(handle.getArtifactAt(`${root}/../../x`))).toMatchObject({ _tag: "InvalidInput" })
    })))

  it.effect("layerWith shares one store between two layers; reset starts over", () =>
    Effect.gen(function*() {
      const handle = yield* MlflowMemory.make()
      const id = yield* Effect.provide(
        Effect.flatMap(Mlflow, (m) => m.createExperiment("shared")),
        MlflowMemory.layerWith(handle)
      )
      const seen = yield* Effect.provide(
        Effect.flatMap(Mlflow, (m) => m.getExperimentByName("shared")),
        MlflowMemory.layerWith(handle)
      )
      expect(seen.experimentId).toBe(id)
      yield* handle.reset
      const snap = yield* handle.snapshot
      expect(snap.experiments.map((e) => e.name)).toEqual(["Default"])
      expect(snap.runs).toEqual([])
      expect(yield* handle.mlflow.createExperiment("again")).toBe("1")
    }))
})
