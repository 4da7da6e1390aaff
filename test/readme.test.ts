/**
 * The README's library examples, run as written (with the package import pointed at the sources).
 */
import { NodeContext } from "@effect/platform-node"
import { expect, it } from "@effect/vitest"
import { Effect, Layer, Stream } from "effect"
import {
  Directory,
  Filter,
  Mlflow,
  MlflowApiError,
  MlflowMemory,
  MlflowMemoryHandle,
  MlflowRegistry,
  Package
} from "../src/index.js"
import { sharedPath } from "./support/shared.js"

const TestRegistry = MlflowRegistry.layer({ repoid: "test" }).pipe(
  Layer.provideMerge(MlflowMemory.layer()),
  Layer.provideMerge(NodeContext.layer)
)

it.effect("README: a training that meets a server error commits nothing", () =>
  Effect.gen(function*() {
    const handle = yield* MlflowMemoryHandle
    const pkg = yield* Package.open(sharedPath("forml-vectors", "helloworld.4ml"))
    const { project, release } = yield* Directory.publish(pkg)
    yield* handle.failNth(
      "uploadArtifact",
      1,
      new MlflowApiError({ status: 503, errorCode: "TEMPORARILY_UNAVAILABLE", detail: "busy" })
    )
    const failed = yield* Effect.either(Directory.commit(project, release, [new Uint8Array([1, 2, 3])]))
    expect(failed._tag).toBe("Left")
    expect(yield* Directory.generations(project, release)).toEqual([])
    // and the next training goes through
    const generation = yield* Directory.commit(project, release, [new Uint8Array([1, 2, 3])])
    expect(generation).toBe(1)
    expect(yield* Directory.generations(project, release)).toEqual([1])
  }).pipe(Effect.provide(TestRegistry)))

it.effect("README: searching runs with a Filter", () =>
  Effect.gen(function*() {
    const pkg = yield* Package.open(sharedPath("forml-vectors", "helloworld.4ml"))
    yield* Directory.publish(pkg)
    const mlflow = yield* Mlflow
    const experiment = yield* mlflow.getExperimentByName("helloworld@test")
    const releases = mlflow.searchRuns({
      experimentIds: [experiment.experimentId],
      filter: Filter.and(Filter.tag("forml.level", "release")),
      viewType: "ALL"
    })
    const versions = yield* Stream.runCollect(Stream.map(releases, (run) => run.tag("mlflow.source.git.commit")))
    expect([...versions].map((v) => v._tag === "Some" ? v.value : "")).toEqual(["1"])
  }).pipe(Effect.provide(TestRegistry)))
