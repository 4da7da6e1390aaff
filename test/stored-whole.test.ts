/**
 * Nothing commits that is not stored whole: a server that answers an upload with success but keeps fewer bytes (as
 * MLflow 3.x does with a chunked body) is caught before a generation commits or a release lists; streamed states are
 * spooled to the staging directory and sent with their length.
 */
import { NodeContext } from "@effect/platform-node"
import { Effect, Layer, Option, Stream } from "effect"
import { mkdtemp, readdir, rm } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { describe, expect, it } from "vitest"
import { Package } from "../src/asset/Package.js"
import { StateId } from "../src/asset/StateId.js"
import { Mlflow } from "../src/mlflow/Mlflow.js"
import * as MlflowMemory from "../src/mlflow/MlflowMemory.js"
import * as Layout from "../src/registry/layout.js"
import { bytes, collect, helloworldZip, key, registry, runsOf, tagWith } from "./contract/registry.js"

const project = key.project("helloworld")
const release = key.release("1")

/**
 * MlflowMemory behind a switch: while `lossy.on`, every upload of an artifact named like `match` is acknowledged but
 * stored empty, as a real MLflow 3.x server stores a chunked body.
 */
const lossyStore = (match: RegExp) => {
  const lossy = { on: false }
  const layer = Layer.effect(
    Mlflow,
    Effect.map(Mlflow, (inner) =>
      Mlflow.of({
        ...inner,
        uploadArtifact: (run, path, source) =>
          lossy.on && match.test(path)
            ? inner.uploadArtifact(run, path, new Uint8Array(0))
            : inner.uploadArtifact(run, path, source)
      }))
  ).pipe(Layer.provide(MlflowMemory.layer()))
  return { lossy, layer: Layer.merge(layer, NodeContext.layer) }
}

describe("nothing commits that is not stored whole", () => {
  it("a state stored with fewer bytes than written fails close with IntegrityError and commits nothing", () => {
    const { lossy, layer } = lossyStore(/\.bin$/)
    return Effect.runPromise(Effect.scoped(
      Effect.gen(function*() {
        const reg = yield* registry()
        yield* reg.push(yield* Package.open(helloworldZip))
        const [a, b] = [StateId.random(), StateId.random()]
        yield* reg.write(project, release, a, bytes("kept whole"))
        lossy.on = true
        yield* reg.write(project, release, b, bytes("lost on the way"))
        const error = yield* Effect.flip(reg.close(project, release, key.generation(1), tagWith(a, b)))
        expect(error._tag).toBe("IntegrityError")
        expect(error).toMatchObject({ artifact: `${b}.bin`, expected: "15", actual: "0", measure: "size" })
        expect(error.message).toBe(`integrity check failed for ${b}.bin: 0 bytes stored, 15 written`)
        // not committed: nothing lists, no run carries a commit number, and tag.toml was never sent
        expect(yield* collect(reg.generations(project, release))).toEqual([])
        const training = (yield* runsOf("helloworld")).filter((r) =>
          Option.contains(r.tag(Layout.TAG.level), "generation")
        )
        expect(training).toHaveLength(1)
        expect(Option.isNone(training[0]!.tag(Layout.TAG.commit))).toBe(true)
        const mlflow = yield* Mlflow
        expect((yield* mlflow.listArtifacts(training[0]!.info)).map((f) => f.path)).not.toContain(Layout.ARTIFACT.tag)
        // the same training completes once the state is written again whole
        lossy.on = false
        yield* reg.write(project, release, b, bytes("lost on the way"))
        expect(yield* reg.close(project, release, key.generation(1), tagWith(a, b))).toBe(1)
        expect(yield* reg.read(project, release, key.generation(1), b)).toEqual(bytes("lost on the way"))
      }).pipe(Effect.provide(layer))
    ))
  })

  it("a package stored with fewer bytes than sent fails push with IntegrityError; the release does not list", () => {
    const { lossy, layer } = lossyStore(/^package\.4ml$/)
    return Effect.runPromise(Effect.scoped(
      Effect.gen(function*() {
        const reg = yield* registry()
        const pkg = yield* Package.open(helloworldZip)
        lossy.on = true
        const error = yield* Effect.flip(reg.push(pkg))
        expect(error).toMatchObject({ _tag: "IntegrityError", artifact: "package.4ml", actual: "0", measure: "size" })
        expect(yield* collect(reg.projects)).toEqual([])
        expect((yield* Effect.flip(registry().pipe(Effect.flatMap((r) => r.pull(project, release)))))._tag).toBe(
          "NotFound"
        )
        // the next push of the version completes the same release run
        lossy.on = false
        yield* reg.push(pkg)
        expect(yield* collect(reg.releases(project))).toEqual([release])
        expect((yield* runsOf("helloworld")).filter((r) => Option.contains(r.tag(Layout.TAG.level), "release")))
          .toHaveLength(1)
      }).pipe(Effect.provide(layer))
    ))
  })

  it("a streamed state is spooled to the staging directory, stored whole, and the spool is removed", () => {
    const { layer } = lossyStore(/$^/)
    return Effect.runPromise(Effect.scoped(
      Effect.gen(function*() {
        const staging = yield* Effect.acquireRelease(
          Effect.promise(() => mkdtemp(join(tmpdir(), "forml-spool-"))),
          (dir) => Effect.promise(() => rm(dir, { recursive: true, force: true }))
        )
        const reg = yield* registry({ staging })
        yield* reg.push(yield* Package.open(helloworldZip))
        const before = yield* Effect.promise(() => readdir(staging))
        const sid = StateId.random()
        const chunks = Array.from({ length: 40 }, (_, i) => new Uint8Array(10_000).fill(i))
        yield* reg.write(project, release, sid, Stream.fromIterable(chunks))
        expect(yield* Effect.promise(() => readdir(staging))).toEqual(before)
        expect(yield* reg.close(project, release, key.generation(1), tagWith(sid))).toBe(1)
        const read = yield* reg.read(project, release, key.generation(1), sid)
        expect(read.length).toBe(400_000)
        expect(read.subarray(390_000).every((b) => b === 39)).toBe(true)
        // a failing stream leaves no spool behind either, and fails with its own error
        const failing = Stream.concat(Stream.make(new Uint8Array(5)), Stream.fail("source broke" as const))
        expect(yield* Effect.flip(reg.write(project, release, StateId.random(), failing))).toBe("source broke")
        expect(yield* Effect.promise(() => readdir(staging))).toEqual(before)
      }).pipe(Effect.provide(layer))
    ))
  })

  it("an empty streamed state is stored and read back as 0 bytes", () => {
    const { layer } = lossyStore(/$^/)
    return Effect.runPromise(Effect.scoped(
      Effect.gen(function*() {
        const reg = yield* registry()
        yield* reg.push(yield* Package.open(helloworldZip))
        const sid = StateId.random()
        yield* reg.write(project, release, sid, Stream.empty)
        expect(yield* reg.close(project, release, key.generation(1), tagWith(sid))).toBe(1)
        expect(yield* reg.read(project, release, key.generation(1), sid)).toEqual(new Uint8Array(0))
      }).pipe(Effect.provide(layer))
    ))
  })
})
