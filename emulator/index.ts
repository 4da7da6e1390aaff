/**
 * A test MLflow tracking server: MLflow's REST API and artifact proxy over node:http, backed by MlflowMemory, answering
 * like the recorded servers (`../shared/mlflow-wire`), with HTTP-level fault hooks and a request log.
 */
import { Data, Effect, Either, Option, type Scope } from "effect"
import * as Http from "node:http"
import type { AddressInfo } from "node:net"
import { AlreadyExists, InvalidInput, MlflowApiError, NotFound } from "../src/errors.js"
import type { MlflowFailure } from "../src/errors.js"
import * as Filter from "../src/mlflow/Filter.js"
import { type Experiment, type Run, type ViewType, validateArtifactPath, validateTagKey } from "../src/mlflow/Mlflow.js"
import {
  decodePageToken,
  encodePageToken,
  MlflowMemory,
  type MlflowMemoryHandle,
  parseOrderBy
} from "../src/mlflow/MlflowMemory.js"
import * as Wire from "../src/mlflow/wire.js"

// ---------------------------------------------------------------------------------------------------------------
// Options and the emulator's handle
// ---------------------------------------------------------------------------------------------------------------

/**
 * Which recorded server to answer like. `2.17-sqlite` (the default) is the baseline, MLflow 2.17.2 under gunicorn;
 * `3.x-sqlite` adds 3.x's differences: `outputs` on runs, 404 for a missing artifact, `sqlstate`/`error_class` in
 * errors, paged metric history, 400 for a non-numeric experiment id, no trailing empty runs/search page, and, as
 * uvicorn does, an artifact PUT sent chunked (no Content-Length) stored as an empty file with a `200 {}`.
 * Both flavors refuse entity prefixes other than `attribute`, `tag` and `tags` in experiment searches
 * (`attributes.name` is a 400 there), while run searches also take `attributes`, `attr` and `run`.
 */
export type Flavor = "2.17-sqlite" | "3.x-sqlite"

/**
 * The tracking store behind the server, for the behaviour that follows the store rather than the version.
 * `file` (`mlflow server --backend-store-uri /dir`) answers get-by-name through its own unescaped filter
 * `name = '<name>'`, so a name holding a lone `'` is a 400 INVALID_PARAMETER_VALUE there (a search whose filter
 * quotes the name with `"` still finds it); experiments/create checks the name the same way first, so such an
 * experiment cannot be created at all.
 */
export type Backend = "sqlite" | "file"

export interface EmulatorOptions {
  readonly flavor?: Flavor | undefined
  /** The store's behaviour (default `sqlite`, whatever the flavor's name says). */
  readonly backend?: Backend | undefined
  /** Overrides the flavor's trailing empty runs/search page (on for 2.17 sqlite). */
  readonly trailingEmptyPage?: boolean | undefined
  /**
   * The server's `--default-artifact-root` (default: its proxy, `mlflow-artifacts:`). An object store URI
   * (`s3://bucket/prefix`) answers as a server run with `--no-serve-artifacts`: runs point there, and clients read
   * and write the store themselves.
   */
  readonly artifactRoot?: string | undefined
}

export interface RequestRecord {
  readonly method: string
  /** The path with its query string, as received. */
  readonly path: string
  readonly headers: Readonly<Record<string, string | ReadonlyArray<string> | undefined>>
  /** The status answered (0 when the connection was reset or the reply cut short). */
  status: number
  /** The parsed body of a JSON request (artifact bodies are not kept). */
  json?: unknown
}

export interface FaultMatch {
  readonly method?: string | undefined
  /** A substring of the path (with query), or a pattern. */
  readonly path?: string | RegExp | undefined
}

/** One HTTP-level fault, applied to the next `times` (default 1) matching requests. */
export type HttpFault =
  & { readonly times?: number | undefined; readonly match?: FaultMatch | undefined }
  & (
    | {
      /** Answer with this status instead; the body is MLflow's error JSON unless `body` is given. */
      readonly status: number
      readonly errorCode?: string | undefined
      readonly body?: string | undefined
      readonly contentType?: string | undefined
      readonly retryAfter?: number | string | undefined
    }
    /** Close the connection without an answer. */
    | { readonly reset: true }
    /** Answer normally but cut the body short (after half of it) and close the connection. */
    | { readonly truncate: true }
    /** Wait this long (real time) before handling the request normally. */
    | { readonly delayMs: number }
  )

export interface Emulator {
  /** The base URL, to use as MLFLOW_TRACKING_URI. */
  readonly url: string
  readonly flavor: Flavor
  readonly backend: Backend
  /** The store behind the server. */
  readonly handle: MlflowMemoryHandle.Service
  /** Every request so far (oldest first). */
  readonly requests: () => ReadonlyArray<RequestRecord>
  /** How many requests so far matched (all without a match). */
  readonly count: (match?: FaultMatch) => number
  readonly clearRequests: () => void
  /** Queues a fault; faults apply in the order they were queued. */
  readonly fault: (fault: HttpFault) => void
  readonly clearFaults: () => void
}

// ---------------------------------------------------------------------------------------------------------------
// Replies
// ---------------------------------------------------------------------------------------------------------------

interface Reply {
  readonly status: number
  readonly headers: Readonly<Record<string, string>>
  /** A string or bytes sent with Content-Length, or chunks sent chunked (no Content-Length). */
  readonly body: string | Uint8Array | { readonly chunks: ReadonlyArray<Uint8Array> }
}

const HTML = "text/html; charset=utf-8"

const jsonReply = (value: unknown): Reply => ({
  status: 200,
  headers: { "content-type": "application/json" },
  body: JSON.stringify(value, null, 2)
})

