/**
 * Round trips: how many HTTP requests each registry operation makes on MlflowHttp, counted by the emulator's request
 * log (and checked from the client side for `max_results`). The targets are the performance issue's.
 */
import { HttpClient } from "@effect/platform"
import type { HttpClientRequest } from "@effect/platform"
import type { FileSystem, Path } from "@effect/platform"
import { NodeContext, NodeHttpClient } from "@effect/platform-node"
import { Effect, Layer } from "effect"
import type { Scope } from "effect"
import { describe, expect, it } from "vitest"
import { type Emulator, type RequestRecord, startEmulator } from "../emulator/index.js"
import { StateId } from "../src/asset/StateId.js"
import { Mlflow } from "../src/mlflow/Mlflow.js"
import * as MlflowHttp from "../src/mlflow/MlflowHttp.js"
import * as Layout from "../src/registry/layout.js"
import { MlflowRegistry } from "../src/registry/MlflowRegistry.js"
import { collect, key, packages, tagWith } from "./contract/registry.js"

const PAGE = 1000

/** A request sent by the client, with its JSON body (for runs/search, experiments/search). */
interface Sent {
  readonly method: string
  readonly url: string
  readonly json: unknown
}

/** The undici client, recording every request it sends (retries included). */
const recording = (sent: Array<Sent>) =>
  Layer.effect(
    HttpClient.HttpClient,
    Effect.map(HttpClient.HttpClient, (client) =>
      HttpClient.tapRequest(client, (request: HttpClientRequest.HttpClientRequest) =>
        Effect.sync(() => {
          const body = request.body
          const json: unknown = body._tag === "Uint8Array" && body.contentType.startsWith("application/json")
            ? JSON.parse(new TextDecoder().decode(body.body))
            : undefined
          sent.push({ method: request.method, url: request.url, json })
        })))
  ).pipe(Layer.provide(NodeHttpClient.layerUndici))

type Env = Mlflow | FileSystem.FileSystem | Path.Path | Scope.Scope

interface Harness {
  readonly emulator: Emulator
  readonly sent: ReadonlyArray<Sent>
  /** Runs `effect` and returns its value with the requests the server received meanwhile. */
  readonly counted: <A, E>(
    effect: Effect.Effect<A, E, Env>
  ) => Effect.Effect<readonly [A, ReadonlyArray<RequestRecord>], E, Env>
}

/** Runs `body` on a fresh emulator with MlflowHttp (no retry waits) in front of it. */
const onEmulator = <A, E>(body: (h: Harness) => Effect.Effect<A, E, Env>): Promise<A> => {
  const sent: Array<Sent> = []
  return Effect.runPromise(
    Effect.scoped(Effect.gen(function*() {
      const emulator = yield* startEmulator()
      const mlflow = yield* MlflowHttp.make({ trackingUri: emulator.url, backoffFactor: 0, backoffJitter: 0 })
      const counted = <X, Y>(effect: Effect.Effect<X, Y, Env>) =>
        Effect.gen(function*() {
          emulator.clearRequests()
          sent.length = 0
          const a = yield* effect
          return [a, emulator.requests()] as const
        })
      return yield* Effect.provideService(body({ emulator, sent, counted }), Mlflow, mlflow)
    })).pipe(Effect.provide(Layer.merge(recording(sent), NodeContext.layer)))
  )
}

/** The requests as lines, for failure messages. */
const show = (requests: ReadonlyArray<RequestRecord>): string =>
  `${requests.length} requests:\n${requests.map((r) => `  ${r.method} ${r.path.split("?")[0]}`).join("\n")}`

const expectAtMost = (requests: ReadonlyArray<RequestRecord>, most: number) =>
  expect(requests.length, show(requests)).toBeLessThanOrEqual(most)

const project = key.project("roundtrips")
const release = key.release("1.0")

/** A registry with the release pushed and one generation closed with `states` states; everything stays cached. */
const warm = (states = 2) =>
  Effect.gen(function*() {
    const pkg = yield* packages
    const reg = yield* MlflowRegistry.make()
    yield* reg.push(yield* pkg.zip(project, "1.0"))
    const sids = Array.from({ length: states }, () => StateId.random())
    for (const [i, sid] of sids.entries()) yield* reg.write(project, release, sid, new Uint8Array([i]))
    yield* reg.close(project, release, key.generation(1), tagWith(...sids))
    return { reg, sids }
  })

