/**
 * MlflowMemory: an in-process Mlflow layer with the semantics of an MLflow 2.17 tracking server (sqlite flavour),
 * plus a handle (MlflowMemoryHandle) to inspect and seed its state, count calls, inject faults and page searches.
 * The store's machinery lives in `internal/memory*.ts`; paging tokens in `internal/paging.ts`.
 */
import { Clock, Context, Effect, Layer } from "effect"
import type { Duration } from "effect"
import type { AlreadyExists, InvalidInput, MlflowFailure, NotFound } from "../errors.js"
import { makeHandle } from "./internal/memoryHandle.js"
import { Mlflow } from "./Mlflow.js"
import type {
  Experiment,
  FileInfo,
  KeyValue,
  LifecycleStage,
  MetricPoint,
  Run,
  RunStatus,
  SearchExperimentsOptions,
  SearchRunsOptions
} from "./Mlflow.js"
import { DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, parseOrderBy } from "./semantics.js"

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
  | ReadonlyArray<KeyValue>
  | Readonly<Record<string, string>>

export type ArtifactsInput =
  | ReadonlyArray<{ readonly path: string; readonly bytes: Uint8Array }>
  | Readonly<Record<string, Uint8Array>>

/** State to seed a store with (for example ForML's `mlflow-layout.json`). Missing fields get server defaults. */
export interface Seed {
  readonly experiments?:
    | ReadonlyArray<{
      readonly experimentId: string
      readonly name: string
      readonly artifactLocation?: string | undefined
      readonly lifecycleStage?: LifecycleStage | undefined
      readonly creationTime?: number | undefined
      readonly lastUpdateTime?: number | undefined
      readonly tags?: TagsInput | undefined
    }>
    | undefined
  readonly runs?:
    | ReadonlyArray<{
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
    }>
    | undefined
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
// Constants
// ---------------------------------------------------------------------------------------------------------------

export { DEFAULT_PAGE_SIZE, parseOrderBy }
export { decodePageToken, encodePageToken } from "./internal/paging.js"
export const MAX_RUNS_PAGE_SIZE = MAX_PAGE_SIZE
export const MAX_EXPERIMENTS_PAGE_SIZE = MAX_PAGE_SIZE

/** Builds a store; `mlflow` and the handle share it. */
export const make = (options: MlflowMemoryOptions = {}): Effect.Effect<MlflowMemoryHandle.Service> =>
  Effect.map(Clock.currentTimeMillis, (now) => makeHandle(options, now))

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
