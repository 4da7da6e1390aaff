/**
 * MlflowMemory's state: experiment and run records, the artifact map (full location → bytes), lookups, and the two
 * page-level searches, shared by the service, the handle and the emulator that serves the same store.
 *
 * @internal
 */
import { Chunk, Effect, Either, Option, Stream } from "effect"
import { readFile } from "node:fs/promises"
import { MlflowApiError, NotFound, StorageError } from "../../errors.js"
import type { InvalidInput, MlflowFailure } from "../../errors.js"
import { concatBytes, EntityTag, Experiment, FileInfo, Run, RunInfo } from "../Mlflow.js"
import type { ArtifactSource, LifecycleStage, MetricPoint, RunStatus } from "../Mlflow.js"
import type {
  ExperimentsPage,
  MethodName,
  MlflowMemoryOptions,
  RunsPage,
  SearchExperimentsPageOptions,
  SearchRunsPageOptions
} from "../MlflowMemory.js"
import {
  checkExperimentsSearch,
  checkRunsSearch,
  compareStrings,
  experimentAdmitted,
  notActiveRun,
  selectRuns
} from "../semantics.js"
import type { RunAccess } from "../semantics.js"
import { decodePageToken, window } from "./paging.js"

export const ARTIFACTS_SCHEME = "mlflow-artifacts:"
export const DOWNLOAD_CHUNK = 64 * 1024

export interface ExperimentRecord {
  readonly experimentId: string
  name: string
  readonly artifactLocation: string
  lifecycleStage: LifecycleStage
  readonly creationTime: number
  lastUpdateTime: number
  readonly tags: Map<string, string>
  readonly seq: number
}

