/**
 * ForML's registry contract and Directory level tests on MlflowRegistry over every Mlflow layer: Memory, Http on the
 * emulator, FileStore in a temporary directory, and a real server when MLFLOW_TRACKING_URI is set.
 */
import { FileSystem } from "@effect/platform"
import { NodeContext, NodeHttpClient } from "@effect/platform-node"
import { describe, it } from "@effect/vitest"
import { Effect, Layer } from "effect"
import { startEmulator } from "../emulator/index.js"
import * as MlflowFileStore from "../src/mlflow/MlflowFileStore.js"
import * as MlflowHttp from "../src/mlflow/MlflowHttp.js"
import * as MlflowMemory from "../src/mlflow/MlflowMemory.js"
import { MlflowRegistry } from "../src/registry/MlflowRegistry.js"
import { formlContract } from "./contract/forml.js"

const registry = (repoid: string) => MlflowRegistry.layer({ repoid })

formlContract("MlflowRegistry on MlflowMemory", Layer.merge(MlflowMemory.layer(), NodeContext.layer), registry)

const platform = Layer.merge(NodeHttpClient.layerUndici, NodeContext.layer)
/** No waiting between retries: the emulator answers at once. */
const fast = { backoffFactor: 0, backoffJitter: 0 } as const

formlContract(
  "MlflowRegistry on MlflowHttp + emulator",
  Layer.unwrapScoped(
    Effect.map(startEmulator(), (emulator) => MlflowHttp.layer({ trackingUri: emulator.url, ...fast }))
  ).pipe(Layer.provideMerge(platform)),
  registry
)

formlContract(
  "MlflowRegistry on MlflowFileStore",
  Layer.unwrapScoped(
    Effect.map(
      Effect.flatMap(FileSystem.FileSystem, (fs) => fs.makeTempDirectoryScoped({ prefix: "forml-contract-" })),
      (dir) => MlflowFileStore.layer({ root: `${dir}/mlruns` })
    )
  ).pipe(Layer.provideMerge(NodeContext.layer)),
  registry
)

const realServer = process.env["MLFLOW_TRACKING_URI"]
if (realServer !== undefined && realServer !== "") {
  formlContract(
    `MlflowRegistry on ${realServer}`,
    MlflowHttp.layerConfig().pipe(Layer.provideMerge(platform)),
    registry,
    { timeout: 120_000 }
  )
} else {
  describe.skip("ForML contract: MlflowRegistry on a real server (skipped: MLFLOW_TRACKING_URI not set)", () => {
    it("runs ForML's registry contract against MLFLOW_TRACKING_URI", () => undefined)
  })
}
