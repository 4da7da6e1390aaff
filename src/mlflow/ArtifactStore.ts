/**
 * Where a run's artifacts live, as one interface over every store: a local directory (`file:`), the tracking server's
 * artifact proxy (`mlflow-artifacts:`), and object stores reached directly (`s3://`, `wasbs://`, `gs://`, for servers
 * run with `--no-serve-artifacts`). The resolver turns an artifact URI into a store; an object store's SDK is loaded
 * (dynamic `import()`) only when a URI of its scheme is first resolved, so a user of a proxied server never loads it.
 */
import type * as FileSystem from "@effect/platform/FileSystem"
import type * as Path from "@effect/platform/Path"
import { Config, ConfigError, Effect, Either, Option, type Redacted, Stream } from "effect"
import {
  ArtifactStoreError,
  InvalidInput,
  type MlflowFailure,
  type NotFound,
  UnsupportedArtifactStore
} from "../errors.js"
import * as Redact from "../internal/redact.js"
import * as LocalArtifacts from "./LocalArtifacts.js"
import { type ArtifactSource, type FileInfo, validateArtifactPath } from "./Mlflow.js"

// ---------------------------------------------------------------------------------------------------------------
// The interface
// ---------------------------------------------------------------------------------------------------------------

/**
 * The artifacts under one run's artifact root. Paths are relative to the root, `/`-separated, checked with
 * `validateArtifactPath` (the resolver's stores check them before the implementation sees them).
 */
export interface ArtifactStore {
  /** The artifact URI of the root (for messages; never holds a credential). */
  readonly root: string
  /**
   * Stores `path` whole or not at all: bytes and files go with their length; a stream of unknown length is spooled
   * (proxy) or sent as a multipart / block upload of bounded memory (object stores).
   */
  readonly upload: <E = never>(
    path: string,
    source: ArtifactSource<E>
  ) => Effect.Effect<void, E | InvalidInput | MlflowFailure>
  /** The bytes of `path` as a stream; a missing object fails the stream with NotFound. */
  readonly download: (path: string) => Stream.Stream<Uint8Array, NotFound | InvalidInput | MlflowFailure>
  /** The bytes of `path` whole (for what is read into memory anyway); a missing object is NotFound. */
  readonly read: (path: string) => Effect.Effect<Uint8Array, NotFound | InvalidInput | MlflowFailure>
  /** One level under `path` (the root when absent), sorted by path, files with their sizes; missing lists empty. */
  readonly list: (path?: string) => Effect.Effect<ReadonlyArray<FileInfo>, InvalidInput | MlflowFailure>
  /** Deletes `path` and everything under it; a missing path is no error. */
  readonly remove: (path: string) => Effect.Effect<void, InvalidInput | MlflowFailure>
}

/** Checks every path before it reaches the implementation. */
export const checked = (store: ArtifactStore): ArtifactStore => {
  const dir = (path: string | undefined): Either.Either<string | undefined, InvalidInput> =>
    path === undefined || path.replace(/\/+$/, "") === ""
      ? Either.right(undefined)
      : validateArtifactPath(path.replace(/\/+$/, ""))
  return {
    root: store.root,
    upload: (path, source) => Effect.flatMap(validateArtifactPath(path), (p) => store.upload(p, source)),
    download: (path) => Stream.unwrap(Effect.map(validateArtifactPath(path), store.download)),
    read: (path) => Effect.flatMap(validateArtifactPath(path), store.read),
    list: (path) => Effect.flatMap(dir(path), store.list),
    remove: (path) => Effect.flatMap(validateArtifactPath(path), store.remove)
  }
}

/** A local directory as a store (a `file:` URI or a bare absolute path). */
export const local = (files: LocalArtifacts.LocalArtifacts, root: string, dir: string): ArtifactStore =>
  checked({
    root,
    upload: (path, source) => files.upload(dir, path, source),
    download: (path) => files.download(dir, path),
    read: (path) => files.read(dir, path),
    list: (path) => files.list(dir, path),
    remove: (path) => files.remove(dir, path)
  })

// ---------------------------------------------------------------------------------------------------------------
// URIs
// ---------------------------------------------------------------------------------------------------------------

