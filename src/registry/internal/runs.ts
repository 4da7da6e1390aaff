/**
 * What MlflowRegistry's pieces share: the cache keys, the runs of a release and of a training, the release and
 * generation numbers read from run tags, and the errors of an entity that is absent or vanished.
 *
 * @internal
 */
import type { PlatformError } from "@effect/platform/Error"
import { Array as Arr, Clock, Data, Effect, Either, Equal, Option } from "effect"
import { globalValue } from "effect/GlobalValue"
import { GenerationKey } from "../../asset/GenerationKey.js"
import type { ProjectKey } from "../../asset/ProjectKey.js"
import { ReleaseKey } from "../../asset/ReleaseKey.js"
import type { StateId } from "../../asset/StateId.js"
import { MlflowApiError, NotFound, StorageError } from "../../errors.js"
import { EntityTag, Run } from "../../mlflow/Mlflow.js"
import type { MetricPoint, RunInfo } from "../../mlflow/Mlflow.js"
import * as Layout from "../layout.js"

// Cache keys: Data tuples compare by value, and ReleaseKey's Equal makes `1.0` and `1.0.0` one key.
/** @internal */
export type ReleaseRef = readonly [ProjectKey, ReleaseKey]
/** @internal */
export type GenerationRef = readonly [ProjectKey, ReleaseKey, GenerationKey]

/** @internal */
export const releaseRef = (project: ProjectKey, release: ReleaseKey): ReleaseRef => Data.tuple(project, release)
/** @internal */
export const generationRef = (project: ProjectKey, release: ReleaseKey, generation: GenerationKey): GenerationRef =>
  Data.tuple(project, release, generation)

/** @internal */
export interface ExperimentRef {
  readonly id: string
  readonly name: string
}

/** The runs of one release: every active duplicate a race left, canonical first. @internal */
export interface ReleaseRuns {
  readonly experiment: ExperimentRef
  readonly canonical: Run
  readonly all: ReadonlyArray<Run>
}

/** What MLflow's UI shows of a committed generation: its name and description tags, and its metrics. @internal */
export interface Display {
  readonly tags: ReadonlyArray<Layout.TagPair>
  readonly metrics: ReadonlyArray<MetricPoint>
}

/** What an upload sent: the sha256 (hex) and the length of its bytes. @internal */
export interface Written {
  readonly sha256: string
  readonly size: number
}

/** The training in progress of this instance under one release: its run and what each state written sent. @internal */
export interface Unbound {
  readonly run: Run
  /** Every state written to the run by this instance. */
  readonly states: Map<string, Written>
  /** `forml.sha256.<sid>.bin` tags not yet set (they go with the commit, or in a batch once PENDING_TAGS are due). */
  readonly pending: Map<string, string>
}

/** @internal */
export const training = (run: Run): Unbound => ({ run, states: new Map(), pending: new Map() })

/** A NotFound met where the registry created or just saw the entity: the store changed under us. @internal */
export const vanished = (e: NotFound): MlflowApiError =>
  new MlflowApiError({ status: 404, errorCode: "RESOURCE_DOES_NOT_EXIST", detail: e.message })

/** @internal */
export const orVanished = <A, E, R>(
  self: Effect.Effect<A, E | NotFound, R>
): Effect.Effect<A, Exclude<E, NotFound> | MlflowApiError, R> =>
  Effect.catchIf(self, (e): e is NotFound => e instanceof NotFound, (e) => Effect.fail(vanished(e)))

/** @internal */
export const storage = (path: string) => (e: PlatformError): StorageError =>
  new StorageError({ path, reason: e.message })

/** `run` as an update left it: its new info, and `tags` set. @internal */
export const withRunUpdate = (run: Run, info: RunInfo, tags: ReadonlyArray<Layout.TagPair>): Run =>
  new Run({ info, tags: [...run.tags, ...tags.map((t) => new EntityTag(t))] })

// Commit instants are end times that strictly increase within a process, so that two commits in the same
// millisecond (tests, or trainers sharing a process) still have an order; across processes the clock orders them.
const lastInstant = globalValue(Symbol.for("forml-mlflow/registry/lastCommitInstant"), () => ({ value: 0 }))
/** @internal */
export const commitInstant = Effect.map(Clock.currentTimeMillis, (now) => {
  lastInstant.value = Math.max(now, lastInstant.value + 1)
  return lastInstant.value
})

/** @internal */
export const isActive = (run: Run): boolean => run.info.lifecycleStage === "active"

/** @internal */
export const releaseKeyOf = (run: Run): Option.Option<ReleaseKey> =>
  Option.flatMap(run.tag(Layout.TAG.commit), (v) => Either.getRight(ReleaseKey.parse(v)))

/** @internal */
export const generationKeyOf = (run: Run): Option.Option<GenerationKey> =>
  Option.flatMap(run.tag(Layout.TAG.commit), (v) => Either.getRight(GenerationKey.parse(v)))

/** The release runs for `release` (by PEP 440 equality, so `1.0` finds `1.0.0`), canonical first. @internal */
export const runsOf = (runs: ReadonlyArray<Run>, release: ReleaseKey): ReadonlyArray<Run> =>
  Arr.sort(runs.filter((r) => Option.exists(releaseKeyOf(r), (k) => Equal.equals(k, release))), Layout.byStart)

/** @internal */
export const releaseName = (project: ProjectKey, release: ReleaseKey): string => `${project}-${release}`

/** @internal */
export const generationName = (project: ProjectKey, release: ReleaseKey, generation: GenerationKey): string =>
  `${releaseName(project, release)}#${generation}`

/** @internal */
export const releaseNotFound = (project: ProjectKey, release: ReleaseKey) =>
  new NotFound({ entity: "release", key: releaseName(project, release) })

/** @internal */
export const generationNotFound = (project: ProjectKey, release: ReleaseKey, generation: GenerationKey) =>
  new NotFound({ entity: "generation", key: generationName(project, release, generation) })

/** @internal */
export const stateNotFound = (where: string, sid: StateId) => new NotFound({ entity: "state", key: `${where}/${sid}` })
