/**
 * Artifacts straight in Azure Blob Storage, against azurite 3.35 on loopback (started here; it checks shared-key
 * signatures): the store through the resolver, a block upload of several blocks, faults through a proxy (a refused
 * block, a dropped connection), credential errors without secrets, and the registry contract on the test server
 * handing out `wasbs://` artifact URIs.
 */
import { BlobServiceClient } from "@azure/storage-blob"
import { NodeContext, NodeHttpClient } from "@effect/platform-node"
import { afterAll, describe, expect, it } from "@effect/vitest"
import { Chunk, ConfigProvider, Effect, Layer, Redacted, Stream } from "effect"
import { createHash } from "node:crypto"
import { startEmulator } from "../emulator/index.js"
import { concatBytes } from "../src/mlflow/Mlflow.js"
import * as MlflowHttp from "../src/mlflow/MlflowHttp.js"
import { registryContract } from "./contract/registry.js"
import { isBuilt } from "./support/cli.js"
import {
  type AzureServer,
  AZURITE_ACCOUNT,
  commandLifecycle,
  resolver,
  shared,
  startAzurite,
  startFaultProxy
} from "./support/objectstores.js"

const CONTAINER = "forml"
const text = (s: string) => new TextEncoder().encode(s)
const decode = (b: Uint8Array) => new TextDecoder().decode(b)
const sha = (b: Uint8Array) => createHash("sha256").update(b).digest("hex")
const collect = <E>(s: Stream.Stream<Uint8Array, E>) =>
  Effect.map(Stream.runCollect(s), (c) => concatBytes(Chunk.toReadonlyArray(c)))
const MiB = 1024 * 1024
const bytesOf = (size: number): Uint8Array => {
  const out = new Uint8Array(size)
  for (let i = 0; i < size; i++) out[i] = (i * 31 + (i >>> 10)) & 0xff
  return out
}
const uniqueRoot = () =>
  `wasbs://${CONTAINER}@${AZURITE_ACCOUNT}.blob.core.windows.net/mlruns/${
    Math.random().toString(36).slice(2, 10)
  }/artifacts`

const withContainer = (server: AzureServer) =>
  Effect.promise(() =>
    BlobServiceClient.fromConnectionString(server.connectionString()).getContainerClient(CONTAINER).createIfNotExists()
  )

/** One azurite for the file (its start takes seconds); tests keep apart by unique prefixes. */
const azurite = shared(Effect.tap(startAzurite, withContainer))
afterAll(azurite.close)

