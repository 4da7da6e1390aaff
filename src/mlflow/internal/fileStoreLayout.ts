/**
 * The file store's layout and pure rules: directory and file names, id patterns, status codes, the meta.yaml records
 * of a new experiment or run, tag-key checks and the errors MLflow's file store answers with.
 *
 * @internal
 */
import { Chunk, Either, Option, Stream } from "effect"
import { randomBytes } from "node:crypto"
import { InvalidInput, MlflowApiError } from "../../errors.js"
import * as LocalArtifacts from "../LocalArtifacts.js"
import { type Run, type RunInfo, type RunStatus, validateTagKey } from "../Mlflow.js"
import { type RunAccess, validateTags } from "../semantics.js"
import { type Meta, num, str } from "./metaYaml.js"

export const DEFAULT_EXPERIMENT_ID = "0"
export const META = "meta.yaml"
export const TRASH = ".trash"
export const MODELS = "models"
export const TAGS = "tags"
export const RUN_FOLDERS = ["artifacts", "metrics", "params", "tags"] as const
export const LOCK = ".forml-create.lock"
export const RUN_NAME_TAG = "mlflow.runName"
const SOURCE_TYPE_LOCAL = 4
/** How many times a run is read again while a writer keeps changing its meta.yaml under the reader. */
export const RUN_READ_ATTEMPTS = 20

export const STATUS_CODES: Readonly<Record<RunStatus, number>> = {
  RUNNING: 1,
  SCHEDULED: 2,
  FINISHED: 3,
  FAILED: 4,
  KILLED: 5
}
const STATUS_NAMES: ReadonlyArray<RunStatus> = ["RUNNING", "SCHEDULED", "FINISHED", "FAILED", "KILLED"]

/** Experiment directory names: MLflow's are decimal; any plain name is read, never one with `.`, `/` or `\`. */
export const EXPERIMENT_ID = /^[A-Za-z0-9][A-Za-z0-9_-]*$/
/** MLflow's run id rule (`_validate_run_id`); it keeps ids to one plain path segment. */
export const RUN_ID = /^[A-Za-z0-9][\w-]{0,255}$/

/** A run status as meta.yaml records it: its code, or (written by hand) its name; anything else reads as RUNNING. */
export const statusOf = (v: unknown): RunStatus => {
  const n = num(v)
  if (n !== undefined && n >= 1 && n <= 5) return STATUS_NAMES[n - 1]!
  const s = str(v)
  return s !== undefined && (STATUS_NAMES as ReadonlyArray<string>).includes(s) ? (s as RunStatus) : "RUNNING"
}

/** A random 18-digit decimal id, as MLflow's file store makes them. */
export const randomExperimentId = (): string => {
  const n = BigInt(`0x${randomBytes(8).toString("hex")}`) % 900_000_000_000_000_000n + 100_000_000_000_000_000n
  return n.toString()
}

/** `validateTagKey`, and no segment named as a temporary file (a tag key is a path under `tags/`). */
export const checkTags = (tags: ReadonlyArray<TagInput>) =>
  validateTags(tags, (key) =>
    Either.flatMap(validateTagKey(key), () =>
      key.split("/").some(LocalArtifacts.isTempName)
        ? Either.left(new InvalidInput({ kind: "TagKey", input: key, reason: "a segment uses a reserved name" }))
        : Either.void))

/** The last value of each key, in first-seen key order (MLflow's log-batch: the last value wins). */
export const lastWins = (
  tags: ReadonlyArray<TagInput>
): ReadonlyArray<TagInput> => {
  const map = new Map<string, string>()
  for (const t of tags) map.set(t.key, t.value)
  return [...map].map(([key, value]) => ({ key, value }))
}

export const runAccess: RunAccess<Run> = { fields: (r) => r.info, tag: (r, key) => Option.getOrUndefined(r.tag(key)) }

/** A snapshot as a stream of pages of `size`. */
export const paged = <A>(items: ReadonlyArray<A>, size: number): Stream.Stream<A> =>
  Stream.paginateChunk(0, (offset) => {
    const next = offset + size
    return [Chunk.fromIterable(items.slice(offset, next)), next < items.length ? Option.some(next) : Option.none()]
  })

export const apiError = (status: number, errorCode: string, detail: string) =>
  new MlflowApiError({ status, errorCode, detail })

export const notActiveRun = (runId: string) =>
  apiError(400, "INVALID_PARAMETER_VALUE", `The run ${runId} must be in 'active' lifecycle_stage.`)

export type TagInput = { readonly key: string; readonly value: string }

/** Where an experiment lives: `<root>/<E>`, or `.trash/<E>` once deleted. */
export interface ExperimentLoc {
  readonly experimentId: string
  readonly dir: string
  readonly deleted: boolean
}

/** Where a run lives: `<experiment dir>/<R>`. */
export interface RunLoc {
  readonly runId: string
  readonly experiment: ExperimentLoc
  readonly dir: string
}

/** A new experiment's meta.yaml: no `tags` key until a delete or restore rewrites it, as in MLflow. */
export const experimentMeta = (rootUri: string, experimentId: string, name: string, now: number): Meta => ({
  artifact_location: `${rootUri}/${experimentId}`,
  creation_time: now,
  experiment_id: experimentId,
  last_update_time: now,
  lifecycle_stage: "active",
  name
})

/** A new run's meta.yaml, with the legacy fields MLflow still writes. */
export const runMeta = (info: RunInfo): Meta => ({
  artifact_uri: info.artifactUri,
  end_time: info.endTime ?? null,
  entry_point_name: "",
  experiment_id: info.experimentId,
  lifecycle_stage: info.lifecycleStage,
  run_id: info.runId,
  run_name: info.runName,
  run_uuid: info.runId,
  source_name: "",
  source_type: SOURCE_TYPE_LOCAL,
  source_version: "",
  start_time: info.startTime,
  status: STATUS_CODES[info.status],
  tags: [],
  user_id: info.userId
})

const withoutKey = (meta: Meta, key: string): Meta => {
  const { [key]: _dropped, ...rest } = meta
  return rest
}

/** A run's meta.yaml once deleted at `now` (it stays in place, as in MLflow). */
export const runDeleted = (now: number) => (meta: Meta): Meta => ({
  ...meta,
  lifecycle_stage: "deleted",
  deleted_time: now
})

/** A run's meta.yaml once restored. */
export const runRestored = (meta: Meta): Meta => withoutKey({ ...meta, lifecycle_stage: "active" }, "deleted_time")
