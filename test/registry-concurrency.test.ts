/**
 * Racing registry instances over one shared MLflow store (separate registry layers, one MlflowMemory): pushes of
 * the same release, trainings closing the same generation number, and instances sharing a session must converge.
 */
import type { FileSystem } from "@effect/platform"
import { NodeContext } from "@effect/platform-node"
import { Context, Effect, Layer, Option } from "effect"
import type { Duration, Scope } from "effect"
import { randomUUID } from "node:crypto"
import { describe, expect, it } from "vitest"
import { Package } from "../src/asset/Package.js"
import { StateId } from "../src/asset/StateId.js"
import { Mlflow } from "../src/mlflow/Mlflow.js"
import type { Run } from "../src/mlflow/Mlflow.js"
import * as MlflowMemory from "../src/mlflow/MlflowMemory.js"
import type { MethodName, MlflowMemoryHandle } from "../src/mlflow/MlflowMemory.js"
import * as Layout from "../src/registry/layout.js"
import * as MlflowRegistry from "../src/registry/MlflowRegistry.js"
import type { MlflowRegistryOptions } from "../src/registry/MlflowRegistry.js"
import { Registry } from "../src/registry/Registry.js"
import { bytes, collect, helloworldZip, key, tagWith } from "./contract/registry.js"

const project = key.project("helloworld")
const release = key.release("1")

/** `n` registry instances, each its own layer, all over the one store of `handle`. */
const instances = (handle: MlflowMemoryHandle.Service, n: number, options: MlflowRegistryOptions = {}) =>
  Effect.forEach(Array.from({ length: n }), () =>
    Layer.build(
      MlflowRegistry.layer(options).pipe(
        Layer.provide(Layer.merge(Layer.succeed(Mlflow, handle.mlflow), NodeContext.layer))
      )
    ).pipe(Effect.map((context) => Context.get(context, Registry))))

const withStore = <A, E>(
  body: (handle: MlflowMemoryHandle.Service) => Effect.Effect<A, E, Scope.Scope | FileSystem.FileSystem>
) => Effect.runPromise(Effect.scoped(Effect.flatMap(MlflowMemory.make(), body)).pipe(Effect.provide(NodeContext.layer)))

const tag = (run: Run, k: string) => Option.getOrUndefined(run.tag(k))

/** The store's runs of a level in the helloworld experiment. */
const runsAt = (handle: MlflowMemoryHandle.Service, level: "release" | "generation") =>
  Effect.map(handle.snapshot, (s) => ({
    active: s.runs.filter((r) => tag(r, Layout.TAG.level) === level && r.info.lifecycleStage === "active"),
    deleted: s.runs.filter((r) => tag(r, Layout.TAG.level) === level && r.info.lifecycleStage === "deleted"),
    artifacts: s.artifacts
  }))

/** Per-method delays that make concurrent callers interleave at every request. */
const interleave = (
  handle: MlflowMemoryHandle.Service,
  delays: Partial<Record<MethodName | "*", Duration.DurationInput>>
) =>
  Effect.forEach(Object.entries(delays), ([method, d]) => handle.delay(method as MethodName | "*", d!), {
    discard: true
  })

const SCHEDULES: ReadonlyArray<Partial<Record<MethodName | "*", Duration.DurationInput>>> = [
  {},
  { "*": "2 millis" },
  { createRun: "6 millis", searchRunsPage: "1 millis" },
  { searchRunsPage: "5 millis", updateRun: "3 millis" },
  { setTags: "7 millis", updateRun: "1 millis", searchRunsPage: "2 millis" },
  { createExperiment: "4 millis", getExperimentByName: "1 millis", createRun: "2 millis" }
]