/** An object store location parsed from an artifact URI: the bucket (container) and the key prefix of the root. */
export type ObjectLocation =
  | { readonly _tag: "S3"; readonly bucket: string; readonly prefix: string }
  | {
    readonly _tag: "Azure"
    readonly container: string
    readonly account: string
    /** The host's suffix after the account (`blob.core.windows.net`), as MLflow takes it from the URI. */
    readonly suffix: string
    readonly prefix: string
  }
  | { readonly _tag: "Gcs"; readonly bucket: string; readonly prefix: string }

const badUri = (uri: string, reason: string) => new InvalidInput({ kind: "ArtifactUri", input: uri, reason })

const cleanPrefix = (uri: string, rest: string): Either.Either<string, InvalidInput> => {
  const segments = rest.split("/").filter((s) => s !== "")
  if (segments.some((s) => s === "." || s === "..")) return Either.left(badUri(uri, "holds a '.' or '..' segment"))
  return Either.right(segments.join("/"))
}

/** Whether an artifact URI names an object store this client reaches directly. */
export const isObjectStoreUri = (uri: string): boolean => /^(s3|s3a|s3n|wasbs|wasb|gs):\/\//i.test(uri)

/**
 * Parses `s3://bucket/prefix` (also `s3a:`/`s3n:`), `wasbs://container@account.blob.core.windows.net/prefix` and
 * `gs://bucket/prefix`, as MLflow's artifact repositories do.
 */