/** Python's `json.dumps` layout: `", "` and `": "` separators, non-ASCII as `\uXXXX`. */
export const pythonJson = (value: unknown): string => {
  if (value === null || typeof value !== "object") {
    return JSON.stringify(value).replace(/[\u007f-\uffff]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`)
  }
  if (Array.isArray(value)) return `[${value.map(pythonJson).join(", ")}]`
  return `{${Object.entries(value).map(([k, v]) => `${pythonJson(k)}: ${pythonJson(v)}`).join(", ")}}`
}

const htmlPage = (status: number, title: string, text: string): Reply => ({
  status,
  headers: { "content-type": HTML },
  body: `<!doctype html>\n<html lang=en>\n<title>${status} ${title}</title>\n<h1>${title}</h1>\n<p>${text}</p>\n`
})

const notFoundPage = htmlPage(
  404,
  "Not Found",
  "The requested URL was not found on the server. If you entered the URL manually please check your spelling and try again."
)
const methodNotAllowed = (allow: string): Reply => {
  const page = htmlPage(405, "Method Not Allowed", "The method is not allowed for the requested URL.")
  return { ...page, headers: { ...page.headers, allow } }
}
const internalErrorPage = htmlPage(
  500,
  "Internal Server Error",
  "The server encountered an internal error and was unable to complete your request. Either the server is overloaded or there is an error in the application."
)

const STATUS_OF_CODE: Readonly<Record<string, number>> = {
  INVALID_PARAMETER_VALUE: 400,
  RESOURCE_ALREADY_EXISTS: 400,
  BAD_REQUEST: 400,
  RESOURCE_DOES_NOT_EXIST: 404,
  INTERNAL_ERROR: 500
}

/** An MLflow error reply, failing the handler's Effect so that the route code reads straight. */
class ApiError extends Data.TaggedError("ApiError")<{
  readonly code: string
  readonly message: string
  readonly status: number
}> {}

const apiError = (code: string, message: string, status = STATUS_OF_CODE[code] ?? 500) =>
  new ApiError({ code, message, status })

/** A reply other than an MLflow error (an HTML page), failing the handler's Effect. */
class Page extends Data.TaggedError("Page")<{ readonly reply: Reply }> {}

const invalid = (message: string) => apiError("INVALID_PARAMETER_VALUE", message)
const missing = (name: string) =>
  invalid(`Missing value for required parameter '${name}'. See the API docs for more information about request parameters.`)
const badValue = (name: string, value: unknown) =>
  invalid(
    `Invalid value ${JSON.stringify(value)} for parameter '${name}' supplied:  Hint: Value was of type '${pyType(value)}'. ` +
      "See the API docs for more information about request parameters."
  )
const pyType = (v: unknown): string =>
  Array.isArray(v)
    ? "list"
    : typeof v === "number"
    ? (Number.isInteger(v) ? "int" : "float")
    : typeof v === "string"
    ? "str"
    : typeof v === "boolean"
    ? "bool"
    : v === null
    ? "NoneType"
    : "dict"

// ---------------------------------------------------------------------------------------------------------------
// Request parameters (JSON body for POST, query for GET) with MLflow's checks
// ---------------------------------------------------------------------------------------------------------------

type Params = Readonly<Record<string, unknown>>

const reqString = (p: Params, name: string): Either.Either<string, ApiError> => {
  const v = p[name]
  if (v === undefined || v === null || v === "") return Either.left(missing(name))
  return typeof v === "string" ? Either.right(v) : Either.left(badValue(name, v))
}

const optString = (p: Params, name: string): Either.Either<string | undefined, ApiError> => {
  const v = p[name]
  if (v === undefined || v === null) return Either.right(undefined)
  return typeof v === "string" ? Either.right(v) : Either.left(badValue(name, v))
}

/** An int64 as protobuf's JSON reader takes it: a whole number or a decimal string; anything else reads as absent. */
const intLike = (v: unknown): number | undefined => {
  if (typeof v === "number" && Number.isInteger(v)) return v
  if (typeof v === "string" && /^-?\d+$/.test(v.trim())) return Number(v)
  return undefined
}

const stringList = (p: Params, name: string): Either.Either<ReadonlyArray<string>, ApiError> => {
  const v = p[name]
  if (v === undefined || v === null) return Either.right([])
  if (typeof v === "string") return Either.right([v])
  if (!Array.isArray(v) || v.some((s) => typeof s !== "string")) return Either.left(badValue(name, v))
  return Either.right(v as ReadonlyArray<string>)
}

interface KeyValue {
  readonly key: string
  readonly value: string
}

const keyValues = (p: Params, name: string): Either.Either<ReadonlyArray<KeyValue>, ApiError> => {
  const v = p[name]
  if (v === undefined || v === null) return Either.right([])
  if (!Array.isArray(v)) return Either.left(badValue(name, v))
  const out: Array<KeyValue> = []
  for (const item of v as ReadonlyArray<unknown>) {
    if (typeof item !== "object" || item === null) return Either.left(badValue(name, v))
    const { key, value } = item as { key?: unknown; value?: unknown }
    if (typeof key !== "string") return Either.left(badValue(`${name}.key`, key))
    out.push({ key, value: value === undefined || value === null ? "" : String(value) })
  }
  return Either.right(out)
}

/**
 * Protobuf's JSON reader stops at the first field it cannot convert (an unknown enum name): that field and the
 * ones after it keep their defaults. The recorded servers show it for `run_view_type` and `status`.
 */
const stopAtBadEnum = (p: Params, enums: Readonly<Record<string, ReadonlyArray<string>>>): Params => {
  const out: Record<string, unknown> = {}
  for (const [key, value] of Object.entries(p)) {
    const values = enums[key]
    if (values !== undefined) {
      const index = typeof value === "number" ? value - 1 : typeof value === "string" ? values.indexOf(value) : -1
      if (!Number.isInteger(index) || index < 0 || index >= values.length) break
      out[key] = values[index]
      continue
    }
    out[key] = value
  }
  return out
}

const VIEW_TYPES: ReadonlyArray<ViewType> = ["ACTIVE_ONLY", "DELETED_ONLY", "ALL"]
const RUN_STATUSES = ["RUNNING", "SCHEDULED", "FINISHED", "FAILED", "KILLED"] as const

// ---------------------------------------------------------------------------------------------------------------
// MLflow's filter grammar (what sqlparse accepts), for the filters the emulator answers itself
// ---------------------------------------------------------------------------------------------------------------

type Comparator = "=" | "!=" | "LIKE" | "ILIKE" | "IN" | "NOT IN"

interface ParsedClause {
  readonly kind: "tag" | "attribute"
  readonly key: string
  readonly comparator: Comparator
  readonly value: string | ReadonlyArray<string>
}

/** Which search a filter is for: MLflow parses the two with different classes (SearchUtils, SearchExperimentsUtils). */
export type FilterTarget = "runs" | "experiments"

const FILTER_ATTRIBUTES: Readonly<Record<FilterTarget, ReadonlySet<string>>> = {
  runs: new Set(["run_id", "run_name", "status", "user_id", "artifact_uri", "start_time", "end_time"]),
  experiments: new Set(["name", "creation_time", "last_update_time"])
}

const TAG_PREFIXES = new Set(["tags", "tag"])
const RUN_ATTRIBUTE_PREFIXES = new Set(["attributes", "attribute", "attr", "run"])
/** SearchExperimentsUtils._get_identifier's `valid_entity_types`, in the order its message prints them. */
const EXPERIMENT_PREFIXES = ["attribute", "tag", "tags"] as const

/** The kind of clause an entity prefix makes in that search, or the message of the 400 for an unknown prefix. */
const entityKind = (target: FilterTarget, prefix: string): Either.Either<"tag" | "attribute", string> => {
  if (target === "experiments") {
    return (EXPERIMENT_PREFIXES as ReadonlyArray<string>).includes(prefix)
      ? Either.right(TAG_PREFIXES.has(prefix) ? "tag" : "attribute")
      : Either.left(`Invalid entity type '${prefix}'. Valid entity types are (${
        EXPERIMENT_PREFIXES.map((e) => `'${e}'`).join(", ")
      })`)
  }
  if (TAG_PREFIXES.has(prefix)) return Either.right("tag")
  if (RUN_ATTRIBUTE_PREFIXES.has(prefix)) return Either.right("attribute")
  return Either.left(`Invalid entity type '${prefix}'. Valid values are ['metric', 'parameter', 'tag', 'attribute']`)
}

const QUOTED = /^(?:'((?:''|\\'|[^'])*)'|"((?:""|\\"|[^"])*)")/

/** Parses the filter of a run or an experiment search into clauses, or the 400 the server gives; `""` is no clause. */
export const parseFilter = (
  text: string,
  target: FilterTarget
): Either.Either<ReadonlyArray<ParsedClause>, ApiError> => {
  const attributes = FILTER_ATTRIBUTES[target]
  const clauses: Array<ParsedClause> = []
  let rest = text.trim()
  const fail = (message: string) => Either.left(invalid(message))
  while (rest !== "") {
    // identifier: [prefix.]key, the key bare, in backticks or in double quotes
    const ident = /^(?:([A-Za-z_]+)\.)?(`[^`]*`|"[^"]*"|[A-Za-z0-9_.]+)/.exec(rest)
    if (ident === null) return fail(`Invalid clause(s) in filter string: '${rest}'`)
    const prefix = ident[1]
    const rawKey = ident[2]!
    rest = rest.slice(ident[0].length)
    if (rest !== "" && !/^\s|^[=!<>]/.test(rest)) {
      return fail(`Invalid comparison clause. Expected 'Identifier' found '${ident[0]}${rest.split(/\s/)[0]}'`)
    }
    const key = /^[`"]/.test(rawKey) ? rawKey.slice(1, -1) : rawKey
    // the entity is checked before the key (both classes' _get_identifier)
    const entity = prefix === undefined ? Either.right("attribute" as const) : entityKind(target, prefix)
    if (Either.isLeft(entity)) return fail(entity.left)
    const kind = entity.right
    if (kind === "attribute" && !attributes.has(key)) {
      return fail(`Invalid attribute key '${key}' specified. Valid keys are '{${[...attributes].map((a) => `'${a}'`).join(", ")}}'`)
    }
    rest = rest.trimStart()
    const op = /^(==|!=|=|NOT\s+IN\b|ILIKE\b|LIKE\b|IN\b|IS\b|<=|>=|<|>)/i.exec(rest)
    if (op === null) return fail(`Invalid clause(s) in filter string: '${rest}'`)
    const comparator = op[1]!.toUpperCase().replace(/\s+/, " ")
    if (comparator === "==" || comparator === "IS" || comparator.startsWith("<") || comparator.startsWith(">")) {
      return fail(`Invalid comparator '${op[1]}' not one of '{'=', 'LIKE', 'ILIKE', '!='}`)
    }
    rest = rest.slice(op[0].length).trimStart()
    let value: string | ReadonlyArray<string>
    if (comparator === "IN" || comparator === "NOT IN") {
      const list = /^\(([^)]*)\)/.exec(rest)
      if (list === null || kind === "tag" || key !== "run_id") {
        return fail(`Expected a quoted string value for ${kind} (e.g. 'my-value'). Got value ${rest}`)
      }
      const items: Array<string> = []
      for (const part of list[1]!.split(",")) {
        const q = QUOTED.exec(part.trim())
        if (q === null) return fail(`Invalid value in list: ${part}`)
        items.push(q[1] ?? q[2] ?? "")
      }
      value = items
      rest = rest.slice(list[0].length)
    } else {
      const q = QUOTED.exec(rest)
      if (q === null) {
        return fail(
          /^[\d.]+/.test(rest)
            ? `Expected a quoted string value for ${kind} (e.g. 'my-value'). Got value ${rest.split(/\s/)[0]}`
            : `Parameter value is either not quoted or unidentified quote types used for string value ${rest.split(/\s/)[0]}. Use either single or double quotes.`
        )
      }
      value = q[1] ?? q[2] ?? ""
      rest = rest.slice(q[0].length)
    }
    clauses.push({ kind, key, comparator: comparator as Comparator, value })
    rest = rest.trimStart()
    if (rest === "") break
    const and = /^AND(\s+|$)/i.exec(rest)
    if (and === null) return fail(`Invalid clause(s) in filter string: '${rest.split(/\s/)[0]}'`)
    rest = rest.slice(and[0].length)
  }
  return Either.right(clauses)
}

