/**
 * MlflowRegistry on MlflowMemory: the registry contract, then what needs the in-process store's handle
 * (request counts for the performance targets, paging past 1000 runs, faults).
 */
import type { FileSystem, Path } from "@effect/platform"
import { NodeContext } from "@effect/platform-node"
import { Effect, Layer, Option } from "effect"
import type { Scope } from "effect"
import { describe, expect, it } from "vitest"
import { Package } from "../src/asset/Package.js"
import { StateId } from "../src/asset/StateId.js"
import { Tag } from "../src/asset/Tag.js"
import { TransportError } from "../src/errors.js"
import type { Mlflow } from "../src/mlflow/Mlflow.js"
import * as MlflowMemory from "../src/mlflow/MlflowMemory.js"
import { MlflowMemoryHandle } from "../src/mlflow/MlflowMemory.js"
import * as Layout from "../src/registry/layout.js"
import {
  bytes,
  collect,
  helloworldZip,
  key,
  packages,
  registry,
  registryContract,
  sha256,
  tagWith
} from "./contract/registry.js"

registryContract("MlflowMemory", () => MlflowMemory.layer())

// the same contract for an application that is the only writer: all of it holds but the test that hands close a
// number another writer holds, which such an application never does (it lists before it closes)
registryContract("MlflowMemory, writers: \"one\"", () => MlflowMemory.layer(), {
  registry: { writers: "one" },
  skip: ["a generation number held by a ForML run is never shadowed: close moves to the next free number"]
})

// ---------------------------------------------------------------------------------------------------------------
// What needs the store's handle: request counts, paging, faults
// ---------------------------------------------------------------------------------------------------------------

const withStore = <A, E>(
  body: Effect.Effect<A, E, Mlflow | MlflowMemoryHandle | FileSystem.FileSystem | Path.Path | Scope.Scope>,
  options: MlflowMemory.MlflowMemoryOptions = {}
) =>
  Effect.runPromise(
    body.pipe(Effect.scoped, Effect.provide(Layer.merge(MlflowMemory.layer(options), NodeContext.layer)))
  )

/** Requests sent since the last reset: every call, with searches counted by page (as HTTP requests are). */
const requests = Effect.gen(function*() {
  const handle = yield* MlflowMemoryHandle
  const calls = yield* handle.calls
  yield* handle.resetCalls
  let n = 0
  for (const [method, count] of Object.entries(calls)) {
    if (method !== "searchRuns" && method !== "searchExperiments") n += count ?? 0
  }
  return { n, calls }
})

const project = key.project("helloworld")
const release = key.release("1")

