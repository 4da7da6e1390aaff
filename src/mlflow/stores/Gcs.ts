/**
 * Artifacts in Google Cloud Storage through `@google-cloud/storage`, with application default credentials and
 * MLflow's GCS timeout and chunk-size settings. Loaded by the resolver only for `gs://` artifact URIs.
 */
import * as NodeStream from "@effect/platform-node/NodeStream"
import { IdempotencyStrategy, Storage } from "@google-cloud/storage"
import { Effect, Stream } from "effect"
import { Readable } from "node:stream"
import { pipeline } from "node:stream/promises"
import { ArtifactStoreError, NotFound } from "../../errors.js"
import { type ArtifactStore, type Backend, type GcsOptions, keyOf, scrub } from "../ArtifactStore.js"
import { FileInfo } from "../Mlflow.js"
import { bodyOf, sortEntries } from "./common.js"

type Location = { readonly _tag: "Gcs"; readonly bucket: string; readonly prefix: string }

/** MLflow's defaults: 60 s per request, 100 MiB upload chunks. */
export const DEFAULT_TIMEOUT = 60
export const DEFAULT_UPLOAD_CHUNK_SIZE = 100 * 1024 * 1024
export const DEFAULT_MAX_ATTEMPTS = 5

const CREDENTIAL_HELP = "no Google credentials found (set GOOGLE_APPLICATION_CREDENTIALS, or sign in with " +
  "`gcloud auth application-default login`)"

/** What an SDK failure means, in one line without secrets. */
export const describe = (
  e: unknown
): { readonly notFound: boolean; readonly bucketMissing: boolean; readonly reason: string } => {
  const err = e as { name?: unknown; message?: unknown; code?: unknown } | null
  const code = typeof err?.code === "number" ? err.code : typeof err?.code === "string" ? Number(err.code) : undefined
  const message = scrub(typeof err?.message === "string" ? err.message.split("\n", 1)[0]! : String(e))
  if (/default credentials|Could not load the default credentials/i.test(message)) {
    return { notFound: false, bucketMissing: false, reason: CREDENTIAL_HELP }
  }
  if (code === 404 && /bucket/i.test(message)) {
    return { notFound: false, bucketMissing: true, reason: "the bucket does not exist" }
  }
  if (code === 404) return { notFound: true, bucketMissing: false, reason: message }
  if (code === 401 || code === 403) {
    return { notFound: false, bucketMissing: false, reason: `access denied (${code}): ${message}` }
  }
  return {
    notFound: false,
    bucketMissing: false,
    reason: `${code === undefined || Number.isNaN(code) ? "" : `${code} `}${message}`
  }
}

