/**
 * MlflowMemory: an in-process Mlflow layer with the semantics of an MLflow 2.17 tracking server (sqlite flavour),
 * plus a handle (MlflowMemoryHandle) to inspect and seed its state, count calls, inject faults and page searches.
 */
import { Chunk, Clock, Context, Duration, Effect, Either, Layer, Option, Stream } from "effect"
import { readFile } from "node:fs/promises"
import { AlreadyExists, InvalidInput, MlflowApiError, NotFound, StorageError } from "../errors.js"
import type { MlflowFailure } from "../errors.js"
import {
  concatBytes,
  EntityTag,
  Experiment,
  FileInfo,
  Mlflow,
  Run,
  RunInfo,
  validateArtifactPath,
  validateExtras,
  validateTagKey
} from "./Mlflow.js"
import {
  checkExperimentsSearch,
  checkRunsSearch,
  compareStrings,
  DEFAULT_PAGE_SIZE,
  experimentAdmitted,
  MAX_PAGE_SIZE,
  newRunId,
  notActiveExperiment,
  notActiveRun,
  parseOrderBy,
  randomRunName,
  selectRuns,
  validateTags
} from "./semantics.js"
import type { RunAccess } from "./semantics.js"
import type {
  ArtifactRoot,
  ArtifactSource,
  CreateRunOptions,
  LifecycleStage,
  LogBatchExtras,
  MetricPoint,
  RunStatus,
  SearchExperimentsOptions,
  SearchRunsOptions,
  UpdateRunOptions
} from "./Mlflow.js"

// ---------------------------------------------------------------------------------------------------------------
// Public types
// ---------------------------------------------------------------------------------------------------------------

/** Names the handle counts calls and injects faults by: the service methods plus the page-level searches. */
export type MethodName = keyof Mlflow.Service | "searchRunsPage" | "searchExperimentsPage"

export interface MlflowMemoryOptions {
  /**
   * MLflow 2.17 with sqlite returns a `next_page_token` when a runs/search page is exactly full, and following it
   * gives an empty page. The file store and 3.x do not. Default false; `searchRunsPage` can override per call.
   */
  readonly trailingEmptyPage?: boolean | undefined
  /**
   * The artifact root new experiments get `/<experiment id>` under, as a server's `--default-artifact-root` (default
   * `mlflow-artifacts:`, the proxy); `s3://bucket/prefix` makes runs point at an object store, as a server run with
   * `--no-serve-artifacts` does.
   */
  readonly defaultArtifactRoot?: string | undefined
}

export type TagsInput =
  | ReadonlyArray<{ readonly key: string; readonly value: string }>
  | Readonly<Record<string, string>>

export type ArtifactsInput =
  | ReadonlyArray<{ readonly path: string; readonly bytes: Uint8Array }>
  | Readonly<Record<string, Uint8Array>>

/** State to seed a store with (for example ForML's `mlflow-layout.json`). Missing fields get server defaults. */
export interface Seed {
  readonly experiments?: ReadonlyArray<{
    readonly experimentId: string
    readonly name: string
    readonly artifactLocation?: string | undefined
    readonly lifecycleStage?: LifecycleStage | undefined
    readonly creationTime?: number | undefined
    readonly lastUpdateTime?: number | undefined
    readonly tags?: TagsInput | undefined
  }> | undefined
  readonly runs?: ReadonlyArray<{
    readonly runId: string
    readonly experimentId: string
    /** Defaults to the `mlflow.runName` tag, else a random name. */
    readonly runName?: string | undefined
    readonly userId?: string | undefined
    readonly status?: RunStatus | undefined
    readonly startTime?: number | undefined
    readonly endTime?: number | undefined
    readonly lifecycleStage?: LifecycleStage | undefined
    /** Defaults to `<experiment artifact location>/<run id>/artifacts`. */
    readonly artifactUri?: string | undefined
    /** Stored as given: no `mlflow.runName` tag is added. */
    readonly tags?: TagsInput | undefined
    readonly artifacts?: ArtifactsInput | undefined
  }> | undefined
}

export interface Snapshot {
  /** In creation (or load) order. */
  readonly experiments: ReadonlyArray<Experiment>
  /** In creation (or load) order. */
  readonly runs: ReadonlyArray<Run>
  /** Run id → artifact path (relative to the run root) → bytes, for every run with at least one artifact. */
  readonly artifacts: ReadonlyMap<string, ReadonlyMap<string, Uint8Array>>
  /** Run id → every metric point logged, in logging order, for every run with at least one. */
  readonly metrics: ReadonlyMap<string, ReadonlyArray<MetricPoint>>
  /** Run id → param key → value, for every run with at least one param. */
  readonly params: ReadonlyMap<string, ReadonlyMap<string, string>>
}

export interface SearchRunsPageOptions extends Omit<SearchRunsOptions, "pageSize"> {
  readonly pageToken?: string | undefined
  readonly maxResults: number
  readonly trailingEmptyPage?: boolean | undefined
}

export interface SearchExperimentsPageOptions extends Omit<SearchExperimentsOptions, "pageSize"> {
  readonly pageToken?: string | undefined
  readonly maxResults: number
}

export interface RunsPage {
  readonly runs: ReadonlyArray<Run>
  readonly nextPageToken?: string | undefined
}

