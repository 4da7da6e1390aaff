/**
 * MlflowRegistry over MlflowHttp: the registry contract against the test MLflow server (a fresh emulator per test),
 * and against a real server when MLFLOW_TRACKING_URI is set (reported as skipped otherwise).
 */
import { NodeContext, NodeHttpClient } from "@effect/platform-node"
import { Effect, Layer } from "effect"
import { describe, it } from "vitest"
import * as MlflowHttp from "../src/mlflow/MlflowHttp.js"
import { registryContract } from "./contract/registry.js"
import { startEmulator } from "./support/emulator.js"

const platform = Layer.merge(NodeHttpClient.layerUndici, NodeContext.layer)
/** No waiting between retries: the emulator answers at once. */
const fast = { backoffFactor: 0, backoffJitter: 0 } as const

registryContract("MlflowHttp + emulator (2.17 sqlite)", () =>
  Layer.unwrapScoped(
    Effect.map(startEmulator(), (emulator) => MlflowHttp.layer({ trackingUri: emulator.url, ...fast }))
  ).pipe(Layer.provide(platform)))

registryContract("MlflowHttp + emulator (3.x sqlite)", () =>
  Layer.unwrapScoped(
    Effect.map(
      startEmulator({ flavor: "3.x-sqlite" }),
      (emulator) => MlflowHttp.layer({ trackingUri: emulator.url, ...fast })
    )
  ).pipe(Layer.provide(platform)))

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
