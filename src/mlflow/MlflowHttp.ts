/**
 * The Mlflow service over MLflow's REST API (2.x and 3.x tracking servers) with `@effect/platform`'s HttpClient:
 * MLflow's own settings and retry policy, errors mapped by `error_code`, paged listings and streamed artifacts.
 */
import * as NodeFileSystem from "@effect/platform-node/NodeFileSystem"
import * as NodeHttpClient from "@effect/platform-node/NodeHttpClient"
import * as Undici from "@effect/platform-node/Undici"
import * as FileSystem from "@effect/platform/FileSystem"
import * as HttpClient from "@effect/platform/HttpClient"
import * as HttpClientRequest from "@effect/platform/HttpClientRequest"
import type * as Path from "@effect/platform/Path"
import { Config, ConfigError, Duration, Effect, Either, Layer, Option, Redacted } from "effect"
import { type CredentialsFileError, InvalidInput, StorageError } from "../errors.js"
import * as ArtifactStore from "./ArtifactStore.js"
import * as Credentials from "./Credentials.js"
import * as Exchange from "./internal/httpExchange.js"
import * as Proxy from "./internal/httpProxy.js"
import * as Tracking from "./internal/httpTracking.js"
import { parseTrackingUri, resolveArtifactUri } from "./internal/httpUris.js"
import { resolvedArtifacts } from "./internal/resolvedArtifacts.js"
import { type ArtifactRoot, Mlflow, validateArtifactPath } from "./Mlflow.js"

// ---------------------------------------------------------------------------------------------------------------
// Settings
// ---------------------------------------------------------------------------------------------------------------

/** The settings of the Http layer; `config` reads them from MLflow's own environment variables. */
export interface MlflowHttpConfig {
  /** `MLFLOW_TRACKING_URI`: the server's base URL (`http:` or `https:`), possibly with a path prefix. */
  readonly trackingUri: string
  /**
   * `MLFLOW_TRACKING_USERNAME` / `MLFLOW_TRACKING_PASSWORD` (else the URI's user info, else `~/.mlflow/credentials`):
   * HTTP basic authentication.
   */
  readonly username?: Redacted.Redacted<string> | undefined
  readonly password?: Redacted.Redacted<string> | undefined
  /** `MLFLOW_TRACKING_TOKEN`: a bearer token (used when no username/password is set). */
  readonly token?: Redacted.Redacted<string> | undefined
  /** `MLFLOW_TRACKING_INSECURE_TLS`: skip TLS certificate verification (default false). */
  readonly insecureTls?: boolean | undefined
  /** `MLFLOW_TRACKING_SERVER_CERT_PATH`: a CA bundle (PEM) to verify the server with. */
  readonly serverCertPath?: string | undefined
  /** `MLFLOW_TRACKING_CLIENT_CERT_PATH`: a client certificate (PEM, holding the private key as well). */
  readonly clientCertPath?: string | undefined
  /** `MLFLOW_HTTP_REQUEST_TIMEOUT`: seconds to wait for a reply (default 120). */
  readonly requestTimeout?: number | undefined
  /** `MLFLOW_HTTP_REQUEST_MAX_RETRIES` (default 7). */
  readonly maxRetries?: number | undefined
  /** `MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR` (default 2): the n-th retry (n >= 2) waits factor × 2^(n-1) s. */
  readonly backoffFactor?: number | undefined
  /** `MLFLOW_HTTP_REQUEST_BACKOFF_JITTER` (default 1.0): up to this many seconds added at random. */
  readonly backoffJitter?: number | undefined
  /** The longest backoff wait in seconds (urllib3's `backoff_max`, default 120). */
  readonly backoffMax?: number | undefined
  /**
   * Settings of the object stores that runs' artifact URIs may point to (`s3://`, `wasbs://`, `gs://`); each field
   * given wins over its environment variable (`MLFLOW_S3_ENDPOINT_URL`, `AZURE_STORAGE_CONNECTION_STRING`…).
   */
  readonly artifactStores?: ArtifactStore.ObjectStoreOptions | undefined
}

export const defaults = {
  requestTimeout: 120,
  maxRetries: 7,
  backoffFactor: 2,
  backoffJitter: 1.0,
  backoffMax: 120
} as const

const optional = <A>(c: Config.Config<A>): Config.Config<A | undefined> =>
  Config.map(Config.option(c), Option.getOrUndefined)

/**
 * The settings from MLflow's environment variables alone. Credentials in the URI's user-info part
 * (`https://user:pass@host`) are moved into `username`/`password` so that the URI never carries a secret; a
 * variable wins over the URI.
 */
