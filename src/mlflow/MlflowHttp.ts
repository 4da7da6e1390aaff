/**
 * The Mlflow service over MLflow's REST API (2.x and 3.x tracking servers) with `@effect/platform`'s HttpClient:
 * MLflow's own settings and retry policy, errors mapped by `error_code`, paged listings and streamed artifacts.
 */
import * as FileSystem from "@effect/platform/FileSystem"
import * as HttpClient from "@effect/platform/HttpClient"
import * as HttpClientRequest from "@effect/platform/HttpClientRequest"
import * as Path from "@effect/platform/Path"
import type * as HttpClientResponse from "@effect/platform/HttpClientResponse"
import type { HttpClientError } from "@effect/platform/HttpClientError"
import * as NodeHttpClient from "@effect/platform-node/NodeHttpClient"
import * as Undici from "@effect/platform-node/Undici"
import {
  Chunk,
  Clock,
  Config,
  ConfigError,
  Data,
  Duration,
  Effect,
  Either,
  Layer,
  Option,
  ParseResult,
  Random,
  Redacted,
  Ref,
  Schedule,
  Schema,
  Sink,
  Stream
} from "effect"
import * as NodeFs from "node:fs"
import {
  AlreadyExists,
  type CredentialsFileError,
  DecodeError,
  InvalidInput,
  MlflowApiError,
  NotFound,
  StorageError,
  TransportError,
  UnsupportedArtifactStore
} from "../errors.js"
import * as ArtifactStore from "./ArtifactStore.js"
import * as Credentials from "./Credentials.js"
import * as Filter from "./Filter.js"
import * as LocalArtifacts from "./LocalArtifacts.js"
import {
  type ArtifactRoot,
  type ArtifactSource,
  type CreateRunOptions,
  type LogBatchExtras,
  Mlflow,
  type Run,
  type SearchExperimentsOptions,
  type SearchRunsOptions,
  type UpdateRunOptions,
  validateArtifactPath,
  validateExtras,
  validateTagKey
} from "./Mlflow.js"
import * as Wire from "./wire.js"

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

/** Statuses MLflow's Python client retries (its `status_forcelist`). */
export const RETRY_STATUSES: ReadonlySet<number> = new Set([408, 429, 500, 502, 503, 504])

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

/** Splits a tracking URI into a base URL without user info or trailing slash, and the credentials it held. */
export const parseTrackingUri = (
  uri: string
): Either.Either<
  { base: string; username?: Redacted.Redacted<string>; password?: Redacted.Redacted<string> },
  InvalidInput
> => {
  let url: URL
  try {
    url = new URL(uri)
  } catch {
    return Either.left(new InvalidInput({ kind: "TrackingUri", input: redactUserInfo(uri), reason: "not a URL" }))
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    return Either.left(
      new InvalidInput({
        kind: "TrackingUri",
        input: redactUserInfo(uri),
        reason: "the Http layer needs an http: or https: tracking URI"
      })
    )
  }
  const username = url.username === "" ? undefined : Redacted.make(decodeURIComponent(url.username))
  const password = url.password === "" ? undefined : Redacted.make(decodeURIComponent(url.password))
  url.username = ""
  url.password = ""
  url.search = ""
  url.hash = ""
  const base = url.href.replace(/\/+$/, "")
  return Either.right({
    base,
    ...(username === undefined ? {} : { username }),
    ...(password === undefined ? {} : { password })
  })
}

const redactUserInfo = (uri: string): string => uri.replace(/\/\/[^/@]*@/, "//<redacted>@")

// ---------------------------------------------------------------------------------------------------------------
// Artifact locations
// ---------------------------------------------------------------------------------------------------------------

/** Where a run's artifacts live, resolved from its artifact URI. */
export type ArtifactLocation =
  | { readonly _tag: "Proxy"; readonly base: string; readonly root: ReadonlyArray<string> }
  | { readonly _tag: "Local"; readonly dir: string }
  | { readonly _tag: "ObjectStore"; readonly location: ArtifactStore.ObjectLocation }

/**
 * Resolves an artifact URI. `mlflow-artifacts:/<path>` goes through the tracking server's artifact proxy;
 * `mlflow-artifacts://host:port/<path>` through the proxy on that host (with the tracking URI's scheme and path
 * prefix, as MLflow's client does); `file:` URIs and bare absolute paths are local directories; `s3://`, `wasbs://`
 * and `gs://` are object stores reached directly (see `ArtifactStore`).
 */