export const make = (options: GcsOptions): Backend<Location> => {
  const timeout = (options.timeout ?? DEFAULT_TIMEOUT) * 1000
  const chunkSize = options.uploadChunkSize ?? DEFAULT_UPLOAD_CHUNK_SIZE
  const storage = new Storage({
    ...(options.apiEndpoint === undefined ? {} : { apiEndpoint: options.apiEndpoint }),
    timeout,
    retryOptions: {
      autoRetry: true,
      maxRetries: (options.maxAttempts ?? DEFAULT_MAX_ATTEMPTS) - 1,
      // an artifact write is idempotent (the same bytes to the same name), so writes are retried as reads are
      idempotencyStrategy: IdempotencyStrategy.RetryAlways
    }
  })

  const store = (root: string, location: Location): ArtifactStore => {
    const { prefix } = location
    const bucket = storage.bucket(location.bucket)
    const where = (key: string) => `gs://${location.bucket}/${key}`
    const failure = (operation: string, key: string) => (e: unknown) =>
      new ArtifactStoreError({ store: "gcs", location: where(key), operation, reason: describe(e).reason })
    const orNotFound = (operation: string, key: string, path: string) => (e: unknown) =>
      describe(e).notFound ? new NotFound({ entity: "artifact", key: path }) : failure(operation, key)(e)

    const upload: ArtifactStore["upload"] = (path, source) =>
      Effect.gen(function*() {
        const key = keyOf(prefix, path)
        const file = bucket.file(key)
        const body = yield* bodyOf(source)
        const small = body.length !== undefined && body.length <= chunkSize
        const run = Effect.tryPromise({
          try: (signal) => {
            // one request when the whole body is at most a chunk; a resumable upload of chunkSize chunks otherwise
            const sink = file.createWriteStream({ resumable: !small, ...(small ? {} : { chunkSize }), timeout })
            const readable = body.readable instanceof Uint8Array ? Readable.from([body.readable]) : body.readable
            return pipeline(readable, sink, { signal })
          },
          catch: failure("upload", key)
        })
        yield* Effect.catchAll(run, (e) => Effect.flatMap(body.failure, (sourceError) => Effect.fail(sourceError ?? e)))
      }).pipe(Effect.withSpan("Gcs.upload", { attributes: { bucket: location.bucket, path } }))

    const download: ArtifactStore["download"] = (path) => {
      const key = keyOf(prefix, path)
      const file = bucket.file(key)
      // the metadata first, so that a missing object is NotFound before any byte is promised
      return Stream.unwrap(
        Effect.tryPromise({ try: () => file.getMetadata(), catch: orNotFound("download", key, path) }).pipe(
          Effect.map(() =>
            NodeStream.fromReadable<ArtifactStoreError>(() => file.createReadStream(), failure("download", key))
          )
        )
      ).pipe(Stream.withSpan("Gcs.download", { attributes: { bucket: location.bucket, path } }))
    }

    const read: ArtifactStore["read"] = (path) => {
      const key = keyOf(prefix, path)
      return Effect.tryPromise({
        try: () => bucket.file(key).download().then(([buffer]) => new Uint8Array(buffer)),
        catch: orNotFound("download", key, path)
      }).pipe(Effect.withSpan("Gcs.read", { attributes: { bucket: location.bucket, path } }))
    }

    const list: ArtifactStore["list"] = (path) =>
      Effect.gen(function*() {
        const dir = path === undefined ? prefix : keyOf(prefix, path)
        const keyPrefix = dir === "" ? "" : `${dir}/`
        const relative = (key: string) => (prefix === "" ? key : key.slice(prefix.length + 1))
        return yield* Effect.tryPromise({
          try: async () => {
            const entries: Array<FileInfo> = []
            let pageToken: string | undefined
            do {
              const [files, next, response] = await bucket.getFiles({
                prefix: keyPrefix,
                delimiter: "/",
                autoPaginate: false,
                ...(pageToken === undefined ? {} : { pageToken })
              })
              for (const p of (response as { prefixes?: ReadonlyArray<string> } | undefined)?.prefixes ?? []) {
                entries.push(new FileInfo({ path: relative(p.replace(/\/+$/, "")), isDir: true }))
              }
              for (const f of files) {
                if (f.name === keyPrefix) continue
                entries.push(
                  new FileInfo({ path: relative(f.name), isDir: false, fileSize: Number(f.metadata.size ?? 0) })
                )
              }
              pageToken = (next as { pageToken?: string } | null | undefined)?.pageToken
            } while (pageToken !== undefined && pageToken !== "")
            return sortEntries(entries)
          },
          catch: failure("list", keyPrefix)
        })
      }).pipe(Effect.withSpan("Gcs.list", { attributes: { bucket: location.bucket, path: path ?? "" } }))

    const remove: ArtifactStore["remove"] = (path) => {
      const key = keyOf(prefix, path)
      return Effect.tryPromise({
        try: async () => {
          await bucket.file(key).delete({ ignoreNotFound: true })
          await bucket.deleteFiles({ prefix: `${key}/` })
        },
        catch: failure("delete", key)
      }).pipe(Effect.withSpan("Gcs.remove", { attributes: { bucket: location.bucket, path } }))
    }

    return { root, upload, download, read, list, remove }
  }

  return { store }
}
