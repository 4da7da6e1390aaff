/**
 * Artifacts straight in S3, against s3rver on loopback (started here): the store through the resolver (round trips,
 * listings with sizes, NotFound, deletes), a multipart upload of a few parts, faults through a proxy in front of it
 * (a part refused, a connection dropped, a denied or missing bucket, no credentials), MLflow's variables, and
 * MlflowHttp on the test server handing out `s3://` artifact URIs (as `--no-serve-artifacts`).
 */
import { NodeContext, NodeHttpClient } from "@effect/platform-node"
import { afterAll, describe, expect, it } from "@effect/vitest"
import { Chunk, ConfigProvider, Context, Effect, Either, Layer, Redacted, Stream } from "effect"
import { createHash } from "node:crypto"
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { startEmulator } from "../emulator/index.js"
import * as ArtifactStore from "../src/mlflow/ArtifactStore.js"
import { concatBytes, Mlflow } from "../src/mlflow/Mlflow.js"
import * as MlflowFileStore from "../src/mlflow/MlflowFileStore.js"
import * as MlflowHttp from "../src/mlflow/MlflowHttp.js"
import { MlflowRegistry } from "../src/registry/MlflowRegistry.js"
import { registryContract } from "./contract/registry.js"
import { isBuilt } from "./support/cli.js"
import { commandLifecycle, resolver, shared, startFaultProxy, startS3rver } from "./support/objectstores.js"

const BUCKET = "forml-artifacts"
const text = (s: string) => new TextEncoder().encode(s)
const decode = (b: Uint8Array) => new TextDecoder().decode(b)
const sha = (b: Uint8Array) => createHash("sha256").update(b).digest("hex")
const collect = <E>(s: Stream.Stream<Uint8Array, E>) =>
  Effect.map(Stream.runCollect(s), (c) => concatBytes(Chunk.toReadonlyArray(c)))
const bytesOf = (size: number, seed = 7): Uint8Array => {
  const out = new Uint8Array(size)
  let x = seed
  for (let i = 0; i < size; i++) {
    x = (x * 1103515245 + 12345) & 0x7fffffff
    out[i] = x >>> 16
  }
  return out
}
const MiB = 1024 * 1024
const uniqueRoot = () => `s3://${BUCKET}/mlruns/${Math.random().toString(36).slice(2, 10)}/artifacts`

/** One s3rver for the file; tests keep apart by unique prefixes. */
const s3rver = shared(startS3rver([BUCKET]))
afterAll(s3rver.close)

