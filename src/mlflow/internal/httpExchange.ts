/**
 * One exchange with an MLflow server: the request, its timeout and retries as MLflow's Python client makes them, the
 * mapping of the reply by its `error_code`, and the decoding of its body.
 *
 * @internal
 */
import * as HttpClient from "@effect/platform/HttpClient"
import type { HttpClientError } from "@effect/platform/HttpClientError"
import * as HttpClientRequest from "@effect/platform/HttpClientRequest"
import type * as HttpClientResponse from "@effect/platform/HttpClientResponse"
import {
  Cause,
  Chunk,
  Clock,
  Context,
  Data,
  DefaultServices,
  Duration,
  Effect,
  Exit,
  FiberId,
  Option,
  ParseResult,
  Random,
  Schema,
  Scope,
  Stream
} from "effect"
import { AlreadyExists, DecodeError, MlflowApiError, NotFound, TransportError } from "../../errors.js"
import * as Wire from "../wire.js"

/** What a NotFound or AlreadyExists reply is about. */
export interface Subject {
  readonly entity: string
  readonly key: string
}

/** A failure worth another attempt: a retryable status or a broken exchange. */
export class Retryable extends Data.TaggedError("Retryable")<{
  readonly error: MlflowApiError | TransportError
  readonly retryAfter: Option.Option<Duration.Duration>
}> {}

export type Final = NotFound | AlreadyExists | MlflowApiError | TransportError

export const isRetryable = (e: unknown): e is Retryable => e instanceof Retryable

export const isDomain = (e: unknown): e is NotFound | AlreadyExists =>
  e instanceof NotFound || e instanceof AlreadyExists

/** Statuses MLflow's Python client retries (its `status_forcelist`). */
export const RETRY_STATUSES: ReadonlySet<number> = new Set([408, 429, 500, 502, 503, 504])

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

/** A short one-line text of a non-JSON error page (Flask's HTML pages, a proxy's error page). */
const summarize = (text: string): string => {
  const title = /<title>([^<]*)<\/title>/i.exec(text)?.[1]
  const plain = (title ?? text).replace(/<[^>]*>/g, " ").replace(/\s+/g, " ").trim()
  return plain.length > 200 ? `${plain.slice(0, 197)}...` : plain
}

export const describeCause = (e: unknown): string => {
  if (e instanceof Error) {
    const code = (e as { code?: unknown }).code
    const inner = e.cause instanceof Error ? `: ${e.cause.message}` : ""
    return `${e.message}${typeof code === "string" && !e.message.includes(code) ? ` (${code})` : ""}${inner}`
  }
  return String(e)
}

export const describeHttpError = (e: HttpClientError): string =>
  e.cause === undefined ? `${e.reason} error` : describeCause(e.cause)

/** The decoding issues on one line: `experiment.experiment_id: Expected string, actual 7`. */
const describeParse = (e: ParseResult.ParseError): string =>
  ParseResult.ArrayFormatter.formatErrorSync(e)
    .map((issue) =>
      `${issue.path.length === 0 ? "reply" : issue.path.join(".")}: ${issue.message.replace(/\s+/g, " ")}`
    )
    .join("; ")

/** Reads a reply's body to the end (an artifact PUT answers `{}`, checked once the retries are over). */
export const readText = (response: HttpClientResponse.HttpClientResponse) => response.text

/** MLflow's answer to an action without a result (`{}`): any JSON object, so that added fields are accepted. */
export const Acknowledged = Schema.Record({ key: Schema.String, value: Schema.Unknown })

/** A domain answer that makes no sense for the call (AlreadyExists from a search): reported as the API error it was. */
export const unexpected = (e: NotFound | AlreadyExists) =>
  Effect.fail(
    e._tag === "NotFound"
      ? new MlflowApiError({ status: 404, errorCode: "RESOURCE_DOES_NOT_EXIST", detail: e.message })
      : new MlflowApiError({ status: 400, errorCode: "RESOURCE_ALREADY_EXISTS", detail: e.message })
  )

/** A walk over pages: the first request has no token; the walk ends on an absent or empty token. */
export const pages = <A, E>(
  page: (token: Option.Option<string>) => Effect.Effect<readonly [ReadonlyArray<A>, string | undefined], E>
): Stream.Stream<A, E> =>
  Stream.paginateChunkEffect(Option.none<string>(), (token) =>
    Effect.map(page(token), ([items, next]) => {
      const more = next !== undefined && next !== "" &&
        // a server that hands back the token it was given with nothing on the page would loop forever
        !(items.length === 0 && Option.contains(token, next))
      return [Chunk.fromIterable(items), more ? Option.some(Option.some(next)) : Option.none()] as const
    }))

/** The Effect runtime's own clock: a timer on it is a plain `setTimeout`. */
const liveClock = Context.get(DefaultServices.liveServices, Clock.Clock)

/**
 * Calls `fire` once `duration` has passed on `clock`, unless the returned function is called first. On the live
 * clock this is a timer; on another (a `TestClock`) a sleep in a fiber of its own, so that tests move it.
 */