describe("racing registry instances converge", () => {
  for (const [i, schedule] of SCHEDULES.entries()) {
    it(`schedule ${i}: six instances push one release and close generation 1 at once`, () =>
      withStore((handle) =>
        Effect.gen(function*() {
          yield* interleave(handle, schedule)
          const pkg = yield* Package.open(helloworldZip)
          const regs = yield* instances(handle, 6)
          // everyone pushes the same release of a new project at once
          yield* Effect.all(regs.map((reg, j) => Effect.delay(reg.push(pkg), `${j % 3} millis`)), {
            concurrency: "unbounded"
          })
          const releases = yield* runsAt(handle, "release")
          expect(releases.active).toHaveLength(1)
          for (const loser of releases.deleted) expect(releases.artifacts.has(loser.runId)).toBe(false)
          expect(releases.artifacts.get(releases.active[0]!.runId)?.has("package.4ml")).toBe(true)
          expect((yield* handle.snapshot).experiments.filter((e) => e.name === "helloworld")).toHaveLength(1)

          // every trainer writes its own states and closes "generation 1"
          const trainings = regs.map((reg, j) => {
            const states = [StateId.random(), StateId.random()] as const
            return {
              reg,
              states,
              run: Effect.gen(function*() {
                for (const [k, sid] of states.entries()) yield* reg.write(project, release, sid, bytes(`t${j}s${k}`))
                return yield* reg.close(project, release, key.generation(1), tagWith(...states))
              })
            }
          })
          const used = yield* Effect.all(trainings.map((t, j) => Effect.delay(t.run, `${(j * 2) % 5} millis`)), {
            concurrency: "unbounded"
          })
          expect([...used].sort((a, b) => a - b)).toEqual([1, 2, 3, 4, 5, 6])

          // one committed run per number, each holding the states of the trainer that got it
          const generations = yield* runsAt(handle, "generation")
          const numbers = generations.active.map((r) => tag(r, Layout.TAG.commit))
          expect([...numbers].sort()).toEqual(["1", "2", "3", "4", "5", "6"])
          for (const r of generations.active) expect(r.info.status).toBe("FINISHED")
          // a run that moved to the next free number is named (and described) for the number it holds
          for (const r of generations.active) {
            const n = Number(tag(r, Layout.TAG.commit))
            expect(r.info.runName).toBe(`helloworld 1 · generation ${n}`)
            expect(tag(r, Layout.TAG.runName)).toBe(r.info.runName)
            expect(tag(r, Layout.TAG.note)).toContain(`generation **${n}**`)
            // the tag's score is a metric at the step of that number (its ordinal is a date-time: no metric)
            const points = (yield* handle.snapshot).metrics.get(r.runId) ?? []
            expect(points.map((m) => m.key)).not.toContain(Layout.METRIC.ordinal)
            const score = points.filter((m) => m.key === Layout.METRIC.score)
            expect(score.at(-1)).toEqual(expect.objectContaining({ value: 3.3, step: n }))
          }
          expect(releases.active[0]!.info.runName).toBe("helloworld 1")
          const [reader] = yield* instances(handle, 1)
          expect(yield* collect(reader!.generations(project, release))).toEqual([1, 2, 3, 4, 5, 6])
          for (const [j, t] of trainings.entries()) {
            const generation = key.generation(used[j]!)
            const opened = yield* reader!.open(project, release, generation)
            expect(opened.states).toEqual([...t.states])
            for (const [k, sid] of t.states.entries()) {
              expect(yield* reader!.read(project, release, generation, sid)).toEqual(bytes(`t${j}s${k}`))
              // the trainer's own instance reads the same
              expect(yield* t.reg.read(project, release, generation, sid)).toEqual(bytes(`t${j}s${k}`))
            }
          }
        })
      ))
  }

  it("instances sharing a session write into one training run, and any of them closes it", () =>
    withStore((handle) =>
      Effect.gen(function*() {
        yield* interleave(handle, { createRun: "3 millis", searchRunsPage: "1 millis" })
        const [publisher] = yield* instances(handle, 1)
        yield* publisher!.push(yield* Package.open(helloworldZip))
        const session = randomUUID()
        const regs = yield* instances(handle, 4, { session })
        const sids = regs.map(() => StateId.random())
        yield* Effect.all(regs.map((reg, j) => reg.write(project, release, sids[j]!, bytes(`s${j}`))), {
          concurrency: "unbounded"
        })
        const training = yield* runsAt(handle, "generation")
        expect(training.active).toHaveLength(1)
        expect(tag(training.active[0]!, Layout.TAG.session)).toBe(session)
        for (const loser of training.deleted) expect(training.artifacts.has(loser.runId)).toBe(false)
        expect(yield* regs[2]!.close(project, release, key.generation(1), tagWith(...sids))).toBe(1)
        for (const [j, sid] of sids.entries()) {
          expect(yield* publisher!.read(project, release, key.generation(1), sid)).toEqual(bytes(`s${j}`))
        }
      })
    ))

  it("a commit abandoned half-way (no end time) does not block a close for longer than commitWait", () =>
    withStore((handle) =>
      Effect.gen(function*() {
        const [reg] = yield* instances(handle, 1, { commitWait: "200 millis" })
        yield* reg!.push(yield* Package.open(helloworldZip))
        const sid = StateId.random()
        yield* reg!.write(project, release, sid, bytes("x"))
        // another writer set its commit tag for generation 1 and died before finishing
        const releaseRun = (yield* runsAt(handle, "release")).active[0]!
        const crashed = yield* handle.mlflow.createRun({
          experimentId: releaseRun.info.experimentId,
          tags: Layout.generationTags("", releaseRun.runId, randomUUID())
        })
        yield* handle.mlflow.setTags(crashed.runId, [
          { key: Layout.sha256Tag(Layout.ARTIFACT.tag), value: "0".repeat(64) },
          { key: Layout.TAG.commit, value: "1" }
        ])
        const started = Date.now()
        expect(yield* reg!.close(project, release, key.generation(1), tagWith(sid))).toBe(1)
        const elapsed = Date.now() - started
        expect(elapsed).toBeGreaterThanOrEqual(150)
        expect(elapsed).toBeLessThan(5000)
        expect(yield* reg!.read(project, release, key.generation(1), sid)).toEqual(bytes("x"))
      })
    ))
})