export const resolveArtifactUri = (
  artifactUri: string,
  trackingUri: string
): Either.Either<ArtifactLocation, UnsupportedArtifactStore | InvalidInput> => {
  const proxy = /^mlflow-artifacts:(.*)$/i.exec(artifactUri)
  if (proxy !== null) {
    let rest = proxy[1]!
    let base = trackingUri
    if (rest.startsWith("//")) {
      const end = rest.indexOf("/", 2)
      const netloc = end < 0 ? rest.slice(2) : rest.slice(2, end)
      rest = end < 0 ? "" : rest.slice(end)
      if (netloc !== "") {
        const tracking = new URL(trackingUri)
        base = `${tracking.protocol}//${netloc}${tracking.pathname.replace(/\/+$/, "")}`
      }
    }
    const root = rest.split("/").filter((s) => s !== "")
    if (root.some((s) => s === "." || s === "..")) {
      return Either.left(new InvalidInput({ kind: "ArtifactUri", input: artifactUri, reason: "holds a '.' or '..' segment" }))
    }
    return Either.right({ _tag: "Proxy", base, root })
  }
  if (LocalArtifacts.isLocalUri(artifactUri)) {
    return Either.map(LocalArtifacts.fileUriToPath(artifactUri), (dir) => ({ _tag: "Local" as const, dir }))
  }
  return Either.map(ArtifactStore.parseObjectUri(artifactUri), (location) => ({ _tag: "ObjectStore" as const, location }))
}

const encodePath = (segments: ReadonlyArray<string>): string => segments.map(encodeURIComponent).join("/")

// ---------------------------------------------------------------------------------------------------------------
// The exchange: one request, its retries, and the mapping of the reply
// ---------------------------------------------------------------------------------------------------------------

/** What a NotFound or AlreadyExists reply is about. */
interface Subject {
  readonly entity: string
  readonly key: string
}

/** A failure worth another attempt: a retryable status or a broken exchange. */
class Retryable extends Data.TaggedError("Retryable")<{
  readonly error: MlflowApiError | TransportError
  readonly retryAfter: Option.Option<Duration.Duration>
}> {}

type Final = NotFound | AlreadyExists | MlflowApiError | TransportError

const isRetryable = (e: unknown): e is Retryable => e instanceof Retryable

const isDomain = (e: unknown): e is NotFound | AlreadyExists => e instanceof NotFound || e instanceof AlreadyExists

/** `Retry-After` as seconds or as an HTTP date. */
export const parseRetryAfter = (value: string | undefined, now: number): Option.Option<Duration.Duration> => {
  if (value === undefined) return Option.none()
  const trimmed = value.trim()
  if (/^\d+(\.\d+)?$/.test(trimmed)) return Option.some(Duration.seconds(Number(trimmed)))
  const date = Date.parse(trimmed)
  return Number.isNaN(date) ? Option.none() : Option.some(Duration.millis(Math.max(0, date - now)))
}

/** MLflow 2.x answers a GET of a missing artifact with a 500 that wraps the file system's ENOENT. */
const isMissingArtifact500 = (status: number, code: string, message: string): boolean =>
  status === 500 && code === "INTERNAL_ERROR" && /No such file or directory|\[Errno 2\]/.test(message)

/** A file-store server's refusal of its own unescaped `name = '…'` filter, met by a name holding `'`. */
const isUnquotedNameRefusal = (name: string) => (e: unknown): e is MlflowApiError =>
  name.includes("'") && e instanceof MlflowApiError && e.status === 400 &&
  e.errorCode === "INVALID_PARAMETER_VALUE" && /filter/i.test(e.detail)

/** A short one-line text of a non-JSON error page (Flask's HTML pages, a proxy's error page). */
const summarize = (text: string): string => {
  const title = /<title>([^<]*)<\/title>/i.exec(text)?.[1]
  const plain = (title ?? text).replace(/<[^>]*>/g, " ").replace(/\s+/g, " ").trim()
  return plain.length > 200 ? `${plain.slice(0, 197)}...` : plain
}

const describeCause = (e: unknown): string => {
  if (e instanceof Error) {
    const code = (e as { code?: unknown }).code
    const inner = e.cause instanceof Error ? `: ${e.cause.message}` : ""
    return `${e.message}${typeof code === "string" && !e.message.includes(code) ? ` (${code})` : ""}${inner}`
  }
  return String(e)
}

const describeHttpError = (e: HttpClientError): string =>
  e.cause === undefined ? `${e.reason} error` : describeCause(e.cause)

/** The decoding issues on one line: `experiment.experiment_id: Expected string, actual 7`. */
const describeParse = (e: ParseResult.ParseError): string =>
  ParseResult.ArrayFormatter.formatErrorSync(e)
    .map((issue) => `${issue.path.length === 0 ? "reply" : issue.path.join(".")}: ${issue.message.replace(/\s+/g, " ")}`)
    .join("; ")

// ---------------------------------------------------------------------------------------------------------------
// The service
// ---------------------------------------------------------------------------------------------------------------

const PAGE_SIZE = 1000
const MAX_PAGE_SIZE = 50000
const LOG_BATCH_TAGS = 100

const checkPageSize = (pageSize: number | undefined): Either.Either<number, InvalidInput> => {
  const size = pageSize ?? PAGE_SIZE
  // 0 is never sent: the file store answers it with a token for offset 0, and a token loop would never end
  return Number.isInteger(size) && size >= 1 && size <= MAX_PAGE_SIZE
    ? Either.right(size)
    : Either.left(new InvalidInput({ kind: "PageSize", input: String(size), reason: `must be 1..${MAX_PAGE_SIZE}` }))
}

/**
 * The attributes a search filter may compare with a quoted value, as the server (and every layer) accepts them:
 * a numeric attribute needs an unquoted number, which a filter built from clauses never holds.
 */
