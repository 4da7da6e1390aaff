/**
 * MLflow's REST wire format (snake_case JSON, as the 2.17 and 3.x servers send it) as Schemas, and the mapping
 * to and from the camelCase entities of `Mlflow.ts`. Shared by the Http layer (decoding) and the test emulator (encoding).
 */
import { Schema } from "effect"
import { EntityTag, Experiment, FileInfo, LifecycleStage, Run, RunInfo, RunStatus } from "./Mlflow.js"
import type { KeyValue } from "./Mlflow.js"

// ---------------------------------------------------------------------------------------------------------------
// Scalars
// ---------------------------------------------------------------------------------------------------------------

/** An int64: MLflow sends numbers, but protobuf's JSON form allows a decimal string as well. */
const Int64 = Schema.Union(Schema.Number, Schema.NumberFromString)

/**
 * An id: always a string on the wire. File-store experiment ids are 18 digits (above 2^53), so a number here
 * would already have lost precision; it is refused rather than silently rounded.
 */
const Id = Schema.String

// ---------------------------------------------------------------------------------------------------------------
// Entities
// ---------------------------------------------------------------------------------------------------------------

export const WireTag = Schema.Struct({
  key: Schema.String,
  // proto3 leaves out a default value; MLflow sends `""`, but a missing value means the same
  value: Schema.optionalWith(Schema.String, { default: () => "" })
})
export type WireTag = typeof WireTag.Type

/** Repeated fields are left out when empty, so every list is optional on the wire. */
const repeated = <A, I, R>(item: Schema.Schema<A, I, R>) =>
  Schema.optionalWith(Schema.Array(item), { default: () => [] })

export const WireExperiment = Schema.Struct({
  experiment_id: Id,
  name: Schema.String,
  artifact_location: Schema.optionalWith(Schema.String, { default: () => "" }),
  lifecycle_stage: Schema.optionalWith(LifecycleStage, { default: () => "active" as const }),
  creation_time: Schema.optional(Int64),
  last_update_time: Schema.optional(Int64),
  tags: repeated(WireTag)
})
export type WireExperiment = typeof WireExperiment.Type

export const WireRunInfo = Schema.Struct({
  run_id: Schema.optional(Id),
  // the deprecated alias, still sent by every server; used when run_id is absent
  run_uuid: Schema.optional(Id),
  experiment_id: Id,
  run_name: Schema.optionalWith(Schema.String, { default: () => "" }),
  user_id: Schema.optionalWith(Schema.String, { default: () => "" }),
  status: RunStatus,
  start_time: Schema.optionalWith(Int64, { default: () => 0 }),
  end_time: Schema.optional(Int64),
  artifact_uri: Schema.optionalWith(Schema.String, { default: () => "" }),
  lifecycle_stage: Schema.optionalWith(LifecycleStage, { default: () => "active" as const })
})
export type WireRunInfo = typeof WireRunInfo.Type

export const WireParam = Schema.Struct({
  key: Schema.String,
  value: Schema.optionalWith(Schema.String, { default: () => "" })
})

export const WireMetric = Schema.Struct({
  key: Schema.String,
  value: Schema.Union(Schema.Number, Schema.Literal("NaN", "Infinity", "-Infinity")),
  timestamp: Schema.optionalWith(Int64, { default: () => 0 }),
  step: Schema.optionalWith(Int64, { default: () => 0 })
})

export const WireRunData = Schema.Struct({
  tags: repeated(WireTag),
  params: repeated(WireParam),
  metrics: repeated(WireMetric)
})

/** A run; 3.x adds `outputs` and every server but 2.17 sqlite's runs/create adds `inputs`: both are ignored. */
export const WireRun = Schema.Struct({
  info: WireRunInfo,
  data: Schema.optionalWith(WireRunData, { default: () => ({ tags: [], params: [], metrics: [] }) })
})
export type WireRun = typeof WireRun.Type

export const WireFileInfo = Schema.Struct({
  path: Schema.String,
  is_dir: Schema.optionalWith(Schema.Boolean, { default: () => false }),
  file_size: Schema.optional(Int64)
})
export type WireFileInfo = typeof WireFileInfo.Type

// ---------------------------------------------------------------------------------------------------------------
// Responses (unknown fields, such as 3.x's `outputs`, are ignored by Schema's default `onExcessProperty`)
// ---------------------------------------------------------------------------------------------------------------

export const GetExperimentResponse = Schema.Struct({ experiment: WireExperiment })
export const CreateExperimentResponse = Schema.Struct({ experiment_id: Id })
export const SearchExperimentsResponse = Schema.Struct({
  experiments: repeated(WireExperiment),
  next_page_token: Schema.optional(Schema.String)
})
export const RunResponse = Schema.Struct({ run: WireRun })
export const SearchRunsResponse = Schema.Struct({
  runs: repeated(WireRun),
  next_page_token: Schema.optional(Schema.String)
})
export const UpdateRunResponse = Schema.Struct({ run_info: WireRunInfo })
/** `GET /api/2.0/mlflow-artifacts/artifacts?path=`: names relative to the listed directory. */
export const ListArtifactsResponse = Schema.Struct({ files: repeated(WireFileInfo) })
/** `GET /api/2.0/mlflow/artifacts/list`: paths relative to the run's artifact root. */
export const ListRunArtifactsResponse = Schema.Struct({
  root_uri: Schema.optional(Schema.String),
  files: repeated(WireFileInfo),
  next_page_token: Schema.optional(Schema.String)
})
/** The body of every MLflow error reply; 3.x adds `sqlstate` and `error_class`, which are ignored. */
export const ErrorResponse = Schema.Struct({
  error_code: Schema.String,
  message: Schema.optionalWith(Schema.String, { default: () => "" })
})
export type ErrorResponse = typeof ErrorResponse.Type

