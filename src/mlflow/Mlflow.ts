/**
 * The Mlflow service: the part of MLflow's tracking API the registry stands on (experiments, runs, tags, artifacts),
 * as Effects and Streams with typed errors. Layers: MlflowHttp (REST), MlflowFileStore (./mlruns), MlflowMemory (tests).
 */
import * as FileSystem from "@effect/platform/FileSystem"
import { Chunk, Context, Effect, Either, Option, Schema, Stream } from "effect"
import { InvalidInput, StorageError } from "../errors.js"
import type { AlreadyExists, MlflowFailure, NotFound } from "../errors.js"
import type { Filter } from "./Filter.js"

// ---------------------------------------------------------------------------------------------------------------
// Entities (camelCase; the Http layer decodes MLflow's snake_case wire form into these)
// ---------------------------------------------------------------------------------------------------------------

export const LifecycleStage = Schema.Literal("active", "deleted")
export type LifecycleStage = typeof LifecycleStage.Type

export const RunStatus = Schema.Literal("RUNNING", "SCHEDULED", "FINISHED", "FAILED", "KILLED")
export type RunStatus = typeof RunStatus.Type

/** Which lifecycle stages a search sees. */
export const ViewType = Schema.Literal("ACTIVE_ONLY", "DELETED_ONLY", "ALL")
export type ViewType = typeof ViewType.Type

/** A key and its value, as a tag or a param is given to MLflow. */
export interface KeyValue {
  readonly key: string
  readonly value: string
}

export class EntityTag extends Schema.Class<EntityTag>("EntityTag")({
  key: Schema.String,
  value: Schema.String
}) {}

export class Experiment extends Schema.Class<Experiment>("Experiment")({
  experimentId: Schema.String,
  name: Schema.String,
  artifactLocation: Schema.String,
  lifecycleStage: LifecycleStage,
  creationTime: Schema.optional(Schema.Number),
  lastUpdateTime: Schema.optional(Schema.Number),
  tags: Schema.Array(EntityTag)
}) {
  /** The value of a tag, if set. */
  tag(key: string): Option.Option<string> {
    return findTag(this.tags, key)
  }
}

export class RunInfo extends Schema.Class<RunInfo>("RunInfo")({
  runId: Schema.String,
  experimentId: Schema.String,
  runName: Schema.String,
  userId: Schema.String,
  status: RunStatus,
  startTime: Schema.Number,
  endTime: Schema.optional(Schema.Number),
  artifactUri: Schema.String,
  lifecycleStage: LifecycleStage
}) {}

export class Run extends Schema.Class<Run>("Run")({
  info: RunInfo,
  tags: Schema.Array(EntityTag)
}) {
  get runId(): string {
    return this.info.runId
  }
  /** The value of a tag, if set. */
  tag(key: string): Option.Option<string> {
    return findTag(this.tags, key)
  }
}

/** One entry of an artifact listing; `path` is relative to the run's artifact root. */
export class FileInfo extends Schema.Class<FileInfo>("FileInfo")({
  path: Schema.String,
  isDir: Schema.Boolean,
  fileSize: Schema.optional(Schema.Number)
}) {}

const findTag = (tags: ReadonlyArray<EntityTag>, key: string): Option.Option<string> => {
  // The last value wins, as MLflow's log-batch does for a key given twice.
  for (let i = tags.length - 1; i >= 0; i--) {
    const tag = tags[i]!
    if (tag.key === key) return Option.some(tag.value)
  }
  return Option.none()
}

// ---------------------------------------------------------------------------------------------------------------
// Method arguments
// ---------------------------------------------------------------------------------------------------------------

/** Where a run keeps its artifacts: a `RunInfo` or `Run.info` is one; so is `{ runId, artifactUri }`. */
export interface ArtifactRoot {
  readonly runId: string
  readonly artifactUri: string
}

/** What an artifact upload reads from: bytes in memory, a byte stream, or a local file (streamed). */
export type ArtifactSource<E = never> =
  | Uint8Array
  | Stream.Stream<Uint8Array, E>
  | { readonly file: string }

export interface CreateRunOptions {
  readonly experimentId: string
  readonly runName?: string | undefined
  /** Milliseconds since the epoch; defaults to now. */
  readonly startTime?: number | undefined
  readonly userId?: string | undefined
  readonly tags?: ReadonlyArray<KeyValue> | undefined
  /**
   * The key of a tag in `tags` whose value is unique to this create. A layer that can lose a reply (Http) first
   * looks for an active run carrying it before sending the create again, so that a retry makes no second run.
   */
  readonly idempotencyTag?: string | undefined
}

export interface SearchRunsOptions {
  readonly experimentIds: ReadonlyArray<string>
  readonly filter?: Filter | undefined
  /** Defaults to ACTIVE_ONLY, as in MLflow. */
  readonly viewType?: ViewType | undefined
  /** MLflow order_by clauses such as `attributes.start_time ASC`. */
  readonly orderBy?: ReadonlyArray<string> | undefined
  /** Page size; defaults to 1000. */
  readonly pageSize?: number | undefined
}