/** A single-quoted string as sqlparse lexes it: `''` and `\'` do not close it. */
const SQL_STRING = /^'(?:''|\\'|[^'])*'/

/**
 * The 400 message of a file store's get-by-name for `name`, if any. That store looks the name up with the filter
 * `name = '<name>'`, unescaped (file_store.get_experiment_by_name), so a name that is not one string literal between
 * those quotes fails in SearchExperimentsUtils._process_statement, which lists sqlparse's tokens that are no
 * comparison: `x@it's` gives `name = 'x@it's, '` (the comparison with `s` read as its alias, then the quote left
 * open). Checked against sqlparse, the list is exact when each lone quote is followed by a word of letters, digits
 * and `_` that is no SQL keyword; sqlparse's grouping of other tokens is not modelled, so there the list is close.
 * A name that sqlparse happens to read as several clauses (`a' AND name = 'b`) is refused here, not searched.
 */
export const fileStoreNameRefusal = (name: string): Option.Option<string> => {
  const quoted = `'${name}'`
  const literal = SQL_STRING.exec(quoted)?.[0] ?? quoted
  if (literal.length === quoted.length) return Option.none()
  const tokens: ReadonlyArray<string> =
    quoted.slice(literal.length).match(/\s+|[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*|'(?:''|\\'|[^'])*'|'|[^\s\w']+|\w+/g) ?? []
  const invalid: Array<string> = []
  const lead = tokens[0] !== undefined && /^\s/.test(tokens[0]) ? tokens[0] : ""
  const alias = tokens[lead === "" ? 0 : 1]
  let rest = tokens
  if (alias !== undefined && /^[A-Za-z_]/.test(alias)) {
    // a word after the literal is taken for the comparison's alias, which makes the whole no comparison
    invalid.push(`name = ${literal}${lead}${alias}`)
    rest = tokens.slice(lead === "" ? 1 : 2)
  }
  invalid.push(...rest.filter((t) => !/^\s/.test(t)))
  return Option.some(`Invalid clause(s) in filter string: ${invalid.join(", ")}`)
}

const likeToRegExp = (pattern: string, flags: string): RegExp =>
  new RegExp(
    `^${pattern.replace(/[.*+?^${}()|[\]\\]/g, "\\$&").replace(/%/g, "[\\s\\S]*").replace(/_/g, "[\\s\\S]")}$`,
    flags
  )

const clauseMatches = (clause: ParsedClause, actual: string | undefined): boolean => {
  if (actual === undefined) return false
  switch (clause.comparator) {
    case "=":
      return actual === clause.value
    case "!=":
      return actual !== clause.value
    case "LIKE":
      return likeToRegExp(String(clause.value), "").test(actual)
    case "ILIKE":
      return likeToRegExp(String(clause.value), "i").test(actual)
    case "IN":
      return (clause.value as ReadonlyArray<string>).includes(actual)
    case "NOT IN":
      return !(clause.value as ReadonlyArray<string>).includes(actual)
  }
}

/** The clauses as a `Filter.Filter` when they only use `=` and `!=` (what MlflowMemory evaluates itself). */
const asSimpleFilter = (clauses: ReadonlyArray<ParsedClause>): Option.Option<Filter.Filter> =>
  Option.filter(simpleFilter(clauses), (f) => Either.isRight(Filter.validate(f)))

const simpleFilter = (clauses: ReadonlyArray<ParsedClause>): Option.Option<Filter.Filter> =>
  clauses.every((c) => (c.comparator === "=" || c.comparator === "!=") && typeof c.value === "string")
    ? Option.some(Filter.and(
      ...clauses.map((c) =>
        c.kind === "tag"
          ? Filter.tag(c.key, c.value as string, c.comparator as Filter.Comparator)
          : Filter.attribute(c.key, c.value as string, c.comparator as Filter.Comparator)
      )
    ))
    : Option.none()

const EXPERIMENT_ORDER_ATTRIBUTES = new Set(["name", "experiment_id", "creation_time", "last_update_time"])

const runAttribute = (run: Run, key: string): string | undefined => {
  switch (key) {
    case "run_id":
      return run.info.runId
    case "run_name":
      return run.info.runName
    case "status":
      return run.info.status
    case "user_id":
      return run.info.userId
    case "artifact_uri":
      return run.info.artifactUri
    default:
      return undefined
  }
}

// ---------------------------------------------------------------------------------------------------------------
// The server
// ---------------------------------------------------------------------------------------------------------------

const ARTIFACTS_PREFIX = "/api/2.0/mlflow-artifacts/artifacts"
const DOWNLOAD_CHUNK = 64 * 1024
const MAX_TAG_VALUE = 8000
const MAX_RESULTS = 50000

interface Metric {
  readonly key: string
  readonly value: number
  readonly timestamp: number
  readonly step: number
}

interface RunExtras {
  readonly params: Map<string, string>
  readonly metrics: Array<Metric>
}

/** Route table: path (after the API prefix) → allowed methods. */
const API_ROUTES: Readonly<Record<string, ReadonlyArray<string>>> = {
  "experiments/get": ["GET"],
  "experiments/get-by-name": ["GET"],
  "experiments/create": ["POST"],
  "experiments/delete": ["POST"],
  "experiments/restore": ["POST"],
  "experiments/search": ["GET", "POST"],
  "experiments/set-experiment-tag": ["POST"],
  "experiments/update": ["POST"],
  "runs/create": ["POST"],
  "runs/get": ["GET"],
  "runs/search": ["POST"],
  "runs/set-tag": ["POST"],
  "runs/delete-tag": ["POST"],
  "runs/log-batch": ["POST"],
  "runs/delete": ["POST"],
  "runs/restore": ["POST"],
  "runs/update": ["POST"],
  "metrics/get-history": ["GET"],
  "artifacts/list": ["GET"]
}

const allowHeader = (methods: ReadonlyArray<string>): string =>
  methods.includes("GET") && methods.includes("POST")
    ? "GET, OPTIONS, POST, HEAD"
    : methods.includes("GET")
    ? "GET, OPTIONS, HEAD"
    : "OPTIONS, POST"

const contentTypeOf = (name: string): string => (/\.(txt|toml)$/i.test(name) ? "text/plain" : "application/octet-stream")

/** The location of a run's artifact root under the proxy (`<exp>/<run>/artifacts`). */
const proxyRoot = (artifactUri: string): string =>
  artifactUri.replace(/^mlflow-artifacts:/, "").replace(/^\/+/, "").replace(/\/+$/, "")

/** Starts an emulator on 127.0.0.1 (a free port) for the scope. */
export const startEmulator = (options: EmulatorOptions = {}): Effect.Effect<Emulator, never, Scope.Scope> =>
  Effect.gen(function*() {
    const flavor: Flavor = options.flavor ?? "2.17-sqlite"
    const v3 = flavor === "3.x-sqlite"
    const backend: Backend = options.backend ?? "sqlite"
    const handle = yield* MlflowMemory.make({
      trailingEmptyPage: options.trailingEmptyPage ?? !v3,
      defaultArtifactRoot: options.artifactRoot
    })
    const mlflow = handle.mlflow
    const extras = new Map<string, RunExtras>()
    const extrasOf = (runId: string): RunExtras => {
      let e = extras.get(runId)
      if (e === undefined) {
        e = { params: new Map(), metrics: [] }
        extras.set(runId, e)
      }
      return e
    }
    const log: Array<RequestRecord> = []
    let faults: Array<{ fault: HttpFault; remaining: number }> = []

    // -- errors of the store as MLflow replies ------------------------------------------------------------------

    const notFoundMessage = (e: NotFound): string => {
      switch (e.entity.toLowerCase()) {
        case "experiment":
          return `No Experiment with id=${e.key} exists`
        case "run":
          return `Run with id=${e.key} not found`
        default:
          return `${e.entity} ${e.key} not found`
      }
    }
    const fromStore = (e: NotFound | AlreadyExists | InvalidInput | MlflowFailure | ApiError | Page): ApiError | Page => {
      if (e instanceof ApiError || e instanceof Page) return e
      if (e instanceof NotFound) return apiError("RESOURCE_DOES_NOT_EXIST", notFoundMessage(e))
      if (e instanceof AlreadyExists) {
        return apiError("RESOURCE_ALREADY_EXISTS", `Experiment(name=${e.key}) already exists.`)
      }
      if (e instanceof InvalidInput) return invalid(e.reason === "" ? e.message : `${e.message}`)
      if (e instanceof MlflowApiError) return apiError(e.errorCode, e.detail, e.status)
      return apiError("INTERNAL_ERROR", e.message)
    }
    const errorReply = (e: ApiError): Reply => ({
      status: e.status,
      headers: { "content-type": "application/json" },
      body: pythonJson({
        error_code: e.code,
        message: e.message,
        ...(v3
          ? {
            sqlstate: "KAM00",
            error_class: e.code === "RESOURCE_DOES_NOT_EXIST"
              ? "RESOURCE_NOT_FOUND"
              : e.code === "BAD_REQUEST"
              ? "INVALID_PARAMETER_VALUE"
              : e.code
          }
          : {})
      })
    })

    // -- run rendering with the params and metrics this server keeps beside the store ---------------------------

    const runBody = (run: Run, where: "create" | "read") => {
      const e = extras.get(run.runId)
      const latest = new Map<string, Metric>()
      for (const m of e?.metrics ?? []) {
        const seen = latest.get(m.key)
        if (seen === undefined || m.step > seen.step || (m.step === seen.step && m.timestamp >= seen.timestamp)) {
          latest.set(m.key, m)
        }
      }
      return Wire.runJson(run, {
        params: [...(e?.params ?? [])].map(([key, value]) => ({ key, value })),
        metrics: [...latest.values()],
        inputs: where === "read" || v3,
        outputs: where === "read" && v3
      })
    }

    // -- searches ------------------------------------------------------------------------------------------------

    const window = <A>(items: ReadonlyArray<A>, offset: number, size: number, trailing: boolean) => {
      const page = items.slice(Math.max(0, offset), Math.max(0, offset) + size)
      const next = offset + size
      const more = trailing ? page.length === size : next < items.length
      return { page, token: more ? encodePageToken(next) : undefined }
    }

    const token = (p: Params) =>
      Effect.mapError(
        Effect.flatMap(optString(p, "page_token"), (t) => Effect.map(decodePageToken(t), () => t)),
        (e) => (e instanceof InvalidInput ? invalid(e.reason) : e)
      )

    const searchRuns = (raw: Params) =>
      Effect.gen(function*() {
        const p = stopAtBadEnum(raw, { run_view_type: VIEW_TYPES })
        const experimentIds = yield* stringList(p, "experiment_ids")
        const filterText = (yield* optString(p, "filter")) ?? ""
        const viewType = (p.run_view_type as ViewType | undefined) ?? "ACTIVE_ONLY"
        const orderBy = yield* stringList(p, "order_by")
        const pageToken = yield* token(p)
        const maxRaw = p.max_results
        const maxResults = maxRaw === undefined ? 1000 : intLike(maxRaw) ?? 0
        if (maxResults > MAX_RESULTS) return yield* badValue("max_results", maxRaw)
        if (maxResults <= 0) {
          return yield* invalid(`Invalid value ${maxResults} for parameter 'max_results' supplied. It must be a positive integer`)
        }
        const clauses = yield* parseFilter(filterText, "runs")
        yield* Effect.mapError(parseOrderBy(orderBy), (e) => invalid(e.reason))
        if (experimentIds.length === 0) return {}
        const simple = asSimpleFilter(clauses)
        let runs: ReadonlyArray<Run>
        let next: string | undefined
        if (Option.isSome(simple)) {
          const page = yield* handle.searchRunsPage({
            experimentIds,
            filter: simple.value,
            viewType,
            orderBy,
            pageToken,
            maxResults
          })
          runs = page.runs
          next = page.nextPageToken
        } else {
          // LIKE, ILIKE and IN: the store orders every run, this server filters and pages
          const all = yield* handle.searchRunsPage({ experimentIds, viewType, orderBy, maxResults: MAX_RESULTS })
          const selected = all.runs.filter((run) =>
            clauses.every((c) => clauseMatches(c, c.kind === "tag" ? Option.getOrUndefined(run.tag(c.key)) : runAttribute(run, c.key)))
          )
          const w = window(selected, yield* decodePageToken(pageToken), maxResults, !v3 && options.trailingEmptyPage !== false)
          runs = w.page
          next = w.token
        }
        return {
          ...(runs.length === 0 ? {} : { runs: runs.map((r) => runBody(r, "read")) }),
          ...(next === undefined ? {} : { next_page_token: next })
        }
      })

    const searchExperiments = (p: Params) =>
      Effect.gen(function*() {
        const maxRaw = p.max_results
        const maxResults = intLike(maxRaw) ?? 0
        const viewRaw = p.view_type
        if (viewRaw !== undefined && !VIEW_TYPES.includes(viewRaw as ViewType) && !(typeof viewRaw === "number" && viewRaw >= 1 && viewRaw <= 3)) {
          return yield* badValue("view_type", viewRaw)
        }
        const viewType = typeof viewRaw === "number" ? VIEW_TYPES[viewRaw - 1]! : (viewRaw as ViewType | undefined) ?? "ACTIVE_ONLY"
        if (maxResults <= 0) {
          return yield* invalid(`Invalid value ${maxResults} for parameter 'max_results' supplied. It must be a positive integer`)
        }
        if (maxResults > MAX_RESULTS) {
          return yield* invalid(`Invalid value ${maxResults} for parameter 'max_results' supplied. It must be at most ${MAX_RESULTS}`)
        }
        const filterText = (yield* optString(p, "filter")) ?? ""
        const orderBy = yield* stringList(p, "order_by")
        const pageToken = yield* token(p)
        const clauses = yield* parseFilter(filterText, "experiments")
        const order: Array<{ key: string; ascending: boolean }> = []
        for (const clause of orderBy) {
          const m = /^\s*(?:([A-Za-z_]+)\.)?([A-Za-z_]+)(?:\s+(ASC|DESC))?\s*$/i.exec(clause)
          // order_by goes through the same _get_identifier as the filter: the entity first, then the key
          const entity = m?.[1] === undefined ? Either.right("attribute" as const) : entityKind("experiments", m[1])
          if (Either.isLeft(entity)) return yield* invalid(entity.left)
          if (entity.right === "tag") return yield* invalid("Invalid order_by entity: tag")
          if (m === null || !EXPERIMENT_ORDER_ATTRIBUTES.has(m[2]!)) {
            return yield* invalid(
              `Invalid attribute key '${m?.[2] ?? clause}' specified. Valid keys are '{${[...EXPERIMENT_ORDER_ATTRIBUTES].map((a) => `'${a}'`).join(", ")}}'`
            )
          }
          order.push({ key: m[2]!, ascending: (m[3] ?? "ASC").toUpperCase() === "ASC" })
        }
        const simple = asSimpleFilter(clauses)
        let experiments: ReadonlyArray<Experiment>
        let next: string | undefined
        if (Option.isSome(simple) && order.length === 0) {
          const page = yield* handle.searchExperimentsPage({ filter: simple.value, viewType, pageToken, maxResults })
          experiments = page.experiments
          next = page.nextPageToken
        } else {
          const all = yield* handle.searchExperimentsPage({ viewType, maxResults: MAX_RESULTS })
          const selected = all.experiments.filter((e) =>
            clauses.every((c) => clauseMatches(c, c.kind === "tag" ? Option.getOrUndefined(e.tag(c.key)) : c.key === "name" ? e.name : undefined))
          )
          const value = (e: Experiment, key: string): string | number =>
            key === "name" ? e.name : key === "experiment_id" ? Number(e.experimentId) : key === "creation_time" ? e.creationTime ?? 0 : e.lastUpdateTime ?? 0
          const sorted = [...selected].sort((a, b) => {
            for (const o of order) {
              const va = value(a, o.key)
              const vb = value(b, o.key)
              const c = va < vb ? -1 : va > vb ? 1 : 0
              if (c !== 0) return o.ascending ? c : -c
            }
            return 0
          })
          const w = window(sorted, yield* decodePageToken(pageToken), maxResults, false)
          experiments = w.page
          next = w.token
        }
        return {
          ...(experiments.length === 0 ? {} : { experiments: experiments.map(Wire.experimentJson) }),
          ...(next === undefined ? {} : { next_page_token: next })
        }
      })

    // -- the API routes ------------------------------------------------------------------------------------------

    const runIdOf = (p: Params) => (p.run_id === undefined && p.run_uuid !== undefined ? reqString(p, "run_uuid") : reqString(p, "run_id"))

    const api = (route: string, p: Params): Effect.Effect<unknown, ApiError | Page | NotFound | AlreadyExists | InvalidInput | MlflowFailure> =>
      Effect.gen(function*() {
        switch (route) {
          case "experiments/get": {
            const id = yield* reqString(p, "experiment_id")
            if (v3 && !/^\d+$/.test(id)) return yield* invalid(`Invalid experiment ID '${id}'. Experiment IDs must be numeric.`)
            return { experiment: Wire.experimentJson(yield* mlflow.getExperiment(id)) }
          }
          case "experiments/get-by-name": {
            const name = yield* reqString(p, "experiment_name")
            if (backend === "file") {
              const refusal = fileStoreNameRefusal(name)
              if (Option.isSome(refusal)) return yield* invalid(refusal.value)
            }
            const e = yield* mlflow.getExperimentByName(name).pipe(
              Effect.catchTag("NotFound", () =>
                Effect.fail(apiError("RESOURCE_DOES_NOT_EXIST", `Could not find experiment with name '${name}'`)))
            )
            return { experiment: Wire.experimentJson(e) }
          }
          case "experiments/create": {
            const name = yield* reqString(p, "name")
            if (backend === "file") {
              const refusal = fileStoreNameRefusal(name)
              if (Option.isSome(refusal)) return yield* invalid(refusal.value)
            }
            const tags = yield* keyValues(p, "tags")
            const id = yield* mlflow.createExperiment(name, { tags })
            return { experiment_id: id }
          }
          case "experiments/delete":
            yield* mlflow.deleteExperiment(yield* reqString(p, "experiment_id"))
            return {}
          case "experiments/restore":
            yield* mlflow.restoreExperiment(yield* reqString(p, "experiment_id"))
            return {}
          case "experiments/search":
            return yield* searchExperiments(p)
          case "experiments/set-experiment-tag": {
            const id = yield* reqString(p, "experiment_id")
            const key = yield* reqString(p, "key")
            const value = (yield* optString(p, "value")) ?? ""
            yield* handle.setExperimentTag(id, key, value.slice(0, MAX_TAG_VALUE))
            return {}
          }
          case "experiments/update": {
            const id = yield* reqString(p, "experiment_id")
            const name = yield* optString(p, "new_name")
            if (name !== undefined && name !== "") {
              yield* handle.renameExperiment(id, name).pipe(
                Effect.catchTag("AlreadyExists", () =>
                  Effect.fail(apiError("BAD_REQUEST", "(sqlite3.IntegrityError) UNIQUE constraint failed: experiments.name")))
              )
            }
            return {}
          }
          case "runs/create": {
            const experimentId = yield* optString(p, "experiment_id")
            if (experimentId === undefined || experimentId === "") {
              return yield* apiError("BAD_REQUEST", "(sqlite3.IntegrityError) FOREIGN KEY constraint failed")
            }
            const tags = yield* keyValues(p, "tags")
            const run = yield* mlflow.createRun({
              experimentId,
              // the server does not fill in now(): a run created without start_time starts at 0
              startTime: intLike(p.start_time) ?? 0,
              userId: (yield* optString(p, "user_id")) ?? "",
              runName: yield* optString(p, "run_name"),
              tags: tags.map((t) => ({ key: t.key, value: t.value.slice(0, MAX_TAG_VALUE) }))
            })
            return { run: runBody(run, "create") }
          }
          case "runs/get":
            return { run: runBody(yield* mlflow.getRun(yield* runIdOf(p)), "read") }
          case "runs/search":
            return yield* searchRuns(p)
          case "runs/set-tag": {
            const runId = yield* runIdOf(p)
            const key = yield* reqString(p, "key")
            const value = (yield* optString(p, "value")) ?? ""
            yield* mlflow.getRun(runId)
            yield* Effect.mapError(validateTagKey(key), (e) => invalid(`Invalid value "${key}" for parameter 'key' supplied: ${e.reason}`))
            yield* mlflow.setTag(runId, key, value.slice(0, MAX_TAG_VALUE))
            return {}
          }
          case "runs/delete-tag": {
            const runId = yield* reqString(p, "run_id")
            const key = yield* reqString(p, "key")
            yield* handle.deleteTag(runId, key).pipe(
              Effect.catchIf(
                (e): e is NotFound => e instanceof NotFound && e.entity.toLowerCase() === "tag",
                () => Effect.fail(apiError("RESOURCE_DOES_NOT_EXIST", `No tag with name: ${key} in run with id ${runId}`))
              )
            )
            return {}
          }
          case "runs/log-batch":
            return yield* logBatch(p)
          case "runs/delete":
            yield* mlflow.deleteRun(yield* reqString(p, "run_id"))
            return {}
          case "runs/restore":
            yield* mlflow.restoreRun(yield* reqString(p, "run_id"))
            return {}
          case "runs/update": {
            const q = stopAtBadEnum(p, { status: RUN_STATUSES })
            const runId = yield* runIdOf(q)
            const info = yield* mlflow.updateRun(runId, {
              status: q.status as (typeof RUN_STATUSES)[number] | undefined,
              endTime: intLike(q.end_time),
              runName: yield* optString(q, "run_name")
            })
            return { run_info: Wire.runInfoJson(info) }
          }
          case "metrics/get-history": {
            const runId = yield* runIdOf(p)
            const key = yield* reqString(p, "metric_key")
            yield* mlflow.getRun(runId)
            const history = (extras.get(runId)?.metrics ?? []).filter((m) => m.key === key).sort((a, b) => a.step - b.step)
            if (!v3) return history.length === 0 ? {} : { metrics: history }
            const max = intLike(p.max_results)
            if (max === undefined) return { next_page_token: encodePageToken(0) }
            const w = window(history, yield* decodePageToken(yield* optString(p, "page_token")), max, false)
            return {
              ...(w.page.length === 0 ? {} : { metrics: w.page }),
              ...(w.token === undefined ? {} : { next_page_token: w.token })
            }
          }
          case "artifacts/list": {
            const run = yield* mlflow.getRun(yield* runIdOf(p))
            const path = ((yield* optString(p, "path")) ?? "").replace(/\/+$/, "")
            if (path.split("/").includes("..")) return yield* invalid("Invalid path")
            const root = proxyRoot(run.info.artifactUri)
            const files = yield* handle.listArtifactsAt(path === "" ? root : `${root}/${path}`)
            return {
              root_uri: run.info.artifactUri,
              ...(files.length === 0
                ? {}
                : { files: files.map((f) => Wire.fileInfoJson({ ...f, path: path === "" ? f.path : `${path}/${f.path}` })) })
            }
          }
          default:
            return yield* new Page({ reply: notFoundPage })
        }
      })

    const logBatch = (p: Params) =>
      Effect.gen(function*() {
        const runId = yield* reqString(p, "run_id")
        const tags = yield* keyValues(p, "tags")
        const params = yield* keyValues(p, "params")
        const metricsRaw = p.metrics
        const metrics: Array<Metric> = []
        if (Array.isArray(metricsRaw)) {
          for (const m of metricsRaw as ReadonlyArray<{ key?: unknown; value?: unknown; timestamp?: unknown; step?: unknown }>) {
            if (typeof m.key !== "string" || typeof m.value !== "number") return yield* badValue("metrics", metricsRaw)
            metrics.push({ key: m.key, value: m.value, timestamp: intLike(m.timestamp) ?? 0, step: intLike(m.step) ?? 0 })
          }
        }
        if (tags.length > 100) {
          return yield* invalid(
            `A batch logging request can contain at most 100 tags. Got ${tags.length} tags. Please split up tags across multiple requests and try again.`
          )
        }
        if (params.length > 100) return yield* invalid(`A batch logging request can contain at most 100 params. Got ${params.length} params.`)
        if (metrics.length > 1000) return yield* invalid(`A batch logging request can contain at most 1000 metrics. Got ${metrics.length} metrics.`)
        const check = (kind: string, list: ReadonlyArray<{ readonly key: string }>) =>
          Effect.forEach(list, (item, i) =>
            Effect.mapError(validateTagKey(item.key), (e) =>
              invalid(`Invalid value "${item.key}" for parameter '${kind}[${i}].key' supplied: ${e.reason}`)))
        yield* check("metrics", metrics)
        yield* check("params", params)
        yield* check("tags", tags)
        const run = yield* mlflow.getRun(runId)
        if (run.info.lifecycleStage !== "active") {
          return yield* invalid(`The run ${runId} must be in the 'active' state. Current state is deleted.`)
        }
        if (tags.length + params.length + metrics.length === 0) return {}
        const e = extrasOf(runId)
        const changed = params.filter((x) => e.params.has(x.key) && e.params.get(x.key) !== x.value)
        if (changed.length > 0 && backend === "file") {
          // MLflow's file store raises it without an error code (2.17.2 and 3.x alike): 500 INTERNAL_ERROR
          const x = changed[0]!
          return yield* apiError(
            "INTERNAL_ERROR",
            `Changing param values is not allowed. Param with key='${x.key}' was already logged with value='${
              e.params.get(x.key)
            }' for run ID='${runId}'. Attempted logging new value '${x.value}'.`
          )
        }
        if (changed.length > 0) {
          return yield* invalid(
            `Changing param values is not allowed. Params were already logged='[${
              changed.map((x) => `{'key': '${x.key}', 'old_value': '${e.params.get(x.key)}', 'new_value': '${x.value}'}`).join(", ")
            }]' for run ID='${runId}'.`
          )
        }
        for (const x of params) e.params.set(x.key, x.value)
        e.metrics.push(...metrics)
        if (tags.length > 0) {
          yield* mlflow.setTags(runId, tags.map((t) => ({ key: t.key, value: t.value.slice(0, MAX_TAG_VALUE) })))
        }
        return {}
      })

    // -- the artifact proxy --------------------------------------------------------------------------------------

    const decodeLocation = (encoded: string): Either.Either<string, ApiError> => {
      let location: string
      try {
        location = decodeURIComponent(encoded)
      } catch {
        return Either.left(invalid("Invalid path"))
      }
      location = location.replace(/\/+$/, "")
      if (location.split("/").includes("..") || location.startsWith("/")) return Either.left(invalid("Invalid path"))
      return Either.mapLeft(validateArtifactPath(location), () => invalid("Invalid path"))
    }

    const artifact = (
      method: string,
      encoded: string,
      body: Uint8Array,
      chunked: boolean
    ): Effect.Effect<Reply, ApiError | Page | InvalidInput | MlflowFailure> =>
      Effect.gen(function*() {
        const location = yield* decodeLocation(encoded)
        switch (method) {
          case "PUT":
            // 3.x under uvicorn reads no body from a request without Content-Length: it stores an empty file and
            // still answers 200 {}; 2.17 under gunicorn stores the chunked bytes
            yield* handle.putArtifactAt(location, v3 && chunked ? new Uint8Array(0) : body)
            return jsonReply({})
          case "DELETE":
            yield* handle.deleteArtifactAt(location)
            return jsonReply({})
          case "GET": {
            const bytes = yield* handle.getArtifactAt(location).pipe(Effect.option)
            const name = location.slice(location.lastIndexOf("/") + 1)
            if (Option.isNone(bytes)) {
              const listed = yield* handle.listArtifactsAt(location)
              if (listed.length > 0) return yield* new Page({ reply: internalErrorPage })
              return yield* v3
                ? apiError(
                  "RESOURCE_DOES_NOT_EXIST",
                  `The following failures occurred while downloading one or more artifacts from /srv/mlflow/artifacts:\n##### File ${location} #####\nNo such artifact: '${location}'`
                )
                : apiError(
                  "INTERNAL_ERROR",
                  `The following failures occurred while downloading one or more artifacts from /srv/mlflow/artifacts:\n##### File ${location} #####\n[Errno 2] No such file or directory: '/srv/mlflow/artifacts/${location}'`
                )
            }
            const chunks: Array<Uint8Array> = []
            for (let i = 0; i < bytes.value.length; i += DOWNLOAD_CHUNK) {
              chunks.push(bytes.value.subarray(i, i + DOWNLOAD_CHUNK))
            }
            return {
              status: 200,
              headers: { "content-type": contentTypeOf(name), "content-disposition": `attachment; filename=${name}` },
              body: { chunks }
            }
          }
          default:
            return yield* new Page({ reply: methodNotAllowed("DELETE, GET, OPTIONS, HEAD, PUT") })
        }
      })

    const listProxy = (url: URL): Effect.Effect<Reply, ApiError | InvalidInput> =>
      Effect.gen(function*() {
        const raw = (url.searchParams.get("path") ?? "").replace(/\/+$/, "")
        if (raw === "") return jsonReply({})
        if (raw.split("/").includes("..")) return yield* invalid("Invalid path")
        const files = yield* handle.listArtifactsAt(raw)
        return jsonReply(files.length === 0 ? {} : { files: files.map(Wire.fileInfoJson) })
      })

    const uiArtifact = (url: URL): Effect.Effect<Reply, ApiError | NotFound | MlflowFailure | InvalidInput> =>
      Effect.gen(function*() {
        const runId = url.searchParams.get("run_uuid") ?? url.searchParams.get("run_id") ?? ""
        const path = url.searchParams.get("path") ?? ""
        const run = yield* mlflow.getRun(runId)
        const bytes = yield* handle.getArtifactAt(`${proxyRoot(run.info.artifactUri)}/${path}`)
        const name = path.slice(path.lastIndexOf("/") + 1)
        return {
          status: 200,
          headers: { "content-type": contentTypeOf(name), "content-disposition": `attachment; filename=${name}` },
          body: bytes
        }
      })

    // -- dispatch ------------------------------------------------------------------------------------------------

    const route = (
      method: string,
      url: URL,
      contentType: string | undefined,
      body: Uint8Array,
      chunked: boolean
    ): Effect.Effect<Reply> => {
      const path = url.pathname
      const handled: Effect.Effect<Reply, ApiError | Page | NotFound | AlreadyExists | InvalidInput | MlflowFailure> =
        Effect.gen(function*() {
          if (path === "/health") return { status: 200, headers: { "content-type": HTML }, body: "OK" }
          if (path === "/version") return { status: 200, headers: { "content-type": HTML }, body: v3 ? "3.11.2.dev0" : "2.17.2" }
          if (path === "/get-artifact") return yield* uiArtifact(url)
          if (path === ARTIFACTS_PREFIX) {
            if (method !== "GET") return methodNotAllowed("GET, OPTIONS, HEAD")
            return yield* listProxy(url)
          }
          if (path.startsWith(`${ARTIFACTS_PREFIX}/`)) {
            return yield* artifact(method, path.slice(ARTIFACTS_PREFIX.length + 1), body, chunked)
          }
          const api_ = /^\/(?:api|ajax-api)\/2\.0\/mlflow\/(.+)$/.exec(path)
          const methods = api_ === null ? undefined : API_ROUTES[api_[1]!]
          if (api_ === null || methods === undefined) return notFoundPage
          const m = method === "HEAD" ? "GET" : method
          if (!methods.includes(m)) return methodNotAllowed(allowHeader(methods))
          let params: Params
          if (m === "POST") {
            if (contentType === undefined) return yield* invalid("Bad Request. Content-Type header is missing.")
            if (contentType.split(";")[0]!.trim().toLowerCase() !== "application/json") {
              return yield* invalid("Bad Request. Content-Type must be one of ['application/json'].")
            }
            let parsed: unknown = {}
            try {
              parsed = JSON.parse(new TextDecoder().decode(body))
            } catch {
              parsed = {}
            }
            if (Array.isArray(parsed)) return internalErrorPage
            params = typeof parsed === "object" && parsed !== null ? (parsed as Params) : {}
          } else {
            const q: Record<string, unknown> = {}
            for (const key of new Set(url.searchParams.keys())) {
              const all = url.searchParams.getAll(key)
              q[key] = key === "experiment_ids" || key === "order_by" ? all : all[all.length - 1]
            }
            params = q
          }
          return jsonReply(yield* api(api_[1]!, params))
        })
      return handled.pipe(
        Effect.catchAll((e) => {
          const mapped = fromStore(e)
          return Effect.succeed(mapped instanceof Page ? mapped.reply : errorReply(mapped))
        }),
        Effect.catchAllDefect((d) => Effect.succeed(errorReply(apiError("INTERNAL_ERROR", String(d)))))
      )
    }

    // -- node:http ----------------------------------------------------------------------------------------------

    const takeFault = (record: RequestRecord): HttpFault | undefined => {
      for (const entry of faults) {
        const m = entry.fault.match
        if (m?.method !== undefined && m.method.toUpperCase() !== record.method) continue
        if (m?.path !== undefined) {
          if (typeof m.path === "string" ? !record.path.includes(m.path) : !m.path.test(record.path)) continue
        }
        entry.remaining -= 1
        faults = faults.filter((f) => f.remaining > 0)
        return entry.fault
      }
      return undefined
    }

    const send = (res: Http.ServerResponse, record: RequestRecord, reply: Reply, truncate: boolean) => {
      record.status = truncate ? 0 : reply.status
      const headers: Record<string, string | number> = { ...reply.headers }
      const body = reply.body
      if (typeof body === "string" || body instanceof Uint8Array) {
        const bytes = typeof body === "string" ? Buffer.from(body, "utf8") : Buffer.from(body.buffer, body.byteOffset, body.length)
        headers["content-length"] = bytes.length
        res.writeHead(reply.status, headers)
        if (record.method === "HEAD") return res.end()
        if (truncate) {
          res.write(bytes.subarray(0, Math.floor(bytes.length / 2)))
          return res.destroy()
        }
        return res.end(bytes)
      }
      res.writeHead(reply.status, headers)
      if (truncate) {
        const first = body.chunks[0]
        if (first !== undefined) res.write(first.subarray(0, Math.floor(first.length / 2)))
        // let the partial chunk leave before the connection is cut
        return setTimeout(() => res.destroy(), 10)
      }
      for (const chunk of body.chunks) res.write(chunk)
      res.end()
    }

    const server = Http.createServer((req, res) => {
      const method = (req.method ?? "GET").toUpperCase()
      const record: RequestRecord = { method, path: req.url ?? "/", headers: { ...req.headers }, status: 0 }
      log.push(record)
      const chunks: Array<Buffer> = []
      req.on("data", (c: Buffer) => chunks.push(c))
      req.on("error", () => res.destroy())
      req.on("end", () => {
        if (String(req.headers["content-type"] ?? "").startsWith("application/json")) {
          try {
            record.json = JSON.parse(Buffer.concat(chunks).toString("utf8"))
          } catch {
            record.json = undefined
          }
        }
        const fault = takeFault(record)
        if (fault !== undefined && "reset" in fault) return req.socket.destroy()
        if (fault !== undefined && "status" in fault) {
          const headers: Record<string, string> = {
            "content-type": fault.contentType ?? (fault.body === undefined ? "application/json" : HTML)
          }
          if (fault.retryAfter !== undefined) headers["retry-after"] = String(fault.retryAfter)
          const body = fault.body ??
            pythonJson({ error_code: fault.errorCode ?? `HTTP_${fault.status}`, message: `injected ${fault.status}` })
          return send(res, record, { status: fault.status, headers, body }, false)
        }
        const run = () => {
          const url = new URL(req.url ?? "/", "http://127.0.0.1")
          const contentType = req.headers["content-type"]
          const chunked = req.headers["content-length"] === undefined
          void Effect.runPromise(route(method, url, contentType, Buffer.concat(chunks), chunked)).then((reply) =>
            send(res, record, reply, fault !== undefined && "truncate" in fault)
          )
        }
        if (fault !== undefined && "delayMs" in fault) setTimeout(run, fault.delayMs)
        else run()
      })
    })

    const url = yield* Effect.acquireRelease(
      Effect.async<string>((resume) => {
        server.listen(0, "127.0.0.1", () => {
          const address = server.address() as AddressInfo
          resume(Effect.succeed(`http://127.0.0.1:${address.port}`))
        })
      }),
      () =>
        Effect.async<void>((resume) => {
          server.closeAllConnections()
          server.close(() => resume(Effect.void))
        })
    )

    return {
      url,
      flavor,
      backend,
      handle,
      requests: () => log.slice(),
      count: (match?: FaultMatch) =>
        log.filter((r) =>
          (match?.method === undefined || match.method.toUpperCase() === r.method) &&
          (match?.path === undefined ||
            (typeof match.path === "string" ? r.path.includes(match.path) : match.path.test(r.path)))
        ).length,
      clearRequests: () => {
        log.length = 0
      },
      fault: (fault: HttpFault) => {
        faults.push({ fault, remaining: fault.times ?? 1 })
      },
      clearFaults: () => {
        faults = []
      }
    }
  })

/** Runs `f` with an emulator that lives as long as the returned Effect. */
export const withEmulator = <A, E, R>(
  f: (emulator: Emulator) => Effect.Effect<A, E, R>,
  options?: EmulatorOptions
): Effect.Effect<A, E, R> =>
  Effect.scoped(Effect.flatMap(startEmulator(options), f))

