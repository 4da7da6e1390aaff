/**
 * MlflowHttp: the Mlflow contract against the emulator (and a real server when MLFLOW_TRACKING_URI is set), then
 * what only the Http layer has: settings, credentials, retries, error mapping by reply, artifact URIs.
 */
import { NodeContext, NodeHttpClient } from "@effect/platform-node"
import * as HttpClient from "@effect/platform/HttpClient"
import * as HttpClientError from "@effect/platform/HttpClientError"
import * as HttpClientResponse from "@effect/platform/HttpClientResponse"
import { describe, expect, it } from "@effect/vitest"
import {
  Chunk,
  ConfigProvider,
  Effect,
  Either,
  Fiber,
  Layer,
  Option,
  Redacted,
  Schema,
  Stream,
  TestClock
} from "effect"
import { execFileSync } from "node:child_process"
import { readFileSync } from "node:fs"
import { mkdtemp, readFile, rm, truncate, writeFile } from "node:fs/promises"
import * as Https from "node:https"
import type { AddressInfo } from "node:net"
import { tmpdir } from "node:os"
import { join } from "node:path"
import type { TLSSocket } from "node:tls"
import { pathToFileURL } from "node:url"
import { inspect } from "node:util"
import { type Emulator, type EmulatorOptions, startEmulator } from "../emulator/index.js"
import { downloadBytes, Mlflow } from "../src/mlflow/Mlflow.js"
import * as MlflowHttp from "../src/mlflow/MlflowHttp.js"
import * as Wire from "../src/mlflow/wire.js"
import { mlflowContract } from "./contract/mlflow.js"
import { sharedPath } from "./support/shared.js"

const platform = Layer.merge(NodeHttpClient.layerUndici, NodeContext.layer)

/** The Http layer on a fresh emulator that lives as long as the layer. */
const onEmulator = (settings: Partial<MlflowHttp.MlflowHttpConfig> = {}, options: EmulatorOptions = {}) =>
  Layer.unwrapScoped(
    Effect.map(startEmulator(options), (emulator) => MlflowHttp.layer({ trackingUri: emulator.url, ...settings }))
  ).pipe(Layer.provide(platform))

mlflowContract("MlflowHttp on the emulator (2.17 sqlite)", onEmulator(), { largeArtifactBytes: 16 * 1024 * 1024 })
mlflowContract("MlflowHttp on the emulator (3.x)", onEmulator({}, { flavor: "3.x-sqlite" }), {
  largeArtifactBytes: 1024 * 1024 + 3
})

const realServer = process.env["MLFLOW_TRACKING_URI"]
if (realServer !== undefined && realServer !== "") {
  mlflowContract(`MlflowHttp on ${realServer}`, MlflowHttp.layerConfig().pipe(Layer.provide(platform)), {
    timeout: 120_000,
    paramRefusal: "unknown"
  })
} else {
  describe.skip("Mlflow contract: MlflowHttp on a real server (skipped: MLFLOW_TRACKING_URI not set)", () => {
    it("runs the contract against MLFLOW_TRACKING_URI", () => undefined)
  })
}

// ---------------------------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------------------------

const text = (s: string) => new TextEncoder().encode(s)
const decode = (b: Uint8Array) => new TextDecoder().decode(b)

/** No waiting between retries, so that retry tests need no clock. */
const fast: Partial<MlflowHttp.MlflowHttpConfig> = { backoffFactor: 0, backoffJitter: 0 }

/** Runs `body` with a fresh emulator and an Mlflow service on it. */
const withService = <A, E>(
  body: (mlflow: Mlflow["Type"], emulator: Emulator) => Effect.Effect<A, E, Mlflow>,
  settings: Partial<MlflowHttp.MlflowHttpConfig> = fast,
  options: EmulatorOptions = {}
) =>
  Effect.scoped(
    Effect.gen(function*() {
      const emulator = yield* startEmulator(options)
      const mlflow = yield* MlflowHttp.make({ trackingUri: emulator.url, ...settings })
      return yield* Effect.provideService(body(mlflow, emulator), Mlflow, mlflow)
    })
  ).pipe(Effect.provide(platform))

const newRun = (mlflow: Mlflow["Type"], name = `exp-${Math.random().toString(36).slice(2)}`) =>
  Effect.gen(function*() {
    const experimentId = yield* mlflow.createExperiment(name)
    return yield* mlflow.createRun({ experimentId, runName: "r" })
  })

const withConfig = (env: Record<string, string>) =>
  Effect.withConfigProvider(ConfigProvider.fromMap(new Map(Object.entries(env))))

// ---------------------------------------------------------------------------------------------------------------
// Settings
// ---------------------------------------------------------------------------------------------------------------