export interface SearchExperimentsOptions {
  readonly filter?: Filter | undefined
  readonly viewType?: ViewType | undefined
  readonly pageSize?: number | undefined
}

/** One point of a metric, as MLflow logs it: `timestamp` in milliseconds since the epoch, `step` an integer. */
export interface MetricPoint {
  readonly key: string
  readonly value: number
  readonly timestamp: number
  readonly step: number
}

/** What `setTags` may send beside the tags, in the same runs/log-batch request. */
export interface LogBatchExtras {
  /** At most 1000. */
  readonly metrics?: ReadonlyArray<MetricPoint> | undefined
  /** At most 100; a param, once logged, keeps its value (MLflow refuses a change). */
  readonly params?: ReadonlyArray<KeyValue> | undefined
}

/** MLflow's log-batch limits on metrics and params (tags: 100 a request, split by `setTags`). */
export const MAX_BATCH_METRICS = 1000
export const MAX_BATCH_PARAMS = 100

/** Checks metrics and params as MLflow's log-batch does (keys as tag keys, counts, integral timestamps and steps); a value that is not finite is refused (JSON cannot carry it). */
export const validateExtras = (extras: LogBatchExtras | undefined): Either.Either<void, InvalidInput> => {
  const metrics = extras?.metrics ?? []
  const params = extras?.params ?? []
  const bad = (input: string, reason: string) => Either.left(new InvalidInput({ kind: "LogBatch", input, reason }))
  if (metrics.length > MAX_BATCH_METRICS) {
    return bad(`${metrics.length} metrics`, `at most ${MAX_BATCH_METRICS} a batch`)
  }
  if (params.length > MAX_BATCH_PARAMS) return bad(`${params.length} params`, `at most ${MAX_BATCH_PARAMS} a batch`)
  for (const m of metrics) {
    const key = validateTagKey(m.key)
    if (Either.isLeft(key)) return Either.left(key.left)
    if (!Number.isFinite(m.value)) return bad(m.key, "a metric's value is a finite number")
    if (!Number.isSafeInteger(m.timestamp) || !Number.isSafeInteger(m.step)) {
      return bad(m.key, "a metric's timestamp and step are integers")
    }
  }
  for (const p of params) {
    const key = validateTagKey(p.key)
    if (Either.isLeft(key)) return Either.left(key.left)
  }
  return Either.right(undefined)
}

export interface UpdateRunOptions {
  readonly status?: RunStatus | undefined
  readonly endTime?: number | undefined
  readonly runName?: string | undefined
}

// ---------------------------------------------------------------------------------------------------------------
// The service
// ---------------------------------------------------------------------------------------------------------------

export declare namespace Mlflow {
  export interface Service {
    // experiments
    readonly getExperiment: (experimentId: string) => Effect.Effect<Experiment, NotFound | MlflowFailure>
    readonly getExperimentByName: (name: string) => Effect.Effect<Experiment, NotFound | MlflowFailure>
    /** Creates an experiment and returns its id; a taken name (even by a deleted experiment) is AlreadyExists. */
    readonly createExperiment: (
      name: string,
      options?: { readonly tags?: ReadonlyArray<KeyValue> }
    ) => Effect.Effect<string, AlreadyExists | InvalidInput | MlflowFailure>
    readonly deleteExperiment: (experimentId: string) => Effect.Effect<void, NotFound | MlflowFailure>
    readonly restoreExperiment: (experimentId: string) => Effect.Effect<void, NotFound | MlflowFailure>
    /** Every matching experiment, walking all pages. */
    readonly searchExperiments: (
      options?: SearchExperimentsOptions
    ) => Stream.Stream<Experiment, InvalidInput | MlflowFailure>

    // runs
    readonly createRun: (options: CreateRunOptions) => Effect.Effect<Run, NotFound | InvalidInput | MlflowFailure>
    readonly getRun: (runId: string) => Effect.Effect<Run, NotFound | MlflowFailure>
    /** Every matching run, walking all pages (an empty final page with a token included). */
    readonly searchRuns: (options: SearchRunsOptions) => Stream.Stream<Run, InvalidInput | MlflowFailure>
    readonly setTag: (
      runId: string,
      key: string,
      value: string
    ) => Effect.Effect<void, NotFound | InvalidInput | MlflowFailure>
    /**
     * Sets several tags at once (runs/log-batch, split into batches of 100); `extras` (metrics, params) go in the
     * first batch. `mlflow.runName` among the tags renames the run, as in MLflow.
     */
    readonly setTags: (
      runId: string,
      tags: ReadonlyArray<KeyValue>,
      extras?: LogBatchExtras
    ) => Effect.Effect<void, NotFound | InvalidInput | MlflowFailure>
    readonly deleteRun: (runId: string) => Effect.Effect<void, NotFound | MlflowFailure>
    readonly restoreRun: (runId: string) => Effect.Effect<void, NotFound | MlflowFailure>
    readonly updateRun: (
      runId: string,
      options: UpdateRunOptions
    ) => Effect.Effect<RunInfo, NotFound | InvalidInput | MlflowFailure>

