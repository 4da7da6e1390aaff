/**
 * How a ForML registry sits on MLflow (DESIGN §2, the wire contract shared with ForML's own provider): experiment
 * names, run tags, artifact names and search filters, plus the canonical order that makes racing writers converge.
 */
import { Option, Order } from "effect"
import type { ProjectKey as ProjectKeyType } from "../asset/ProjectKey.js"
import { ProjectKey } from "../asset/ProjectKey.js"
import { Timestamp } from "../asset/Tag.js"
import type { Tag, TomlValue } from "../asset/Tag.js"
import * as Filter from "../mlflow/Filter.js"
import type { MetricPoint, Run } from "../mlflow/Mlflow.js"

/** Run tags. `commit` holds the release version on release runs and the number on committed generation runs. */
export const TAG = {
  repoid: "forml.repoid",
  level: "forml.level",
  session: "forml.session",
  commit: "mlflow.source.git.commit",
  parent: "mlflow.parentRunId",
  create: "forml.create",
  /** MLflow's run name (the UI's title of a run); ForML neither sets nor reads it. */
  runName: "mlflow.runName",
  /** MLflow's run description (the UI's "Description", Markdown); ForML neither sets nor reads it. */
  note: "mlflow.note.content"
} as const

export const LEVEL = { release: "release", generation: "generation" } as const

/** Artifact names at the root of a run. */
export const ARTIFACT = {
  package: "package.4ml",
  tag: "tag.toml",
  state: (sid: string): string => `${sid}.bin`
} as const

/** What ForML's MLflow client sends as `user_id` when creating runs (it sets none, the client fills "unknown"). */
export const USER_ID = "unknown"

/** The tag recording an uploaded artifact's sha256 (hex): `forml.sha256.<artifact name>`. */
export const sha256Tag = (artifact: string): string => `forml.sha256.${artifact}`

// ---------------------------------------------------------------------------------------------------------------
// Experiment names
// ---------------------------------------------------------------------------------------------------------------

export const DELIMITER = "@"

/** The experiment of a project: `<project>`, or `<project>@<repoid>` in a virtual repository. */
export const experimentName = (project: ProjectKeyType, repoid: string): string =>
  repoid === "" ? project : `${project}${DELIMITER}${repoid}`

/**
 * The project an experiment name stands for in repository `repoid`, if any. A project name never holds `@`, so the
 * first `@` splits the name; names of other repositories and names that are not project keys are foreign.
 */
export const projectOf = (experiment: string, repoid: string): Option.Option<ProjectKeyType> => {
  const at = experiment.indexOf(DELIMITER)
  const project = at < 0 ? experiment : experiment.slice(0, at)
  const suffix = at < 0 ? "" : experiment.slice(at + 1)
  if (at >= 0 && suffix === "") return Option.none()
  if (suffix !== repoid) return Option.none()
  return ProjectKey.is(project) ? Option.some(project) : Option.none()
}

// ---------------------------------------------------------------------------------------------------------------
// Tags written on created runs (in ForML's order)
// ---------------------------------------------------------------------------------------------------------------

export interface TagPair {
  readonly key: string
  readonly value: string
}

/** ForML's release run tags. */
export const releaseTags = (repoid: string, version: string): ReadonlyArray<TagPair> => [
  { key: TAG.repoid, value: repoid },
  { key: TAG.level, value: LEVEL.release },
  { key: TAG.commit, value: version }
]

/**
 * The tags this library creates a release run with: ForML's, plus an empty `forml.sha256.package.4ml` saying that the
 * package is not uploaded yet. The push sets the real sha256 after the upload; until then the release is not listed.
 */
export const newReleaseTags = (repoid: string, version: string): ReadonlyArray<TagPair> => [
  ...releaseTags(repoid, version),
  { key: sha256Tag(ARTIFACT.package), value: "" }
]

/**
 * Whether a release run holds its package: false only for a run this library created whose push did not finish
 * (empty sha256 tag). ForML's runs carry no such tag and are taken as published, as ForML takes them.
 */