describe("MlflowHttp settings", () => {
  it.effect("reads MLflow's variables with MLflow's defaults", () =>
    Effect.gen(function*() {
      const c = yield* MlflowHttp.config.pipe(withConfig({ MLFLOW_TRACKING_URI: "http://mlflow.example:5000/" }))
      expect(c).toMatchObject({
        trackingUri: "http://mlflow.example:5000",
        insecureTls: false,
        requestTimeout: 120,
        maxRetries: 7,
        backoffFactor: 2,
        backoffJitter: 1.0
      })
      expect(c.username).toBeUndefined()
      expect(c.token).toBeUndefined()
      expect(c.serverCertPath).toBeUndefined()
      const set = yield* MlflowHttp.config.pipe(withConfig({
        MLFLOW_TRACKING_URI: "https://mlflow.example/prefix",
        MLFLOW_TRACKING_USERNAME: "alice",
        MLFLOW_TRACKING_PASSWORD: "s3cret-pw",
        MLFLOW_TRACKING_TOKEN: "t0ken-value",
        MLFLOW_TRACKING_INSECURE_TLS: "true",
        MLFLOW_TRACKING_CLIENT_CERT_PATH: "/etc/client.pem",
        MLFLOW_HTTP_REQUEST_TIMEOUT: "30",
        MLFLOW_HTTP_REQUEST_MAX_RETRIES: "2",
        MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR: "0.5",
        MLFLOW_HTTP_REQUEST_BACKOFF_JITTER: "0"
      }))
      expect(set).toMatchObject({
        trackingUri: "https://mlflow.example/prefix",
        insecureTls: true,
        clientCertPath: "/etc/client.pem",
        requestTimeout: 30,
        maxRetries: 2,
        backoffFactor: 0.5,
        backoffJitter: 0
      })
      expect(Redacted.value(set.username!)).toBe("alice")
      expect(Redacted.value(set.password!)).toBe("s3cret-pw")
      expect(Redacted.value(set.token!)).toBe("t0ken-value")
      // secrets never print
      for (const shown of [String(set), JSON.stringify(set), inspect(set, { depth: 5 }), String(set.password)]) {
        expect(shown).not.toContain("s3cret-pw")
        expect(shown).not.toContain("t0ken-value")
      }
    }))

  it.effect("moves credentials out of the tracking URI, and refuses a URI that is not http(s)", () =>
    Effect.gen(function*() {
      const c = yield* MlflowHttp.config.pipe(withConfig({ MLFLOW_TRACKING_URI: "http://bob:pa%40ss@host:5000" }))
      expect(c.trackingUri).toBe("http://host:5000")
      expect(Redacted.value(c.username!)).toBe("bob")
      expect(Redacted.value(c.password!)).toBe("pa@ss")
      expect(JSON.stringify(c)).not.toContain("pa@ss")
      const missing = yield* Effect.flip(MlflowHttp.config.pipe(withConfig({})))
      expect(String(missing)).toContain("MLFLOW_TRACKING_URI")
      const file = yield* Effect.flip(MlflowHttp.config.pipe(withConfig({ MLFLOW_TRACKING_URI: "file:///tmp/mlruns" })))
      expect(String(file)).toContain("http")
      const both = yield* Effect.flip(MlflowHttp.config.pipe(withConfig({
        MLFLOW_TRACKING_URI: "https://h",
        MLFLOW_TRACKING_INSECURE_TLS: "true",
        MLFLOW_TRACKING_SERVER_CERT_PATH: "/ca.pem"
      })))
      expect(String(both)).toContain("cannot both be set")
      const bad = yield* Effect.flip(
        MlflowHttp.config.pipe(withConfig({ MLFLOW_TRACKING_URI: "http://h", MLFLOW_HTTP_REQUEST_MAX_RETRIES: "-1" }))
      )
      expect(String(bad)).toContain("must not be negative")
    }))

  it.effect("builds undici TLS options from the certificate paths; a missing file is a StorageError", () =>
    Effect.gen(function*() {
      const dir = yield* Effect.promise(() => mkdtemp(join(tmpdir(), "forml-tls-")))
      yield* Effect.ensuring(
        Effect.gen(function*() {
          const ca = join(dir, "ca.pem")
          const client = join(dir, "client.pem")
          yield* Effect.promise(() => writeFile(ca, "CA"))
          yield* Effect.promise(() => writeFile(client, "CERT AND KEY"))
          const opts = yield* MlflowHttp.tlsOptions({ serverCertPath: ca, clientCertPath: client })
          const connect = opts.connect as { ca?: Buffer; cert?: Buffer; key?: Buffer; rejectUnauthorized?: boolean }
          expect(String(connect.ca)).toBe("CA")
          expect(String(connect.cert)).toBe("CERT AND KEY")
          expect(String(connect.key)).toBe("CERT AND KEY")
          expect(connect.rejectUnauthorized).toBeUndefined()
          const insecure = yield* MlflowHttp.tlsOptions({ insecureTls: true })
          expect(insecure.connect).toEqual({ rejectUnauthorized: false })
          const missing = yield* Effect.flip(MlflowHttp.tlsOptions({ serverCertPath: join(dir, "nope.pem") }))
          expect(missing).toMatchObject({ _tag: "StorageError", path: join(dir, "nope.pem") })
        }).pipe(Effect.provide(NodeContext.layer)),
        Effect.promise(() => rm(dir, { recursive: true, force: true }))
      )
    }))

  it.effect("layerConfigNode serves requests through its own undici client", () =>
    Effect.scoped(Effect.gen(function*() {
      const emulator = yield* startEmulator()
      const layer = MlflowHttp.layerConfigNode().pipe(Layer.provide(NodeContext.layer))
      const id = yield* Effect.flatMap(Mlflow, (m) => m.createExperiment("via-config")).pipe(
        Effect.provide(layer),
        withConfig({ MLFLOW_TRACKING_URI: emulator.url, MLFLOW_TRACKING_INSECURE_TLS: "true" })
      )
      expect((yield* emulator.handle.mlflow.getExperiment(id)).name).toBe("via-config")
    })))
})

// ---------------------------------------------------------------------------------------------------------------
// Credentials
// ---------------------------------------------------------------------------------------------------------------

