/**
 * Rows of MLflow's SQL schema as the statements of `MlflowSql` read them, and their decoding into entities: an
 * experiment or run joined with its tags is one row per tag, grouped back into one entity.
 *
 * @internal
 */
import type { LifecycleStage, RunStatus } from "../Mlflow.js"
import { EntityTag, Experiment, Run, RunInfo } from "../Mlflow.js"
import { compareStrings } from "../semantics.js"

/** @internal */
export interface TagColumns {
  readonly tag_key: string | null
  readonly tag_value: string | null
}

/** @internal */
export interface ExperimentRow extends TagColumns {
  readonly experiment_id: string
  readonly name: string
  readonly artifact_location: string | null
  readonly lifecycle_stage: string | null
  readonly creation_time: number | string | null
  readonly last_update_time: number | string | null
}

/** @internal */
export interface RunRow extends TagColumns {
  readonly run_uuid: string
  readonly name: string | null
  readonly user_id: string | null
  readonly status: string | null
  readonly start_time: number | string | null
  readonly end_time: number | string | null
  readonly lifecycle_stage: string | null
  readonly artifact_uri: string | null
  readonly experiment_id: string | null
}

const num = (v: number | string | bigint | null | undefined): number | undefined =>
  v === null || v === undefined ? undefined : Number(v)

/** @internal */
export const stage = (v: string | null): LifecycleStage => (v === "deleted" ? "deleted" : "active")

const STATUSES: ReadonlySet<string> = new Set(["RUNNING", "SCHEDULED", "FINISHED", "FAILED", "KILLED"])
const status = (v: string | null): RunStatus => (v !== null && STATUSES.has(v) ? (v as RunStatus) : "RUNNING")

interface Grouped<Row> {
  readonly row: Row
  readonly tags: Array<EntityTag>
}

/** Rows of an entity joined with its tags (one row per tag, or one with no tag) → entities in first-seen order. */
const group = <Row extends TagColumns>(rows: ReadonlyArray<Row>, id: (row: Row) => string): Array<Grouped<Row>> => {
  const out = new Map<string, Grouped<Row>>()
  for (const row of rows) {
    let entry = out.get(id(row))
    if (entry === undefined) {
      entry = { row, tags: [] }
      out.set(id(row), entry)
    }
    if (row.tag_key !== null) entry.tags.push(new EntityTag({ key: row.tag_key, value: row.tag_value ?? "" }))
  }
  for (const entry of out.values()) entry.tags.sort((a, b) => compareStrings(a.key, b.key))
  return [...out.values()]
}

const toExperiment = ({ row, tags }: Grouped<ExperimentRow>): Experiment => {
  const creationTime = num(row.creation_time)
  const lastUpdateTime = num(row.last_update_time)
  return new Experiment({
    experimentId: row.experiment_id,
    name: row.name,
    artifactLocation: row.artifact_location ?? "",
    lifecycleStage: stage(row.lifecycle_stage),
    ...(creationTime === undefined ? {} : { creationTime }),
    ...(lastUpdateTime === undefined ? {} : { lastUpdateTime }),
    tags
  })
}

const toRun = ({ row, tags }: Grouped<RunRow>): Run => {
  const endTime = num(row.end_time)
  return new Run({
    info: new RunInfo({
      runId: row.run_uuid,
      experimentId: row.experiment_id ?? "",
      runName: row.name ?? "",
      userId: row.user_id ?? "",
      status: status(row.status),
      startTime: num(row.start_time) ?? 0,
      ...(endTime === undefined ? {} : { endTime }),
      artifactUri: row.artifact_uri ?? "",
      lifecycleStage: stage(row.lifecycle_stage)
    }),
    tags
  })
}

/** Experiments (with their tags) from the rows of `experiments LEFT JOIN experiment_tags`. @internal */
export const experiments = (rows: ReadonlyArray<ExperimentRow>): Array<Experiment> =>
  group(rows, (r) => r.experiment_id).map(toExperiment)

/** Runs (with their tags) from the rows of `runs LEFT JOIN tags`. @internal */
export const runs = (rows: ReadonlyArray<RunRow>): Array<Run> => group(rows, (r) => r.run_uuid).map(toRun)