const RUN_ATTRIBUTES: ReadonlySet<string> = new Set(["run_id", "run_name", "status", "user_id", "artifact_uri"])
const EXPERIMENT_ATTRIBUTES: ReadonlySet<string> = new Set(["name"])

const renderFilter = (
  filter: Filter.Filter | undefined,
  attributes: ReadonlySet<string>
): Either.Either<string, InvalidInput> => {
  if (filter === undefined) return Either.right("")
  const bad = filter.clauses.find((c) => c.kind === "attribute" && !attributes.has(c.key))
  if (bad !== undefined) {
    return Either.left(
      new InvalidInput({ kind: "Filter", input: bad.key, reason: `not a searchable attribute (one of ${[...attributes].join(", ")})` })
    )
  }
  return Filter.render(filter)
}

const checkTags = (
  tags: ReadonlyArray<{ readonly key: string; readonly value: string }>
): Either.Either<ReadonlyArray<{ key: string; value: string }>, InvalidInput> =>
  Either.all(tags.map((t) => Either.map(validateTagKey(t.key), () => ({ key: t.key, value: t.value }))))

const checkId = (kind: string, id: string): Either.Either<string, InvalidInput> =>
  id === "" ? Either.left(new InvalidInput({ kind, input: id, reason: "empty" })) : Either.right(id)

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
    const timeout = Duration.seconds(options.requestTimeout ?? defaults.requestTimeout)
    const maxRetries = options.maxRetries ?? defaults.maxRetries
    const backoffFactor = options.backoffFactor ?? defaults.backoffFactor
    const backoffJitter = options.backoffJitter ?? defaults.backoffJitter
    const backoffMax = options.backoffMax ?? defaults.backoffMax
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

    // urllib3's backoff, as MLflow's client configures it: the first retry at once, then factor × 2^(n-1) s plus
    // up to `jitter` s, at most `backoffMax`; a Retry-After header replaces the computed wait.
    const backoff = (e: unknown, n: number): Effect.Effect<Duration.Duration> => {
      if (isRetryable(e) && Option.isSome(e.retryAfter)) return Effect.succeed(e.retryAfter.value)
      if (n === 0) return Effect.succeed(Duration.zero)
      return Effect.map(Random.next, (r) =>
        Duration.seconds(Math.min(backoffMax, backoffFactor * 2 ** n + (backoffJitter > 0 ? r * backoffJitter : 0))))
    }
    const schedule = Schedule.identity<unknown>().pipe(
      Schedule.intersect(Schedule.recurs(maxRetries)),
      Schedule.addDelayEffect(([e, n]) => backoff(e, n))
    )
    const withRetries = <A, X>(
      attempt: Effect.Effect<A, X | Retryable>
    ): Effect.Effect<A, X | MlflowApiError | TransportError> =>
      Effect.catchAll(
        Effect.retry(attempt, { schedule, while: (e) => isRetryable(e) }),
        (e): Effect.Effect<never, X | MlflowApiError | TransportError> =>
          isRetryable(e) ? Effect.fail(e.error) : Effect.fail(e)
      )

    const operationOf = (request: HttpClientRequest.HttpClientRequest): string => {
      const path = request.url.startsWith(base) ? request.url.slice(base.length) : request.url
      return `${request.method} ${path || "/"}`
    }

    const transport = (request: HttpClientRequest.HttpClientRequest, reason: string) =>
      new Retryable({ error: new TransportError({ operation: operationOf(request), reason }), retryAfter: Option.none() })

    /** Maps a non-2xx reply by its `error_code` (its status for a non-JSON body). */
    const failure = (
      response: HttpClientResponse.HttpClientResponse,
      subject: Subject,
      missingArtifact: boolean
    ): Effect.Effect<never, Final | Retryable> =>
      Effect.gen(function*() {
        const status = response.status
        const text = yield* response.text.pipe(Effect.orElseSucceed(() => ""))
        const body = Option.flatMap(
          Option.liftThrowable((s: string): unknown => JSON.parse(s))(text),
          Schema.decodeUnknownOption(Wire.ErrorResponse)
        )
        const code = Option.match(body, { onNone: () => `HTTP_${status}`, onSome: (b) => b.error_code })
        const detail = Option.match(body, { onNone: () => summarize(text), onSome: (b) => b.message })
        if (code === "RESOURCE_DOES_NOT_EXIST" || (missingArtifact && isMissingArtifact500(status, code, detail))) {
          return yield* new NotFound(subject)
        }
        if (code === "RESOURCE_ALREADY_EXISTS") return yield* new AlreadyExists(subject)
        const error = new MlflowApiError({ status, errorCode: code, detail })
        if (!RETRY_STATUSES.has(status)) return yield* error
        const now = yield* Clock.currentTimeMillis
        return yield* new Retryable({ error, retryAfter: parseRetryAfter(response.headers["retry-after"], now) })
      })

    /** One attempt: the request, its reply's status, and (for `read`) its body, within the request timeout. */
    const attempt = <A>(
      request: HttpClientRequest.HttpClientRequest,
      subject: Subject,
      read: (response: HttpClientResponse.HttpClientResponse) => Effect.Effect<A, HttpClientError>,
      opts: { readonly missingArtifact?: boolean; readonly timeout?: boolean } = {}
    ): Effect.Effect<A, Final | Retryable> => {
      const exchange = client.execute(request).pipe(
        Effect.flatMap((response): Effect.Effect<A, HttpClientError | Final | Retryable> =>
          response.status >= 200 && response.status < 300
            ? read(response)
            : failure(response, subject, opts.missingArtifact ?? false)
        ),
        Effect.catchIf(
          (e): e is HttpClientError => e._tag === "RequestError" || e._tag === "ResponseError",
          (e) => Effect.fail(transport(request, describeHttpError(e)))
        )
      )
      return opts.timeout === false ? exchange : exchange.pipe(
        Effect.timeoutFail({
          duration: timeout,
          onTimeout: () => transport(request, `no reply within ${Duration.format(timeout)}`)
        })
      )
    }

    /** A JSON call: retried, then its body decoded with `schema`. */
    const exchange = <A, I>(
      request: HttpClientRequest.HttpClientRequest,
      schema: Schema.Schema<A, I>,
      subject: Subject
    ): Effect.Effect<A, Final | DecodeError> =>
      withRetries(attempt(request, subject, (response) => response.text)).pipe(
        Effect.flatMap((text) => decode(request, schema, text))
      )

    /** A 2xx reply's body decoded with `schema`: a body that is not JSON (a proxy's page) is a DecodeError. */
    const decode = <A, I>(
      request: HttpClientRequest.HttpClientRequest,
      schema: Schema.Schema<A, I>,
      text: string
    ): Effect.Effect<A, DecodeError> =>
      Effect.try({
        try: (): unknown => JSON.parse(text),
        catch: () =>
          new DecodeError({ operation: operationOf(request), reason: `not JSON: ${JSON.stringify(text.slice(0, 120))}` })
      }).pipe(
        Effect.flatMap((json) =>
          Effect.mapError(
            Schema.decodeUnknown(schema)(json),
            (e) => new DecodeError({ operation: operationOf(request), reason: describeParse(e) })
          )
        )
      )

    /** A call whose "does not exist" answer is NotFound (an "already exists" one would make no sense). */
    const call = <A, I>(request: HttpClientRequest.HttpClientRequest, schema: Schema.Schema<A, I>, subject: Subject) =>
      Effect.catchTag(exchange(request, schema, subject), "AlreadyExists", unexpected)
    /** A create call: its "already exists" answer is AlreadyExists. */
    const create = <A, I>(request: HttpClientRequest.HttpClientRequest, schema: Schema.Schema<A, I>, subject: Subject) =>
      Effect.catchTag(exchange(request, schema, subject), "NotFound", unexpected)

    const api = (path: string) => `${base}/api/2.0/mlflow/${path}`
    const get = (path: string, params: Record<string, string>) =>
      HttpClientRequest.get(api(path), { urlParams: params, acceptJson: true })
    const post = (path: string, body: unknown) =>
      HttpClientRequest.bodyUnsafeJson(HttpClientRequest.post(api(path), { acceptJson: true }), body)
    /** The reply of an action without a result: MLflow answers `{}`, so anything but a JSON object is suspect. */
    const ignore = Acknowledged

    // -- experiments ------------------------------------------------------------------------------------------

    const getExperiment = Effect.fn("Mlflow.getExperiment")(function*(experimentId: string) {
      const r = yield* call(
        get("experiments/get", { experiment_id: experimentId }),
        Wire.GetExperimentResponse,
        { entity: "experiment", key: experimentId }
      )
      return Wire.toExperiment(r.experiment)
    })

    const getExperimentByName = Effect.fn("Mlflow.getExperimentByName")(function*(name: string) {
      const subject = { entity: "experiment", key: name }
      return yield* call(get("experiments/get-by-name", { experiment_name: name }), Wire.GetExperimentResponse, subject)
        .pipe(
          Effect.map((r) => Wire.toExperiment(r.experiment)),
          // a server on a file store turns the name into the filter `name = '<name>'` unescaped, so a name holding
          // `'` is refused there: the same look-up as a search whose filter quotes the name properly
          Effect.catchIf(isUnquotedNameRefusal(name), (refusal) => experimentNamed(name, refusal))
        )
    })

    /** The experiment of that exact name in any lifecycle stage, as get-by-name answers, through a search. */
    const experimentNamed = (name: string, refusal: MlflowApiError) =>
      Filter.render(Filter.and(Filter.attribute("name", name))).pipe(
        Effect.mapError(() => refusal),
        Effect.flatMap((filter) =>
          call(
            post("experiments/search", { max_results: 2, view_type: "ALL", filter }),
            Wire.SearchExperimentsResponse,
            { entity: "experiment", key: name }
          )
        ),
        Effect.flatMap((r) => {
          const found = r.experiments.map(Wire.toExperiment).find((e) => e.name === name)
          return found === undefined ? Effect.fail(new NotFound({ entity: "experiment", key: name })) : Effect.succeed(found)
        })
      )

    const createExperiment = Effect.fn("Mlflow.createExperiment")(function*(
      name: string,
      opts?: { readonly tags?: ReadonlyArray<{ readonly key: string; readonly value: string }> }
    ) {
      if (name.trim() === "") {
        return yield* new InvalidInput({ kind: "ExperimentName", input: name, reason: "empty" })
      }
      const tags = yield* checkTags(opts?.tags ?? [])
      const r = yield* create(
        post("experiments/create", tags.length === 0 ? { name } : { name, tags }),
        Wire.CreateExperimentResponse,
        { entity: "experiment", key: name }
      ).pipe(
        // a file-store server checks the new name through its own unescaped filter first: no such experiment can be
        // made there, by any client
        Effect.catchIf(
          isUnquotedNameRefusal(name),
          () =>
            new InvalidInput({
              kind: "ExperimentName",
              input: name,
              reason: "this server's file store cannot create an experiment whose name holds ' (it checks the name " +
                "through a filter it does not escape)"
            })
        )
      )
      return r.experiment_id
    })

    const experimentAction = (action: "delete" | "restore") =>
      Effect.fn(`Mlflow.${action}Experiment`)(function*(experimentId: string) {
        yield* call(post(`experiments/${action}`, { experiment_id: experimentId }), ignore, {
          entity: "experiment",
          key: experimentId
        })
      })

    const searchExperiments = (opts: SearchExperimentsOptions = {}) =>
      Stream.unwrap(
        Effect.gen(function*() {
          const filter = yield* renderFilter(opts.filter, EXPERIMENT_ATTRIBUTES)
          const maxResults = yield* checkPageSize(opts.pageSize)
          const body = {
            max_results: maxResults,
            view_type: opts.viewType ?? "ACTIVE_ONLY",
            ...(filter === "" ? {} : { filter })
          }
          return pages((token) =>
            Effect.map(
              call(
                post("experiments/search", Option.match(token, { onNone: () => body, onSome: (t) => ({ ...body, page_token: t }) })),
                Wire.SearchExperimentsResponse,
                { entity: "experiment", key: filter }
              ),
              (r) => [r.experiments.map(Wire.toExperiment), r.next_page_token] as const
            ).pipe(Effect.catchTag("NotFound", unexpected))
          )
        })
      ).pipe(Stream.withSpan("Mlflow.searchExperiments"))

    // -- runs ---------------------------------------------------------------------------------------------------

    const createRun = Effect.fn("Mlflow.createRun")(function*(opts: CreateRunOptions) {
      yield* checkId("ExperimentId", opts.experimentId)
      const tags = yield* checkTags(opts.tags ?? [])
      const startTime = opts.startTime ?? (yield* Clock.currentTimeMillis)
      const request = post("runs/create", {
        experiment_id: opts.experimentId,
        start_time: startTime,
        ...(opts.runName === undefined ? {} : { run_name: opts.runName }),
        ...(opts.userId === undefined ? {} : { user_id: opts.userId }),
        ...(tags.length === 0 ? {} : { tags })
      })
      const subject = { entity: "experiment", key: opts.experimentId }
      const key = tags.find((t) => t.key === opts.idempotencyTag)
      if (key === undefined) return Wire.toRun((yield* call(request, Wire.RunResponse, subject)).run)
      // Every attempt sends the same body. Once an attempt's reply is lost (a reset, a body cut short, a timeout),
      // the server may have made the run: the next attempt looks for it by its unique tag before creating again.
      const lost = yield* Ref.make(false)
      const once = Effect.gen(function*() {
        if (yield* Ref.get(lost)) {
          const made = yield* findCreated(opts.experimentId, key)
          if (Option.isSome(made)) return Either.left(made.value)
        }
        const text = yield* attempt(request, subject, readText).pipe(
          Effect.tapError((e) => isRetryable(e) && e.error._tag === "TransportError" ? Ref.set(lost, true) : Effect.void)
        )
        return Either.right(text)
      })
      const outcome = yield* withRetries(once).pipe(Effect.catchTag("AlreadyExists", unexpected))
      if (Either.isLeft(outcome)) return outcome.left
      return Wire.toRun((yield* decode(request, Wire.RunResponse, outcome.right)).run)
    })

    /** The earliest active run of an experiment carrying `tag` (none when the search itself fails). */
    const findCreated = (experimentId: string, tag: { readonly key: string; readonly value: string }) =>
      searchRuns({ experimentIds: [experimentId], filter: Filter.and(Filter.tag(tag.key, tag.value)) }).pipe(
        Stream.runCollect,
        Effect.map((runs) =>
          Chunk.reduce(runs, Option.none<Run>(), (best, run) =>
            Option.isSome(best) && (best.value.info.startTime < run.info.startTime ||
                (best.value.info.startTime === run.info.startTime && best.value.info.runId <= run.info.runId))
              ? best
              : Option.some(run))
        ),
        Effect.orElseSucceed(() => Option.none<Run>())
      )

    const getRun = Effect.fn("Mlflow.getRun")(function*(runId: string) {
      const r = yield* call(get("runs/get", { run_id: runId }), Wire.RunResponse, { entity: "run", key: runId })
      return Wire.toRun(r.run)
    })

    const searchRuns = (opts: SearchRunsOptions) =>
      Stream.unwrap(
        Effect.gen(function*() {
          const filter = yield* renderFilter(opts.filter, RUN_ATTRIBUTES)
          const maxResults = yield* checkPageSize(opts.pageSize)
          if (opts.experimentIds.length === 0) return Stream.empty
          const body = {
            experiment_ids: opts.experimentIds,
            filter,
            run_view_type: opts.viewType ?? "ACTIVE_ONLY",
            max_results: maxResults,
            order_by: opts.orderBy ?? []
          }
          return pages((token) =>
            Effect.map(
              call(
                post("runs/search", Option.match(token, { onNone: () => body, onSome: (t) => ({ ...body, page_token: t }) })),
                Wire.SearchRunsResponse,
                { entity: "run", key: filter }
              ),
              (r) => [r.runs.map(Wire.toRun), r.next_page_token] as const
            ).pipe(Effect.catchTag("NotFound", unexpected))
          )
        })
      ).pipe(Stream.withSpan("Mlflow.searchRuns"))

    const setTag = Effect.fn("Mlflow.setTag")(function*(runId: string, key: string, value: string) {
      yield* checkId("RunId", runId)
      yield* validateTagKey(key)
      yield* call(post("runs/set-tag", { run_id: runId, key, value }), ignore, { entity: "run", key: runId })
    })

    const setTags = Effect.fn("Mlflow.setTags")(function*(
      runId: string,
      tags: ReadonlyArray<{ readonly key: string; readonly value: string }>,
      extras?: LogBatchExtras
    ) {
      yield* checkId("RunId", runId)
      const checked = yield* checkTags(tags)
      yield* validateExtras(extras)
      const metrics = (extras?.metrics ?? []).map(({ key, step, timestamp, value }) => ({ key, value, timestamp, step }))
      const params = (extras?.params ?? []).map(({ key, value }) => ({ key, value }))
      // metrics and params ride in the first batch
      for (let i = 0; i === 0 || i < checked.length; i += LOG_BATCH_TAGS) {
        const batch = checked.slice(i, i + LOG_BATCH_TAGS)
        const first = i === 0
        if (batch.length === 0 && !(first && (metrics.length > 0 || params.length > 0))) break
        yield* call(
          post("runs/log-batch", {
            run_id: runId,
            ...(first && metrics.length > 0 ? { metrics } : {}),
            ...(first && params.length > 0 ? { params } : {}),
            tags: batch
          }),
          ignore,
          { entity: "run", key: runId }
        )
      }
    })

    const runAction = (action: "delete" | "restore") =>
      Effect.fn(`Mlflow.${action}Run`)(function*(runId: string) {
        yield* call(post(`runs/${action}`, { run_id: runId }), ignore, { entity: "run", key: runId })
      })

    const updateRun = Effect.fn("Mlflow.updateRun")(function*(runId: string, opts: UpdateRunOptions) {
      yield* checkId("RunId", runId)
      const r = yield* call(
        post("runs/update", {
          run_id: runId,
          ...(opts.status === undefined ? {} : { status: opts.status }),
          ...(opts.endTime === undefined ? {} : { end_time: opts.endTime }),
          ...(opts.runName === undefined ? {} : { run_name: opts.runName })
        }),
        Wire.UpdateRunResponse,
        { entity: "run", key: runId }
      )
      return Wire.toRunInfo(r.run_info)
    })

    // -- artifacts ----------------------------------------------------------------------------------------------

    type ProxyLocation = { readonly base: string; readonly root: ReadonlyArray<string> }
    const proxyUrl = (location: ProxyLocation, path: string) =>
      `${location.base}/api/2.0/mlflow-artifacts/artifacts/${encodePath([...location.root, ...path.split("/")])}`

    const proxyUpload = <E = never>(location: ProxyLocation, path: string, source: ArtifactSource<E>) =>
      Effect.gen(function*() {
        const url = proxyUrl(location, path)
        if (source instanceof Uint8Array) {
          const put = HttpClientRequest.put(url, { acceptJson: true })
          const text = yield* withRetries(
            attempt(HttpClientRequest.bodyUint8Array(put, source, "application/octet-stream"), { entity: "artifact", key: path }, readText)
          ).pipe(Effect.catchIf(isDomain, unexpected))
          yield* decode(put, Acknowledged, text)
          return
        }
        if ("file" in source) return yield* putFile(url, path, source.file)
        // Every body carries its length: MLflow 3.x stores a chunked body as an empty file and answers 200. A
        // stream of unknown length is spooled to a temporary file first, then sent like a file.
        return yield* Effect.scoped(
          Effect.gen(function*() {
            const spool = yield* fs.makeTempFileScoped({ prefix: "forml-mlflow-upload-" }).pipe(
              Effect.mapError(LocalArtifacts.storageError("temporary upload file"))
            )
            yield* source.pipe(
              Stream.filter((chunk) => chunk.length > 0), // the file sink refuses an empty write
              Stream.run(Sink.mapError(fs.sink(spool), LocalArtifacts.storageError(spool)))
            )
            return yield* putFile(url, path, spool)
          })
        )
      })

    /**
     * A file PUT with the size the file has when it starts; a file that grows or shrinks while it is sent fails the
     * upload with StorageError (not the server's fault, so not retried). A failed PUT is sent again from the start.
     */
    const putFile = (url: string, path: string, file: string) =>
      Effect.gen(function*() {
        const put = HttpClientRequest.put(url, { acceptJson: true })
        const info = yield* fs.stat(file).pipe(Effect.mapError(LocalArtifacts.storageError(file)))
        const contentLength = Number(info.size)
        const changed = new StorageError({
          path: file,
          reason: `the file changed while it was sent (${contentLength} bytes when it started)`
        })
        const sourceError = yield* Ref.make<Option.Option<StorageError>>(Option.none())
        const body = Stream.suspend(() => {
          let sent = 0
          return fs.stream(file).pipe(
            Stream.mapError(LocalArtifacts.storageError(file)),
            Stream.mapChunksEffect((chunks) => {
              sent += Chunk.reduce(chunks, 0, (n, c) => n + c.length)
              return sent > contentLength ? Effect.fail(changed) : Effect.succeed(chunks)
            }),
            Stream.concat(Stream.suspend(() => (sent === contentLength ? Stream.empty : Stream.fail(changed)))),
            Stream.tapError((e) => Ref.set(sourceError, Option.some(e)))
          )
        })
        const once = Effect.gen(function*() {
          yield* Ref.set(sourceError, Option.none())
          // (an empty body goes as bytes: the platform writes no Content-Length of 0 for a stream)
          const request = contentLength === 0
            ? HttpClientRequest.bodyUint8Array(put, new Uint8Array(0), "application/octet-stream")
            : HttpClientRequest.bodyStream(put, body, { contentType: "application/octet-stream", contentLength })
          const exit = yield* Effect.either(attempt(request, { entity: "artifact", key: path }, readText, { timeout: false }))
          if (Either.isRight(exit)) return exit.right
          const failed = yield* Ref.get(sourceError)
          if (Option.isSome(failed)) return yield* Effect.fail(failed.value)
          return yield* exit.left
        })
        const text = yield* withRetries(once).pipe(Effect.catchIf(isDomain, unexpected))
        // a 2xx that is not MLflow's `{}` (a proxy's sign-in page) did not store the artifact
        yield* decode(put, Acknowledged, text)
      })

    const proxyDownload = (location: ProxyLocation, path: string) =>
      Stream.unwrap(
        Effect.gen(function*() {
          const request = HttpClientRequest.get(proxyUrl(location, path))
          const response = yield* withRetries(
            attempt(request, { entity: "artifact", key: path }, Effect.succeed, { missingArtifact: true })
          ).pipe(Effect.catchTag("AlreadyExists", unexpected))
          return response.stream.pipe(
            Stream.mapError((e) => new TransportError({ operation: operationOf(request), reason: describeHttpError(e) }))
          )
        })
      )

    const proxyRead = (location: ProxyLocation, path: string) => {
      // the body is read within the attempt: one cut short is sent for again, which a stream cannot be
      const read = (response: HttpClientResponse.HttpClientResponse) =>
        Effect.map(response.arrayBuffer, (buffer) => new Uint8Array(buffer))
      return withRetries(
        attempt(HttpClientRequest.get(proxyUrl(location, path)), { entity: "artifact", key: path }, read, {
          missingArtifact: true
        })
      ).pipe(Effect.catchTag("AlreadyExists", unexpected))
    }

    const proxyList = (location: ProxyLocation, dir: string | undefined) =>
      Effect.gen(function*() {
        const listed = [...location.root, ...(dir === undefined ? [] : dir.split("/"))].join("/")
        const request = HttpClientRequest.get(`${location.base}/api/2.0/mlflow-artifacts/artifacts`, {
          urlParams: { path: listed },
          acceptJson: true
        })
        const r = yield* call(request, Wire.ListArtifactsResponse, { entity: "artifact", key: dir ?? "" }).pipe(
          Effect.catchTag("NotFound", () => Effect.succeed({ files: [] }))
        )
        const prefix = dir === undefined ? "" : `${dir}/`
        return r.files.map((f) => Wire.toFileInfo(f, prefix + f.path))
      })

    const proxyRemove = (location: ProxyLocation, path: string) =>
      call(HttpClientRequest.del(proxyUrl(location, path), { acceptJson: true }), Acknowledged, {
        entity: "artifact",
        key: path
      }).pipe(Effect.catchTag("NotFound", () => Effect.void), Effect.asVoid)

    /** The tracking server's artifact proxy as a store. */
    const proxyStore = (root: string, location: ProxyLocation): ArtifactStore.ArtifactStore =>
      ArtifactStore.checked({
        root,
        upload: (path, source) => proxyUpload(location, path, source),
        download: (path) => proxyDownload(location, path),
        read: (path) => proxyRead(location, path),
        list: (path) => proxyList(location, path),
        remove: (path) => proxyRemove(location, path)
      })

    const stores = yield* ArtifactStore.makeResolver({
      ...options.artifactStores,
      proxy: (uri) =>
        resolveArtifactUri(uri, base).pipe(
          Either.flatMap((location) =>
            location._tag === "Proxy"
              ? Either.right(proxyStore(uri, location))
              : Either.left(new InvalidInput({ kind: "ArtifactUri", input: uri, reason: "not an mlflow-artifacts: URI" }))
          )
        )
    })
    const locate = (run: ArtifactRoot) => stores.resolve(run.artifactUri)

    const uploadArtifact = <E = never>(run: ArtifactRoot, path: string, source: ArtifactSource<E>) =>
      Effect.gen(function*() {
        yield* validateArtifactPath(path)
        const store = yield* locate(run)
        return yield* store.upload(path, source)
      }).pipe(Effect.withSpan("Mlflow.uploadArtifact", { attributes: { path } }))

    const downloadArtifact = (run: ArtifactRoot, path: string) =>
      Stream.unwrap(
        Effect.gen(function*() {
          yield* validateArtifactPath(path)
          const store = yield* locate(run)
          return store.download(path)
        })
      ).pipe(Stream.withSpan("Mlflow.downloadArtifact", { attributes: { path } }))

    const readArtifact = (run: ArtifactRoot, path: string) =>
      Effect.gen(function*() {
        yield* validateArtifactPath(path)
        const store = yield* locate(run)
        return yield* store.read(path)
      }).pipe(Effect.withSpan("Mlflow.readArtifact", { attributes: { path } }))

    const listArtifacts = (run: ArtifactRoot, path?: string) =>
      Effect.gen(function*() {
        const dir = path === undefined || path === "" ? "" : yield* validateArtifactPath(path.replace(/\/+$/, ""))
        const store = yield* locate(run)
        return yield* store.list(dir === "" ? undefined : dir)
      }).pipe(Effect.withSpan("Mlflow.listArtifacts", { attributes: { path: path ?? "" } }))

    return Mlflow.of({
      getExperiment,
      getExperimentByName,
      createExperiment,
      deleteExperiment: experimentAction("delete"),
      restoreExperiment: experimentAction("restore"),
      searchExperiments,
      createRun,
      getRun,
      searchRuns,
      setTag,
      setTags,
      deleteRun: runAction("delete"),
      restoreRun: runAction("restore"),
      updateRun,
      uploadArtifact,
      downloadArtifact,
      readArtifact,
      listArtifacts
    })
  })

