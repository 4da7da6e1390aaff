/**
 * MlflowRegistry over MlflowHttp: the registry contract against the test MLflow server (a fresh emulator per test),
 * and against a real server when MLFLOW_TRACKING_URI is set (reported as skipped otherwise).
 */
import { NodeContext, NodeHttpClient } from "@effect/platform-node"
import { Effect, Layer, Option } from "effect"
import { describe, expect, it } from "vitest"
import { startEmulator } from "../emulator/index.js"
import type { EmulatorOptions } from "../emulator/index.js"
import { Package } from "../src/asset/Package.js"
import * as MlflowHttp from "../src/mlflow/MlflowHttp.js"
import * as Layout from "../src/registry/layout.js"
import * as MlflowRegistry from "../src/registry/MlflowRegistry.js"
import { registryContract } from "./contract/registry.js"
import { activeRuns, helloworldZip, key, Probe, store, unique } from "./reliability/support.js"

const platform = Layer.merge(NodeHttpClient.layerUndici, NodeContext.layer)
/** No waiting between retries: the emulator answers at once. */
const fast = { backoffFactor: 0, backoffJitter: 0 } as const

// (the 2.17 sqlite emulator runs the contract in direct mode in test/artifact-stores-*.test.ts; through its artifact
// proxy here as the file-store backend, which differs from it only in experiment names and filters)
const emulators: ReadonlyArray<readonly [string, EmulatorOptions]> = [
  ["3.x sqlite", { flavor: "3.x-sqlite" }],
  ["2.17, file-store backend", { backend: "file" }]
]

for (const [title, emulatorOptions] of emulators) {
  registryContract(`MlflowHttp + emulator (${title})`, () =>
    Layer.unwrapScoped(
      Effect.map(
        startEmulator(emulatorOptions),
        (emulator) => MlflowHttp.layer({ trackingUri: emulator.url, ...fast })
      )
    ).pipe(Layer.provide(platform)))
}

const realServer = process.env["MLFLOW_TRACKING_URI"]
if (realServer !== undefined && realServer !== "") {
  registryContract(`MlflowHttp on ${realServer}`, () => MlflowHttp.layerConfig().pipe(Layer.provide(platform)), {
    timeout: 120_000
  })
} else {
  describe.skip("Registry contract: a real server (skipped: MLFLOW_TRACKING_URI not set)", () => {
    it("runs the registry contract against MLFLOW_TRACKING_URI", () => undefined)
  })
}

describe("MlflowRegistry over MlflowHttp: a run creation whose reply is lost", () => {
  it("converges on the run it made even when the retry then fails, leaving one release run carrying its token", () =>
    Effect.runPromise(
      Effect.scoped(Effect.gen(function*() {
        const emulator = Option.getOrThrow((yield* Probe).emulator)
        const repoid = unique("lost")
        // the reply of the first create is cut short (the run exists), the look-up before the retry fails, and the
        // retried create is refused: the registry finds the run by its token and keeps it
        emulator.fault({ truncate: true, match: { path: "runs/create" } })
        emulator.fault({ status: 400, errorCode: "INVALID_PARAMETER_VALUE", match: { path: "runs/search" } })
        emulator.fault({ status: 400, errorCode: "INVALID_PARAMETER_VALUE", match: { path: "runs/create" } })
        const registry = yield* MlflowRegistry.make({ repoid })
        yield* registry.push(yield* Package.open(helloworldZip))
        expect(emulator.count({ path: "runs/create" })).toBe(2)
        const runs = yield* activeRuns(`helloworld@${repoid}`)
        expect(runs).toHaveLength(1)
        expect(Option.isSome(runs[0]!.tag(Layout.TAG.create))).toBe(true)
        expect(Layout.isPublished(runs[0]!)).toBe(true)
        expect((yield* registry.pull(key.project("helloworld"), key.release("1"))).manifest.name).toBe("helloworld")
      })).pipe(Effect.provide(store("http")))
    ))
})