export interface ExperimentsPage {
  readonly experiments: ReadonlyArray<Experiment>
  readonly nextPageToken?: string | undefined
}

export declare namespace MlflowMemoryHandle {
  export interface Service {
    /** The Mlflow service over this same store. */
    readonly mlflow: Mlflow.Service
    readonly snapshot: Effect.Effect<Snapshot>
    /** Adds (or replaces, by id) experiments, runs and their artifacts. */
    readonly load: (seed: Seed) => Effect.Effect<void, InvalidInput>
    /** Back to a fresh server: only the Default experiment; call counts and faults are kept. */
    readonly reset: Effect.Effect<void>

    /** Calls per method name since the start or the last `resetCalls`. */
    readonly calls: Effect.Effect<Readonly<Partial<Record<MethodName, number>>>>
    readonly resetCalls: Effect.Effect<void>
    /** The n-th call (1 = the next) to `method` (or to any method, "*") from now fails with `error`. */
    readonly failNth: (method: MethodName | "*", n: number, error: MlflowFailure) => Effect.Effect<void>
    /** The next `times` (default 1) calls to `method` fail with `error`. */
    readonly failNext: (method: MethodName | "*", error: MlflowFailure, times?: number) => Effect.Effect<void>
    /** Every call to `method` sleeps `duration` first (on the caller's Clock) until cleared. */
    readonly delay: (method: MethodName | "*", duration: Duration.DurationInput) => Effect.Effect<void>
    readonly clearFaults: Effect.Effect<void>

    /** One runs/search page, as the REST endpoint answers it. */
    readonly searchRunsPage: (options: SearchRunsPageOptions) => Effect.Effect<RunsPage, InvalidInput | MlflowFailure>
    /** One experiments/search page, as the REST endpoint answers it. */
    readonly searchExperimentsPage: (
      options: SearchExperimentsPageOptions
    ) => Effect.Effect<ExperimentsPage, InvalidInput | MlflowFailure>

    // server operations outside the Mlflow service, for an emulator
    readonly setExperimentTag: (
      experimentId: string,
      key: string,
      value: string
    ) => Effect.Effect<void, NotFound | InvalidInput | MlflowFailure>
    readonly renameExperiment: (
      experimentId: string,
      name: string
    ) => Effect.Effect<void, NotFound | AlreadyExists | InvalidInput | MlflowFailure>
    readonly deleteTag: (runId: string, key: string) => Effect.Effect<void, NotFound | MlflowFailure>

    // the artifact proxy's view: locations relative to the `mlflow-artifacts:/` root (`<exp>/<run>/artifacts/...`)
    readonly putArtifactAt: (location: string, bytes: Uint8Array) => Effect.Effect<void, InvalidInput | MlflowFailure>
    readonly getArtifactAt: (location: string) => Effect.Effect<Uint8Array, NotFound | InvalidInput>
    /** One level under `location`; `path` is the name relative to it; a file or a missing directory lists empty. */
    readonly listArtifactsAt: (location: string) => Effect.Effect<ReadonlyArray<FileInfo>, InvalidInput>
    /** Deletes one file; a missing one is fine, as on the server. */
    readonly deleteArtifactAt: (location: string) => Effect.Effect<void, InvalidInput>
  }
}

export class MlflowMemoryHandle extends Context.Tag("forml-mlflow/MlflowMemoryHandle")<
  MlflowMemoryHandle,
  MlflowMemoryHandle.Service
>() {}

// ---------------------------------------------------------------------------------------------------------------
// Constants and small helpers
// ---------------------------------------------------------------------------------------------------------------

export { DEFAULT_PAGE_SIZE, parseOrderBy }
export const MAX_RUNS_PAGE_SIZE = MAX_PAGE_SIZE
export const MAX_EXPERIMENTS_PAGE_SIZE = MAX_PAGE_SIZE
const ARTIFACTS_SCHEME = "mlflow-artifacts:"
const DOWNLOAD_CHUNK = 64 * 1024

const tagsOf = (tags: TagsInput | undefined): ReadonlyArray<{ readonly key: string; readonly value: string }> => {
  if (tags === undefined) return []
  if (Array.isArray(tags)) return tags as ReadonlyArray<{ readonly key: string; readonly value: string }>
  return Object.entries(tags as Readonly<Record<string, string>>).map(([key, value]) => ({ key, value }))
}

const artifactsOf = (
  artifacts: ArtifactsInput | undefined
): ReadonlyArray<{ readonly path: string; readonly bytes: Uint8Array }> => {
  if (artifacts === undefined) return []
  if (Array.isArray(artifacts)) return artifacts as ReadonlyArray<{ readonly path: string; readonly bytes: Uint8Array }>
  return Object.entries(artifacts as Readonly<Record<string, Uint8Array>>).map(([path, bytes]) => ({ path, bytes }))
}

/** The artifact store key of a run root: the path under `mlflow-artifacts:/`, or the whole URI for other schemes. */
const rootKey = (artifactUri: string): string => {
  const trimmed = artifactUri.replace(/\/+$/, "")
  return trimmed.startsWith(ARTIFACTS_SCHEME) ? trimmed.slice(ARTIFACTS_SCHEME.length).replace(/^\/+/, "") : trimmed
}

const joinKey = (root: string, path: string): string => (root === "" ? path : `${root}/${path}`)

