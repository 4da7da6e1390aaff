/**
 * The file store (MLflow's own `mlruns/` format) and local artifacts: the Mlflow contract, reading what MLflow
 * 2.17.2 wrote, writing what it reads, atomic writes and path confinement.
 */
import { FileSystem, Path } from "@effect/platform"
import { NodeContext } from "@effect/platform-node"
import { describe, expect, it } from "@effect/vitest"
import { Chunk, Effect, Either, Layer, Stream } from "effect"
import * as LocalArtifacts from "../src/mlflow/LocalArtifacts.js"
import { concatBytes } from "../src/mlflow/Mlflow.js"
import * as MlflowFileStore from "../src/mlflow/MlflowFileStore.js"
import { mlflowContract } from "./contract/mlflow.js"

const text = (s: string) => new TextEncoder().encode(s)
const decode = (b: Uint8Array) => new TextDecoder().decode(b)

const collect = <E, R>(stream: Stream.Stream<Uint8Array, E, R>) =>
  Effect.map(Stream.runCollect(stream), (c) => decode(concatBytes(Chunk.toReadonlyArray(c))))

const tempDir = Effect.flatMap(FileSystem.FileSystem, (fs) => fs.makeTempDirectoryScoped({ prefix: "forml-fs-" }))

/** A file store in a fresh temporary directory, removed with the layer. */
const tempStore = Layer.unwrapScoped(
  Effect.map(tempDir, (dir) => MlflowFileStore.layer({ root: `${dir}/mlruns` }))
).pipe(Layer.provide(NodeContext.layer))

mlflowContract("MlflowFileStore", tempStore, { largeArtifactBytes: 16 * 1024 * 1024 + 3 })