describe("MlflowHttp credentials", () => {
  it.effect("sends basic credentials, and they appear in no error", () =>
    withService((mlflow, emulator) =>
      Effect.gen(function*() {
        yield* mlflow.getExperiment("0")
        const sent = emulator.requests().at(-1)!.headers["authorization"]
        expect(sent).toBe(`Basic ${Buffer.from("alice:s3cret-pw").toString("base64")}`)
        emulator.fault({ status: 401, body: "<html><title>401 Unauthorized</title></html>" })
        const error = yield* Effect.flip(mlflow.getExperiment("0"))
        expect(error).toMatchObject({ _tag: "MlflowApiError", status: 401, errorCode: "HTTP_401" })
        for (const shown of [error.message, String(error), JSON.stringify(error), inspect(error)]) {
          expect(shown).not.toContain("s3cret-pw")
          expect(shown).not.toContain(Buffer.from("alice:s3cret-pw").toString("base64"))
        }
      }), {
      ...fast,
      username: Redacted.make("alice"),
      password: Redacted.make("s3cret-pw"),
      token: Redacted.make("ignored")
    }))

  it.effect("sends a bearer token when no username is set", () =>
    withService((mlflow, emulator) =>
      Effect.gen(function*() {
        yield* mlflow.getExperiment("0")
        expect(emulator.requests().at(-1)!.headers["authorization"]).toBe("Bearer t0ken-value")
        emulator.fault({ reset: true, times: 10 })
        const error = yield* Effect.flip(mlflow.getExperiment("0"))
        expect(error._tag).toBe("TransportError")
        expect(JSON.stringify(error) + error.message).not.toContain("t0ken-value")
      }), { ...fast, maxRetries: 1, token: Redacted.make("t0ken-value") }))

  it.effect("sends no Authorization header without credentials", () =>
    withService((mlflow, emulator) =>
      Effect.gen(function*() {
        yield* mlflow.getExperiment("0")
        expect(emulator.requests().at(-1)!.headers["authorization"]).toBeUndefined()
      })
    ))
})

// ---------------------------------------------------------------------------------------------------------------
// Retries
// ---------------------------------------------------------------------------------------------------------------

describe("MlflowHttp retries", () => {
  it.effect("retries 503, 429, 502, 504, 408 and a generic 500, then succeeds", () =>
    withService((mlflow, emulator) =>
      Effect.gen(function*() {
        for (const status of [503, 429, 502, 504, 408, 500]) {
          emulator.fault({ status, match: { path: "experiments/get" } })
        }
        const e = yield* mlflow.getExperiment("0")
        expect(e.name).toBe("Default")
        expect(emulator.count({ path: "experiments/get" })).toBe(7)
      })
    ))

  it.effect("gives up after MLFLOW_HTTP_REQUEST_MAX_RETRIES with the last error", () =>
    withService((mlflow, emulator) =>
      Effect.gen(function*() {
        emulator.fault({ status: 503, times: 10, errorCode: "TEMPORARILY_UNAVAILABLE" })
        const error = yield* Effect.flip(mlflow.getExperiment("0"))
        expect(error).toMatchObject({ _tag: "MlflowApiError", status: 503, errorCode: "TEMPORARILY_UNAVAILABLE" })
        expect(emulator.count()).toBe(3)
      }), { ...fast, maxRetries: 2 }))

  it.effect("does not retry a 400 or a 404", () =>
    withService((mlflow, emulator) =>
      Effect.gen(function*() {
        const error = yield* Effect.flip(mlflow.getExperiment("424242"))
        expect(error).toMatchObject({ _tag: "NotFound", entity: "experiment", key: "424242" })
        emulator.fault({ status: 400, errorCode: "INVALID_PARAMETER_VALUE" })
        expect(yield* Effect.flip(mlflow.getExperiment("0"))).toMatchObject({ _tag: "MlflowApiError", status: 400 })
        expect(emulator.count()).toBe(2)
      })
    ))

  it.effect("retries reset connections and truncated bodies", () =>
    withService((mlflow, emulator) =>
      Effect.gen(function*() {
        emulator.fault({ reset: true })
        emulator.fault({ truncate: true })
        expect((yield* mlflow.getExperiment("0")).name).toBe("Default")
        expect(emulator.count()).toBe(3)
      })
    ))

  it.effect("a refused connection is a TransportError after the retries", () =>
    Effect.gen(function*() {
      const mlflow = yield* MlflowHttp.make({ trackingUri: "http://127.0.0.1:9", ...fast, maxRetries: 1 })
      const error = yield* Effect.flip(mlflow.getExperiment("0"))
      expect(error).toMatchObject({ _tag: "TransportError", operation: "GET /api/2.0/mlflow/experiments/get" })
      expect(error.message).toMatch(/ECONNREFUSED/)
    }).pipe(Effect.provide(platform)))

  it.effect("backs off as urllib3 does on the Effect clock: 0 s, then factor × 2^n s", () =>
    withService((mlflow, emulator) =>
      Effect.gen(function*() {
        emulator.fault({ status: 503, times: 3 })
        const fiber = yield* Effect.fork(mlflow.getExperiment("0"))
        yield* waitFor(() => emulator.count() === 2)
        yield* TestClock.adjust("3999 millis")
        yield* settle
        expect(emulator.count()).toBe(2)
        yield* TestClock.adjust("1 millis")
        yield* waitFor(() => emulator.count() === 3)
        yield* TestClock.adjust("7999 millis")
        yield* settle
        expect(emulator.count()).toBe(3)
        yield* TestClock.adjust("1 millis")
        const e = yield* Fiber.join(fiber)
        expect(e.name).toBe("Default")
        expect(emulator.count()).toBe(4)
      }), { backoffFactor: 2, backoffJitter: 0 }))

  it.effect("honours Retry-After instead of the backoff", () =>
    withService((mlflow, emulator) =>
      Effect.gen(function*() {
        emulator.fault({ status: 429, retryAfter: 30 })
        const fiber = yield* Effect.fork(mlflow.getExperiment("0"))
        yield* waitFor(() => emulator.count() === 1)
        yield* TestClock.adjust("29 seconds")
        yield* settle
        expect(emulator.count()).toBe(1)
        yield* TestClock.adjust("1 seconds")
        expect((yield* Fiber.join(fiber)).name).toBe("Default")
        expect(emulator.count()).toBe(2)
      }), { backoffFactor: 0, backoffJitter: 0 }))

  it.effect("times out on the Effect clock after MLFLOW_HTTP_REQUEST_TIMEOUT", () =>
    withService((mlflow, emulator) =>
      Effect.gen(function*() {
        emulator.fault({ delayMs: 300 })
        const fiber = yield* Effect.fork(mlflow.getExperiment("0"))
        yield* waitFor(() => emulator.count() === 1)
        yield* TestClock.adjust("5 seconds")
        const error = yield* Effect.flip(Fiber.join(fiber))
        expect(error).toMatchObject({ _tag: "TransportError" })
        expect(error.message).toContain("no reply within 5s")
      }), { requestTimeout: 5, maxRetries: 0 }))
})