const schedule = (clock: Clock.Clock, duration: Duration.Duration, fire: () => void): () => void => {
  if (clock === liveClock) {
    const timer = setTimeout(fire, Duration.toMillis(duration))
    return () => clearTimeout(timer)
  }
  const fiber = Effect.runFork(Effect.andThen(clock.sleep(duration), Effect.sync(fire)))
  return () => fiber.unsafeInterruptAsFork(FiberId.none)
}

export interface ExchangeSettings {
  /** The tracking server's base URL, without a trailing slash. */
  readonly base: string
  readonly timeout: Duration.Duration
  readonly maxRetries: number
  readonly backoffFactor: number
  readonly backoffJitter: number
  readonly backoffMax: number
}

export interface AttemptOptions {
  /** A 500 wrapping ENOENT means NotFound (an artifact GET on 2.x). */
  readonly missingArtifact?: boolean
  /** Whether the request timeout applies (not to an upload, whose time grows with its size). */
  readonly timeout?: boolean
}

/** The exchanges of one service instance over its client. */
export const make = (httpClient: HttpClient.HttpClient, settings: ExchangeSettings) => {
  const { backoffFactor, backoffJitter, backoffMax, base, maxRetries, timeout } = settings
  // each request carries its own abort controller, aborted when the request's scope closes: the timeout closes it
  const client = HttpClient.withScope(httpClient)

  // urllib3's backoff, as MLflow's client configures it: the first retry at once, then factor × 2^(n-1) s plus
  // up to `jitter` s, at most `backoffMax`; a Retry-After header replaces the computed wait.
  const backoff = (e: Retryable, n: number): Effect.Effect<Duration.Duration> => {
    if (Option.isSome(e.retryAfter)) return Effect.succeed(e.retryAfter.value)
    if (n === 0) return Effect.succeed(Duration.zero)
    return Effect.map(
      Random.next,
      (r) =>
        Duration.seconds(Math.min(backoffMax, backoffFactor * 2 ** n + (backoffJitter > 0 ? r * backoffJitter : 0)))
    )
  }

  /**
   * Runs `attempt` again after each retryable failure, `maxRetries` times at most, waiting the backoff on the
   * Effect clock; a request that succeeds at once costs nothing more than the attempt.
   */
  const withRetries = <A, X>(
    attempt: Effect.Effect<A, X | Retryable>
  ): Effect.Effect<A, X | MlflowApiError | TransportError> => {
    const retry = (failure: X | Retryable, n: number): Effect.Effect<A, X | MlflowApiError | TransportError> => {
      if (!isRetryable(failure)) return Effect.fail(failure)
      if (n >= maxRetries) return Effect.fail(failure.error)
      return backoff(failure, n).pipe(
        Effect.flatMap(Effect.sleep),
        Effect.zipRight(attempt),
        Effect.catchAll((next) => retry(next, n + 1))
      )
    }
    return Effect.catchAll(attempt, (failure) => retry(failure, 0))
  }

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

  /**
   * One attempt: the request, its reply's status, and (for `read`) its body, within the request timeout on the
   * Effect clock. The timeout aborts the request through the client's abort signal, so the exchange runs in the
   * caller's fiber (a race would run it in a fiber of its own, which costs more than the rest of a call).
   */
  const attempt = <A>(
    request: HttpClientRequest.HttpClientRequest,
    subject: Subject,
    read: (response: HttpClientResponse.HttpClientResponse) => Effect.Effect<A, HttpClientError>,
    opts: AttemptOptions = {}
  ): Effect.Effect<A, Final | Retryable> =>
    Effect.gen(function*() {
      const scope = yield* Scope.make()
      let timedOut = false
      const cancel = opts.timeout === false ? () => {} : schedule(yield* Effect.clock, timeout, () => {
        timedOut = true
        Effect.runFork(Scope.close(scope, Exit.void))
      })
      return yield* client.execute(request).pipe(
        Effect.flatMap((response): Effect.Effect<A, HttpClientError | Final | Retryable> =>
          response.status >= 200 && response.status < 300
            ? read(response)
            : failure(response, subject, opts.missingArtifact ?? false)
        ),
        Effect.catchIf(
          (e): e is HttpClientError => e._tag === "RequestError" || e._tag === "ResponseError",
          (e) =>
            Effect.fail(
              transport(request, timedOut ? `no reply within ${Duration.format(timeout)}` : describeHttpError(e))
            )
        ),
        Effect.provideService(Scope.Scope, scope),
        Effect.onExit((exit) => {
          cancel()
          // an interrupted call aborts its request, as the client does for a request without a scope
          return Exit.isFailure(exit) && Cause.isInterrupted(exit.cause) ? Scope.close(scope, exit) : Effect.void
        })
      )
    })

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

  /** A JSON call: retried, then its body decoded with `schema`. */
  const exchange = <A, I>(
    request: HttpClientRequest.HttpClientRequest,
    schema: Schema.Schema<A, I>,
    subject: Subject
  ): Effect.Effect<A, Final | DecodeError> =>
    withRetries(attempt(request, subject, readText)).pipe(Effect.flatMap((text) => decode(request, schema, text)))

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

  return { attempt, withRetries, decode, call, create, get, post, operationOf } as const
}

export type Exchange = ReturnType<typeof make>