describe("Azure Blob artifact store on azurite", () => {
  it.scoped("round-trips, lists one level with sizes, NotFound, deletes; blocks for a large stream; faults", () =>
    Effect.gen(function*() {
      const azure = yield* azurite.get
      const store = yield* (yield* resolver(azure.options())).resolve(uniqueRoot())
      yield* store.upload("tag.toml", text("states = []\n"))
      yield* store.upload("dir/sub/stream.bin", Stream.make(text("ab"), text("cd")))
      yield* store.upload("empty.bin", Stream.empty)
      expect(decode(yield* store.read("tag.toml"))).toBe("states = []\n")
      expect(decode(yield* collect(store.download("dir/sub/stream.bin")))).toBe("abcd")
      expect((yield* store.read("empty.bin")).length).toBe(0)
      expect((yield* store.list()).map((f) => [f.path, f.isDir, f.fileSize])).toEqual([
        ["dir", true, undefined],
        ["empty.bin", false, 0],
        ["tag.toml", false, 12]
      ])
      expect((yield* store.list("dir")).map((f) => f.path)).toEqual(["dir/sub"])
      expect(yield* Effect.flip(store.read("nope"))).toMatchObject({ _tag: "NotFound", key: "nope" })
      expect(yield* Effect.flip(collect(store.download("dir/nope")))).toMatchObject({ _tag: "NotFound" })
      yield* store.remove("dir")
      expect((yield* store.list()).map((f) => f.path)).toEqual(["empty.bin", "tag.toml"])

      // a stream of unknown length as staged blocks (1 MiB here), committed once whole
      const proxy = yield* startFaultProxy(azure.endpoint)
      const small = { azure: { ...azure.options(proxy.url).azure, blockSize: MiB, concurrency: 2 } }
      const blocks = yield* (yield* resolver(small)).resolve(uniqueRoot())
      const data = bytesOf(3 * MiB + 5)
      yield* blocks.upload("state.bin", Stream.fromIterable([data.subarray(0, 2 * MiB), data.subarray(2 * MiB)]))
      expect(proxy.requests().filter((r) => /comp=block&/.test(r.url) || /comp=block$/.test(r.url)).length).toBe(4)
      expect(sha(yield* collect(blocks.download("state.bin")))).toBe(sha(data))

      // a dropped connection on a block is retried; a refused block fails the upload and commits nothing
      proxy.fault({ method: "PUT", url: /comp=block(&|$)/, reset: true })
      yield* blocks.upload("retried.bin", Stream.make(data))
      expect(sha(yield* blocks.read("retried.bin"))).toBe(sha(data))
      proxy.fault({
        method: "PUT",
        url: /comp=block(&|$)/,
        status: 403,
        body:
          "<?xml version=\"1.0\" encoding=\"utf-8\"?><Error><Code>AuthorizationFailure</Code><Message>denied</Message></Error>"
      })
      const refused = yield* Effect.flip(blocks.upload("refused.bin", Stream.make(data)))
      expect(refused._tag).toBe("ArtifactStoreError")
      expect(refused.message).toMatch(
        /^azure upload wasbs:\/\/forml@devstoreaccount1.*refused\.bin failed: access denied/
      )
      expect(yield* Effect.flip(blocks.read("refused.bin"))).toMatchObject({ _tag: "NotFound" })
    }))

  it.scoped(
    "a wrong key, a missing container and a missing identity are one-line errors without secrets",
    () =>
      Effect.gen(function*() {
        const azure = yield* azurite.get
        const wrongKey = Buffer.from("not-the-account-key-not-the-account-key").toString("base64")
        const wrong = azure.connectionString().replace(/AccountKey=[^;]*/, `AccountKey=${wrongKey}`)
        const denied = yield* Effect.flip(
          Effect.flatMap(
            Effect.flatMap(
              resolver({ azure: { connectionString: Redacted.make(wrong) } }),
              (r) => r.resolve(uniqueRoot())
            ),
            (s) => s.upload("a.txt", text("a"))
          )
        )
        expect(denied.message).toMatch(/failed: access denied/)
        expect(JSON.stringify(denied)).not.toContain(wrongKey)
        expect(denied.message).not.toContain(wrongKey)
        const noContainer = yield* Effect.flip(
          Effect.flatMap(
            Effect.flatMap(
              resolver(azure.options()),
              (r) => r.resolve(`wasbs://missing@${AZURITE_ACCOUNT}.blob.core.windows.net/x`)
            ),
            (s) => s.list()
          )
        )
        expect(noContainer.message).toBe(
          "azure list wasbs://missing@devstoreaccount1.blob.core.windows.net/x/ failed: the container does not exist"
        )
        // the account key from AZURE_STORAGE_ACCESS_KEY (read through Config, as MLflow reads it) names the account
        // of the URI; and no credentials at all fall back to the identity chain, which finds none here
        const env = ConfigProvider.fromMap(new Map())
        const saved = { ...process.env }
        try {
          for (const k of Object.keys(process.env)) if (k.startsWith("AZURE_")) delete process.env[k]
          process.env["IDENTITY_ENDPOINT"] = ""
          const none = yield* Effect.flip(
            Effect.flatMap(
              Effect.flatMap(
                resolver({ azure: { maxAttempts: 1 } }),
                (r) => r.resolve(`wasbs://${CONTAINER}@nosuchaccount.blob.core.windows.net/x`)
              ),
              (s) => s.read("a.txt")
            ).pipe(Effect.withConfigProvider(env))
          )
          expect(none.message).toContain("no Azure credentials found")
          expect(none.message).not.toContain("\n")
        } finally {
          process.env = saved
        }
      }),
    60_000
  )
})

const platform = Layer.merge(NodeHttpClient.layerUndici, NodeContext.layer)
const fast = { backoffFactor: 0, backoffJitter: 0 } as const

registryContract("MlflowHttp + emulator in direct mode, artifacts in Azure Blob (azurite)", () =>
  Layer.unwrapScoped(
    Effect.gen(function*() {
      const azure = yield* azurite.get
      const emulator = yield* startEmulator({
        artifactRoot: `wasbs://${CONTAINER}@${AZURITE_ACCOUNT}.blob.core.windows.net/${
          Math.random().toString(36).slice(2)
        }`
      })
      return MlflowHttp.layer({ trackingUri: emulator.url, ...fast, artifactStores: azure.options() })
    })
  ).pipe(Layer.provide(platform)))

describe("forml-mlflow on a direct-mode server with artifacts in Azure Blob (azurite), configured as MLflow is", () => {
  it.scoped(
    "demo, list, pull and state through the command; the blobs are in the container",
    () =>
      Effect.gen(function*() {
        if (!isBuilt()) throw new Error("dist/cli/main.js is missing: run `npm run build` before these tests")
        const azure = yield* azurite.get
        const prefix = `cli-${Math.random().toString(36).slice(2, 10)}`
        const root = `wasbs://${CONTAINER}@${AZURITE_ACCOUNT}.blob.core.windows.net/${prefix}`
        const emulator = yield* startEmulator({ artifactRoot: root })
        const result = yield* commandLifecycle(emulator.url, {
          AZURE_STORAGE_CONNECTION_STRING: azure.connectionString()
        })
        for (const step of result.steps) expect(step.code, `${step.args.join(" ")}: ${step.stderr}`).toBe(0)
        expect(result.projects).toEqual({ projects: [{ name: "forml-demo", releases: 2, latest: "0.2.0" }] })
        expect(result.pulledBytes).toBeGreaterThan(0)
        expect(emulator.requests().filter((r) => r.path.includes("mlflow-artifacts"))).toEqual([])
        const store = yield* (yield* resolver(azure.options())).resolve(root)
        expect((yield* store.list()).length).toBeGreaterThan(0)
      }),
    120_000
  )
})