/** Waits in real time (the test clock does not move) until `done` holds. */
const waitFor = (done: () => boolean) =>
  Effect.promise(async () => {
    for (let i = 0; i < 500 && !done(); i++) await new Promise((r) => setTimeout(r, 5))
  })
const settle = Effect.promise(() => new Promise((r) => setTimeout(r, 50)))

// ---------------------------------------------------------------------------------------------------------------
// Replies
// ---------------------------------------------------------------------------------------------------------------

describe("MlflowHttp replies", () => {
  it.effect("2.17's missing-artifact 500 is NotFound at once, without retries", () =>
    withService((mlflow, emulator) =>
      Effect.gen(function*() {
        const run = yield* newRun(mlflow)
        emulator.clearRequests()
        const error = yield* Effect.flip(downloadBytes(run.info, "missing.txt"))
        expect(error).toMatchObject({ _tag: "NotFound", entity: "artifact", key: "missing.txt" })
        expect(emulator.requests().map((r) => r.status)).toEqual([500])
      })
    ))

  it.effect("3.x's missing-artifact 404 is NotFound", () =>
    withService(
      (mlflow, emulator) =>
        Effect.gen(function*() {
          const run = yield* newRun(mlflow)
          emulator.clearRequests()
          const error = yield* Effect.flip(downloadBytes(run.info, "missing.txt"))
          expect(error).toMatchObject({ _tag: "NotFound", entity: "artifact" })
          expect(emulator.requests().map((r) => r.status)).toEqual([404])
          // 3.x's extra error fields do not disturb the mapping
          expect(yield* Effect.flip(mlflow.getRun("0000000000000000000000000000dead"))).toMatchObject({
            _tag: "NotFound"
          })
        }),
      fast,
      { flavor: "3.x-sqlite" }
    ))

  it.effect("an HTML error page is an MlflowApiError with the status", () =>
    withService((mlflow, emulator) =>
      Effect.gen(function*() {
        emulator.fault({ status: 404, body: "<!doctype html>\n<title>404 Not Found</title>\n<h1>Not Found</h1>" })
        const error = yield* Effect.flip(mlflow.getExperiment("0"))
        expect(error).toMatchObject({
          _tag: "MlflowApiError",
          status: 404,
          errorCode: "HTTP_404",
          detail: "404 Not Found"
        })
        emulator.fault({ status: 405, body: "<p>Method Not Allowed</p>" })
        expect(yield* Effect.flip(mlflow.getExperiment("0"))).toMatchObject({
          status: 405,
          detail: "Method Not Allowed"
        })
      })
    ))

  it.effect("a 2xx that is not JSON, or not the expected shape, is a DecodeError", () =>
    withService((mlflow, emulator) =>
      Effect.gen(function*() {
        emulator.fault({ status: 200, body: "<html>proxy login</html>" })
        const notJson = yield* Effect.flip(mlflow.getExperiment("0"))
        expect(notJson).toMatchObject({ _tag: "DecodeError", operation: "GET /api/2.0/mlflow/experiments/get" })
        emulator.fault({
          status: 200,
          body: JSON.stringify({ experiment: { experiment_id: 7, name: "x" } }),
          contentType: "application/json"
        })
        const wrong = yield* Effect.flip(mlflow.getExperiment("0"))
        expect(wrong._tag).toBe("DecodeError")
        expect(wrong.message).toContain("experiment_id")
      })
    ))

  it.effect("a 2xx to an artifact upload or an action that is not MLflow's JSON `{}` is a DecodeError", () =>
    withService((mlflow, emulator) =>
      Effect.gen(function*() {
        const experimentId = yield* mlflow.createExperiment("acks")
        const run = yield* mlflow.createRun({ experimentId })
        const page = { status: 200, body: "<html><body>Sign in</body></html>", contentType: "text/html" }
        const put = { method: "PUT", path: "mlflow-artifacts" }
        emulator.fault({ ...page, match: put })
        expect(yield* Effect.flip(mlflow.uploadArtifact(run.info, "a.bin", text("bytes")))).toMatchObject({
          _tag: "DecodeError",
          operation: expect.stringContaining("PUT /api/2.0/mlflow-artifacts/artifacts/")
        })
        emulator.fault({ ...page, match: put })
        expect((yield* Effect.flip(mlflow.uploadArtifact(run.info, "s.bin", Stream.make(text("a")))))._tag)
          .toBe("DecodeError")
        emulator.fault({ status: 200, body: "[]", contentType: "application/json", match: { path: "runs/set-tag" } })
        expect((yield* Effect.flip(mlflow.setTag(run.runId, "k", "v")))._tag).toBe("DecodeError")
        // MLflow's own `{}` passes
        yield* mlflow.uploadArtifact(run.info, "a.bin", text("bytes"))
        yield* mlflow.setTag(run.runId, "k", "v")
      })
    ))

  it.effect("walks runs/search pages including 2.17's trailing empty page, always sending max_results", () =>
    withService((mlflow, emulator) =>
      Effect.gen(function*() {
        const experimentId = yield* mlflow.createExperiment("paging")
        for (let i = 0; i < 4; i++) yield* mlflow.createRun({ experimentId, startTime: i })
        emulator.clearRequests()
        const runs = yield* Stream.runCollect(mlflow.searchRuns({ experimentIds: [experimentId], pageSize: 2 }))
        expect(Chunk.size(runs)).toBe(4)
        const sent = emulator.requests().filter((r) => r.path.endsWith("runs/search")).map((r) => r.json)
        expect(sent.length).toBe(3)
        expect(sent[0]).toEqual({
          experiment_ids: [experimentId],
          filter: "",
          run_view_type: "ACTIVE_ONLY",
          max_results: 2,
          order_by: []
        })
        expect(sent.slice(1).map((b) => (b as { page_token?: string }).page_token)).toEqual([
          "eyJvZmZzZXQiOiAyfQ==",
          "eyJvZmZzZXQiOiA0fQ=="
        ])
        const experiments = yield* Stream.runCollect(mlflow.searchExperiments({ viewType: "ALL" }))
        expect(Chunk.size(experiments)).toBe(2)
        expect(emulator.requests().at(-1)!.json).toEqual({ max_results: 1000, view_type: "ALL" })
      })
    ))

  it.effect("an unsupported artifact store names the URI; file: URIs go straight to disk", () =>
    Effect.gen(function*() {
      const mlflow = yield* MlflowHttp.make({ trackingUri: "http://127.0.0.1:9", maxRetries: 0 })
      const hdfs = { runId: "r", artifactUri: "hdfs://namenode/1/r/artifacts" }
      const error = yield* Effect.flip(mlflow.uploadArtifact(hdfs, "a.txt", text("x")))
      expect(error).toMatchObject({ _tag: "UnsupportedArtifactStore", uri: "hdfs://namenode/1/r/artifacts" })
      expect(error.message).toContain("hdfs://namenode/1/r/artifacts")
      expect(yield* Effect.flip(Stream.runCollect(mlflow.downloadArtifact(hdfs, "a.txt")))).toMatchObject({
        _tag: "UnsupportedArtifactStore"
      })
      const dir = yield* Effect.promise(() => mkdtemp(join(tmpdir(), "forml-http-file-")))
      yield* Effect.ensuring(
        Effect.gen(function*() {
          const local = { runId: "r", artifactUri: pathToFileURL(join(dir, "1", "r", "artifacts")).href }
          yield* mlflow.uploadArtifact(local, "sub/state.bin", text("on disk"))
          expect(yield* Effect.promise(() => readFile(join(dir, "1", "r", "artifacts", "sub", "state.bin"), "utf-8")))
            .toBe("on disk")
          expect(decode(yield* downloadBytes(local, "sub/state.bin"))).toBe("on disk")
          expect((yield* mlflow.listArtifacts(local, "sub")).map((f) => f.path)).toEqual(["sub/state.bin"])
          expect(yield* Effect.flip(downloadBytes(local, "missing.bin"))).toMatchObject({ _tag: "NotFound" })
          const bare = { runId: "r", artifactUri: join(dir, "bare") }
          yield* mlflow.uploadArtifact(bare, "x.txt", text("bare path"))
          expect(decode(yield* downloadBytes(bare, "x.txt"))).toBe("bare path")
        }),
        Effect.promise(() => rm(dir, { recursive: true, force: true }))
      ).pipe(Effect.provideService(Mlflow, mlflow))
    }).pipe(Effect.provide(platform)))

  it("resolves mlflow-artifacts URIs against the tracking URI, encoding each segment", () => {
    const proxy = MlflowHttp.resolveArtifactUri("mlflow-artifacts:/9/abc/artifacts", "https://h/prefix")
    expect(proxy).toEqual(Either.right({ _tag: "Proxy", base: "https://h/prefix", root: ["9", "abc", "artifacts"] }))
    const host = MlflowHttp.resolveArtifactUri("mlflow-artifacts://other:5001/9/abc/artifacts", "https://h/prefix")
    expect(host).toEqual(
      Either.right({ _tag: "Proxy", base: "https://other:5001/prefix", root: ["9", "abc", "artifacts"] })
    )
    expect(MlflowHttp.resolveArtifactUri("gs://b/x/", "http://h")).toEqual(
      Either.right({ _tag: "ObjectStore", location: { _tag: "Gcs", bucket: "b", prefix: "x" } })
    )
    expect(Either.isLeft(MlflowHttp.resolveArtifactUri("hdfs://b/x", "http://h"))).toBe(true)
    expect(Either.isLeft(MlflowHttp.resolveArtifactUri("mlflow-artifacts:/9/../x", "http://h"))).toBe(true)
  })

  it.effect("artifact names are URL-encoded segment by segment; every upload carries its Content-Length", () =>
    withService((mlflow, emulator) =>
      Effect.gen(function*() {
        const run = yield* newRun(mlflow)
        emulator.clearRequests()
        yield* mlflow.uploadArtifact(run.info, "dir a/my file+x.txt", text("encoded"))
        const put = emulator.requests()[0]!
        expect(put.path).toBe(
          `/api/2.0/mlflow-artifacts/artifacts/${
            run.info.artifactUri.slice("mlflow-artifacts:/".length)
          }/dir%20a/my%20file%2Bx.txt`
        )
        expect(put.headers["content-length"]).toBe("7")
        const dir = yield* Effect.promise(() => mkdtemp(join(tmpdir(), "forml-http-up-")))
        yield* Effect.ensuring(
          Effect.gen(function*() {
            const file = join(dir, "f.bin")
            yield* Effect.promise(() => writeFile(file, Buffer.alloc(100_000, 7)))
            yield* mlflow.uploadArtifact(run.info, "f.bin", { file })
            expect(emulator.requests().at(-1)!.headers["content-length"]).toBe("100000")
          }),
          Effect.promise(() => rm(dir, { recursive: true, force: true }))
        )
        // a stream of unknown length is spooled first, then sent with its length (never chunked: MLflow 3.x would
        // store an empty file); empty chunks in it are harmless
        yield* mlflow.uploadArtifact(run.info, "s.bin", Stream.make(text("a"), new Uint8Array(0), text("b")))
        expect(emulator.requests().at(-1)!.headers["content-length"]).toBe("2")
        expect(emulator.requests().at(-1)!.headers["transfer-encoding"]).toBeUndefined()
        expect(decode(yield* downloadBytes(run.info, "s.bin"))).toBe("ab")
        yield* mlflow.uploadArtifact(run.info, "e.bin", Stream.empty)
        expect(emulator.requests().at(-1)!.headers["content-length"]).toBe("0")
        expect(yield* downloadBytes(run.info, "e.bin")).toHaveLength(0)
        const listed = yield* mlflow.listArtifacts(run.info, "dir a")
        expect(listed.map((f) => f.path)).toEqual(["dir a/my file+x.txt"])
        expect(emulator.requests().at(-1)!.path).toContain("?path=")
      })
    ))

  it.effect("retries a failed file upload from the start, and a one-shot stream from its spooled copy", () =>
    withService((mlflow, emulator) =>
      Effect.gen(function*() {
        const run = yield* newRun(mlflow)
        const dir = yield* Effect.promise(() => mkdtemp(join(tmpdir(), "forml-http-retry-")))
        yield* Effect.ensuring(
          Effect.gen(function*() {
            const file = join(dir, "f.bin")
            yield* Effect.promise(() => writeFile(file, "file body"))
            emulator.fault({ status: 503, match: { method: "PUT" } })
            yield* mlflow.uploadArtifact(run.info, "f.bin", { file })
            expect(emulator.count({ method: "PUT" })).toBe(2)
            expect(decode(yield* downloadBytes(run.info, "f.bin"))).toBe("file body")
          }),
          Effect.promise(() => rm(dir, { recursive: true, force: true }))
        )
        emulator.fault({ status: 503, match: { method: "PUT" } })
        let pulls = 0
        const once = Stream.suspend(() => {
          pulls++
          return Stream.make(text("once"))
        })
        yield* mlflow.uploadArtifact(run.info, "s.bin", once)
        expect(pulls).toBe(1)
        expect(emulator.count({ method: "PUT" })).toBe(4)
        expect(decode(yield* downloadBytes(run.info, "s.bin"))).toBe("once")
      })
    ))

  it.effect("on a file-store server, a name holding ' is found through a search and refused at creation with one line", () =>
    withService(
      (mlflow, emulator) =>
        Effect.gen(function*() {
          // made in the store itself, as another server (or a migration) could have
          const id = yield* emulator.handle.mlflow.createExperiment("x@it's")
          emulator.clearRequests()
          const found = yield* mlflow.getExperimentByName("x@it's")
          expect(found.experimentId).toBe(id)
          // the server's refusal, then one search quoting the name with "
          expect(emulator.requests().map((r) => r.status)).toEqual([400, 200])
          expect((emulator.requests()[1]!.json as { readonly filter: string }).filter).toBe(`attribute.name = "x@it's"`)
          expect((yield* Effect.flip(mlflow.getExperimentByName("y@it's")))._tag).toBe("NotFound")
          const refused = yield* Effect.flip(mlflow.createExperiment("z@it's"))
          expect(refused).toMatchObject({ _tag: "InvalidInput", kind: "ExperimentName", input: "z@it's" })
          expect(refused.message.split("\n")).toHaveLength(1)
          // names without a quote are unaffected
          const plain = yield* mlflow.createExperiment("plain")
          expect((yield* mlflow.getExperimentByName("plain")).experimentId).toBe(plain)
        }),
      fast,
      { backend: "file" }
    ))

  it.effect("a file that changes while it is sent fails the upload with StorageError, and it is not retried", () =>
    Effect.gen(function*() {
      const dir = yield* Effect.promise(() => mkdtemp(join(tmpdir(), "forml-http-changed-")))
      const file = join(dir, "f.bin")
      yield* Effect.promise(() => writeFile(file, Buffer.alloc(1_000_000, 1)))
      // a client that reads the body slowly: once the first chunk is taken, the file is cut to half its size
      let requests = 0
      const slow = HttpClient.make((request) =>
        Effect.gen(function*() {
          requests++
          if (request.body._tag !== "Stream") return yield* Effect.die("expected a stream body")
          expect(request.headers["content-length"]).toBe("1000000")
          let first = true
          yield* request.body.stream.pipe(
            Stream.runForEach(() =>
              first
                ? Effect.promise(() => truncate(file, 500_000)).pipe(Effect.tap(() => (first = false)))
                : Effect.void
            ),
            Effect.mapError((cause) => new HttpClientError.RequestError({ request, reason: "Transport", cause }))
          )
          return HttpClientResponse.fromWeb(request, new Response("{}", { status: 200 }))
        })
      )
      const run = { runId: "r", artifactUri: "mlflow-artifacts:/1/r/artifacts" }
      const error = yield* Effect.flip(
        Effect.flatMap(Mlflow, (mlflow) => mlflow.uploadArtifact(run, "f.bin", { file })).pipe(
          Effect.provide(MlflowHttp.layer({ trackingUri: "http://127.0.0.1:1", ...fast })),
          Effect.provide(Layer.merge(Layer.succeed(HttpClient.HttpClient, slow), NodeContext.layer))
        )
      )
      expect(error._tag).toBe("StorageError")
      expect(error.message).toContain("changed while it was sent")
      expect(requests).toBe(1)
      yield* Effect.promise(() => rm(dir, { recursive: true, force: true }))
    }))

  it.effect("a download cut short fails the stream with a TransportError", () =>
    withService((mlflow, emulator) =>
      Effect.gen(function*() {
        const run = yield* newRun(mlflow)
        yield* mlflow.uploadArtifact(run.info, "big.bin", new Uint8Array(200_000).fill(1))
        emulator.fault({ truncate: true, match: { method: "GET", path: "big.bin" } })
        const error = yield* Effect.flip(downloadBytes(run.info, "big.bin"))
        expect(error._tag).toBe("TransportError")
      })
    ))

  it.effect("setTags sends runs/log-batch in chunks of 100", () =>
    withService((mlflow, emulator) =>
      Effect.gen(function*() {
        const run = yield* newRun(mlflow)
        emulator.clearRequests()
        yield* mlflow.setTags(run.runId, Array.from({ length: 250 }, (_, i) => ({ key: `k${i}`, value: `${i}` })))
        expect(emulator.count({ path: "runs/log-batch" })).toBe(3)
        yield* mlflow.setTags(run.runId, [])
        expect(emulator.count({ path: "runs/log-batch" })).toBe(3)
        const got = yield* mlflow.getRun(run.runId)
        expect(Option.getOrUndefined(got.tag("k249"))).toBe("249")
      })
    ))
})