export const isPublished = (run: Run): boolean => !Option.contains(run.tag(sha256Tag(ARTIFACT.package)), "")

export const generationTags = (repoid: string, releaseRunId: string, session: string): ReadonlyArray<TagPair> => [
  { key: TAG.repoid, value: repoid },
  { key: TAG.level, value: LEVEL.generation },
  { key: TAG.parent, value: releaseRunId },
  { key: TAG.session, value: session }
]

/**
 * The tag of one logical create: a fresh uuid4 sent with every attempt of it, so that the runs a lost reply and its
 * retry left behind are known as one writer's duplicates (ForML ignores the tag). Runs made before it have none.
 */
export const createTag = (token: string): TagPair => ({ key: TAG.create, value: token })

/** The token of the create that made a run, if it has one. */
export const createTokenOf = (run: Run): Option.Option<string> => run.tag(TAG.create)

/**
 * Release runs left by a create whose reply was lost (or came after the timeout): unpublished runs carrying the
 * token of a published run. The writer published that one, so the others are empty and never used again.
 */
export const abandoned = (runs: ReadonlyArray<Run>): ReadonlyArray<Run> => {
  const published = new Set<string>()
  for (const run of runs) if (isPublished(run)) { for (const t of Option.toArray(createTokenOf(run))) published.add(t) }
  if (published.size === 0) return []
  return runs.filter((r) => !isPublished(r) && Option.exists(createTokenOf(r), (t) => published.has(t)))
}

// ---------------------------------------------------------------------------------------------------------------
// Search filters (always through Filter, so a quote in a value cannot break them)
// ---------------------------------------------------------------------------------------------------------------

/** Every release run of a repository (in the experiments searched). */
export const releaseRuns = (repoid: string): Filter.Filter =>
  Filter.and(Filter.tag(TAG.repoid, repoid), Filter.tag(TAG.level, LEVEL.release))

/** Every generation run (committed or not) under one release run. */
export const generationRuns = (repoid: string, releaseRunId: string): Filter.Filter =>
  Filter.and(
    Filter.tag(TAG.repoid, repoid),
    Filter.tag(TAG.level, LEVEL.generation),
    Filter.tag(TAG.parent, releaseRunId)
  )

/** The generation runs committed as number `generation` under one release run. */
export const committedRuns = (repoid: string, releaseRunId: string, generation: number): Filter.Filter =>
  Filter.and(...generationRuns(repoid, releaseRunId).clauses, Filter.tag(TAG.commit, String(generation)))

/** The generation runs of one session under one release run (committed ones included: filters cannot say "absent"). */
export const sessionRuns = (repoid: string, releaseRunId: string, session: string): Filter.Filter =>
  Filter.and(...generationRuns(repoid, releaseRunId).clauses, Filter.tag(TAG.session, session))

/** The generation runs one create of a session made (one, or more when a reply was lost and the create retried). */
export const createdRuns = (repoid: string, releaseRunId: string, session: string, token: string): Filter.Filter =>
  Filter.and(...sessionRuns(repoid, releaseRunId, session).clauses, Filter.tag(TAG.create, token))

// ---------------------------------------------------------------------------------------------------------------
// Canonical order
// ---------------------------------------------------------------------------------------------------------------

/**
 * Which of several runs standing for one entity (duplicates created by a race) is the real one: the earliest start
 * time, then the smallest run id. Every process computes the same answer from the same runs.
 */
export const byStart: Order.Order<Run> = Order.combine(
  Order.mapInput(Order.number, (r: Run) => r.info.startTime),
  Order.mapInput(Order.string, (r: Run) => r.info.runId)
)

export const isCommitted = (run: Run): boolean => Option.isSome(run.tag(TAG.commit))

/**
 * Which of several committed generation runs holding the same number keeps it. ForML's runs (no
 * `forml.sha256.tag.toml` tag) come first: ForML never checks, so they are never shadowed. Then runs of this library
 * that are FINISHED, by end time, then run id. Last, runs whose commit is in progress (committed, not yet FINISHED).
 *
 * The commit works like the doorway of Lamport's bakery: set the commit tag (in progress), then take the end time
 * (read after the tag is visible) and mark the run FINISHED, then look at the other runs holding the number, waiting
 * for those still in progress. A run that finished before another run's commit tag was set has the earlier end time,
 * so a number a close has returned is never taken away by a later commit.
 */