describe("MlflowRegistry on MlflowMemory: requests, paging, faults", () => {
  it("meets the request targets: cold push 8, write 1, close 5 (10 states), read 1, open 1", () =>
    withStore(Effect.gen(function*() {
      const reg = yield* registry()
      const pkg = yield* Package.open(helloworldZip)
      yield* requests
      yield* reg.push(pkg)
      const push = yield* requests
      expect(push.n).toBe(8)
      expect(push.calls.createRun).toBe(1)
      expect(push.calls.updateRun).toBe(1) // the release run is FINISHED once its package is stored
      expect(push.calls.listArtifacts).toBe(1) // the package is found stored whole before the release lists

      const sids = Array.from({ length: 10 }, () => StateId.random())
      yield* reg.write(project, release, sids[0]!, bytes("first")) // starts the training: creates its run
      yield* requests
      for (const [i, sid] of sids.slice(1).entries()) {
        yield* reg.write(project, release, sid, bytes(`state ${i}`))
        expect((yield* requests).n).toBe(1)
      }
      expect(yield* reg.close(project, release, key.generation(1), tagWith(...sids))).toBe(1)
      const close = yield* requests
      expect(close.n).toBeLessThanOrEqual(5)
      expect(close.calls.setTags).toBe(1)
      expect(close.calls.listArtifacts).toBe(1) // every state is found stored whole before the commit

      expect(yield* reg.read(project, release, key.generation(1), sids[3]!)).toEqual(bytes("state 2"))
      expect((yield* requests).n).toBe(1)
      expect(Tag.equals(yield* reg.open(project, release, key.generation(1)), tagWith(...sids))).toBe(true)
      expect((yield* requests).n).toBe(1)

      // another instance: once it has found the generation (open), reads are one request each
      const other = yield* registry()
      yield* other.open(project, release, key.generation(1))
      yield* requests
      for (const sid of sids.slice(0, 3)) {
        yield* other.read(project, release, key.generation(1), sid)
        expect((yield* requests).n).toBe(1)
      }
      // a second training in the first instance: its first write creates a new run
      yield* reg.write(project, release, StateId.random(), bytes("again"))
      expect((yield* requests).calls.createRun).toBe(1)
    })))

  it("close stays at 5 requests with 150 states: state sha256 tags wait in batches of 96", () =>
    withStore(Effect.gen(function*() {
      const handle = yield* MlflowMemoryHandle
      const reg = yield* registry()
      yield* reg.push(yield* Package.open(helloworldZip))
      const sids = Array.from({ length: 150 }, () => StateId.random())
      yield* reg.write(project, release, sids[0]!, bytes("s0"))
      yield* requests
      for (const [i, sid] of sids.slice(1).entries()) yield* reg.write(project, release, sid, bytes(`s${i + 1}`))
      const writes = yield* requests
      expect(writes.calls.uploadArtifact).toBe(149)
      expect(writes.calls.setTags).toBe(1) // one batch of 96 waiting tags, set by the 96th write
      expect(yield* reg.close(project, release, key.generation(1), tagWith(...sids))).toBe(1)
      const close = yield* requests
      expect(close.n).toBeLessThanOrEqual(5)
      const run = (yield* handle.snapshot).runs.find((r) =>
        Option.contains(r.tag(Layout.TAG.level), "generation") && Option.contains(r.tag(Layout.TAG.commit), "1")
      )!
      for (const [i, sid] of sids.entries()) {
        expect(run.tag(Layout.sha256Tag(`${sid}.bin`))).toEqual(Option.some(sha256(bytes(`s${i}`))))
      }
      // the commit tag was the last tag written
      expect(run.tags.at(-1)).toEqual(expect.objectContaining({ key: Layout.TAG.commit, value: "1" }))
    })))

  it("searches page by 1000 to the end: 2500 generations, 1200 experiments", () =>
    withStore(
      Effect.gen(function*() {
        const handle = yield* MlflowMemoryHandle
        const reg = yield* registry({ repoid: "big" })
        yield* reg.push(yield* Package.open(helloworldZip))
        const experiment = (yield* handle.snapshot).experiments.find((e) => e.name === "helloworld@big")!
        const releaseRun = (yield* handle.snapshot).runs.find((r) => r.info.experimentId === experiment.experimentId)!
        yield* handle.load({
          experiments: Array.from({ length: 1200 }, (_, i) => ({ experimentId: `90${i}`, name: `foreign-${i}@big` })),
          runs: Array.from({ length: 2500 }, (_, i) => ({
            runId: `gen${i}`,
            experimentId: experiment.experimentId,
            tags: [...Layout.generationTags("big", releaseRun.runId, "s"), {
              key: Layout.TAG.commit,
              value: String(i + 1)
            }]
          }))
        })
        yield* requests
        const listed = yield* collect(reg.generations(project, release))
        expect(listed).toHaveLength(2500)
        expect(listed[2499]).toBe(2500)
        expect((yield* requests).calls.searchRunsPage).toBe(3)
        expect(yield* collect(reg.projects)).toEqual([project])
        const projects = (yield* requests).calls
        expect(projects.searchExperimentsPage).toBe(2)
        // 1201 candidates: release runs searched in chunks of 100 experiments
        expect(projects.searchRunsPage).toBe(13)
      }),
      { trailingEmptyPage: false }
    ))

  it("failures are not cached: a failed look-up is tried again by the next call", () =>
    withStore(Effect.gen(function*() {
      const handle = yield* MlflowMemoryHandle
      yield* (yield* registry()).push(yield* Package.open(helloworldZip))
      const reg = yield* registry()
      const boom = new TransportError({ operation: "test", reason: "injected" })
      yield* handle.failNext("getExperimentByName", boom)
      const sid = StateId.random()
      expect((yield* Effect.flip(reg.write(project, release, sid, bytes("x"))))._tag).toBe("TransportError")
      yield* handle.failNext("searchRunsPage", boom)
      expect((yield* Effect.flip(reg.write(project, release, sid, bytes("x"))))._tag).toBe("TransportError")
      yield* handle.failNext("createRun", boom)
      expect((yield* Effect.flip(reg.write(project, release, sid, bytes("x"))))._tag).toBe("TransportError")
      yield* reg.write(project, release, sid, bytes("x"))
      expect(yield* reg.close(project, release, key.generation(1), tagWith(sid))).toBe(1)
      // NotFound is not kept either: a release pushed after a failed read is found
      const reader = yield* registry()
      expect((yield* Effect.flip(reader.pull(project, key.release("2"))))._tag).toBe("NotFound")
      const pkgs = yield* packages
      yield* (yield* registry()).push(yield* pkgs.zip("helloworld", "2"))
      expect((yield* reader.pull(project, key.release("2"))).manifest.version.toString()).toBe("2")
    })))

  it("a push whose upload fails leaves a release that is not listed; the next push completes it", () =>
    withStore(Effect.gen(function*() {
      const handle = yield* MlflowMemoryHandle
      const reg = yield* registry()
      const pkg = yield* Package.open(helloworldZip)
      yield* handle.failNext("uploadArtifact", new TransportError({ operation: "test", reason: "injected" }))
      expect((yield* Effect.flip(reg.push(pkg)))._tag).toBe("TransportError")
      expect(yield* collect(reg.projects)).toEqual([])
      expect((yield* Effect.flip(reg.write(project, release, StateId.random(), bytes("x"))))._tag).toBe("NotFound")
      const fresh = yield* registry()
      expect((yield* Effect.flip(collect(fresh.generations(project, release))))._tag).toBe("NotFound")
      yield* reg.push(pkg)
      expect((yield* collect(fresh.releases(project))).map(String)).toEqual(["1"])
      const runs = (yield* handle.snapshot).runs
      expect(runs).toHaveLength(1)
      expect(Option.getOrUndefined(runs[0]!.tag("forml.sha256.package.4ml"))).toMatch(/^[0-9a-f]{64}$/)
    })))

  it("concurrent calls on a cold instance share one look-up of each experiment, release and training", () =>
    withStore(Effect.gen(function*() {
      yield* (yield* registry()).push(yield* Package.open(helloworldZip))
      const reg = yield* registry()
      yield* requests
      const sids = Array.from({ length: 8 }, () => StateId.random())
      yield* Effect.all(sids.map((sid) => reg.write(project, release, sid, bytes(sid))), { concurrency: "unbounded" })
      const { calls } = yield* requests
      expect(calls.getExperimentByName).toBe(1)
      expect(calls.searchRunsPage).toBe(1)
      expect(calls.createRun).toBe(1)
      expect(calls.uploadArtifact).toBe(8)
      expect(yield* reg.close(project, release, key.generation(1), tagWith(...sids))).toBe(1)
    })))

  it("a close interrupted after its commit leaves a readable generation and a fresh training", () =>
    withStore(Effect.gen(function*() {
      const handle = yield* MlflowMemoryHandle
      const reg = yield* registry()
      yield* reg.push(yield* Package.open(helloworldZip))
      const sid = StateId.random()
      yield* reg.write(project, release, sid, bytes("x"))
      yield* handle.failNext("updateRun", new TransportError({ operation: "test", reason: "injected" }))
      expect((yield* Effect.flip(reg.close(project, release, key.generation(1), tagWith(sid))))._tag)
        .toBe("TransportError")
      // committed, not finished: listed and readable, never cached as settled
      expect(yield* collect(reg.generations(project, release))).toEqual([1])
      expect(yield* reg.read(project, release, key.generation(1), sid)).toEqual(bytes("x"))
      // the next write starts a new training, which closes as generation 2
      const next = StateId.random()
      yield* reg.write(project, release, next, bytes("y"))
      expect(yield* reg.close(project, release, key.generation(2), tagWith(next))).toBe(2)
    })))
})
