/**
 * MlflowRegistry over MlflowFileStore: the registry contract on MLflow's own on-disk format, a fresh `mlruns`
 * directory per test.
 */
import { FileSystem } from "@effect/platform"
import { NodeContext } from "@effect/platform-node"
import { Effect, Layer } from "effect"
import * as MlflowFileStore from "../src/mlflow/MlflowFileStore.js"
import { registryContract } from "./contract/registry.js"

registryContract("MlflowFileStore", () =>
  Layer.unwrapScoped(
    Effect.map(
      Effect.flatMap(FileSystem.FileSystem, (fs) => fs.makeTempDirectoryScoped({ prefix: "registry-filestore-" })),
      (dir) => MlflowFileStore.layer({ root: `${dir}/mlruns` })
    )
  ).pipe(Layer.provide(NodeContext.layer)))
