/**
 * Artifacts in S3 and S3-compatible stores (MinIO, Ceph…) through the AWS SDK, configured as MLflow's boto3 client
 * is. Loaded by the resolver only when a run's artifact URI is `s3://`.
 */
import {
  DeleteObjectsCommand,
  GetObjectCommand,
  ListObjectsV2Command,
  type ListObjectsV2CommandOutput,
  S3Client,
  type S3ClientConfig
} from "@aws-sdk/client-s3"
import { Upload } from "@aws-sdk/lib-storage"
import * as NodeStream from "@effect/platform-node/NodeStream"
import { Effect, Redacted, Stream } from "effect"
import * as Https from "node:https"
import type { Readable } from "node:stream"
import { ArtifactStoreError, NotFound } from "../../errors.js"
import { type ArtifactStore, type Backend, keyOf, type S3Options, scrub } from "../ArtifactStore.js"
import { FileInfo } from "../Mlflow.js"
import { bodyOf, sortEntries } from "./common.js"

type Location = { readonly _tag: "S3"; readonly bucket: string; readonly prefix: string }

export const DEFAULT_PART_SIZE = 8 * 1024 * 1024
export const DEFAULT_QUEUE_SIZE = 4
export const DEFAULT_MAX_ATTEMPTS = 5

const CREDENTIAL_HELP =
  "no AWS credentials found (set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, AWS_PROFILE, a shared credentials " +
  "file, web identity or an instance role)"

/** What an SDK failure means, in one line without secrets. */
export const describe = (e: unknown): { readonly notFound: boolean; readonly reason: string } => {
  const err = e as {
    name?: unknown
    message?: unknown
    code?: unknown
    $metadata?: { httpStatusCode?: number }
    Code?: unknown
  } | null
  const name = typeof err?.name === "string" ? err.name : typeof err?.Code === "string" ? err.Code : "Error"
  const status = err?.$metadata?.httpStatusCode
  const message = scrub(typeof err?.message === "string" ? err.message : String(e))
  if (name === "NoSuchKey" || (name === "NotFound" && status === 404)) return { notFound: true, reason: message }
  if (name === "CredentialsProviderError") return { notFound: false, reason: CREDENTIAL_HELP }
  if (name === "NoSuchBucket") return { notFound: false, reason: "the bucket does not exist" }
  if (name === "AccessDenied" || name === "AllAccessDisabled" || status === 403) {
    return {
      notFound: false,
      reason: `access denied (${name}${
        status === undefined ? "" : ` ${status}`
      }): check the credentials and the bucket's policy`
    }
  }
  if (name === "InvalidAccessKeyId" || name === "SignatureDoesNotMatch" || name === "ExpiredToken") {
    return { notFound: false, reason: `credentials refused (${name})` }
  }
  if (name === "AbortError") return { notFound: false, reason: "upload aborted" }
  const code = typeof err?.code === "string" && !message.includes(err.code) ? ` (${err.code})` : ""
  return { notFound: false, reason: `${name === "Error" ? "" : `${name}: `}${message}${code}` || name }
}

/** The S3 client's settings from the options, as boto3 takes them from MLflow's variables. */
const clientConfig = (options: S3Options): S3ClientConfig => {
  const endpoint = options.endpointUrl
  const addressing = options.addressingStyle ?? "auto"
  return {
    maxAttempts: options.maxAttempts ?? DEFAULT_MAX_ATTEMPTS,
    forcePathStyle: addressing === "path" || (addressing === "auto" && endpoint !== undefined),
    // a bucket in another region answers with a redirect that boto3 follows; so does this client
    followRegionRedirects: endpoint === undefined,
    ...(endpoint === undefined ? {} : { endpoint }),
    ...(options.requestChecksumCalculation === undefined
      ? {}
      : { requestChecksumCalculation: options.requestChecksumCalculation }),
    ...(options.ignoreTls === true
      ? { requestHandler: { httpsAgent: new Https.Agent({ rejectUnauthorized: false }) } }
      : {}),
    ...(options.credentials === undefined ? {} : {
      credentials: {
        accessKeyId: Redacted.value(options.credentials.accessKeyId),
        secretAccessKey: Redacted.value(options.credentials.secretAccessKey),
        ...(options.credentials.sessionToken === undefined
          ? {}
          : { sessionToken: Redacted.value(options.credentials.sessionToken) })
      }
    })
  }
}

