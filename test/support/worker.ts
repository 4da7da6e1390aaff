/**
 * A child-process script for the multi-process tests: runs a plan (push, write states, close generations) against a
 * registry on MlflowHttp (MLflow's environment variables) or a file store, and reports each step as a JSON line.
 * Bundled with esbuild by `test/support/processes.ts`; the plan is the first argument, as JSON.
 */
import { NodeContext } from "@effect/platform-node"
import { Effect, Either, Layer } from "effect"
import { createHash, randomBytes } from "node:crypto"
import type { GenerationKey } from "../../src/asset/GenerationKey.js"
import { Package } from "../../src/asset/Package.js"
import { ProjectKey } from "../../src/asset/ProjectKey.js"
import { ReleaseKey } from "../../src/asset/ReleaseKey.js"
import { StateId } from "../../src/asset/StateId.js"
import { Tag, Timestamp } from "../../src/asset/Tag.js"
import { Mlflow } from "../../src/mlflow/Mlflow.js"
import * as MlflowFileStore from "../../src/mlflow/MlflowFileStore.js"
import * as MlflowHttp from "../../src/mlflow/MlflowHttp.js"
import * as MlflowSql from "../../src/mlflow/MlflowSql.js"
import * as Directory from "../../src/registry/Directory.js"
import { MlflowRegistry } from "../../src/registry/MlflowRegistry.js"
import { Registry } from "../../src/registry/Registry.js"

export type Step =
  /** Publishes the `.4ml` zip at `package` (registry push; the same version again reuses its run). */
  | { readonly op: "push"; readonly package: string }
  /** `count` trainings (default 1): write `states` random states of `size` bytes, then close latest + 1. */
  | { readonly op: "train"; readonly states: number; readonly size: number; readonly count?: number }
  /** Writes `states` random states and reports them, without closing. */
  | { readonly op: "write"; readonly states: number; readonly size: number }
  /** Waits until killed. */
  | { readonly op: "hang" }
  /** Sets batches of 50 new run tags (`b<i>.k<j>`) on one fresh run, one transaction each, until killed. */
  | { readonly op: "batches" }

export interface Plan {
  /** `http`: MlflowHttp from MLflow's environment variables; `file`: a file store at `root`; `sql`: a database URI. */
  readonly store:
    | { readonly kind: "http" }
    | { readonly kind: "file"; readonly root: string }
    | { readonly kind: "sql"; readonly uri: string }
  readonly repoid: string
  readonly project: string
  readonly release: string
  readonly steps: ReadonlyArray<Step>
}

/** One line of the worker's output. */
export type Event =
  | { readonly event: "start"; readonly pid: number }
  | { readonly event: "pushed" }
  | { readonly event: "wrote"; readonly states: ReadonlyArray<readonly [string, string]> }
  | {
    readonly event: "committed"
    readonly generation: number
    readonly states: ReadonlyArray<readonly [string, string]>
  }
  | { readonly event: "hang" }
  | { readonly event: "batch"; readonly runId: string; readonly batch: number }
  | { readonly event: "done" }
  | { readonly event: "error"; readonly tag: string; readonly message: string }

const emit = (e: Event) => Effect.sync(() => void process.stdout.write(`${JSON.stringify(e)}\n`))

const hex = (b: Uint8Array) => createHash("sha256").update(b).digest("hex")

const run = (plan: Plan) =>
  Effect.gen(function*() {
    const registry = yield* Registry
    const project = yield* ProjectKey.parse(plan.project)
    const release = yield* ReleaseKey.parse(plan.release)
    const writeStates = (count: number, size: number) =>
      Effect.forEach(
        Array.from({ length: count }, () => [StateId.random(), new Uint8Array(randomBytes(size))] as const),
        ([sid, data]) => Effect.as(registry.write(project, release, sid, data), [sid, hex(data)] as const)
      )
    yield* emit({ event: "start", pid: process.pid })
    for (const step of plan.steps) {
      switch (step.op) {
        case "push": {
          yield* registry.push(yield* Package.open(step.package))
          yield* emit({ event: "pushed" })
          break
        }
        case "write": {
          yield* emit({ event: "wrote", states: yield* writeStates(step.states, step.size) })
          break
        }
        case "train": {
          for (let i = 0; i < (step.count ?? 1); i++) {
            const states = yield* writeStates(step.states, step.size)
            const tag = Tag.make({ training: { timestamp: yield* Timestamp.now }, states: states.map(([sid]) => sid) })
            const used: GenerationKey = yield* Directory.closeNext(project, release, tag)
            yield* emit({ event: "committed", generation: used, states })
          }
          break
        }
        case "hang": {
          yield* emit({ event: "hang" })
          yield* Effect.never
          break
        }
        case "batches": {
          const mlflow = yield* Mlflow
          const experimentId = yield* mlflow.createExperiment(`batches-${process.pid}-${Date.now()}`)
          const created = yield* mlflow.createRun({ experimentId })
          for (let batch = 0;; batch++) {
            const tags = Array.from({ length: 50 }, (_, j) => ({ key: `b${batch}.k${j}`, value: `${batch}` }))
            yield* mlflow.setTags(created.runId, tags)
            yield* emit({ event: "batch", runId: created.runId, batch })
          }
        }
      }
    }
    yield* emit({ event: "done" })
  })

const main = (plan: Plan) => {
  const mlflow = plan.store.kind === "http"
    ? MlflowHttp.layerConfigNode()
    : plan.store.kind === "sql"
    ? MlflowSql.layer({ uri: plan.store.uri }).pipe(Layer.provide(NodeContext.layer))
    : MlflowFileStore.layer({ root: plan.store.root })
  const layer = MlflowRegistry.layer({ repoid: plan.repoid }).pipe(
    Layer.provideMerge(mlflow),
    Layer.provideMerge(NodeContext.layer)
  )
  return run(plan).pipe(
    Effect.provide(layer),
    Effect.catchAll((e) =>
      Effect.zipRight(
        emit({
          event: "error",
          tag: typeof e === "object" && e !== null && "_tag" in e ? String(e._tag) : "unknown",
          message: e instanceof Error ? e.message : String(e)
        }),
        Effect.sync(() => void (process.exitCode = 1))
      )
    )
  )
}

const arg = process.argv[2]
if (arg !== undefined) {
  const plan = Either.getOrThrow(Either.try(() => JSON.parse(arg) as Plan))
  void Effect.runPromise(main(plan))
}