export const environment: Config.Config<MlflowHttpConfig> = Config.all({
  trackingUri: Config.string("MLFLOW_TRACKING_URI"),
  username: optional(Config.redacted("MLFLOW_TRACKING_USERNAME")),
  password: optional(Config.redacted("MLFLOW_TRACKING_PASSWORD")),
  token: optional(Config.redacted("MLFLOW_TRACKING_TOKEN")),
  insecureTls: Config.withDefault(Config.boolean("MLFLOW_TRACKING_INSECURE_TLS"), false),
  serverCertPath: optional(Config.string("MLFLOW_TRACKING_SERVER_CERT_PATH")),
  clientCertPath: optional(Config.string("MLFLOW_TRACKING_CLIENT_CERT_PATH")),
  requestTimeout: Config.withDefault(Config.number("MLFLOW_HTTP_REQUEST_TIMEOUT"), defaults.requestTimeout),
  maxRetries: Config.withDefault(Config.integer("MLFLOW_HTTP_REQUEST_MAX_RETRIES"), defaults.maxRetries),
  backoffFactor: Config.withDefault(Config.number("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR"), defaults.backoffFactor),
  backoffJitter: Config.withDefault(Config.number("MLFLOW_HTTP_REQUEST_BACKOFF_JITTER"), defaults.backoffJitter)
}).pipe(
  Config.validate({
    message: "MLFLOW_TRACKING_INSECURE_TLS and MLFLOW_TRACKING_SERVER_CERT_PATH cannot both be set",
    validation: (c) => !(c.insecureTls && c.serverCertPath !== undefined)
  }),
  Config.validate({
    message: "MLFLOW_HTTP_REQUEST_TIMEOUT must be positive; the retry settings must not be negative",
    validation: (c) => c.requestTimeout > 0 && c.maxRetries >= 0 && c.backoffFactor >= 0 && c.backoffJitter >= 0
  }),
  Config.mapOrFail((c) =>
    Either.mapLeft(parseTrackingUri(c.trackingUri), (e) => ConfigErrorInvalid(["MLFLOW_TRACKING_URI"], e.reason)).pipe(
      Either.map(({ base, username, password }): MlflowHttpConfig => ({
        ...c,
        trackingUri: base,
        username: Credentials.firstOf(c.username, username),
        password: Credentials.firstOf(c.password, password)
      }))
    )
  )
)

/**
 * The settings as MLflow's client finds them: `environment`, then, for the username and the password each, MLflow's
 * credentials file (`~/.mlflow/credentials`, section `[mlflow]`) when neither the variable nor the URI gives one.
 * The file is read whenever the settings are (a malformed one is a `CredentialsFileError`, as MLflow fails on it);
 * a missing one gives nothing.
 */
export const config: Effect.Effect<MlflowHttpConfig, ConfigError.ConfigError | CredentialsFileError> = Effect.gen(
  function*() {
    const settings = yield* environment
    const file = yield* Credentials.fromHome
    return {
      ...settings,
      username: Credentials.firstOf(settings.username, file.username),
      password: Credentials.firstOf(settings.password, file.password)
    }
  }
)

const ConfigErrorInvalid = (path: Array<string>, message: string) => ConfigError.InvalidData(path, message)

export { type ArtifactLocation, parseTrackingUri, resolveArtifactUri } from "./internal/httpUris.js"

// ---------------------------------------------------------------------------------------------------------------
// The service
// ---------------------------------------------------------------------------------------------------------------

/**
 * Builds the service over the context's HttpClient (the application picks it: `NodeHttpClient.layerUndici`,
 * `FetchHttpClient.layer`, or `layerUndiciTls` below for the TLS settings) and FileSystem (for `file:` artifacts).
 */
export const make = (
  options: MlflowHttpConfig
): Effect.Effect<Mlflow["Type"], InvalidInput, HttpClient.HttpClient | FileSystem.FileSystem | Path.Path> =>
  Effect.gen(function*() {
    const parsed = yield* parseTrackingUri(options.trackingUri)
    const base = parsed.base
    const username = options.username ?? parsed.username
    const password = options.password ?? parsed.password
    const fs = yield* FileSystem.FileSystem
    const authorize = (request: HttpClientRequest.HttpClientRequest): HttpClientRequest.HttpClientRequest => {
      if (username !== undefined) {
        return HttpClientRequest.basicAuth(
          request,
          Redacted.value(username),
          password === undefined ? "" : Redacted.value(password)
        )
      }
      if (options.token !== undefined) return HttpClientRequest.bearerToken(request, Redacted.value(options.token))
      return request
    }
    const client = (yield* HttpClient.HttpClient).pipe(
      HttpClient.mapRequest((r) => authorize(HttpClientRequest.setHeader(r, "user-agent", "forml-mlflow")))
    )
    const exchange = Exchange.make(client, {
      base,
      timeout: Duration.seconds(options.requestTimeout ?? defaults.requestTimeout),
      maxRetries: options.maxRetries ?? defaults.maxRetries,
      backoffFactor: options.backoffFactor ?? defaults.backoffFactor,
      backoffJitter: options.backoffJitter ?? defaults.backoffJitter,
      backoffMax: options.backoffMax ?? defaults.backoffMax
    })
    const stores = yield* ArtifactStore.makeResolver({
      ...options.artifactStores,
      proxy: (uri) =>
        resolveArtifactUri(uri, base).pipe(
          Either.flatMap((location) =>
            location._tag === "Proxy"
              ? Either.right(Proxy.make(exchange, fs, uri, location))
              : Either.left(
                new InvalidInput({ kind: "ArtifactUri", input: uri, reason: "not an mlflow-artifacts: URI" })
              )
          )
        )
    })
    const locate = (run: ArtifactRoot) => stores.resolve(run.artifactUri)
    const listArtifacts = (run: ArtifactRoot, path?: string) =>
      Effect.gen(function*() {
        const dir = path === undefined || path === "" ? "" : yield* validateArtifactPath(path.replace(/\/+$/, ""))
        const store = yield* locate(run)
        return yield* store.list(dir === "" ? undefined : dir)
      }).pipe(Effect.withSpan("Mlflow.listArtifacts", { attributes: { path: path ?? "" } }))
    return Mlflow.of({ ...Tracking.make(exchange), ...resolvedArtifacts("Mlflow", locate), listArtifacts })
  })