describe("round trips of the registry on MlflowHttp", () => {
  it("a cold push of a new project makes at most 8 requests (one lists the package stored, one finishes the run)", () =>
    onEmulator(({ counted }) =>
      Effect.gen(function*() {
        const pkg = yield* packages
        const zip = yield* pkg.zip(project, "1.0")
        const reg = yield* MlflowRegistry.make()
        const [, requests] = yield* counted(reg.push(zip))
        expectAtMost(requests, 8)
        // and it did push: one artifact upload, then one listing that finds it stored whole before it is published
        expect(requests.filter((r) => r.method === "PUT")).toHaveLength(1)
        // the run is marked FINISHED beside the publishing log-batch
        expect(requests.filter((r) => r.path.includes("/runs/update"))).toHaveLength(1)
        expect(requests.filter((r) => r.path.includes("/mlflow-artifacts/artifacts?"))).toHaveLength(1)
      })
    ))

  it("a warm write makes 1 request; the first write of a training also creates its run", () =>
    onEmulator(({ counted }) =>
      Effect.gen(function*() {
        const { reg } = yield* warm()
        const [, first] = yield* counted(reg.write(project, release, StateId.random(), new Uint8Array(100)))
        expectAtMost(first, 2)
        expect(first.map((r) => r.method)).toEqual(["POST", "PUT"])
        expect(first[0]!.path).toContain("/runs/create")
        for (let i = 0; i < 3; i++) {
          const [, next] = yield* counted(reg.write(project, release, StateId.random(), new Uint8Array(100)))
          expectAtMost(next, 1)
          expect(next[0]!.method).toBe("PUT")
        }
      })
    ))

  it("writing many states costs one request each, plus one runs/log-batch per 96 sha256 tags waiting", () =>
    onEmulator(({ counted }) =>
      Effect.gen(function*() {
        const { reg } = yield* warm()
        yield* reg.write(project, release, StateId.random(), new Uint8Array(1)) // creates the training's run
        const n = 200
        const [, requests] = yield* counted(Effect.forEach(
          Array.from({ length: n }, () => StateId.random()),
          (sid) => reg.write(project, release, sid, new Uint8Array(10)),
          { discard: true }
        ))
        expect(requests.filter((r) => r.method === "PUT")).toHaveLength(n)
        expectAtMost(requests, n + Math.ceil((n + 1) / 96))
      })
    ))

  it("a warm read and a warm open make 1 request each", () =>
    onEmulator(({ counted }) =>
      Effect.gen(function*() {
        const { reg, sids } = yield* warm(3)
        const [tag, opened] = yield* counted(reg.open(project, release, key.generation(1)))
        expectAtMost(opened, 1)
        expect(tag.states).toEqual(sids)
        for (const [i, sid] of sids.entries()) {
          const [bytes, read] = yield* counted(reg.read(project, release, key.generation(1), sid))
          expectAtMost(read, 1)
          expect([...bytes]).toEqual([i])
        }
      })
    ))

  it("an instance that listed the generations opens and reads with 1 request each", () =>
    onEmulator(({ counted }) =>
      Effect.gen(function*() {
        const { sids } = yield* warm(1)
        const other = yield* MlflowRegistry.make()
        yield* collect(other.releases(project))
        yield* collect(other.generations(project, release))
        const [, opened] = yield* counted(other.open(project, release, key.generation(1)))
        expectAtMost(opened, 1)
        const [, read] = yield* counted(other.read(project, release, key.generation(1), sids[0]!))
        expectAtMost(read, 1)
      })
    ))

  for (const states of [1, 20, 96]) {
    it(`close makes at most 5 requests with ${states} state${states === 1 ? "" : "s"}`, () =>
      onEmulator(({ counted }) =>
        Effect.gen(function*() {
          const { reg } = yield* warm(1)
          const sids = Array.from({ length: states }, () => StateId.random())
          for (const sid of sids) yield* reg.write(project, release, sid, new Uint8Array(10))
          const [used, requests] = yield* counted(reg.close(project, release, key.generation(2), tagWith(...sids)))
          expect(used).toBe(2)
          expectAtMost(requests, 5)
          // one artifact listing checks every state stored whole; the tags of a close go in one runs/log-batch
          expect(requests.filter((r) => r.path.includes("/mlflow-artifacts/artifacts?"))).toHaveLength(1)
          expect(requests.filter((r) => r.path.includes("runs/log-batch"))).toHaveLength(1)
          expect(requests.filter((r) => r.path.includes("runs/set-tag"))).toHaveLength(0)
        })
      ))
  }

  it("close makes at most 5 requests with 250 states (their sha256 tags went out in batches while writing)", () =>
    onEmulator(({ counted }) =>
      Effect.gen(function*() {
        const { reg } = yield* warm(1)
        const sids = Array.from({ length: 250 }, () => StateId.random())
        for (const sid of sids) yield* reg.write(project, release, sid, new Uint8Array(10))
        const [used, requests] = yield* counted(reg.close(project, release, key.generation(2), tagWith(...sids)))
        expect(used).toBe(2)
        expectAtMost(requests, 5)
        // and every state's sha256 is on the run: a read of each verifies
        const bytes = yield* reg.read(project, release, key.generation(2), sids[249]!)
        expect([...bytes]).toEqual(Array.from({ length: 10 }, () => 0))
      })
    ))

  /** Seeds a project whose release holds `n` committed generations, straight into the emulator's store. */
  const seed = (emulator: Emulator, n: number, releases = 1) =>
    emulator.handle.load({
      experiments: [{ experimentId: "900", name: project }],
      runs: [
        ...Array.from({ length: releases }, (_, i) => ({
          runId: `release${String(i).padStart(28, "0")}`,
          experimentId: "900",
          userId: Layout.USER_ID,
          startTime: 1_700_000_000_000 + i,
          tags: Layout.releaseTags("", i === 0 ? "1.0" : `1.0.post${i}`)
        })),
        ...Array.from({ length: n }, (_, i) => ({
          runId: `gen${String(i).padStart(29, "0")}`,
          experimentId: "900",
          userId: Layout.USER_ID,
          status: "FINISHED" as const,
          startTime: 1_700_000_001_000 + i,
          endTime: 1_700_000_002_000 + i,
          tags: [
            ...Layout.generationTags("", `release${"0".repeat(28)}`, "seeded"),
            { key: Layout.TAG.commit, value: String(i + 1) }
          ]
        }))
      ]
    })

  const searches = (sent: ReadonlyArray<Sent>) => sent.filter((s) => s.url.endsWith("/runs/search"))

  for (const n of [0, 1, 999, 1000, 1001, 2500, 10_000]) {
    it(
      `listing ${n} generations of a release makes at most ceil(n / 1000) + 1 = ${Math.ceil(n / PAGE) + 1} requests`,
      () =>
        onEmulator(({ counted, emulator, sent }) =>
          Effect.gen(function*() {
            yield* seed(emulator, n)
            const reg = yield* MlflowRegistry.make()
            yield* collect(reg.releases(project)) // resolves the release
            const [generations, requests] = yield* counted(collect(reg.generations(project, release)))
            expect(generations).toHaveLength(n)
            if (n > 0) expect([generations[0], generations[n - 1]]).toEqual([1, n])
            expectAtMost(requests, Math.ceil(n / PAGE) + 1)
            expect(searches(sent).length).toBe(requests.length)
            for (const s of searches(sent)) expect(s.json).toMatchObject({ max_results: PAGE })
          })
        ),
      30_000
    )
  }

  for (const n of [1, 1000, 1001]) {
    it(
      `listing ${n} releases of a project makes at most ceil(n / 1000) + 1 = ${Math.ceil(n / PAGE) + 1} requests`,
      () =>
        onEmulator(({ counted, emulator, sent }) =>
          Effect.gen(function*() {
            yield* seed(emulator, 0, n)
            const reg = yield* MlflowRegistry.make()
            const [releases, requests] = yield* counted(collect(reg.releases(project)))
            expect(releases).toHaveLength(n)
            // the project's experiment is looked up once by name; the listing itself pages at 1000
            const listing = requests.filter((r) => r.path.includes("runs/search"))
            expectAtMost(listing, Math.ceil(n / PAGE) + 1)
            expect(requests.length - listing.length).toBeLessThanOrEqual(1)
            for (const s of searches(sent)) expect(s.json).toMatchObject({ max_results: PAGE })
            // a second listing on the warm instance is the listing alone
            const [, again] = yield* counted(collect(reg.releases(project)))
            expectAtMost(again, Math.ceil(n / PAGE) + 1)
          })
        ),
      30_000
    )
  }
})