export const parseObjectUri = (uri: string): Either.Either<ObjectLocation, InvalidInput | UnsupportedArtifactStore> => {
  const m = /^([a-z0-9]+):\/\/([^/]*)(.*)$/i.exec(uri)
  if (m === null) return Either.left(new UnsupportedArtifactStore({ uri }))
  const scheme = m[1]!.toLowerCase()
  const netloc = m[2]!
  const rest = m[3]!.split(/[?#]/, 1)[0]!
  if (scheme === "s3" || scheme === "s3a" || scheme === "s3n" || scheme === "gs") {
    if (netloc === "") return Either.left(badUri(uri, "names no bucket"))
    return Either.map(cleanPrefix(uri, rest), (prefix) =>
      scheme === "gs"
        ? { _tag: "Gcs" as const, bucket: netloc, prefix }
        : { _tag: "S3" as const, bucket: netloc, prefix })
  }
  if (scheme === "wasbs" || scheme === "wasb") {
    // MLflow: wasbs://<container>@<account>.<suffix>/<path>
    const azure = /^([^@]+)@([^.]+)\.(.+)$/.exec(netloc)
    if (azure === null) {
      return Either.left(badUri(uri, "expected wasbs://<container>@<account>.blob.core.windows.net/<path>"))
    }
    return Either.map(cleanPrefix(uri, rest), (prefix) => ({
      _tag: "Azure" as const,
      container: azure[1]!,
      account: azure[2]!,
      suffix: azure[3]!,
      prefix
    }))
  }
  return Either.left(new UnsupportedArtifactStore({ uri }))
}

/** The key of `path` under a prefix. */
export const keyOf = (prefix: string, path: string): string => (prefix === "" ? path : `${prefix}/${path}`)

// ---------------------------------------------------------------------------------------------------------------
// Settings (MLflow's own environment variables)
// ---------------------------------------------------------------------------------------------------------------

/** S3 and S3-compatible stores; the AWS SDK's default credential chain supplies the credentials unless given. */
export interface S3Options {
  /** `MLFLOW_S3_ENDPOINT_URL`: an S3-compatible server (MinIO, Ceph…), addressed path-style. */
  readonly endpointUrl?: string | undefined
  /** `MLFLOW_S3_IGNORE_TLS`: skip TLS certificate verification of the endpoint. */
  readonly ignoreTls?: boolean | undefined
  /** `MLFLOW_S3_UPLOAD_EXTRA_ARGS`: extra PutObject / CreateMultipartUpload parameters (SSE, KMS key, ACL…). */
  readonly uploadExtraArgs?: Readonly<Record<string, unknown>> | undefined
  /** `AWS_REGION`, else `AWS_DEFAULT_REGION`, else the SDK's profile configuration, else `us-east-1` (as boto3). */
  readonly region?: string | undefined
  /** `MLFLOW_BOTO_CLIENT_ADDRESSING_STYLE`: `path`, `virtual` or `auto` (path-style with an endpoint URL). */
  readonly addressingStyle?: "path" | "virtual" | "auto" | undefined
  /** `MLFLOW_S3_EXPECTED_BUCKET_OWNER`: the account id every request expects to own the bucket. */
  readonly expectedBucketOwner?: string | undefined
  /** Explicit credentials (else the SDK's default chain: env keys, AWS_PROFILE, files, web identity, IMDS). */
  readonly credentials?: {
    readonly accessKeyId: Redacted.Redacted<string>
    readonly secretAccessKey: Redacted.Redacted<string>
    readonly sessionToken?: Redacted.Redacted<string> | undefined
  } | undefined
  /** Multipart part size in bytes (default 8 MiB, as boto3's transfer manager; S3's minimum is 5 MiB). */
  readonly partSize?: number | undefined
  /** Parts in flight at once (default 4): memory is bounded by partSize × queueSize. */
  readonly queueSize?: number | undefined
  /** Attempts of each request, parts included (default 5, as boto3's legacy retry mode). */
  readonly maxAttempts?: number | undefined
  /**
   * The SDK's request checksums (default its own, `WHEN_SUPPORTED`). `WHEN_REQUIRED` sends plain bodies, which some
   * S3-compatible servers need (they store `aws-chunked` framing as part of the object).
   */
  readonly requestChecksumCalculation?: "WHEN_SUPPORTED" | "WHEN_REQUIRED" | undefined
}

/** Azure Blob Storage: a connection string, else an account key, else the Azure identity chain (as MLflow). */
export interface AzureOptions {
  /** `AZURE_STORAGE_CONNECTION_STRING`. */
  readonly connectionString?: Redacted.Redacted<string> | undefined
  /** `AZURE_STORAGE_ACCESS_KEY`: the account's key, for the account named in the URI. */
  readonly accessKey?: Redacted.Redacted<string> | undefined
  /** Block size of a streamed upload in bytes (default 8 MiB). */
  readonly blockSize?: number | undefined
  /** Blocks in flight at once (default 4). */
  readonly concurrency?: number | undefined
  /** Attempts of each request (default 5). */
  readonly maxAttempts?: number | undefined
}

/** Google Cloud Storage: application default credentials (`GOOGLE_APPLICATION_CREDENTIALS`, gcloud, metadata). */
export interface GcsOptions {
  /** `MLFLOW_GCS_DEFAULT_TIMEOUT`: seconds per request (default 60). */
  readonly timeout?: number | undefined
  /** `MLFLOW_GCS_UPLOAD_CHUNK_SIZE`: bytes per resumable-upload chunk (default 100 MiB, as MLflow). */
  readonly uploadChunkSize?: number | undefined
  /** `MLFLOW_GCS_DOWNLOAD_CHUNK_SIZE`: accepted for parity; downloads stream without buffering a chunk. */
  readonly downloadChunkSize?: number | undefined
  /** An API endpoint other than Google's (a test stand-in); `STORAGE_EMULATOR_HOST` is also honoured by the SDK. */
  readonly apiEndpoint?: string | undefined
  /** Attempts of each request (default 5). */
  readonly maxAttempts?: number | undefined
}

/** Settings of the object stores; a field given here wins over its environment variable. */
export interface ObjectStoreOptions {
  readonly s3?: S3Options | undefined
  readonly azure?: AzureOptions | undefined
  readonly gcs?: GcsOptions | undefined
}

const optional = <A>(c: Config.Config<A>): Config.Config<A | undefined> =>
  Config.map(Config.option(c), Option.getOrUndefined)

const jsonObject = (name: string) =>
  Config.mapOrFail(Config.string(name), (text) => {
    let value: unknown
    try {
      value = JSON.parse(text)
    } catch {
      return Either.left(ConfigError.InvalidData([name], "not JSON"))
    }
    if (typeof value !== "object" || value === null || Array.isArray(value)) {
      return Either.left(ConfigError.InvalidData([name], "not a JSON object"))
    }
    const reserved = Object.keys(value).find((k) => ["Bucket", "Key", "Body", "UploadId"].includes(k))
    return reserved === undefined
      ? Either.right(value as Record<string, unknown>)
      : Either.left(ConfigError.InvalidData([name], `${reserved} cannot be set there`))
  })

/** S3 settings from MLflow's and the AWS SDK's environment variables. */
export const s3Environment: Config.Config<S3Options> = Config.all({
  endpointUrl: optional(Config.nonEmptyString("MLFLOW_S3_ENDPOINT_URL")),
  ignoreTls: Config.withDefault(Config.boolean("MLFLOW_S3_IGNORE_TLS"), false),
  uploadExtraArgs: optional(jsonObject("MLFLOW_S3_UPLOAD_EXTRA_ARGS")),
  region: Config.map(
    Config.all([optional(Config.nonEmptyString("AWS_REGION")), optional(Config.nonEmptyString("AWS_DEFAULT_REGION"))]),
    ([a, b]) => a ?? b
  ),
  addressingStyle: optional(Config.literal("path", "virtual", "auto")("MLFLOW_BOTO_CLIENT_ADDRESSING_STYLE")),
  expectedBucketOwner: optional(Config.nonEmptyString("MLFLOW_S3_EXPECTED_BUCKET_OWNER"))
})

/** Azure settings from the variables MLflow reads. */
export const azureEnvironment: Config.Config<AzureOptions> = Config.all({
  connectionString: optional(Config.redacted("AZURE_STORAGE_CONNECTION_STRING")),
  accessKey: optional(Config.redacted("AZURE_STORAGE_ACCESS_KEY"))
})

/** GCS settings from the variables MLflow reads. */
export const gcsEnvironment: Config.Config<GcsOptions> = Config.all({
  timeout: optional(Config.number("MLFLOW_GCS_DEFAULT_TIMEOUT")),
  uploadChunkSize: optional(Config.integer("MLFLOW_GCS_UPLOAD_CHUNK_SIZE")),
  downloadChunkSize: optional(Config.integer("MLFLOW_GCS_DOWNLOAD_CHUNK_SIZE"))
})

/** Fields of `given` that are set win over those of `env`. */
const merge = <A extends object>(env: A, given: A | undefined): A => {
  if (given === undefined) return env
  const set = Object.fromEntries(Object.entries(given).filter(([, v]) => v !== undefined))
  return { ...env, ...set }
}

// ---------------------------------------------------------------------------------------------------------------
// Object store backends (one client per scheme, made on first use)
// ---------------------------------------------------------------------------------------------------------------

/** What a lazily loaded store module makes: a client, and a store per location. */
export interface Backend<L extends ObjectLocation> {
  readonly store: (uri: string, location: L) => ArtifactStore
}

const STORES = {
  S3: { store: "s3", packages: "@aws-sdk/client-s3 @aws-sdk/lib-storage" },
  Azure: { store: "azure", packages: "@azure/storage-blob @azure/identity" },
  Gcs: { store: "gcs", packages: "@google-cloud/storage" }
} as const

const isModuleMissing = (e: unknown): boolean => {
  const code = (e as { code?: unknown } | null)?.code
  return code === "ERR_MODULE_NOT_FOUND" || code === "MODULE_NOT_FOUND"
}

/** Loads a store module; a missing SDK is a one-line ArtifactStoreError naming the packages to install. */
const load = <M>(tag: ObjectLocation["_tag"], uri: string, importer: () => Promise<M>) =>
  Effect.tryPromise({
    try: importer,
    catch: (e) =>
      new ArtifactStoreError({
        store: STORES[tag].store,
        location: uri,
        operation: "load",
        reason: isModuleMissing(e)
          ? `its SDK is not installed: npm install ${STORES[tag].packages}`
          : e instanceof Error
          ? e.message
          : String(e)
      })
  })

const configFailure = (tag: ObjectLocation["_tag"], uri: string) => (e: ConfigError.ConfigError) =>
  new ArtifactStoreError({
    store: STORES[tag].store,
    location: uri,
    operation: "configure",
    reason: String(e).replace(/\s+/g, " ")
  })

/** A memo of one successful make (a failure is not kept: the next call tries again). */
const memo = <A, E>(make: Effect.Effect<A, E>): Effect.Effect<A, E> => {
  let made: A | undefined
  return Effect.suspend(() =>
    made !== undefined ? Effect.succeed(made) : Effect.tap(make, (a) =>
      Effect.sync(() => {
        made = a
      }))
  )
}

// ---------------------------------------------------------------------------------------------------------------
// The resolver
// ---------------------------------------------------------------------------------------------------------------

export interface Resolver {
  /** The store of an artifact URI. */
  readonly resolve: (
    artifactUri: string
  ) => Effect.Effect<ArtifactStore, UnsupportedArtifactStore | InvalidInput | ArtifactStoreError>
}

export interface ResolverOptions extends ObjectStoreOptions {
  /**
   * The store of an `mlflow-artifacts:` URI, when the layer has a tracking server to proxy through; without it such
   * a URI is UnsupportedArtifactStore.
   */
  readonly proxy?:
    | ((artifactUri: string) => Either.Either<ArtifactStore, InvalidInput | UnsupportedArtifactStore>)
    | undefined
}

/**
 * A resolver for any layer (Http, FileStore, Sql): `file:` URIs and bare absolute paths are local directories,
 * `mlflow-artifacts:` goes to `options.proxy`, `s3://`, `wasbs://` and `gs://` to their object stores (settings from
 * `options`, else MLflow's environment variables read through `Config` when the scheme is first used).
 */
export const makeResolver = (
  options: ResolverOptions = {}
): Effect.Effect<Resolver, never, FileSystem.FileSystem | Path.Path> =>
  Effect.gen(function*() {
    const localArtifacts = yield* LocalArtifacts.make

    const s3 = memo(
      Effect.gen(function*() {
        const env = yield* s3Environment
        const module = yield* load("S3", "s3://", () => import("./stores/S3.js"))
        return yield* module.make(merge(env, options.s3))
      }).pipe(Effect.catchTag("ConfigError", (e) => Effect.fail(configFailure("S3", "s3://")(e))))
    )
    const azure = memo(
      Effect.gen(function*() {
        const env = yield* azureEnvironment
        const module = yield* load("Azure", "wasbs://", () => import("./stores/Azure.js"))
        return module.make(merge(env, options.azure))
      }).pipe(Effect.catchTag("ConfigError", (e) => Effect.fail(configFailure("Azure", "wasbs://")(e))))
    )
    const gcs = memo(
      Effect.gen(function*() {
        const env = yield* gcsEnvironment
        const module = yield* load("Gcs", "gs://", () => import("./stores/Gcs.js"))
        return module.make(merge(env, options.gcs))
      }).pipe(Effect.catchTag("ConfigError", (e) => Effect.fail(configFailure("Gcs", "gs://")(e))))
    )

    const resolve = (
      artifactUri: string
    ): Effect.Effect<ArtifactStore, UnsupportedArtifactStore | InvalidInput | ArtifactStoreError> =>
      Effect.gen(function*() {
        if (/^mlflow-artifacts:/i.test(artifactUri)) {
          if (options.proxy === undefined) {
            return yield* new UnsupportedArtifactStore({
              uri: artifactUri,
              reason: "mlflow-artifacts: URIs need a tracking server: use its http(s) URI"
            })
          }
          return yield* options.proxy(artifactUri)
        }
        if (LocalArtifacts.isLocalUri(artifactUri)) {
          const dir = yield* LocalArtifacts.fileUriToPath(artifactUri)
          return local(localArtifacts, artifactUri, dir)
        }
        const location = yield* parseObjectUri(artifactUri)
        switch (location._tag) {
          case "S3":
            return checked((yield* s3).store(artifactUri, location))
          case "Azure":
            return checked((yield* azure).store(artifactUri, location))
          case "Gcs":
            return checked((yield* gcs).store(artifactUri, location))
        }
      })

    return { resolve }
  })

// ---------------------------------------------------------------------------------------------------------------
// Shared by the object stores
// ---------------------------------------------------------------------------------------------------------------

/** A message on one line without what could be a secret (keys, signatures, user info in URLs). */
export const scrub = Redact.line