// ---------------------------------------------------------------------------------------------------------------
// Wire -> entities
// ---------------------------------------------------------------------------------------------------------------

// The values were just decoded by these schemas, so the entity constructors skip their own validation (`true`),
// which would otherwise dominate the cost of a 1000-run page.
const toTags = (tags: ReadonlyArray<WireTag>): ReadonlyArray<EntityTag> =>
  tags.map((t) => new EntityTag({ key: t.key, value: t.value }, true))

export const toExperiment = (w: WireExperiment): Experiment =>
  new Experiment({
    experimentId: w.experiment_id,
    name: w.name,
    artifactLocation: w.artifact_location,
    lifecycleStage: w.lifecycle_stage,
    creationTime: w.creation_time,
    lastUpdateTime: w.last_update_time,
    tags: toTags(w.tags)
  }, true)

export const toRunInfo = (w: WireRunInfo): RunInfo =>
  new RunInfo({
    runId: w.run_id ?? w.run_uuid ?? "",
    experimentId: w.experiment_id,
    runName: w.run_name,
    userId: w.user_id,
    status: w.status,
    startTime: w.start_time,
    endTime: w.end_time,
    artifactUri: w.artifact_uri,
    lifecycleStage: w.lifecycle_stage
  }, true)

export const toRun = (w: WireRun): Run => new Run({ info: toRunInfo(w.info), tags: toTags(w.data.tags) }, true)

export const toFileInfo = (w: WireFileInfo, path: string): FileInfo =>
  w.is_dir
    ? new FileInfo({ path, isDir: true }, true)
    : new FileInfo({ path, isDir: false, fileSize: w.file_size ?? 0 }, true)

// ---------------------------------------------------------------------------------------------------------------
// Entities -> wire (the JSON a server sends: empty repeated fields and absent optionals left out)
// ---------------------------------------------------------------------------------------------------------------

export type Json = null | boolean | number | string | ReadonlyArray<Json> | { readonly [key: string]: Json }

const tagsJson = (tags: ReadonlyArray<KeyValue>): ReadonlyArray<Json> =>
  tags.map((t) => ({ key: t.key, value: t.value }))

export const experimentJson = (e: Experiment): { readonly [key: string]: Json } => ({
  experiment_id: e.experimentId,
  name: e.name,
  artifact_location: e.artifactLocation,
  lifecycle_stage: e.lifecycleStage,
  ...(e.lastUpdateTime === undefined ? {} : { last_update_time: e.lastUpdateTime }),
  ...(e.creationTime === undefined ? {} : { creation_time: e.creationTime }),
  ...(e.tags.length === 0 ? {} : { tags: tagsJson(e.tags) })
})

export const runInfoJson = (i: RunInfo): { readonly [key: string]: Json } => ({
  run_uuid: i.runId,
  experiment_id: i.experimentId,
  run_name: i.runName,
  user_id: i.userId,
  status: i.status,
  start_time: i.startTime,
  ...(i.endTime === undefined ? {} : { end_time: i.endTime }),
  artifact_uri: i.artifactUri,
  lifecycle_stage: i.lifecycleStage,
  run_id: i.runId
})

/** Params and metrics are not part of `Run`; a caller that keeps them passes them in wire form. */
export interface RunDataExtra {
  readonly params?: ReadonlyArray<KeyValue>
  readonly metrics?: ReadonlyArray<
    { readonly key: string; readonly value: number; readonly timestamp: number; readonly step: number }
  >
}

export const runJson = (
  r: Run,
  extra: RunDataExtra & { readonly inputs?: boolean; readonly outputs?: boolean } = {}
): { readonly [key: string]: Json } => {
  const metrics = extra.metrics ?? []
  const params = extra.params ?? []
  return {
    info: runInfoJson(r.info),
    data: {
      ...(metrics.length === 0 ? {} : { metrics: metrics.map((m) => ({ ...m })) }),
      ...(params.length === 0 ? {} : { params: params.map((p) => ({ ...p })) }),
      ...(r.tags.length === 0 ? {} : { tags: tagsJson(r.tags) })
    },
    ...(extra.inputs === false ? {} : { inputs: {} }),
    ...(extra.outputs === true ? { outputs: {} } : {})
  }
}

export const fileInfoJson = (
  f: { readonly path: string; readonly isDir: boolean; readonly fileSize?: number | undefined }
) => f.isDir ? { path: f.path, is_dir: true } : { path: f.path, is_dir: false, file_size: f.fileSize ?? 0 }