// ---------------------------------------------------------------------------------------------------------------
// Paging tokens: base64 of Python-layout JSON `{"offset": N}`, as MLflow's SearchUtils makes them
// ---------------------------------------------------------------------------------------------------------------

export const encodePageToken = (offset: number): string =>
  Buffer.from(`{"offset": ${offset}}`, "utf8").toString("base64")

export const decodePageToken = (token: string | undefined): Either.Either<number, InvalidInput> => {
  if (token === undefined || token === "") return Either.right(0)
  const bad = (reason: string) => Either.left(new InvalidInput({ kind: "PageToken", input: token, reason }))
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(token) || token.length % 4 !== 0) {
    return bad("Invalid page token, could not base64-decode")
  }
  const text = Buffer.from(token, "base64").toString("utf8")
  let parsed: unknown
  try {
    parsed = JSON.parse(text)
  } catch {
    return bad(`Invalid page token, decoded value=${text}`)
  }
  if (typeof parsed !== "object" || parsed === null || !("offset" in parsed)) {
    return bad("Invalid page token, it has no offset")
  }
  const offset = (parsed as { readonly offset: unknown }).offset
  if (typeof offset !== "number" || !Number.isInteger(offset)) {
    return bad("Invalid page token, the offset is not an integer")
  }
  return Either.right(offset)
}

/** A window of `items` as MLflow's sqlite store pages: a negative offset reads as 0, the next offset adds the size. */
const window = <A>(
  items: ReadonlyArray<A>,
  offset: number,
  maxResults: number,
  trailingToken: boolean
): { readonly items: ReadonlyArray<A>; readonly nextPageToken?: string } => {
  const start = Math.max(0, offset)
  const page = items.slice(start, start + maxResults)
  const next = offset + maxResults
  const more = trailingToken ? page.length === maxResults : next < items.length
  return more ? { items: page, nextPageToken: encodePageToken(next) } : { items: page }
}

// ---------------------------------------------------------------------------------------------------------------
// The store
// ---------------------------------------------------------------------------------------------------------------

interface ExperimentRecord {
  readonly experimentId: string
  name: string
  readonly artifactLocation: string
  lifecycleStage: LifecycleStage
  readonly creationTime: number
  lastUpdateTime: number
  readonly tags: Map<string, string>
  readonly seq: number
}

interface RunRecord {
  readonly runId: string
  readonly experimentId: string
  runName: string
  readonly userId: string
  status: RunStatus
  readonly startTime: number
  endTime: number | undefined
  readonly artifactUri: string
  lifecycleStage: LifecycleStage
  readonly tags: Map<string, string>
  readonly metrics: Array<MetricPoint>
  readonly params: Map<string, string>
  readonly seq: number
}

type Fault =
  | { readonly kind: "nth"; readonly method: MethodName | "*"; remaining: number; readonly error: MlflowFailure }
  | { readonly kind: "next"; readonly method: MethodName | "*"; remaining: number; readonly error: MlflowFailure }

// Records hold typed values already, so the entity constructors skip their own validation (`true`), which would
// otherwise dominate the cost of a large search page.
const toTags = (tags: ReadonlyMap<string, string>): ReadonlyArray<EntityTag> =>
  Array.from(tags, ([key, value]) => new EntityTag({ key, value }, true))

const toExperiment = (e: ExperimentRecord): Experiment =>
  new Experiment({
    experimentId: e.experimentId,
    name: e.name,
    artifactLocation: e.artifactLocation,
    lifecycleStage: e.lifecycleStage,
    creationTime: e.creationTime,
    lastUpdateTime: e.lastUpdateTime,
    tags: toTags(e.tags)
  }, true)

const toRunInfo = (r: RunRecord): RunInfo =>
  new RunInfo({
    runId: r.runId,
    experimentId: r.experimentId,
    runName: r.runName,
    userId: r.userId,
    status: r.status,
    startTime: r.startTime,
    ...(r.endTime === undefined ? {} : { endTime: r.endTime }),
    artifactUri: r.artifactUri,
    lifecycleStage: r.lifecycleStage
  }, true)

const toRun = (r: RunRecord): Run => new Run({ info: toRunInfo(r), tags: toTags(r.tags) }, true)

/** A listing entry: a directory when it has no size. */
/** A record is its own run fields. */
const recordAccess: RunAccess<RunRecord> = { fields: (r) => r, tag: (r, key) => r.tags.get(key) }

const toFileInfo = (path: string, size: number | undefined): FileInfo =>
  size === undefined
    ? new FileInfo({ path, isDir: true }, true)
    : new FileInfo({ path, isDir: false, fileSize: size }, true)

/** Builds a store; `mlflow` and the handle share it. */
export const make = (options: MlflowMemoryOptions = {}): Effect.Effect<MlflowMemoryHandle.Service> =>
  Effect.map(Clock.currentTimeMillis, (now) => makeUnsafe(options, now))