/** Builds the S3 client from the settings; a store per artifact root. */
export const make = (options: S3Options): Effect.Effect<Backend<Location>, ArtifactStoreError> =>
  Effect.gen(function*() {
    const config = clientConfig(options)
    // The SDK warns (several lines on stderr) on Node 20 about its future Node 22 requirement; a command's output
    // is not the place for it. Left as the user set it when the variable is set.
    process.env["AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED"] ??= "true"
    const region = options.region ?? (yield* Effect.promise(() => sdkRegion(config)))
    const client = new S3Client({ ...config, region })
    const partSize = options.partSize ?? DEFAULT_PART_SIZE
    const queueSize = options.queueSize ?? DEFAULT_QUEUE_SIZE
    const extra = options.uploadExtraArgs ?? {}
    const owner = options.expectedBucketOwner === undefined ? {} : { ExpectedBucketOwner: options.expectedBucketOwner }

    const store = (root: string, location: Location): ArtifactStore => {
      const { bucket, prefix } = location
      const where = (key: string) => `s3://${bucket}/${key}`
      const failure = (operation: string, key: string) => (e: unknown) =>
        new ArtifactStoreError({ store: "s3", location: where(key), operation, reason: describe(e).reason })
      const send = <A>(operation: string, key: string, run: (signal: AbortSignal) => Promise<A>) =>
        Effect.tryPromise({ try: run, catch: (e) => e }).pipe(
          Effect.mapError((e) =>
            describe(e).notFound ? new NotFound({ entity: "artifact", key }) : failure(operation, key)(e)
          )
        )

      const upload: ArtifactStore["upload"] = (path, source) =>
        Effect.gen(function*() {
          const key = keyOf(prefix, path)
          const body = yield* bodyOf(source)
          const run = Effect.tryPromise({
            try: (signal) => {
              const upload = new Upload({
                client,
                params: { ...extra, ...owner, Bucket: bucket, Key: key, Body: body.readable },
                partSize,
                queueSize,
                leavePartsOnError: false
              })
              signal.addEventListener("abort", () => void upload.abort())
              return upload.done()
            },
            catch: failure("upload", key)
          })
          // the source's own failure (a stream's typed error, a file that cannot be read) wins over the SDK's report
          yield* Effect.catchAll(
            run,
            (e) => Effect.flatMap(body.failure, (sourceError) => Effect.fail(sourceError ?? e))
          )
        }).pipe(Effect.withSpan("S3.upload", { attributes: { bucket, path } }))

      const get = (path: string) => {
        const key = keyOf(prefix, path)
        return send(
          "download",
          path,
          (abortSignal) => client.send(new GetObjectCommand({ Bucket: bucket, Key: key, ...owner }), { abortSignal })
        ).pipe(
          Effect.mapError((e) => (e._tag === "NotFound" ? e : failure("download", key)(e)))
        )
      }

      const download: ArtifactStore["download"] = (path) =>
        Stream.unwrap(
          Effect.map(get(path), (r) =>
            NodeStream.fromReadable<ArtifactStoreError>(() =>
              r.Body as Readable, failure("download", keyOf(prefix, path))))
        ).pipe(Stream.withSpan("S3.download", { attributes: { bucket, path } }))

      const read: ArtifactStore["read"] = (path) =>
        Effect.flatMap(get(path), (r) =>
          Effect.tryPromise({
            try: () => (r.Body === undefined ? Promise.resolve(new Uint8Array(0)) : r.Body.transformToByteArray()),
            catch: failure("download", keyOf(prefix, path))
          })).pipe(Effect.withSpan("S3.read", { attributes: { bucket, path } }))

      /** Every page of a listing under `keyPrefix` (one level with a delimiter). */
      const listPages = (keyPrefix: string, delimiter: boolean) =>
        Effect.gen(function*() {
          const pages: Array<ListObjectsV2CommandOutput> = []
          let token: string | undefined
          do {
            const page = yield* Effect.tryPromise({
              try: (abortSignal) =>
                client.send(
                  new ListObjectsV2Command({
                    Bucket: bucket,
                    Prefix: keyPrefix,
                    ...(delimiter ? { Delimiter: "/" } : {}),
                    ...(token === undefined ? {} : { ContinuationToken: token }),
                    ...owner
                  }),
                  { abortSignal }
                ),
              catch: failure("list", keyPrefix)
            })
            pages.push(page)
            token = page.IsTruncated === true ? page.NextContinuationToken : undefined
          } while (token !== undefined && token !== "")
          return pages
        })

      const list: ArtifactStore["list"] = (path) =>
        Effect.gen(function*() {
          const dir = path === undefined ? prefix : keyOf(prefix, path)
          const keyPrefix = dir === "" ? "" : `${dir}/`
          const relative = (key: string) => (prefix === "" ? key : key.slice(prefix.length + 1))
          const entries: Array<FileInfo> = []
          for (const page of yield* listPages(keyPrefix, true)) {
            for (const p of page.CommonPrefixes ?? []) {
              if (p.Prefix === undefined) continue
              entries.push(new FileInfo({ path: relative(p.Prefix.replace(/\/+$/, "")), isDir: true }))
            }
            for (const o of page.Contents ?? []) {
              // a "directory marker" (the prefix itself) is not an entry
              if (o.Key === undefined || o.Key === keyPrefix) continue
              entries.push(new FileInfo({ path: relative(o.Key), isDir: false, fileSize: o.Size ?? 0 }))
            }
          }
          return sortEntries(entries)
        }).pipe(Effect.withSpan("S3.list", { attributes: { bucket, path: path ?? "" } }))

      const remove: ArtifactStore["remove"] = (path) =>
        Effect.gen(function*() {
          const key = keyOf(prefix, path)
          const keys = [key]
          for (const page of yield* listPages(`${key}/`, false)) {
            for (const o of page.Contents ?? []) if (o.Key !== undefined) keys.push(o.Key)
          }
          for (let i = 0; i < keys.length; i += 1000) {
            const batch = keys.slice(i, i + 1000)
            const r = yield* Effect.tryPromise({
              try: (abortSignal) =>
                client.send(
                  new DeleteObjectsCommand({
                    Bucket: bucket,
                    Delete: { Objects: batch.map((Key) => ({ Key })), Quiet: true },
                    ...owner
                  }),
                  { abortSignal }
                ),
              catch: failure("delete", key)
            })
            const refused = (r.Errors ?? []).find((e) => e.Code !== "NoSuchKey")
            if (refused !== undefined) {
              return yield* failure("delete", refused.Key ?? key)({
                name: refused.Code,
                message: refused.Message ?? ""
              })
            }
          }
        }).pipe(Effect.withSpan("S3.remove", { attributes: { bucket, path } }))

      return { root, upload, download, read, list, remove }
    }

    return { store }
  })

/**
 * The region the SDK finds itself (`AWS_REGION`, the profile's configuration), else `us-east-1`, boto3's answer for
 * S3 when none is configured.
 */
const sdkRegion = async (config: S3ClientConfig): Promise<string> => {
  const probe = new S3Client({ ...config, credentials: { accessKeyId: "-", secretAccessKey: "-" } })
  try {
    return await probe.config.region()
  } catch {
    return "us-east-1"
  } finally {
    probe.destroy()
  }
}