describe("round trips with writers: \"one\" (no convergence searches)", () => {
  const runSearches = (requests: ReadonlyArray<RequestRecord>) => requests.filter((r) => r.path.includes("runs/search"))

  it("a cold push makes 7 requests and a close 4, neither searching runs; what they wrote reads back", () =>
    onEmulator(({ counted }) =>
      Effect.gen(function*() {
        const pkg = yield* packages
        const reg = yield* MlflowRegistry.make({ writers: "one" })
        const [, pushed] = yield* counted(reg.push(yield* pkg.zip(project, "1.0")))
        expect(pushed.length, show(pushed)).toBe(7)
        expect(runSearches(pushed), show(pushed)).toHaveLength(0)
        expect(pushed.filter((r) => r.path.includes("/runs/update"))).toHaveLength(1)
        const sids = [StateId.random(), StateId.random()]
        for (const [i, sid] of sids.entries()) yield* reg.write(project, release, sid, new Uint8Array([i, 7]))
        const [used, closed] = yield* counted(reg.close(project, release, key.generation(1), tagWith(...sids)))
        expect(used).toBe(1)
        expect(closed.length, show(closed)).toBe(4)
        expect(runSearches(closed), show(closed)).toHaveLength(0)
        expect(closed.filter((r) => r.path.includes("/runs/update"))).toHaveLength(1)
        expect(closed.filter((r) => r.path.includes("runs/log-batch"))).toHaveLength(1)
        // a reader of either mode sees a settled generation (FINISHED, committed) and its states
        const reader = yield* MlflowRegistry.make()
        expect(yield* collect(reader.generations(project, release))).toEqual([1])
        expect((yield* reader.open(project, release, key.generation(1))).states).toEqual(sids)
        expect([...(yield* reader.read(project, release, key.generation(1), sids[1]!))]).toEqual([1, 7])
        const run = yield* Effect.flatMap(Mlflow, (m) => m.getRun(runOf(closed)))
        expect([run.info.status, run.info.endTime !== undefined]).toEqual(["FINISHED", true])
      })
    ))

  it("two single writers closing the same number both keep it (the mode's stated risk); many writers converge", () =>
    onEmulator(() =>
      Effect.gen(function*() {
        const pkg = yield* packages
        yield* (yield* MlflowRegistry.make()).push(yield* pkg.zip(project, "1.0"))
        const closeOne = (writers: "one" | "many", generation: number) =>
          Effect.gen(function*() {
            const reg = yield* MlflowRegistry.make({ writers })
            const sid = StateId.random()
            yield* reg.write(project, release, sid, new Uint8Array([generation]))
            return yield* reg.close(project, release, key.generation(generation), tagWith(sid))
          })
        expect(yield* Effect.all([closeOne("one", 1), closeOne("one", 1)])).toEqual([1, 1])
        const many = yield* Effect.all([closeOne("many", 2), closeOne("many", 2)])
        expect([...many].sort()).toEqual([2, 3])
        // the listing shows number 1 once: one of the two single writers' generations is not listed
        expect(yield* collect((yield* MlflowRegistry.make()).generations(project, release))).toEqual([1, 2, 3])
      })
    ))
})

/** The run a recorded runs/update request was for. */
const runOf = (requests: ReadonlyArray<RequestRecord>): string => {
  const json = requests.find((r) => r.path.includes("/runs/update"))?.json
  return typeof json === "object" && json !== null && "run_id" in json ? String(json.run_id) : ""
}