    // artifacts (paths are relative to the run's artifact root, `/`-separated, never `..`)
    readonly uploadArtifact: <E = never>(
      run: ArtifactRoot,
      path: string,
      source: ArtifactSource<E>
    ) => Effect.Effect<void, E | InvalidInput | MlflowFailure>
    /** The artifact's bytes as a stream; a missing artifact fails the stream with NotFound. */
    readonly downloadArtifact: (
      run: ArtifactRoot,
      path: string
    ) => Stream.Stream<Uint8Array, NotFound | InvalidInput | MlflowFailure>
    /**
     * The artifact's bytes whole, in one request and without a stream (for what is read into memory anyway: a tag, a
     * state read whole); a missing artifact is NotFound. Large artifacts belong to `downloadArtifact`.
     */
    readonly readArtifact: (
      run: ArtifactRoot,
      path: string
    ) => Effect.Effect<Uint8Array, NotFound | InvalidInput | MlflowFailure>
    /** One level of the artifact tree under `path` (the root when absent); a missing directory lists empty. */
    readonly listArtifacts: (
      run: ArtifactRoot,
      path?: string
    ) => Effect.Effect<ReadonlyArray<FileInfo>, InvalidInput | MlflowFailure>
  }
}

export class Mlflow extends Context.Tag("forml-mlflow/Mlflow")<Mlflow, Mlflow.Service>() {}

// ---------------------------------------------------------------------------------------------------------------
// Conveniences over the service
// ---------------------------------------------------------------------------------------------------------------

/** Downloads a whole artifact into memory (for small artifacts such as `tag.toml`). */
export const downloadBytes = (
  run: ArtifactRoot,
  path: string
): Effect.Effect<Uint8Array, NotFound | InvalidInput | MlflowFailure, Mlflow> =>
  Effect.flatMap(
    Mlflow,
    (mlflow) =>
      Effect.map(Stream.runCollect(mlflow.downloadArtifact(run, path)), (chunks) =>
        concatBytes(Chunk.toReadonlyArray(chunks)))
  )

/** Streams an artifact into a local file. */
export const downloadToFile = (
  run: ArtifactRoot,
  path: string,
  target: string
): Effect.Effect<void, NotFound | InvalidInput | MlflowFailure, Mlflow | FileSystem.FileSystem> =>
  Effect.gen(function*() {
    const mlflow = yield* Mlflow
    const fs = yield* FileSystem.FileSystem
    yield* mlflow.downloadArtifact(run, path).pipe(
      Stream.run(fs.sink(target)),
      Effect.catchTag("SystemError", "BadArgument", (e) => new StorageError({ path: target, reason: e.message }))
    )
  })

export const concatBytes = (chunks: ReadonlyArray<Uint8Array>): Uint8Array => {
  if (chunks.length === 1) return chunks[0]!
  let size = 0
  for (const c of chunks) size += c.length
  const out = new Uint8Array(size)
  let offset = 0
  for (const c of chunks) {
    out.set(c, offset)
    offset += c.length
  }
  return out
}

/**
 * Checks an artifact path relative to a run root: `/`-separated, no empty, `.` or `..` segment, no backslash,
 * no NUL, not absolute. Every layer calls it so that no name escapes a run or a store directory.
 */
export const validateArtifactPath = (path: string): Either.Either<string, InvalidInput> => {
  const bad = (reason: string) => Either.left(new InvalidInput({ kind: "ArtifactPath", input: path, reason }))
  if (path === "") return bad("empty")
  if (path.startsWith("/")) return bad("absolute")
  if (path.includes("\\")) return bad("holds a backslash")
  if (/[\u0000-\u001f]/.test(path)) return bad("holds a control character")
  for (const segment of path.split("/")) {
    if (segment === "" || segment === "." || segment === "..") return bad("holds an empty, '.' or '..' segment")
  }
  return Either.right(path)
}

/** MLflow's limit on a tag key (`MAX_ENTITY_KEY_LENGTH`). */
export const MAX_TAG_KEY_LENGTH = 250

/**
 * Checks a run or experiment tag key as MLflow's server does: letters, digits, `_`, `-`, `.`, space, `:` and `/`;
 * a name that a path normalisation would change (`..`, `./`, `//`, a leading or trailing `/`) is rejected, as is an
 * empty key or one over 250 characters. Layers call it before writing, so every layer rejects the same keys.
 */
export const validateTagKey = (key: string): Either.Either<string, InvalidInput> => {
  const bad = (reason: string) => Either.left(new InvalidInput({ kind: "TagKey", input: key, reason }))
  if (key === "") return bad("empty")
  if (key.length > MAX_TAG_KEY_LENGTH) return bad(`longer than ${MAX_TAG_KEY_LENGTH} characters`)
  if (!/^[\p{L}\p{N}_\-. :/]+$/u.test(key)) {
    return bad("names may only contain alphanumerics, underscores, dashes, periods, spaces, colons and slashes")
  }
  for (const segment of key.split("/")) {
    if (segment === "" || segment === "." || segment === "..") {
      return bad("names must not resolve to other names when treated as paths")
    }
  }
  return Either.right(key)
}