// ---------------------------------------------------------------------------------------------------------------
// Layers
// ---------------------------------------------------------------------------------------------------------------

/** The service from explicit settings; the application provides the HttpClient and the FileSystem. */
export const layer = (
  options: MlflowHttpConfig
): Layer.Layer<Mlflow, InvalidInput, HttpClient.HttpClient | FileSystem.FileSystem | Path.Path> =>
  Layer.effect(Mlflow, make(options))

/** The service from MLflow's environment variables and credentials file (see `config`). */
export const layerConfig = (
  settings: Effect.Effect<MlflowHttpConfig, ConfigError.ConfigError | CredentialsFileError> = config
): Layer.Layer<
  Mlflow,
  InvalidInput | ConfigError.ConfigError | CredentialsFileError,
  HttpClient.HttpClient | FileSystem.FileSystem | Path.Path
> => Layer.effect(Mlflow, Effect.flatMap(settings, make))

// ---------------------------------------------------------------------------------------------------------------
// A Node HttpClient with MLflow's TLS settings
// ---------------------------------------------------------------------------------------------------------------

/** The TLS options of an undici dispatcher for the settings (CA bundle, client certificate, insecure mode). */
export const tlsOptions = (
  options: Pick<MlflowHttpConfig, "insecureTls" | "serverCertPath" | "clientCertPath">
): Effect.Effect<Undici.Agent.Options, StorageError, FileSystem.FileSystem> =>
  Effect.gen(function*() {
    const fs = yield* FileSystem.FileSystem
    const read = (path: string) =>
      Effect.mapError(fs.readFile(path), (e) => new StorageError({ path, reason: e.message }))
    const ca = options.serverCertPath === undefined ? undefined : yield* read(options.serverCertPath)
    // MLflow passes the client certificate path to requests as a single PEM holding both certificate and key
    const pem = options.clientCertPath === undefined ? undefined : yield* read(options.clientCertPath)
    return {
      connect: {
        ...(options.insecureTls === true ? { rejectUnauthorized: false } : {}),
        ...(ca === undefined ? {} : { ca: Buffer.from(ca) }),
        ...(pem === undefined ? {} : { cert: Buffer.from(pem), key: Buffer.from(pem) })
      }
    }
  })

/** An undici-based HttpClient that honours the TLS settings (the platform's `layerUndici` with its own dispatcher). */
export const layerUndiciTls = (
  options: Pick<MlflowHttpConfig, "insecureTls" | "serverCertPath" | "clientCertPath">
): Layer.Layer<HttpClient.HttpClient, StorageError> =>
  NodeHttpClient.layerUndiciWithoutDispatcher.pipe(
    Layer.provide(
      Layer.scoped(
        NodeHttpClient.Dispatcher,
        Effect.flatMap(Effect.provide(tlsOptions(options), NodeFileSystem.layer), (opts) =>
          Effect.acquireRelease(
            Effect.sync((): Undici.Dispatcher => new Undici.Agent(opts)),
            (dispatcher) => Effect.promise(() => dispatcher.destroy())
          ))
      )
    )
  )

/**
 * Everything from the environment on Node: the settings, an undici client with their TLS options, and the
 * service. The application still provides the FileSystem and Path (`NodeContext.layer`).
 */
export const layerConfigNode = (
  settings: Effect.Effect<MlflowHttpConfig, ConfigError.ConfigError | CredentialsFileError> = config
): Layer.Layer<
  Mlflow,
  InvalidInput | StorageError | ConfigError.ConfigError | CredentialsFileError,
  FileSystem.FileSystem | Path.Path
> =>
  Layer.unwrapEffect(
    Effect.map(settings, (options) => layer(options).pipe(Layer.provide(layerUndiciTls(options))))
  )
