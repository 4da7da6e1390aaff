/**
 * Artifacts in Azure Blob Storage through `@azure/storage-blob`, with MLflow's credentials order: a connection string,
 * else the account key, else the Azure identity chain. Loaded by the resolver only for `wasbs://` artifact URIs.
 */
import type { TokenCredential } from "@azure/identity"
import {
  BlobServiceClient,
  type ContainerClient,
  type StoragePipelineOptions,
  StorageSharedKeyCredential
} from "@azure/storage-blob"
import * as NodeStream from "@effect/platform-node/NodeStream"
import { Effect, Redacted, Stream } from "effect"
import type { Readable } from "node:stream"
import { ArtifactStoreError, NotFound } from "../../errors.js"
import { type ArtifactStore, type AzureOptions, type Backend, keyOf, scrub } from "../ArtifactStore.js"
import { FileInfo } from "../Mlflow.js"
import { bodyOf, sortEntries } from "./common.js"

type Location = {
  readonly _tag: "Azure"
  readonly container: string
  readonly account: string
  readonly suffix: string
  readonly prefix: string
}

export const DEFAULT_BLOCK_SIZE = 8 * 1024 * 1024
export const DEFAULT_CONCURRENCY = 4
export const DEFAULT_MAX_ATTEMPTS = 5

const CREDENTIAL_HELP =
  "no Azure credentials found (set AZURE_STORAGE_CONNECTION_STRING or AZURE_STORAGE_ACCESS_KEY, " +
  "or sign in for the Azure identity chain)"

/** What an SDK failure means, in one line without secrets. */
export const describe = (e: unknown): { readonly notFound: boolean; readonly reason: string } => {
  const err = e as { name?: unknown; message?: unknown; code?: unknown; statusCode?: unknown } | null
  const name = typeof err?.name === "string" ? err.name : "Error"
  const code = typeof err?.code === "string" ? err.code : undefined
  const status = typeof err?.statusCode === "number" ? err.statusCode : undefined
  const message = scrub(typeof err?.message === "string" ? err.message.split("\n", 1)[0]! : String(e))
  if (code === "BlobNotFound") return { notFound: true, reason: message }
  if (code === "ContainerNotFound") return { notFound: false, reason: "the container does not exist" }
  if (name === "CredentialUnavailableError" || name === "AggregateAuthenticationError") {
    return { notFound: false, reason: CREDENTIAL_HELP }
  }
  if (status === 403 || code === "AuthenticationFailed" || code === "AuthorizationFailure") {
    return {
      notFound: false,
      reason: `access denied (${code ?? "403"}): check the credentials and the container's access policy`
    }
  }
  if (name === "AbortError") return { notFound: false, reason: "aborted" }
  return { notFound: false, reason: `${code ?? name}${status === undefined ? "" : ` ${status}`}: ${message}` }
}

/** The service client for an account, from the settings (made once per account). */
const serviceClient = async (options: AzureOptions, location: Location): Promise<BlobServiceClient> => {
  const pipeline: StoragePipelineOptions = { retryOptions: { maxTries: options.maxAttempts ?? DEFAULT_MAX_ATTEMPTS } }
  if (options.connectionString !== undefined) {
    return BlobServiceClient.fromConnectionString(Redacted.value(options.connectionString), pipeline)
  }
  const url = `https://${location.account}.${location.suffix}`
  if (options.accessKey !== undefined) {
    return new BlobServiceClient(
      url,
      new StorageSharedKeyCredential(location.account, Redacted.value(options.accessKey)),
      pipeline
    )
  }
  // loaded only when neither a connection string nor a key is set, as MLflow falls back to DefaultAzureCredential
  const identity = await import("@azure/identity")
  const credential: TokenCredential = new identity.DefaultAzureCredential()
  return new BlobServiceClient(url, credential, pipeline)
}