export const commitRank = (run: Run): readonly [number, number, string] => {
  const ours = Option.isSome(run.tag(sha256Tag(ARTIFACT.tag)))
  if (!ours) return [0, run.info.startTime, run.info.runId]
  if (run.info.status === "FINISHED" && run.info.endTime !== undefined) return [1, run.info.endTime, run.info.runId]
  return [2, run.info.startTime, run.info.runId]
}

export const byCommit: Order.Order<Run> = Order.mapInput(
  Order.tuple(Order.number, Order.number, Order.string),
  commitRank
)

/** A commit of this library still in progress: it may yet move to another number. */
export const isPending = (run: Run): boolean => commitRank(run)[0] === 2

/** Whether a committed run keeps its number for good (it can be cached): ForML's, or ours once FINISHED. */
export const isSettled = (run: Run): boolean => !isPending(run)

// ---------------------------------------------------------------------------------------------------------------
// What MLflow's UI shows (names, descriptions, metrics): display only, never read back, ignored by ForML
// ---------------------------------------------------------------------------------------------------------------

/** The name of a release run: `helloworld 1`. */
export const releaseRunName = (project: string, version: string): string => `${project} ${version}`

/** The name of a generation run while it trains (unbound): `helloworld 1 · training`. */
export const trainingRunName = (project: string, version: string): string =>
  `${releaseRunName(project, version)} · training`

/** The name of a committed generation run: `helloworld 1 · generation 3`. */
export const generationRunName = (project: string, version: string, generation: number): string =>
  `${releaseRunName(project, version)} · generation ${generation}`

/** The description of a release run, set with the package's sha256 when the push stores it. */
export const releaseNote = (project: string, version: string): string =>
  `ForML release **${version}** of project **${project}**: the package is the artifact \`${ARTIFACT.package}\`; ` +
  `its generations are the child runs.`

/** The description of a committed generation run, set in the committing batch. */
export const generationNote = (project: string, version: string, generation: number, states: number): string =>
  `ForML generation **${generation}** of release **${version}** of project **${project}**: the tag is the artifact ` +
  `\`${ARTIFACT.tag}\`, with ${states} state${states === 1 ? "" : "s"} (\`<state id>.bin\`).`

/** Metric keys of a committed generation run: the tag's training ordinal and tuning score, where numeric. */
export const METRIC = { ordinal: "forml.training.ordinal", score: "forml.tuning.score" } as const

const numeric = (value: TomlValue): Option.Option<number> => {
  const n = typeof value === "bigint" ? Number(value) : typeof value === "number" ? value : Number.NaN
  return Number.isFinite(n) ? Option.some(n) : Option.none()
}

/**
 * The metrics a committed generation run gets from its tag, one point each at step `generation`, timed by the
 * mode's timestamp (or `fallback`, ms): the training ordinal and the tuning score when they are finite numbers.
 * MLflow's run table, compare view and charts then show how a release's generations improved.
 */
export const generationMetrics = (tag: Tag, generation: number, fallback: number): ReadonlyArray<MetricPoint> => {
  const at = (t: Option.Option<Timestamp>) =>
    Option.match(t, { onNone: () => fallback, onSome: (x) => Timestamp.toDate(x).getTime() })
  const point = (key: string, value: Option.Option<TomlValue>, t: Option.Option<Timestamp>) =>
    Option.toArray(
      Option.map(
        Option.flatMap(value, numeric),
        (v): MetricPoint => ({ key, value: v, timestamp: at(t), step: generation })
      )
    )
  return [
    ...point(METRIC.ordinal, tag.training.ordinal, tag.training.timestamp),
    ...point(METRIC.score, tag.tuning.score, tag.tuning.timestamp)
  ]
}