// ---------------------------------------------------------------------------------------------------------------
// Wire schemas against the recordings
// ---------------------------------------------------------------------------------------------------------------

describe("wire schemas", () => {
  type Decode = (u: unknown) => Either.Either<unknown, { readonly message: string }>
  const decoders: ReadonlyArray<readonly [RegExp, Decode]> = [
    [/\/mlflow\/experiments\/(get|get-by-name)\?/, Schema.decodeUnknownEither(Wire.GetExperimentResponse)],
    [/\/mlflow\/experiments\/create$/, Schema.decodeUnknownEither(Wire.CreateExperimentResponse)],
    [/\/mlflow\/experiments\/search/, Schema.decodeUnknownEither(Wire.SearchExperimentsResponse)],
    [/\/mlflow\/runs\/(create$|get\?)/, Schema.decodeUnknownEither(Wire.RunResponse)],
    [/\/mlflow\/runs\/search$/, Schema.decodeUnknownEither(Wire.SearchRunsResponse)],
    [/\/mlflow\/runs\/update$/, Schema.decodeUnknownEither(Wire.UpdateRunResponse)],
    [/\/mlflow-artifacts\/artifacts\?path=/, Schema.decodeUnknownEither(Wire.ListArtifactsResponse)],
    [/\/mlflow\/artifacts\/list/, Schema.decodeUnknownEither(Wire.ListRunArtifactsResponse)]
  ]
  for (const file of ["mlflow-2.17.2-sqlite.jsonl", "mlflow-2.17.2-filestore.jsonl", "mlflow-3.x-sqlite.jsonl"]) {
    it(`decode every recorded JSON reply of ${file}; ids stay the strings they were`, () => {
      const lines = readFileSync(sharedPath("mlflow-wire", file), "utf-8").split("\n").filter((l) => l.trim() !== "")
        .slice(1)
      let decoded = 0
      for (const raw of lines) {
        const line = JSON.parse(raw) as {
          step: string
          request: { path: string }
          response: { status: number; json?: unknown }
        }
        const json = line.response.json
        if (json === undefined) continue
        if (line.response.status >= 400) {
          expect(Either.isRight(Schema.decodeUnknownEither(Wire.ErrorResponse)(json)), line.step).toBe(true)
          decoded++
          continue
        }
        const decode = decoders.find(([pattern]) => pattern.test(line.request.path))?.[1]
        if (decode === undefined) continue
        const result = decode(json)
        expect(Either.isRight(result), `${line.step}: ${Either.isLeft(result) ? result.left.message : ""}`).toBe(true)
        decoded++
        const experiment = (json as { experiment?: { experiment_id: string } }).experiment
        if (experiment !== undefined && Either.isRight(result)) {
          const entity = Wire.toExperiment((result.right as { experiment: Wire.WireExperiment }).experiment)
          expect(entity.experimentId).toBe(experiment.experiment_id)
        }
        const runs = (json as { runs?: ReadonlyArray<{ info: { run_id: string; experiment_id: string } }> }).runs
        if (runs !== undefined && Either.isRight(result)) {
          const entities = (result.right as { runs: ReadonlyArray<Wire.WireRun> }).runs.map(Wire.toRun)
          expect(entities.map((r) => [r.runId, r.info.experimentId])).toEqual(
            runs.map((r) => [r.info.run_id, r.info.experiment_id])
          )
        }
      }
      expect(decoded).toBeGreaterThan(200)
    })
  }

  it("refuses a numeric id instead of rounding it", () => {
    // eslint-disable-next-line no-loss-of-precision -- the id as a JSON number past 2^53, as a server could send it
    const result = Schema.decodeUnknownEither(Wire.CreateExperimentResponse)({ experiment_id: 932894131975189047 })
    expect(Either.isLeft(result)).toBe(true)
  })
})