export interface RunRecord {
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

/** One store: the records, the artifact map and the counters new ids and creation order come from. */
export interface Store {
  readonly config: MlflowMemoryOptions
  readonly experiments: Map<string, ExperimentRecord>
  readonly runs: Map<string, RunRecord>
  /** Full location (`<root key>/<path>`) → bytes. */
  readonly artifacts: Map<string, Uint8Array>
  /** The root new experiments get `/<experiment id>` under. */
  readonly artifactRoot: string
  nextExperimentId: bigint
  seq: number
}

/** What every operation works on: the store, and the entry that counts a call and applies its faults. */
export interface Memory {
  readonly store: Store
  readonly enter: (method: MethodName) => Effect.Effect<void, MlflowFailure>
}

export const makeStore = (config: MlflowMemoryOptions, createdAt: number): Store => {
  const store: Store = {
    config,
    experiments: new Map(),
    runs: new Map(),
    artifacts: new Map(),
    artifactRoot: (config.defaultArtifactRoot ?? ARTIFACTS_SCHEME).replace(/\/+$/, ""),
    nextExperimentId: 1n,
    seq: 0
  }
  addDefault(store, createdAt)
  return store
}

/** The Default experiment (id 0) every server starts with. */
export const addDefault = (store: Store, now: number): void => {
  store.experiments.set("0", {
    experimentId: "0",
    name: "Default",
    artifactLocation: `${store.artifactRoot}/0`,
    lifecycleStage: "active",
    creationTime: now,
    lastUpdateTime: now,
    tags: new Map(),
    seq: store.seq++
  })
}

// -- records as entities ----------------------------------------------------------------------------------------

// Records hold typed values already, so the entity constructors skip their own validation (`true`), which would
// otherwise dominate the cost of a large search page.
const toTags = (tags: ReadonlyMap<string, string>): ReadonlyArray<EntityTag> =>
  Array.from(tags, ([key, value]) => new EntityTag({ key, value }, true))

export const toExperiment = (e: ExperimentRecord): Experiment =>
  new Experiment({
    experimentId: e.experimentId,
    name: e.name,
    artifactLocation: e.artifactLocation,
    lifecycleStage: e.lifecycleStage,
    creationTime: e.creationTime,
    lastUpdateTime: e.lastUpdateTime,
    tags: toTags(e.tags)
  }, true)

export const toRunInfo = (r: RunRecord): RunInfo =>
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

export const toRun = (r: RunRecord): Run => new Run({ info: toRunInfo(r), tags: toTags(r.tags) }, true)

/** A listing entry: a directory when it has no size. */
export const toFileInfo = (path: string, size: number | undefined): FileInfo =>
  size === undefined
    ? new FileInfo({ path, isDir: true }, true)
    : new FileInfo({ path, isDir: false, fileSize: size }, true)

/** A record is its own run fields. */
const recordAccess: RunAccess<RunRecord> = { fields: (r) => r, tag: (r, key) => r.tags.get(key) }

// -- lookups ----------------------------------------------------------------------------------------------------

export const findExperiment = (store: Store, experimentId: string): Either.Either<ExperimentRecord, NotFound> => {
  const e = store.experiments.get(experimentId)
  return e === undefined ? Either.left(new NotFound({ entity: "experiment", key: experimentId })) : Either.right(e)
}

export const findExperimentByName = (store: Store, name: string): ExperimentRecord | undefined => {
  for (const e of store.experiments.values()) if (e.name === name) return e
  return undefined
}

export const findRun = (store: Store, runId: string): Either.Either<RunRecord, NotFound> => {
  const r = store.runs.get(runId)
  return r === undefined ? Either.left(new NotFound({ entity: "run", key: runId })) : Either.right(r)
}

export const activeRun = (store: Store, runId: string): Either.Either<RunRecord, NotFound | MlflowApiError> =>
  Either.flatMap(
    findRun(store, runId),
    (r) => (r.lifecycleStage === "active" ? Either.right(r) : Either.left(notActiveRun(runId)))
  )

export const setRunTag = (run: RunRecord, key: string, value: string): void => {
  run.tags.set(key, value)
  // sqlite keeps the run name and the mlflow.runName tag in step
  if (key === "mlflow.runName") run.runName = value
}

// -- searches ---------------------------------------------------------------------------------------------------

export const runsPage = (store: Store, options: SearchRunsPageOptions): Either.Either<RunsPage, InvalidInput> =>
  Either.gen(function*() {
    const { filter, maxResults, order } = yield* checkRunsSearch(options.maxResults, options)
    const offset = yield* decodePageToken(options.pageToken)
    const selected = selectRuns(store.runs.values(), recordAccess, { ...options, filter, order })
    const trailing = options.trailingEmptyPage ?? store.config.trailingEmptyPage ?? false
    const page = window(selected, offset, maxResults, trailing)
    return page.nextPageToken === undefined
      ? { runs: page.items.map(toRun) }
      : { runs: page.items.map(toRun), nextPageToken: page.nextPageToken }
  })

export const experimentsPage = (
  store: Store,
  options: SearchExperimentsPageOptions
): Either.Either<ExperimentsPage, InvalidInput> =>
  Either.gen(function*() {
    const { filter, maxResults } = yield* checkExperimentsSearch(options.maxResults, options)
    const offset = yield* decodePageToken(options.pageToken)
    const selected = [...store.experiments.values()].filter((e) =>
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
export const walkPages = <A, E>(
  memory: Memory,
  method: "searchRuns" | "searchExperiments",
  page: (pageToken: string | undefined) => Effect.Effect<readonly [ReadonlyArray<A>, string | undefined], E>
): Stream.Stream<A, E | MlflowFailure> =>
  Stream.unwrap(
    Effect.as(
      memory.enter(method),
      Stream.paginateChunkEffect(undefined as string | undefined, (pageToken) =>
        Effect.map(page(pageToken), ([items, next]) =>
          [Chunk.fromIterable(items), Option.fromNullable(next)] as const))
    )
  ).pipe(Stream.withSpan(`MlflowMemory.${method}`))

// -- artifacts --------------------------------------------------------------------------------------------------

/** The artifact store key of a run root: the path under `mlflow-artifacts:/`, or the whole URI for other schemes. */
export const rootKey = (artifactUri: string): string => {
  const trimmed = artifactUri.replace(/\/+$/, "")
  return trimmed.startsWith(ARTIFACTS_SCHEME) ? trimmed.slice(ARTIFACTS_SCHEME.length).replace(/^\/+/, "") : trimmed
}

export const joinKey = (root: string, path: string): string => (root === "" ? path : `${root}/${path}`)

const isDirectory = (store: Store, location: string): boolean => {
  const prefix = `${location}/`
  for (const key of store.artifacts.keys()) if (key.startsWith(prefix)) return true
  return false
}

/** One level under a location: name → size (files) or undefined (directories), sorted by name. */
export const listLevel = (store: Store, location: string): ReadonlyArray<readonly [string, number | undefined]> => {
  const prefix = location === "" ? "" : `${location}/`
  const entries = new Map<string, number | undefined>()
  for (const [key, bytes] of store.artifacts) {
    if (!key.startsWith(prefix)) continue
    const rest = key.slice(prefix.length)
    const slash = rest.indexOf("/")
    if (slash < 0) entries.set(rest, bytes.length)
    else entries.set(rest.slice(0, slash), undefined)
  }
  return [...entries].sort(([a], [b]) => compareStrings(a, b))
}

/** Stores a file, refused (as the server's file system refuses it) over a directory or under a file. */
export const putArtifact = (store: Store, location: string, bytes: Uint8Array): Either.Either<void, MlflowApiError> => {
  if (isDirectory(store, location)) {
    return Either.left(
      new MlflowApiError({ status: 500, errorCode: "INTERNAL_ERROR", detail: `Is a directory: '${location}'` })
    )
  }
  const parts = location.split("/")
  for (let i = 1; i < parts.length; i++) {
    const parent = parts.slice(0, i).join("/")
    if (store.artifacts.has(parent)) {
      return Either.left(
        new MlflowApiError({ status: 500, errorCode: "INTERNAL_ERROR", detail: `Not a directory: '${parent}'` })
      )
    }
  }
  store.artifacts.set(location, bytes)
  return Either.void
}

/** The bytes of an upload, always a copy: the store never shares bytes with its caller. */
export const readSource = <E>(source: ArtifactSource<E>): Effect.Effect<Uint8Array, E | StorageError> => {
  if (source instanceof Uint8Array) return Effect.sync(() => source.slice())
  if ("file" in source) {
    const file = source.file
    return Effect.tryPromise({
      try: () => readFile(file),
      catch: (e) => new StorageError({ path: file, reason: e instanceof Error ? e.message : String(e) })
    }).pipe(Effect.map((buf) => new Uint8Array(buf.buffer, buf.byteOffset, buf.length)))
  }
  // a single chunk is copied too
  return Effect.map(
    Stream.runCollect(source),
    (chunks) => chunks.length === 1 ? Chunk.unsafeHead(chunks).slice() : concatBytes(Chunk.toReadonlyArray(chunks))
  )
}