describe("S3 artifact store on s3rver", () => {
  it.scoped("round-trips bytes, files and streams (an empty one too), lists one level with sizes, deletes", () =>
    Effect.gen(function*() {
      const s3 = yield* s3rver.get
      const store = yield* (yield* resolver(s3.options())).resolve(uniqueRoot())
      const file = join(s3.directory, "..", `forml-s3-src-${process.pid}.bin`)
      writeFileSync(file, text("from a file"))
      yield* store.upload("tag.toml", text("states = []\n"))
      yield* store.upload("dir/from-file.bin", { file })
      yield* store.upload("dir/sub/stream.bin", Stream.make(text("ab"), text(""), text("cd")))
      yield* store.upload("empty.bin", Stream.empty)
      expect(decode(yield* store.read("tag.toml"))).toBe("states = []\n")
      expect(decode(yield* collect(store.download("dir/from-file.bin")))).toBe("from a file")
      expect(decode(yield* collect(store.download("dir/sub/stream.bin")))).toBe("abcd")
      expect((yield* store.read("empty.bin")).length).toBe(0)
      expect((yield* store.list()).map((f) => [f.path, f.isDir, f.fileSize])).toEqual([
        ["dir", true, undefined],
        ["empty.bin", false, 0],
        ["tag.toml", false, 12]
      ])
      expect((yield* store.list("dir/")).map((f) => [f.path, f.isDir, f.fileSize])).toEqual([
        ["dir/from-file.bin", false, 11],
        ["dir/sub", true, undefined]
      ])
      expect(yield* store.list("missing")).toEqual([])
      // a missing object is NotFound, from a read and from a stream
      expect(yield* Effect.flip(store.read("nope.bin"))).toMatchObject({ _tag: "NotFound", key: "nope.bin" })
      expect(yield* Effect.flip(collect(store.download("dir/nope.bin")))).toMatchObject({ _tag: "NotFound" })
      // bad paths never reach the store
      for (const bad of ["../x", "/abs", "a//b", "a\\b"]) {
        expect((yield* Effect.flip(store.upload(bad, text("x"))))._tag).toBe("InvalidInput")
      }
      // overwrite, then delete a tree
      yield* store.upload("tag.toml", text("v2"))
      expect(decode(yield* store.read("tag.toml"))).toBe("v2")
      yield* store.remove("dir")
      expect((yield* store.list()).map((f) => f.path)).toEqual(["empty.bin", "tag.toml"])
      yield* store.remove("dir")
      // a failing stream fails the upload with its own error, and stores nothing
      const failing = Stream.concat(Stream.make(text("partial")), Stream.fail({ _tag: "SourceFailed" as const }))
      expect(yield* Effect.flip(store.upload("failed.bin", failing))).toEqual({ _tag: "SourceFailed" })
      expect(yield* Effect.flip(store.read("failed.bin"))).toMatchObject({ _tag: "NotFound" })
    }))

  it.scoped("a large artifact goes in parts (part size lowered to S3's 5 MiB minimum) and reads back whole", () =>
    Effect.gen(function*() {
      const s3 = yield* s3rver.get
      const proxy = yield* startFaultProxy(s3.endpoint)
      const options = s3.options(proxy.url)
      const store = yield* (yield* resolver({ s3: { ...options.s3, partSize: 5 * MiB, queueSize: 2 } })).resolve(
        uniqueRoot()
      )
      const data = bytesOf(11 * MiB + 123)
      // a stream of unknown length in small chunks: memory holds at most queueSize parts
      const chunks = Stream.fromIterable(Array.from({ length: 12 }, (_, i) => data.subarray(i * MiB, (i + 1) * MiB)))
      yield* store.upload("package.4ml", chunks)
      const parts = proxy.requests().filter((r) => r.method === "PUT" && /partNumber=/.test(r.url))
      expect(parts.map((r) => /partNumber=(\d+)/.exec(r.url)![1]).sort()).toEqual(["1", "2", "3"])
      expect(proxy.requests().some((r) => r.method === "POST" && /uploadId=/.test(r.url))).toBe(true)
      expect(sha(yield* collect(store.download("package.4ml")))).toBe(sha(data))
      expect((yield* store.list()).map((f) => f.fileSize)).toEqual([data.length])
    }))

  it.scoped("a refused part fails the upload with a typed error, aborts the multipart upload, commits nothing", () =>
    Effect.gen(function*() {
      const s3 = yield* s3rver.get
      const proxy = yield* startFaultProxy(s3.endpoint)
      const store = yield* (yield* resolver({ s3: { ...s3.options(proxy.url).s3, partSize: 5 * MiB } })).resolve(
        uniqueRoot()
      )
      // s3rver has no AbortMultipartUpload (it answers 405): the proxy answers it as S3 does
      proxy.fault({ method: "DELETE", url: /uploadId=/, status: 204 })
      proxy.fault({
        method: "PUT",
        url: /partNumber=2/,
        status: 403,
        body: "<?xml version=\"1.0\"?><Error><Code>AccessDenied</Code><Message>Access Denied</Message></Error>"
      })
      const error = yield* Effect.flip(store.upload("state.bin", Stream.make(bytesOf(11 * MiB))))
      expect(error._tag).toBe("ArtifactStoreError")
      expect(error.message).toMatch(/^s3 upload s3:\/\/forml-artifacts\/.*state\.bin failed: access denied/)
      expect(error.message).not.toContain("\n")
      // the upload was aborted (its parts dropped) and no object is there
      expect(proxy.requests().some((r) => r.method === "DELETE" && /uploadId=/.test(r.url))).toBe(true)
      expect(yield* Effect.flip(store.read("state.bin"))).toMatchObject({ _tag: "NotFound" })
      expect(yield* store.list()).toEqual([])
    }))

  it.scoped("a dropped connection is retried: the part is sent again and the artifact is whole", () =>
    Effect.gen(function*() {
      const s3 = yield* s3rver.get
      const proxy = yield* startFaultProxy(s3.endpoint)
      const store = yield* (yield* resolver({ s3: { ...s3.options(proxy.url).s3, partSize: 5 * MiB } })).resolve(
        uniqueRoot()
      )
      proxy.fault({ method: "PUT", url: /partNumber=2/, reset: true })
      proxy.fault({ method: "GET", reset: true })
      const data = bytesOf(11 * MiB, 3)
      yield* store.upload("state.bin", data)
      expect(proxy.requests().filter((r) => r.method === "PUT" && /partNumber=2/.test(r.url)).length).toBe(2)
      expect(sha(yield* store.read("state.bin"))).toBe(sha(data))
    }))

  it.scoped("a missing bucket, a denied request and missing credentials are one-line errors without secrets", () =>
    Effect.gen(function*() {
      const s3 = yield* s3rver.get
      const proxy = yield* startFaultProxy(s3.endpoint)
      const secret = "s3cr3t-never-printed"
      const options: ArtifactStore.ObjectStoreOptions = {
        s3: {
          ...s3.options(proxy.url).s3,
          // s3rver checks the key id, not the signature
          credentials: { accessKeyId: Redacted.make("S3RVER"), secretAccessKey: Redacted.make(secret) }
        }
      }
      const stores = yield* resolver(options)
      const missing = yield* stores.resolve("s3://no-such-bucket/x")
      const noBucket = yield* Effect.flip(missing.upload("a.txt", text("a")))
      expect(noBucket.message).toBe("s3 upload s3://no-such-bucket/x/a.txt failed: the bucket does not exist")
      proxy.fault({
        method: "GET",
        status: 403,
        body: "<?xml version=\"1.0\"?><Error><Code>AccessDenied</Code><Message>Access Denied</Message></Error>"
      })
      const denied = yield* Effect.flip((yield* stores.resolve(uniqueRoot())).list())
      expect(denied._tag).toBe("ArtifactStoreError")
      expect(denied.message).toContain("access denied")
      for (const e of [noBucket, denied]) {
        expect(e.message).not.toContain(secret)
        expect(JSON.stringify(e)).not.toContain(secret)
      }
      // no credentials anywhere: the SDK's chain finds none (files pointed away, instance metadata off)
      const saved = { ...process.env }
      try {
        for (const k of Object.keys(process.env)) if (k.startsWith("AWS_")) delete process.env[k]
        process.env["AWS_SHARED_CREDENTIALS_FILE"] = join(s3.directory, "none")
        process.env["AWS_CONFIG_FILE"] = join(s3.directory, "none")
        process.env["AWS_EC2_METADATA_DISABLED"] = "true"
        const anonymous = yield* resolver({ s3: { ...s3.options().s3, credentials: undefined } })
        const e = yield* Effect.flip((yield* anonymous.resolve(uniqueRoot())).read("a.txt"))
        expect(e.message).toMatch(/failed: no AWS credentials found \(set AWS_ACCESS_KEY_ID/)
      } finally {
        process.env = saved
      }
    }))

  it.scoped("reads MLflow's variables: MLFLOW_S3_ENDPOINT_URL, MLFLOW_S3_UPLOAD_EXTRA_ARGS (checked JSON)", () =>
    Effect.gen(function*() {
      const s3 = yield* s3rver.get
      const proxy = yield* startFaultProxy(s3.endpoint)
      const saved = { ...process.env }
      try {
        // the SDK's own chain reads the keys from the environment; plain bodies for s3rver (see objectstores.ts)
        process.env["AWS_ACCESS_KEY_ID"] = "S3RVER"
        process.env["AWS_SECRET_ACCESS_KEY"] = "S3RVER"
        process.env["AWS_REQUEST_CHECKSUM_CALCULATION"] = "WHEN_REQUIRED"
        const env = (vars: Record<string, string>) =>
          Effect.withConfigProvider(ConfigProvider.fromMap(new Map(Object.entries(vars))))
        const stores = yield* resolver({}).pipe(
          Effect.flatMap((r) => r.resolve(uniqueRoot())),
          env({
            MLFLOW_S3_ENDPOINT_URL: proxy.url,
            AWS_DEFAULT_REGION: "eu-west-1",
            MLFLOW_S3_UPLOAD_EXTRA_ARGS: JSON.stringify({ Metadata: { team: "forml" }, CacheControl: "no-cache" })
          })
        )
        yield* stores.upload("a.txt", text("configured"))
        expect(decode(yield* stores.read("a.txt"))).toBe("configured")
        const put = proxy.requests().find((r) => r.method === "PUT")!
        expect(put.url).toMatch(new RegExp(`^/${BUCKET}/mlruns/`)) // path-style addressing at the endpoint
        const bad = yield* Effect.flip(
          resolver({}).pipe(
            Effect.flatMap((r) => r.resolve(uniqueRoot())),
            env({ MLFLOW_S3_ENDPOINT_URL: proxy.url, MLFLOW_S3_UPLOAD_EXTRA_ARGS: "{not json" })
          )
        )
        expect(bad.message).toContain("MLFLOW_S3_UPLOAD_EXTRA_ARGS")
        expect(bad.message).toContain("not JSON")
      } finally {
        process.env = saved
      }
    }))

  it("parses object-store URIs as MLflow does", () => {
    expect(ArtifactStore.parseObjectUri("s3://b/a/b/")).toEqual(
      Either.right({ _tag: "S3", bucket: "b", prefix: "a/b" })
    )
    expect(ArtifactStore.parseObjectUri("s3://b")).toEqual(Either.right({ _tag: "S3", bucket: "b", prefix: "" }))
    expect(ArtifactStore.parseObjectUri("wasbs://c@acct.blob.core.windows.net/p/q")).toEqual(
      Either.right({ _tag: "Azure", container: "c", account: "acct", suffix: "blob.core.windows.net", prefix: "p/q" })
    )
    expect(ArtifactStore.parseObjectUri("gs://b/x")).toEqual(Either.right({ _tag: "Gcs", bucket: "b", prefix: "x" }))
    const left = (uri: string) =>
      Either.match(ArtifactStore.parseObjectUri(uri), { onLeft: (e) => e._tag, onRight: () => "parsed" })
    for (const bad of ["s3:///x", "s3://b/../x", "wasbs://nocontainer/x"]) expect(left(bad)).toBe("InvalidInput")
    expect(left("hdfs://x/y")).toBe("UnsupportedArtifactStore")
  })
})

// ---------------------------------------------------------------------------------------------------------------
// The registry on a tracking server in direct mode (its runs' artifact URIs in s3://)
// ---------------------------------------------------------------------------------------------------------------

const platform = Layer.merge(NodeHttpClient.layerUndici, NodeContext.layer)
const fast = { backoffFactor: 0, backoffJitter: 0 } as const

/** MlflowHttp on the test server run as `--no-serve-artifacts --default-artifact-root s3://forml-artifacts/mlruns`. */
const directS3 = Layer.unwrapScoped(
  Effect.gen(function*() {
    const s3 = yield* s3rver.get
    const emulator = yield* startEmulator({ artifactRoot: `s3://${BUCKET}/${Math.random().toString(36).slice(2)}` })
    return MlflowHttp.layer({ trackingUri: emulator.url, ...fast, artifactStores: s3.options() })
  })
).pipe(Layer.provide(platform))

registryContract("MlflowHttp + emulator in direct mode, artifacts in S3 (s3rver)", () => directS3)

describe("MlflowRegistry on a direct-mode server: the artifacts are in the bucket, not on the server", () => {
  it.scoped("a pushed package and a trained generation are objects under the run's s3:// artifact URI", () =>
    Effect.gen(function*() {
      const s3 = yield* s3rver.get
      const emulator = yield* startEmulator({ artifactRoot: `s3://${BUCKET}/mlruns` })
      const layer = MlflowHttp.layer({ trackingUri: emulator.url, ...fast, artifactStores: s3.options() }).pipe(
        Layer.provide(platform)
      )
      const { registryRoot, listed } = yield* Effect.gen(function*() {
        const mlflow = yield* Mlflow
        const registry = yield* MlflowRegistry.make({ repoid: "direct" })
        const { Package } = yield* Effect.promise(() => import("../src/asset/Package.js"))
        const { helloworldZip } = yield* Effect.promise(() => import("./contract/registry.js"))
        yield* registry.push(yield* Package.open(helloworldZip))
        const runs = yield* Stream.runCollect(
          mlflow.searchRuns({ experimentIds: [(yield* mlflow.getExperimentByName("helloworld@direct")).experimentId] })
        )
        const run = Chunk.unsafeHead(runs)
        return { registryRoot: run.info.artifactUri, listed: yield* mlflow.listArtifacts(run.info) }
      }).pipe(Effect.provide(layer))
      expect(registryRoot).toMatch(new RegExp(`^s3://${BUCKET}/mlruns/\\d+/[0-9a-f]+/artifacts$`))
      expect(listed.map((f) => f.path)).toEqual(["package.4ml"])
      // the server's artifact proxy was never asked
      expect(emulator.requests().filter((r) => r.path.includes("mlflow-artifacts"))).toEqual([])
    }).pipe(Effect.provide(NodeContext.layer)))
})

describe("forml-mlflow on a direct-mode server with artifacts in S3 (s3rver), configured as MLflow is", () => {
  it.scoped(
    "demo, list, pull and state through the command; the objects are in the bucket",
    () =>
      Effect.gen(function*() {
        if (!isBuilt()) throw new Error("dist/cli/main.js is missing: run `npm run build` before these tests")
        const s3 = yield* s3rver.get
        const prefix = `cli-${Math.random().toString(36).slice(2, 10)}`
        const emulator = yield* startEmulator({ artifactRoot: `s3://${BUCKET}/${prefix}` })
        const result = yield* commandLifecycle(emulator.url, {
          MLFLOW_S3_ENDPOINT_URL: s3.endpoint,
          AWS_ACCESS_KEY_ID: "S3RVER",
          AWS_SECRET_ACCESS_KEY: "S3RVER",
          AWS_DEFAULT_REGION: "us-east-1",
          // s3rver keeps aws-chunked framing in stored bodies (see objectstores.ts): plain bodies for it
          AWS_REQUEST_CHECKSUM_CALCULATION: "WHEN_REQUIRED"
        })
        for (const step of result.steps) expect(step.code, `${step.args.join(" ")}: ${step.stderr}`).toBe(0)
        expect(result.projects).toEqual({ projects: [{ name: "forml-demo", releases: 2, latest: "0.2.0" }] })
        expect(result.pulledBytes).toBeGreaterThan(0)
        expect(emulator.requests().filter((r) => r.path.includes("mlflow-artifacts"))).toEqual([])
        // s3rver stores each object as a file under <directory>/<bucket>/<key> (its delimited listing misses some
        // prefixes far above the objects, so the files are counted here, not listed through S3)
        const stored = readdirSync(join(s3.directory, BUCKET, prefix), { recursive: true })
          .map(String).filter((f) => f.endsWith("._S3rver_object"))
        expect(stored.filter((f) => f.endsWith("/package.4ml._S3rver_object")).length).toBe(2)
        expect(stored.filter((f) => f.endsWith("/tag.toml._S3rver_object")).length).toBe(3)
      }),
    120_000
  )
})

describe("MlflowFileStore with runs whose artifact URI is s3:// (a store a direct-mode server wrote)", () => {
  it.scoped("uploads, lists with sizes and reads in the bucket; the run's local artifacts directory stays empty", () =>
    Effect.gen(function*() {
      const s3 = yield* s3rver.get
      const dir = mkdtempSync(join(tmpdir(), "forml-fs-s3-"))
      yield* Effect.addFinalizer(() => Effect.sync(() => rmSync(dir, { recursive: true, force: true })))
      const mlflow = yield* MlflowFileStore.make({ root: join(dir, "mlruns"), artifactStores: s3.options() })
      const experimentId = yield* mlflow.createExperiment("direct")
      const made = yield* mlflow.createRun({ experimentId })
      // as `mlflow server --backend-store-uri ./mlruns --default-artifact-root s3://…` records it
      const meta = join(dir, "mlruns", experimentId, made.runId, "meta.yaml")
      const root = `s3://${BUCKET}/fs-${made.runId}/artifacts`
      writeFileSync(meta, readFileSync(meta, "utf8").replace(/^artifact_uri: .*$/m, `artifact_uri: ${root}`))
      const run = yield* mlflow.getRun(made.runId)
      expect(run.info.artifactUri).toBe(root)
      yield* mlflow.uploadArtifact(run.info, "tag.toml", text("states = []\n"))
      yield* mlflow.uploadArtifact(run.info, "a/b.bin", Stream.make(text("xy")))
      expect((yield* mlflow.listArtifacts(run.info)).map((f) => [f.path, f.fileSize])).toEqual([
        ["a", undefined],
        ["tag.toml", 12]
      ])
      expect(decode(yield* mlflow.readArtifact(run.info, "tag.toml"))).toBe("states = []\n")
      expect(decode(yield* collect(mlflow.downloadArtifact(run.info, "a/b.bin")))).toBe("xy")
      expect(yield* Effect.flip(mlflow.readArtifact(run.info, "nope"))).toMatchObject({ _tag: "NotFound" })
      expect(readdirSync(join(dir, "mlruns", experimentId, made.runId, "artifacts"))).toEqual([])
    }).pipe(Effect.provide(NodeContext.layer)))
})

describe("MlflowSql with its artifact root in S3 (a database URI beside --default-artifact-root s3://…)", () => {
  it.scoped("new runs get s3:// artifact URIs; artifacts are written, listed with sizes and read in the bucket", () =>
    Effect.gen(function*() {
      const s3 = yield* s3rver.get
      const dir = mkdtempSync(join(tmpdir(), "forml-sql-s3-"))
      yield* Effect.addFinalizer(() => Effect.sync(() => rmSync(dir, { recursive: true, force: true })))
      const prefix = `sql-${Math.random().toString(36).slice(2, 10)}`
      const { layer } = yield* Effect.promise(() => import("../src/mlflow/MlflowSql.js"))
      const context = yield* Layer.build(
        layer({
          uri: `sqlite:///${join(dir, "mlflow.db")}`,
          artifactRoot: `s3://${BUCKET}/${prefix}`,
          artifactStores: s3.options()
        })
      )
      const mlflow = Context.get(context, Mlflow)
      const experimentId = yield* mlflow.createExperiment("direct")
      const run = (yield* mlflow.createRun({ experimentId })).info
      expect(run.artifactUri).toBe(`s3://${BUCKET}/${prefix}/${experimentId}/${run.runId}/artifacts`)
      yield* mlflow.uploadArtifact(run, "tag.toml", text("states = []\n"))
      yield* mlflow.uploadArtifact(run, "a/b.bin", Stream.make(text("xy")))
      expect((yield* mlflow.listArtifacts(run)).map((f) => [f.path, f.fileSize])).toEqual([["a", undefined], [
        "tag.toml",
        12
      ]])
      expect(decode(yield* collect(mlflow.downloadArtifact(run, "a/b.bin")))).toBe("xy")
      expect(yield* Effect.flip(mlflow.readArtifact(run, "nope"))).toMatchObject({ _tag: "NotFound" })
      // nothing landed on the local disk beside the database
      expect(readdirSync(dir).filter((f) => !f.startsWith("mlflow.db"))).toEqual([])
    }).pipe(Effect.provide(NodeContext.layer)))
})

describe("concurrent writers on a direct-mode server, artifacts in S3", () => {
  it.scopedLive("four registry instances train at once: four generations, each state read back from the bucket", () =>
    Effect.gen(function*() {
      const s3 = yield* s3rver.get
      const emulator = yield* startEmulator({
        artifactRoot: `s3://${BUCKET}/race-${Math.random().toString(36).slice(2)}`
      })
      const { Package } = yield* Effect.promise(() => import("../src/asset/Package.js"))
      const { StateId } = yield* Effect.promise(() => import("../src/asset/StateId.js"))
      const { helloworldZip, key, train } = yield* Effect.promise(() => import("./contract/registry.js"))
      const layer = MlflowHttp.layer({ trackingUri: emulator.url, ...fast, artifactStores: s3.options() }).pipe(
        Layer.provideMerge(platform)
      )
      const project = key.project("helloworld")
      const release = key.release("1")
      const results = yield* Effect.gen(function*() {
        yield* (yield* MlflowRegistry.make({ repoid: "race" })).push(yield* Package.open(helloworldZip))
        // each writer its own registry instance, as jobs on separate machines are; all close "generation 1"
        const writers = Array.from(
          { length: 4 },
          (_, i) => ({ sid: StateId.random(), data: bytesOf(50_000 + i, i + 1) })
        )
        const closed = yield* Effect.forEach(
          writers,
          (w) =>
            Effect.flatMap(
              MlflowRegistry.make({ repoid: "race" }),
              (reg) => train(reg, project, release, [[w.sid, w.data]], 1)
            ),
          { concurrency: "unbounded" }
        )
        const reader = yield* MlflowRegistry.make({ repoid: "race" })
        const read = yield* Effect.forEach(writers, (w, i) => reader.read(project, release, closed[i]!, w.sid))
        return { closed: closed.map((g) => Number(g)), same: read.map((b, i) => sha(b) === sha(writers[i]!.data)) }
      }).pipe(Effect.provide(layer))
      expect([...results.closed].sort()).toEqual([1, 2, 3, 4])
      expect(results.same).toEqual([true, true, true, true])
    }))
})