/** Reads a reply's body to the end (an artifact PUT answers `{}`, checked once the retries are over). */
const readText = (response: HttpClientResponse.HttpClientResponse) => response.text

/** MLflow's answer to an action without a result (`{}`): any JSON object, so that added fields are accepted. */
const Acknowledged = Schema.Record({ key: Schema.String, value: Schema.Unknown })

/** A walk over pages: the first request has no token; the walk ends on an absent or empty token. */
const pages = <A, E>(
  page: (token: Option.Option<string>) => Effect.Effect<readonly [ReadonlyArray<A>, string | undefined], E>
): Stream.Stream<A, E> =>
  Stream.paginateChunkEffect(Option.none<string>(), (token) =>
    Effect.map(page(token), ([items, next]) => {
      const more = next !== undefined && next !== "" &&
        // a server that hands back the token it was given with nothing on the page would loop forever
        !(items.length === 0 && Option.contains(token, next))
      return [Chunk.fromIterable(items), more ? Option.some(Option.some(next)) : Option.none()] as const
    }))

/** A domain answer that makes no sense for the call (AlreadyExists from a search): reported as the API error it was. */
const unexpected = (e: NotFound | AlreadyExists) =>
  Effect.fail(
    e._tag === "NotFound"
      ? new MlflowApiError({ status: 404, errorCode: "RESOURCE_DOES_NOT_EXIST", detail: e.message })
      : new MlflowApiError({ status: 400, errorCode: "RESOURCE_ALREADY_EXISTS", detail: e.message })
  )

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
> =>
  Layer.effect(Mlflow, Effect.flatMap(settings, make))

// ---------------------------------------------------------------------------------------------------------------
// A Node HttpClient with MLflow's TLS settings
// ---------------------------------------------------------------------------------------------------------------

/** The TLS options of an undici dispatcher for the settings (CA bundle, client certificate, insecure mode). */
export const tlsOptions = (
  options: Pick<MlflowHttpConfig, "insecureTls" | "serverCertPath" | "clientCertPath">
): Effect.Effect<Undici.Agent.Options, StorageError> =>
  Effect.gen(function*() {
    const read = (path: string) =>
      Effect.try({
        try: () => NodeFs.readFileSync(path),
        catch: (e) => new StorageError({ path, reason: describeCause(e) })
      })
    const ca = options.serverCertPath === undefined ? undefined : yield* read(options.serverCertPath)
    // MLflow passes the client certificate path to requests as a single PEM holding both certificate and key
    const pem = options.clientCertPath === undefined ? undefined : yield* read(options.clientCertPath)
    return {
      connect: {
        ...(options.insecureTls === true ? { rejectUnauthorized: false } : {}),
        ...(ca === undefined ? {} : { ca }),
        ...(pem === undefined ? {} : { cert: pem, key: pem })
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
        Effect.flatMap(tlsOptions(options), (opts) =>
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