describe("LocalArtifacts", () => {
  it.scopedLive("uploads, lists and downloads, creating the root and parents", () =>
    Effect.gen(function*() {
      const fs = yield* FileSystem.FileSystem
      const path = yield* Path.Path
      const root = path.join(yield* tempDir, "run", "artifacts")
      yield* LocalArtifacts.upload(root, "a.txt", text("hello"))
      yield* LocalArtifacts.upload(root, "dir/sub/b.bin", Stream.make(text("ab"), text("cd")))
      const src = path.join(yield* tempDir, "src.txt")
      yield* fs.writeFileString(src, "from a file")
      yield* LocalArtifacts.upload(root, "dir/c.txt", { file: src })
      expect(yield* collect(LocalArtifacts.download(root, "a.txt"))).toBe("hello")
      expect(yield* collect(LocalArtifacts.download(root, "dir/sub/b.bin"))).toBe("abcd")
      expect(yield* collect(LocalArtifacts.download(root, "dir/c.txt"))).toBe("from a file")
      const top = yield* LocalArtifacts.list(root)
      expect(top.map((f) => [f.path, f.isDir, f.fileSize])).toEqual([["a.txt", false, 5], ["dir", true, undefined]])
      const dir = yield* LocalArtifacts.list(root, "dir")
      expect(dir.map((f) => [f.path, f.isDir, f.fileSize])).toEqual([["dir/c.txt", false, 11], ["dir/sub", true, undefined]])
      expect(yield* LocalArtifacts.list(root, "missing")).toEqual([])
      expect(yield* LocalArtifacts.list(root, "a.txt")).toEqual([])
      // overwrite replaces the content
      yield* LocalArtifacts.upload(root, "a.txt", text("bye"))
      expect(yield* collect(LocalArtifacts.download(root, "a.txt"))).toBe("bye")
      // no temporary file is left behind
      const all = yield* fs.readDirectory(root, { recursive: true })
      expect(all.filter((n) => n.includes(".forml-tmp-"))).toEqual([])
    }).pipe(Effect.provide(NodeContext.layer)))

  it.scopedLive("a missing artifact or a directory fails the download with NotFound", () =>
    Effect.gen(function*() {
      const path = yield* Path.Path
      const root = path.join(yield* tempDir, "artifacts")
      const missingRoot = yield* Effect.flip(Stream.runDrain(LocalArtifacts.download(root, "x.txt")))
      expect(missingRoot._tag).toBe("NotFound")
      yield* LocalArtifacts.upload(root, "d/x.txt", text("x"))
      const missing = yield* Effect.flip(Stream.runDrain(LocalArtifacts.download(root, "d/y.txt")))
      expect(missing._tag).toBe("NotFound")
      const dir = yield* Effect.flip(Stream.runDrain(LocalArtifacts.download(root, "d")))
      expect(dir._tag).toBe("NotFound")
    }).pipe(Effect.provide(NodeContext.layer)))

  it.scopedLive("rejects bad paths and symlinks that lead out of the root", () =>
    Effect.gen(function*() {
      const fs = yield* FileSystem.FileSystem
      const path = yield* Path.Path
      const base = yield* tempDir
      const root = path.join(base, "artifacts")
      const outside = path.join(base, "outside")
      yield* fs.makeDirectory(root, { recursive: true })
      yield* fs.makeDirectory(outside)
      yield* fs.writeFileString(path.join(outside, "secret"), "secret")
      yield* fs.symlink(outside, path.join(root, "link"))
      yield* fs.symlink(path.join(outside, "secret"), path.join(root, "secret-link"))
      for (const bad of ["../x", "/abs", "a/../b", "a//b", "a\\b", "", "./a", ".forml-tmp-0011/x"]) {
        const e = yield* Effect.flip(LocalArtifacts.upload(root, bad, text("x")))
        expect(e._tag, bad).toBe("InvalidInput")
      }
      expect((yield* Effect.flip(LocalArtifacts.upload(root, "link/x", text("x"))))._tag).toBe("InvalidInput")
      expect(yield* fs.readDirectory(outside)).toEqual(["secret"])
      expect((yield* Effect.flip(Stream.runDrain(LocalArtifacts.download(root, "link/secret"))))._tag).toBe("InvalidInput")
      expect((yield* Effect.flip(Stream.runDrain(LocalArtifacts.download(root, "secret-link"))))._tag).toBe("InvalidInput")
      expect((yield* Effect.flip(Stream.runDrain(LocalArtifacts.download(root, "../outside/secret"))))._tag).toBe("InvalidInput")
      expect((yield* Effect.flip(LocalArtifacts.list(root, "link")))._tag).toBe("InvalidInput")
      // the listing leaves out links that lead outside
      expect(yield* LocalArtifacts.list(root)).toEqual([])
    }).pipe(Effect.provide(NodeContext.layer)))

  it.scopedLive("a failed upload leaves no file and no temporary file", () =>
    Effect.gen(function*() {
      const fs = yield* FileSystem.FileSystem
      const path = yield* Path.Path
      const root = path.join(yield* tempDir, "artifacts")
      yield* LocalArtifacts.upload(root, "keep.txt", text("old"))
      const failing = Stream.concat(Stream.make(text("partial")), Stream.fail("boom" as const))
      const e = yield* Effect.flip(LocalArtifacts.upload(root, "keep.txt", failing))
      expect(e).toBe("boom")
      expect(yield* collect(LocalArtifacts.download(root, "keep.txt"))).toBe("old")
      expect(yield* fs.readDirectory(root)).toEqual(["keep.txt"])
      // a stray temporary file (a crashed write) is not listed
      yield* fs.writeFileString(path.join(root, ".forml-tmp-deadbeefdeadbeef"), "junk")
      expect((yield* LocalArtifacts.list(root)).map((f) => f.path)).toEqual(["keep.txt"])
    }).pipe(Effect.provide(NodeContext.layer)))

  it("converts file URIs and paths", () => {
    expect(LocalArtifacts.fileUriToPath("file:///srv/a%20b/mlruns")).toEqual(Either.right("/srv/a b/mlruns"))
    expect(LocalArtifacts.fileUriToPath("file:/srv/x")).toEqual(Either.right("/srv/x"))
    expect(LocalArtifacts.fileUriToPath("/srv/x")).toEqual(Either.right("/srv/x"))
    expect(Either.isLeft(LocalArtifacts.fileUriToPath("mlflow-artifacts:/1/abc/artifacts"))).toBe(true)
    expect(Either.isLeft(LocalArtifacts.fileUriToPath("file://host/x"))).toBe(true)
    expect(LocalArtifacts.pathToFileUri("/srv/a b/mlruns")).toBe("file:///srv/a%20b/mlruns")
  })
})