export const make = (options: AzureOptions): Backend<Location> => {
  const clients = new Map<string, Promise<BlobServiceClient>>()
  const blockSize = options.blockSize ?? DEFAULT_BLOCK_SIZE
  const concurrency = options.concurrency ?? DEFAULT_CONCURRENCY

  const store = (root: string, location: Location): ArtifactStore => {
    const { container, prefix } = location
    const where = (key: string) => `wasbs://${container}@${location.account}.${location.suffix}/${key}`
    const failure = (operation: string, key: string) => (e: unknown) =>
      new ArtifactStoreError({ store: "azure", location: where(key), operation, reason: describe(e).reason })
    const containerClient = Effect.tryPromise({
      try: () => {
        const account = `${location.account}.${location.suffix}`
        let client = clients.get(account)
        if (client === undefined) {
          client = serviceClient(options, location)
          client.catch(() => clients.delete(account))
          clients.set(account, client)
        }
        return client.then((c): ContainerClient => c.getContainerClient(container))
      },
      catch: failure("connect", "")
    })

    const upload: ArtifactStore["upload"] = (path, source) =>
      Effect.gen(function*() {
        const key = keyOf(prefix, path)
        const blob = (yield* containerClient).getBlockBlobClient(key)
        const body = yield* bodyOf(source)
        const run = Effect.tryPromise({
          try: (abortSignal) =>
            body.readable instanceof Uint8Array
              ? blob.uploadData(body.readable, { blockSize, concurrency, abortSignal })
              : blob.uploadStream(body.readable, blockSize, concurrency, { abortSignal }),
          catch: failure("upload", key)
        })
        // blocks staged before a failure are never committed (Azure drops uncommitted blocks after a week)
        yield* Effect.catchAll(run, (e) => Effect.flatMap(body.failure, (sourceError) => Effect.fail(sourceError ?? e)))
      }).pipe(Effect.withSpan("Azure.upload", { attributes: { container, path } }))

    const get = (path: string) => {
      const key = keyOf(prefix, path)
      return Effect.flatMap(containerClient, (c) =>
        Effect.tryPromise({
          try: (abortSignal) => c.getBlobClient(key).download(0, undefined, { abortSignal }),
          catch: (e) => e
        }).pipe(
          Effect.mapError((e) =>
            describe(e).notFound ? new NotFound({ entity: "artifact", key: path }) : failure("download", key)(e)
          )
        ))
    }

    const download: ArtifactStore["download"] = (path) =>
      Stream.unwrap(
        Effect.map(get(path), (r) =>
          NodeStream.fromReadable<ArtifactStoreError>(
            () => r.readableStreamBody as Readable,
            failure("download", keyOf(prefix, path))
          ))
      ).pipe(Stream.withSpan("Azure.download", { attributes: { container, path } }))

    const read: ArtifactStore["read"] = (path) =>
      Effect.flatMap(get(path), (r) =>
        NodeStream.toUint8Array(() => r.readableStreamBody as Readable, {
          onFailure: failure("download", keyOf(prefix, path))
        })).pipe(Effect.withSpan("Azure.read", { attributes: { container, path } }))

    const list: ArtifactStore["list"] = (path) =>
      Effect.gen(function*() {
        const dir = path === undefined ? prefix : keyOf(prefix, path)
        const keyPrefix = dir === "" ? "" : `${dir}/`
        const relative = (key: string) => (prefix === "" ? key : key.slice(prefix.length + 1))
        const c = yield* containerClient
        return yield* Effect.tryPromise({
          try: async () => {
            const entries: Array<FileInfo> = []
            for await (const item of c.listBlobsByHierarchy("/", { prefix: keyPrefix })) {
              if (item.kind === "prefix") {
                entries.push(new FileInfo({ path: relative(item.name.replace(/\/+$/, "")), isDir: true }))
              } else if (item.name !== keyPrefix) {
                entries.push(
                  new FileInfo({
                    path: relative(item.name),
                    isDir: false,
                    fileSize: item.properties.contentLength ?? 0
                  })
                )
              }
            }
            return sortEntries(entries)
          },
          catch: failure("list", keyPrefix)
        })
      }).pipe(Effect.withSpan("Azure.list", { attributes: { container, path: path ?? "" } }))

    const remove: ArtifactStore["remove"] = (path) =>
      Effect.gen(function*() {
        const key = keyOf(prefix, path)
        const c = yield* containerClient
        yield* Effect.tryPromise({
          try: async () => {
            const keys = [key]
            for await (const item of c.listBlobsFlat({ prefix: `${key}/` })) keys.push(item.name)
            for (const k of keys) {
              await c.deleteBlob(k).catch((e: unknown) => describe(e).notFound ? undefined : Promise.reject(e))
            }
          },
          catch: failure("delete", key)
        })
      }).pipe(Effect.withSpan("Azure.remove", { attributes: { container, path } }))

    return { root, upload, download, read, list, remove }
  }

  return { store }
}