const makeUnsafe = (config: MlflowMemoryOptions, createdAt: number): MlflowMemoryHandle.Service => {
  const experiments = new Map<string, ExperimentRecord>()
  const runs = new Map<string, RunRecord>()
  /** Full location (`<root key>/<path>`) → bytes. */
  const artifacts = new Map<string, Uint8Array>()
  let nextExperimentId = 1n
  let seq = 0
  const counts: Partial<Record<MethodName, number>> = {}
  let faults: Array<Fault> = []
  const delays = new Map<MethodName | "*", Duration.Duration>()
  const artifactRoot = (config.defaultArtifactRoot ?? ARTIFACTS_SCHEME).replace(/\/+$/, "")

  const addDefault = (now: number) => {
    experiments.set("0", {
      experimentId: "0",
      name: "Default",
      artifactLocation: `${artifactRoot}/0`,
      lifecycleStage: "active",
      creationTime: now,
      lastUpdateTime: now,
      tags: new Map(),
      seq: seq++
    })
  }
  addDefault(createdAt)

  // -- faults -------------------------------------------------------------------------------------------------------

  const enter = (method: MethodName): Effect.Effect<void, MlflowFailure> =>
    Effect.suspend(() => {
      counts[method] = (counts[method] ?? 0) + 1
      let failure: MlflowFailure | undefined
      for (const fault of faults) {
        if (fault.method !== method && fault.method !== "*") continue
        if (fault.kind === "nth") {
          fault.remaining -= 1
          if (fault.remaining === 0 && failure === undefined) failure = fault.error
        } else if (failure === undefined && fault.remaining > 0) {
          fault.remaining -= 1
          failure = fault.error
        }
      }
      faults = faults.filter((f) => f.remaining > 0)
      const delay = delays.get(method) ?? delays.get("*")
      const sleep = delay === undefined ? Effect.void : Effect.sleep(delay)
      return failure === undefined ? sleep : Effect.zipRight(sleep, Effect.fail(failure))
    })

  // -- lookups ------------------------------------------------------------------------------------------------------

  const findExperiment = (experimentId: string): Either.Either<ExperimentRecord, NotFound> => {
    const e = experiments.get(experimentId)
    return e === undefined ? Either.left(new NotFound({ entity: "experiment", key: experimentId })) : Either.right(e)
  }

  const findExperimentByName = (name: string): ExperimentRecord | undefined => {
    for (const e of experiments.values()) if (e.name === name) return e
    return undefined
  }

  const findRun = (runId: string): Either.Either<RunRecord, NotFound> => {
    const r = runs.get(runId)
    return r === undefined ? Either.left(new NotFound({ entity: "run", key: runId })) : Either.right(r)
  }

  const activeRun = (runId: string): Either.Either<RunRecord, NotFound | MlflowApiError> =>
    Either.flatMap(findRun(runId), (r) => (r.lifecycleStage === "active" ? Either.right(r) : Either.left(notActiveRun(runId))))

  const setRunTag = (run: RunRecord, key: string, value: string) => {
    run.tags.set(key, value)
    // sqlite keeps the run name and the mlflow.runName tag in step
    if (key === "mlflow.runName") run.runName = value
  }

  // -- searches -----------------------------------------------------------------------------------------------------

  const runsPage = (options: SearchRunsPageOptions): Either.Either<RunsPage, InvalidInput> =>
    Either.gen(function*() {
      const { filter, maxResults, order } = yield* checkRunsSearch(options.maxResults, options)
      const offset = yield* decodePageToken(options.pageToken)
      const selected = selectRuns(runs.values(), recordAccess, { ...options, filter, order })
      const trailing = options.trailingEmptyPage ?? config.trailingEmptyPage ?? false
      const page = window(selected, offset, maxResults, trailing)
      return page.nextPageToken === undefined
        ? { runs: page.items.map(toRun) }
        : { runs: page.items.map(toRun), nextPageToken: page.nextPageToken }
    })

  const experimentsPage = (options: SearchExperimentsPageOptions): Either.Either<ExperimentsPage, InvalidInput> =>
    Either.gen(function*() {
      const { filter, maxResults } = yield* checkExperimentsSearch(options.maxResults, options)
      const offset = yield* decodePageToken(options.pageToken)
      const selected = [...experiments.values()].filter((e) =>
        experimentAdmitted({ viewType: options.viewType, filter }, e, (key) => e.tags.get(key))
      )
      // newest first; equal creation times (a test clock) keep creation order, newest first too
      selected.sort((a, b) => b.creationTime - a.creationTime || b.seq - a.seq)
      const page = window(selected, offset, maxResults, false)
      return page.nextPageToken === undefined
        ? { experiments: page.items.map(toExperiment) }
        : { experiments: page.items.map(toExperiment), nextPageToken: page.nextPageToken }
    })

  /** A whole search as one stream (counted as one call to `method`), following page tokens to the end. */
  const walkPages = <A, E>(
    method: "searchRuns" | "searchExperiments",
    page: (pageToken: string | undefined) => Effect.Effect<readonly [ReadonlyArray<A>, string | undefined], E>
  ): Stream.Stream<A, E | MlflowFailure> =>
    Stream.unwrap(
      Effect.as(
        enter(method),
        Stream.paginateChunkEffect(undefined as string | undefined, (pageToken) =>
          Effect.map(page(pageToken), ([items, next]) => [Chunk.fromIterable(items), Option.fromNullable(next)] as const))
      )
    ).pipe(Stream.withSpan(`MlflowMemory.${method}`))

  // -- artifacts ----------------------------------------------------------------------------------------------------

  const isDirectory = (location: string): boolean => {
    const prefix = `${location}/`
    for (const key of artifacts.keys()) if (key.startsWith(prefix)) return true
    return false
  }

  /** One level under a location: name → size (files) or undefined (directories), sorted by name. */
  const listLevel = (location: string): ReadonlyArray<readonly [string, number | undefined]> => {
    const prefix = location === "" ? "" : `${location}/`
    const entries = new Map<string, number | undefined>()
    for (const [key, bytes] of artifacts) {
      if (!key.startsWith(prefix)) continue
      const rest = key.slice(prefix.length)
      const slash = rest.indexOf("/")
      if (slash < 0) entries.set(rest, bytes.length)
      else entries.set(rest.slice(0, slash), undefined)
    }
    return [...entries].sort(([a], [b]) => compareStrings(a, b))
  }

  const store = (location: string, bytes: Uint8Array): Either.Either<void, MlflowApiError> => {
    if (isDirectory(location)) {
      return Either.left(
        new MlflowApiError({ status: 500, errorCode: "INTERNAL_ERROR", detail: `Is a directory: '${location}'` })
      )
    }
    const parts = location.split("/")
    for (let i = 1; i < parts.length; i++) {
      const parent = parts.slice(0, i).join("/")
      if (artifacts.has(parent)) {
        return Either.left(
          new MlflowApiError({ status: 500, errorCode: "INTERNAL_ERROR", detail: `Not a directory: '${parent}'` })
        )
      }
    }
    artifacts.set(location, bytes)
    return Either.void
  }

  const readSource = <E>(source: ArtifactSource<E>): Effect.Effect<Uint8Array, E | StorageError> => {
    if (source instanceof Uint8Array) return Effect.sync(() => source.slice())
    if ("file" in source) {
      const file = source.file
      return Effect.tryPromise({
        try: () => readFile(file),
        catch: (e) => new StorageError({ path: file, reason: e instanceof Error ? e.message : String(e) })
      }).pipe(Effect.map((buf) => new Uint8Array(buf.buffer, buf.byteOffset, buf.length)))
    }
    // a single chunk is copied too: the store never shares bytes with its caller
    return Effect.map(Stream.runCollect(source), (chunks) =>
      chunks.length === 1 ? Chunk.unsafeHead(chunks).slice() : concatBytes(Chunk.toReadonlyArray(chunks)))
  }

  // -- the service --------------------------------------------------------------------------------------------------

  const getExperiment = Effect.fn("MlflowMemory.getExperiment")(function*(experimentId: string) {
    yield* enter("getExperiment")
    return toExperiment(yield* findExperiment(experimentId))
  })

  const getExperimentByName = Effect.fn("MlflowMemory.getExperimentByName")(function*(name: string) {
    yield* enter("getExperimentByName")
    const e = findExperimentByName(name)
    if (e === undefined) return yield* new NotFound({ entity: "experiment", key: name })
    return toExperiment(e)
  })

  const createExperiment = Effect.fn("MlflowMemory.createExperiment")(function*(
    name: string,
    options?: { readonly tags?: ReadonlyArray<{ readonly key: string; readonly value: string }> }
  ) {
    yield* enter("createExperiment")
    if (name === "") {
      return yield* new InvalidInput({ kind: "ExperimentName", input: name, reason: "empty" })
    }
    const tags = options?.tags ?? []
    yield* validateTags(tags)
    const now = yield* Clock.currentTimeMillis
    if (findExperimentByName(name) !== undefined) return yield* new AlreadyExists({ entity: "experiment", key: name })
    while (experiments.has(String(nextExperimentId))) nextExperimentId += 1n
    const experimentId = String(nextExperimentId)
    nextExperimentId += 1n
    experiments.set(experimentId, {
      experimentId,
      name,
      artifactLocation: `${artifactRoot}/${experimentId}`,
      lifecycleStage: "active",
      creationTime: now,
      lastUpdateTime: now,
      tags: new Map(tags.map((t) => [t.key, t.value])),
      seq: seq++
    })
    return experimentId
  })

  const setExperimentStage = (experimentId: string, from: LifecycleStage, to: LifecycleStage) =>
    Effect.gen(function*() {
      const e = yield* findExperiment(experimentId)
      if (e.lifecycleStage !== from) return yield* new NotFound({ entity: "experiment", key: experimentId })
      const now = yield* Clock.currentTimeMillis
      e.lifecycleStage = to
      e.lastUpdateTime = now
      // sqlite marks every run of the experiment with the experiment's stage
      for (const run of runs.values()) if (run.experimentId === experimentId) run.lifecycleStage = to
    })

  const deleteExperiment = Effect.fn("MlflowMemory.deleteExperiment")(function*(experimentId: string) {
    yield* enter("deleteExperiment")
    yield* setExperimentStage(experimentId, "active", "deleted")
  })

  const restoreExperiment = Effect.fn("MlflowMemory.restoreExperiment")(function*(experimentId: string) {
    yield* enter("restoreExperiment")
    yield* setExperimentStage(experimentId, "deleted", "active")
  })

  const searchExperimentsPage = Effect.fn("MlflowMemory.searchExperimentsPage")(function*(
    options: SearchExperimentsPageOptions
  ) {
    yield* enter("searchExperimentsPage")
    return yield* experimentsPage(options)
  })

  const searchExperiments = (options: SearchExperimentsOptions = {}) =>
    walkPages("searchExperiments", (pageToken) =>
      Effect.map(
        searchExperimentsPage({ ...options, pageToken, maxResults: options.pageSize ?? DEFAULT_PAGE_SIZE }),
        (page) => [page.experiments, page.nextPageToken] as const
      ))

  const createRun = Effect.fn("MlflowMemory.createRun")(function*(options: CreateRunOptions) {
    yield* enter("createRun")
    const experiment = yield* findExperiment(options.experimentId)
    if (experiment.lifecycleStage !== "active") return yield* notActiveExperiment(options.experimentId)
    const tags = options.tags ?? []
    yield* validateTags(tags)
    let nameTag: string | undefined
    for (const t of tags) if (t.key === "mlflow.runName") nameTag = t.value
    const given = options.runName === undefined || options.runName === "" ? undefined : options.runName
    if (given !== undefined && nameTag !== undefined && given !== nameTag) {
      return yield* new InvalidInput({
        kind: "RunName",
        input: given,
        reason: `the run name differs from the mlflow.runName tag '${nameTag}'`
      })
    }
    const runName = given ?? nameTag ?? (yield* randomRunName)
    const startTime = options.startTime ?? (yield* Clock.currentTimeMillis)
    const runId = newRunId()
    const record: RunRecord = {
      runId,
      experimentId: experiment.experimentId,
      runName,
      userId: options.userId ?? "",
      status: "RUNNING",
      startTime,
      endTime: undefined,
      artifactUri: `${experiment.artifactLocation}/${runId}/artifacts`,
      lifecycleStage: "active",
      tags: new Map(),
      metrics: [],
      params: new Map(),
      seq: seq++
    }
    for (const t of tags) record.tags.set(t.key, t.value)
    if (nameTag === undefined) record.tags.set("mlflow.runName", runName)
    runs.set(runId, record)
    return toRun(record)
  })

  const getRun = Effect.fn("MlflowMemory.getRun")(function*(runId: string) {
    yield* enter("getRun")
    return toRun(yield* findRun(runId))
  })

  const searchRunsPage = Effect.fn("MlflowMemory.searchRunsPage")(function*(options: SearchRunsPageOptions) {
    yield* enter("searchRunsPage")
    return yield* runsPage(options)
  })

  const searchRuns = (options: SearchRunsOptions) =>
    walkPages("searchRuns", (pageToken) =>
      Effect.map(
        searchRunsPage({ ...options, pageToken, maxResults: options.pageSize ?? DEFAULT_PAGE_SIZE }),
        (page) => [page.runs, page.nextPageToken] as const
      ))

  const setTag = Effect.fn("MlflowMemory.setTag")(function*(runId: string, key: string, value: string) {
    yield* enter("setTag")
    const run = yield* findRun(runId)
    yield* validateTagKey(key)
    if (run.lifecycleStage !== "active") return yield* notActiveRun(runId)
    setRunTag(run, key, value)
  })

  const setTags = Effect.fn("MlflowMemory.setTags")(function*(
    runId: string,
    tags: ReadonlyArray<{ readonly key: string; readonly value: string }>,
    extras?: LogBatchExtras
  ) {
    yield* enter("setTags")
    const metrics = extras?.metrics ?? []
    const params = extras?.params ?? []
    if (tags.length === 0 && metrics.length === 0 && params.length === 0) return
    // everything is checked before anything is written, so a rejected call changes nothing
    yield* validateTags(tags)
    yield* validateExtras(extras)
    const run = yield* activeRun(runId)
    const changed = params.find((p) => run.params.has(p.key) && run.params.get(p.key) !== p.value)
    if (changed !== undefined) {
      return yield* new MlflowApiError({
        status: 400,
        errorCode: "INVALID_PARAMETER_VALUE",
        detail: `Changing param values is not allowed. Param with key='${changed.key}' was already logged.`
      })
    }
    for (const p of params) run.params.set(p.key, p.value)
    for (const m of metrics) run.metrics.push({ key: m.key, value: m.value, timestamp: m.timestamp, step: m.step })
    for (const t of tags) setRunTag(run, t.key, t.value)
  })

  const setRunStage = (runId: string, to: LifecycleStage) =>
    Effect.map(findRun(runId), (run) => {
      run.lifecycleStage = to
    })

  const deleteRun = Effect.fn("MlflowMemory.deleteRun")(function*(runId: string) {
    yield* enter("deleteRun")
    yield* setRunStage(runId, "deleted")
  })

  const restoreRun = Effect.fn("MlflowMemory.restoreRun")(function*(runId: string) {
    yield* enter("restoreRun")
    yield* setRunStage(runId, "active")
  })

  const updateRun = Effect.fn("MlflowMemory.updateRun")(function*(runId: string, options: UpdateRunOptions) {
    yield* enter("updateRun")
    const run = yield* activeRun(runId)
    if (options.status !== undefined) run.status = options.status
    if (options.endTime !== undefined) run.endTime = options.endTime
    if (options.runName !== undefined && options.runName !== "") setRunTag(run, "mlflow.runName", options.runName)
    return toRunInfo(run)
  })

  const uploadArtifact = <E = never>(
    run: ArtifactRoot,
    path: string,
    source: ArtifactSource<E>
  ): Effect.Effect<void, E | InvalidInput | MlflowFailure> =>
    Effect.gen(function*() {
      yield* enter("uploadArtifact")
      yield* validateArtifactPath(path)
      const bytes = yield* readSource(source)
      yield* store(joinKey(rootKey(run.artifactUri), path), bytes)
    }).pipe(Effect.withSpan("MlflowMemory.uploadArtifact"))

  const downloadArtifact = (run: ArtifactRoot, path: string) =>
    Stream.unwrap(
      Effect.gen(function*() {
        yield* enter("downloadArtifact")
        yield* validateArtifactPath(path)
        const bytes = artifacts.get(joinKey(rootKey(run.artifactUri), path))
        if (bytes === undefined) return yield* new NotFound({ entity: "artifact", key: path })
        const chunks: Array<Uint8Array> = []
        for (let i = 0; i < bytes.length; i += DOWNLOAD_CHUNK) chunks.push(bytes.slice(i, i + DOWNLOAD_CHUNK))
        return Stream.fromIterable(chunks)
      })
    ).pipe(Stream.withSpan("MlflowMemory.downloadArtifact"))

  const readArtifact = Effect.fn("MlflowMemory.readArtifact")(function*(run: ArtifactRoot, path: string) {
    yield* enter("readArtifact")
    yield* validateArtifactPath(path)
    const bytes = artifacts.get(joinKey(rootKey(run.artifactUri), path))
    if (bytes === undefined) return yield* new NotFound({ entity: "artifact", key: path })
    return bytes.slice()
  })

  const listArtifacts = Effect.fn("MlflowMemory.listArtifacts")(function*(run: ArtifactRoot, path?: string) {
    yield* enter("listArtifacts")
    const dir = path === undefined || path === "" ? "" : yield* validateArtifactPath(path)
    const root = rootKey(run.artifactUri)
    return listLevel(dir === "" ? root : joinKey(root, dir)).map(([name, size]) =>
      toFileInfo(dir === "" ? name : `${dir}/${name}`, size)
    )
  })

  const mlflow: Mlflow.Service = {
    getExperiment,
    getExperimentByName,
    createExperiment,
    deleteExperiment,
    restoreExperiment,
    searchExperiments,
    createRun,
    getRun,
    searchRuns,
    setTag,
    setTags,
    deleteRun,
    restoreRun,
    updateRun,
    uploadArtifact,
    downloadArtifact,
    readArtifact,
    listArtifacts
  }

  // -- the handle ---------------------------------------------------------------------------------------------------

  const snapshot = Effect.sync((): Snapshot => {
    const byRun = new Map<string, Map<string, Uint8Array>>()
    const runsInOrder = [...runs.values()].sort((a, b) => a.seq - b.seq)
    for (const run of runsInOrder) {
      const prefix = `${rootKey(run.artifactUri)}/`
      const files = new Map<string, Uint8Array>()
      for (const [key, bytes] of [...artifacts].sort(([a], [b]) => compareStrings(a, b))) {
        if (key.startsWith(prefix)) files.set(key.slice(prefix.length), bytes)
      }
      if (files.size > 0) byRun.set(run.runId, files)
    }
    const metrics = new Map<string, ReadonlyArray<MetricPoint>>()
    const params = new Map<string, ReadonlyMap<string, string>>()
    for (const run of runsInOrder) {
      if (run.metrics.length > 0) metrics.set(run.runId, [...run.metrics])
      if (run.params.size > 0) params.set(run.runId, new Map(run.params))
    }
    return {
      experiments: [...experiments.values()].sort((a, b) => a.seq - b.seq).map(toExperiment),
      runs: runsInOrder.map(toRun),
      artifacts: byRun,
      metrics,
      params
    }
  })

  const load = (seed: Seed): Effect.Effect<void, InvalidInput> =>
    Effect.gen(function*() {
      const now = yield* Clock.currentTimeMillis
      const bad = (input: string, reason: string) => new InvalidInput({ kind: "Seed", input, reason })
      // check everything first, so that a rejected seed changes nothing
      const seedExperiments = seed.experiments ?? []
      const names = new Map<string, string>()
      for (const e of experiments.values()) names.set(e.name, e.experimentId)
      for (const e of seedExperiments) {
        for (const t of tagsOf(e.tags)) yield* validateTagKey(t.key)
        const owner = names.get(e.name)
        if (owner !== undefined && owner !== e.experimentId) {
          return yield* bad(e.name, `the experiment name is taken by experiment ${owner}`)
        }
        names.set(e.name, e.experimentId)
      }
      const experimentIds = new Set([...experiments.keys(), ...seedExperiments.map((e) => e.experimentId)])
      for (const r of seed.runs ?? []) {
        if (!experimentIds.has(r.experimentId)) return yield* bad(r.runId, `no experiment ${r.experimentId}`)
        for (const t of tagsOf(r.tags)) yield* validateTagKey(t.key)
        for (const a of artifactsOf(r.artifacts)) yield* validateArtifactPath(a.path)
      }
      for (const e of seedExperiments) {
        const previous = experiments.get(e.experimentId)
        experiments.set(e.experimentId, {
          experimentId: e.experimentId,
          name: e.name,
          artifactLocation: e.artifactLocation ?? `${ARTIFACTS_SCHEME}/${e.experimentId}`,
          lifecycleStage: e.lifecycleStage ?? "active",
          creationTime: e.creationTime ?? now,
          lastUpdateTime: e.lastUpdateTime ?? e.creationTime ?? now,
          tags: new Map(tagsOf(e.tags).map((t) => [t.key, t.value])),
          seq: previous?.seq ?? seq++
        })
        if (/^\d+$/.test(e.experimentId)) {
          const n = BigInt(e.experimentId)
          if (n >= nextExperimentId) nextExperimentId = n + 1n
        }
      }
      for (const r of seed.runs ?? []) {
        const experiment = experiments.get(r.experimentId)!
        const tags = new Map(tagsOf(r.tags).map((t) => [t.key, t.value]))
        const runName = r.runName ?? tags.get("mlflow.runName") ?? (yield* randomRunName)
        const previous = runs.get(r.runId)
        const record: RunRecord = {
          runId: r.runId,
          experimentId: r.experimentId,
          runName,
          userId: r.userId ?? "",
          status: r.status ?? "RUNNING",
          startTime: r.startTime ?? now,
          endTime: r.endTime,
          artifactUri: r.artifactUri ?? `${experiment.artifactLocation}/${r.runId}/artifacts`,
          lifecycleStage: r.lifecycleStage ?? "active",
          tags,
          metrics: [],
          params: new Map(),
          seq: previous?.seq ?? seq++
        }
        runs.set(r.runId, record)
        const root = rootKey(record.artifactUri)
        for (const a of artifactsOf(r.artifacts)) artifacts.set(joinKey(root, a.path), a.bytes.slice())
      }
    })

  const reset = Effect.flatMap(Clock.currentTimeMillis, (now) =>
    Effect.sync(() => {
      experiments.clear()
      runs.clear()
      artifacts.clear()
      nextExperimentId = 1n
      addDefault(now)
    }))

  const checkLocation = (location: string) => validateArtifactPath(location)

  const setExperimentTag = Effect.fn("MlflowMemory.setExperimentTag")(function*(
    experimentId: string,
    key: string,
    value: string
  ) {
    const e = yield* findExperiment(experimentId)
    yield* validateTagKey(key)
    if (e.lifecycleStage !== "active") return yield* notActiveExperiment(experimentId)
    e.tags.set(key, value)
  })

  const renameExperiment = Effect.fn("MlflowMemory.renameExperiment")(function*(experimentId: string, name: string) {
    const e = yield* findExperiment(experimentId)
    if (name === "") return yield* new InvalidInput({ kind: "ExperimentName", input: name, reason: "empty" })
    if (e.lifecycleStage !== "active") return yield* notActiveExperiment(experimentId)
    const owner = findExperimentByName(name)
    if (owner !== undefined && owner !== e) return yield* new AlreadyExists({ entity: "experiment", key: name })
    e.name = name
    e.lastUpdateTime = yield* Clock.currentTimeMillis
  })

  const deleteTag = Effect.fn("MlflowMemory.deleteTag")(function*(runId: string, key: string) {
    const run = yield* activeRun(runId)
    if (!run.tags.has(key)) return yield* new NotFound({ entity: "tag", key })
    run.tags.delete(key)
  })

  return {
    mlflow,
    snapshot,
    load,
    reset,
    calls: Effect.sync(() => ({ ...counts })),
    resetCalls: Effect.sync(() => {
      for (const key of Object.keys(counts) as Array<MethodName>) delete counts[key]
    }),
    failNth: (method, n, error) =>
      Effect.sync(() => {
        if (n >= 1) faults.push({ kind: "nth", method, remaining: Math.floor(n), error })
      }),
    failNext: (method, error, times = 1) =>
      Effect.sync(() => {
        if (times >= 1) faults.push({ kind: "next", method, remaining: Math.floor(times), error })
      }),
    delay: (method, duration) => Effect.sync(() => void delays.set(method, Duration.decode(duration))),
    clearFaults: Effect.sync(() => {
      faults = []
      delays.clear()
    }),
    searchRunsPage,
    searchExperimentsPage,
    setExperimentTag,
    renameExperiment,
    deleteTag,
    putArtifactAt: (location, bytes) =>
      Effect.flatMap(checkLocation(location), (loc) => store(loc, bytes.slice())),
    getArtifactAt: (location) =>
      Effect.flatMap(checkLocation(location), (loc) => {
        const bytes = artifacts.get(loc)
        return bytes === undefined ? Effect.fail(new NotFound({ entity: "artifact", key: loc })) : Effect.succeed(bytes)
      }),
    listArtifactsAt: (location) =>
      Effect.map(checkLocation(location), (loc) => listLevel(loc).map(([name, size]) => toFileInfo(name, size))),
    deleteArtifactAt: (location) =>
      Effect.map(checkLocation(location), (loc) => {
        artifacts.delete(loc)
      })
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Layers
// ---------------------------------------------------------------------------------------------------------------

/** Both services over one existing store (for an emulator that serves the same store over HTTP). */
export const layerWith = (handle: MlflowMemoryHandle.Service): Layer.Layer<Mlflow | MlflowMemoryHandle> =>
  Layer.succeedContext(Context.make(MlflowMemoryHandle, handle).pipe(Context.add(Mlflow, handle.mlflow)))

/** A fresh store per layer build. */
export const layer = (options: MlflowMemoryOptions = {}): Layer.Layer<Mlflow | MlflowMemoryHandle> =>
  Layer.unwrapEffect(Effect.map(make(options), layerWith))

/** The namespace-style entry point: `MlflowMemory.layer()`, `MlflowMemory.make()`. */
export const MlflowMemory = { make, layer, layerWith } as const