// ---------------------------------------------------------------------------------------------------------------
// TLS settings on a real HTTPS server (certificates made by openssl at test time)
// ---------------------------------------------------------------------------------------------------------------

const hasOpenssl = (() => {
  try {
    execFileSync("openssl", ["version"], { stdio: "ignore" })
    return true
  } catch {
    return false
  }
})()

describe.skipIf(!hasOpenssl)("MlflowHttp TLS settings (skipped without openssl)", () => {
  /** A self-signed certificate for 127.0.0.1: [certificate PEM, key PEM]. */
  const selfSigned = (dir: string, name: string): readonly [string, string] => {
    const cert = join(dir, `${name}.crt`)
    const key = join(dir, `${name}.key`)
    execFileSync("openssl", [
      "req",
      "-x509",
      "-newkey",
      "ec",
      "-pkeyopt",
      "ec_paramgen_curve:prime256v1",
      "-nodes",
      "-keyout",
      key,
      "-out",
      cert,
      "-days",
      "1",
      "-subj",
      "/CN=127.0.0.1",
      "-addext",
      "subjectAltName=IP:127.0.0.1"
    ], { stdio: "ignore" })
    return [readFileSync(cert, "utf-8"), readFileSync(key, "utf-8")]
  }

  it.effect(
    "verifies the server with MLFLOW_TRACKING_SERVER_CERT_PATH, skips it when insecure, sends the client certificate",
    () =>
      Effect.gen(function*() {
        const dir = yield* Effect.acquireRelease(
          Effect.promise(() => mkdtemp(join(tmpdir(), "forml-tls-"))),
          (d) => Effect.promise(() => rm(d, { recursive: true, force: true }))
        )
        const [serverCert, serverKey] = selfSigned(dir, "server")
        const [clientCert, clientKey] = selfSigned(dir, "client")
        const serverCertPath = join(dir, "server.crt")
        const clientPem = join(dir, "client.pem")
        yield* Effect.promise(() => writeFile(clientPem, clientCert + clientKey))
        const url = yield* Effect.acquireRelease(
          Effect.async<{ url: string; server: Https.Server }>((resume) => {
            const server = Https.createServer(
              { cert: serverCert, key: serverKey, ca: [clientCert], requestCert: true, rejectUnauthorized: false },
              (req, res) => {
                const socket = req.socket as TLSSocket
                const name = socket.authorized ? "client-cert" : "anonymous"
                res.writeHead(200, { "content-type": "application/json" })
                res.end(
                  JSON.stringify({
                    experiment: { experiment_id: "0", name, artifact_location: "", lifecycle_stage: "active" }
                  })
                )
              }
            )
            server.listen(0, "127.0.0.1", () =>
              resume(Effect.succeed({ url: `https://127.0.0.1:${(server.address() as AddressInfo).port}`, server })))
          }),
          ({ server }) =>
            Effect.async<void>((resume) => {
              server.closeAllConnections()
              server.close(() =>
                resume(Effect.void)
              )
            })
        ).pipe(Effect.map((s) => s.url))
        const name = (tls: Pick<MlflowHttp.MlflowHttpConfig, "insecureTls" | "serverCertPath" | "clientCertPath">) =>
          Effect.flatMap(MlflowHttp.make({ trackingUri: url, maxRetries: 0 }), (m) => m.getExperiment("0")).pipe(
            Effect.map((e) => e.name),
            Effect.provide(Layer.merge(MlflowHttp.layerUndiciTls(tls), NodeContext.layer))
          )
        const unverified = yield* Effect.flip(name({}))
        expect(unverified._tag).toBe("TransportError")
        expect(yield* name({ insecureTls: true })).toBe("anonymous")
        expect(yield* name({ serverCertPath })).toBe("anonymous")
        expect(yield* name({ serverCertPath, clientCertPath: clientPem })).toBe("client-cert")
      }).pipe(Effect.scoped),
    30_000
  )
})
