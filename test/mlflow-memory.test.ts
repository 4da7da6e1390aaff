import { describe, expect, it } from "@effect/vitest"
import { Chunk, Effect, Stream } from "effect"
import { Mlflow } from "../src/mlflow/Mlflow.js"
import * as MlflowMemory from "../src/mlflow/MlflowMemory.js"

describe("MlflowMemory smoke", () => {
  it.effect("creates and searches", () =>
    Effect.gen(function*() {
      const m = yield* Mlflow
      const id = yield* m.createExperiment("x")
      expect(id).toBe("1")
      for (let i = 0; i < 5; i++) yield* m.createRun({ experimentId: id, startTime: i })
      const runs = yield* Stream.runCollect(m.searchRuns({ experimentIds: [id], pageSize: 2 }))
      expect(Chunk.size(runs)).toBe(5)
    }).pipe(Effect.provide(MlflowMemory.layer())))
})
