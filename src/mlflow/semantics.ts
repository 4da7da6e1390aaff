/**
 * What the in-process stores (MlflowMemory, MlflowFileStore) share of a tracking server's behaviour: generated names
 * and ids, tag checks, and search semantics. Where the sqlite and file stores differ on purpose, each store keeps its own.
 */
import { Effect, Either, Random } from "effect"
import { randomUUID } from "node:crypto"
import { InvalidInput, MlflowApiError } from "../errors.js"
import * as Filter from "./Filter.js"
import { validateTagKey } from "./Mlflow.js"
import type { KeyValue, LifecycleStage, RunStatus, ViewType } from "./Mlflow.js"

// ---------------------------------------------------------------------------------------------------------------
// Names and ids
// ---------------------------------------------------------------------------------------------------------------

const ADJECTIVES = [
  "able",
  "bold",
  "brave",
  "bright",
  "calm",
  "clever",
  "crisp",
  "dapper",
  "eager",
  "fancy",
  "gentle",
  "glamorous",
  "honest",
  "useful",
  "stately",
  "thundering",
  "nimble",
  "polite",
  "rare",
  "serene",
  "sincere",
  "tasteful",
  "wise"
]
const ANIMALS = [
  "ant",
  "bass",
  "bat",
  "bee",
  "cat",
  "crab",
  "deer",
  "doe",
  "elk",
  "fly",
  "fox",
  "goat",
  "hare",
  "lamb",
  "lark",
  "mole",
  "moth",
  "owl",
  "ram",
  "shrike",
  "skink",
  "slug",
  "snail",
  "toad",
  "wolf",
  "yak"
]

/** A name like MLflow's generated ones (`rogue-skink-852`), for a run created without one. */
export const randomRunName: Effect.Effect<string> = Effect.gen(function*() {
  const adjective = ADJECTIVES[yield* Random.nextIntBetween(0, ADJECTIVES.length)]!
  const animal = ANIMALS[yield* Random.nextIntBetween(0, ANIMALS.length)]!
  const n = yield* Random.nextIntBetween(0, 1000)
  return `${adjective}-${animal}-${n}`
})

/** A run id as MLflow makes them: a random UUID's 32 hex digits. */
export const newRunId = (): string => randomUUID().replace(/-/g, "")

/** Code-unit order, as Python compares strings. */
export const compareStrings = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0)

/** The last value of each key, in first-seen key order (MLflow's log-batch: the last value wins). */
export const lastWins = (tags: ReadonlyArray<KeyValue>): ReadonlyArray<KeyValue> => {
  const map = new Map<string, string>()
  for (const t of tags) map.set(t.key, t.value)
  return [...map].map(([key, value]) => ({ key, value }))
}

/**
 * A new run's name as MLflow's server decides it: the given one (an empty one is none), else its `mlflow.runName` tag,
 * else a random name; a given name that differs from the tag is refused. `tagged`: the tags name the run already.
 */
export const newRunName = (
  given: string | undefined,
  tags: ReadonlyArray<KeyValue>
): Effect.Effect<{ readonly runName: string; readonly tagged: boolean }, InvalidInput> =>
  Effect.gen(function*() {
    let nameTag: string | undefined
    for (const t of tags) if (t.key === "mlflow.runName") nameTag = t.value
    const requested = given === undefined || given === "" ? undefined : given
    if (requested !== undefined && nameTag !== undefined && requested !== nameTag) {
      return yield* new InvalidInput({
        kind: "RunName",
        input: requested,
        reason: `the run name differs from the mlflow.runName tag '${nameTag}'`
      })
    }
    return { runName: requested ?? nameTag ?? (yield* randomRunName), tagged: nameTag !== undefined }
  })

// ---------------------------------------------------------------------------------------------------------------
// Checks
// ---------------------------------------------------------------------------------------------------------------

/**
 * Checks every key of a tag list (with `validateTagKey`, or `check` where a store adds rules of its own), in order,
 * before anything is written: the first bad key fails the whole list.
 */
export const validateTags = (
  tags: ReadonlyArray<KeyValue>,
  check: (key: string) => Either.Either<unknown, InvalidInput> = validateTagKey
): Either.Either<void, InvalidInput> => {
  for (const tag of tags) {
    const checked = check(tag.key)
    if (Either.isLeft(checked)) return Either.left(checked.left)
  }
  return Either.void
}

// ---------------------------------------------------------------------------------------------------------------
// Searches
// ---------------------------------------------------------------------------------------------------------------

/** Whether a search with `viewType` (ACTIVE_ONLY when absent, as in MLflow) sees an entity in `stage`. */
export const viewAdmits = (viewType: ViewType | undefined, stage: LifecycleStage): boolean => {
  switch (viewType ?? "ACTIVE_ONLY") {
    case "ACTIVE_ONLY":
      return stage === "active"
    case "DELETED_ONLY":
      return stage === "deleted"
    case "ALL":
      return true
  }
}

/** The page size of a search that names none. */
export const DEFAULT_PAGE_SIZE = 1000
/** MLflow's largest page (`SEARCH_MAX_RESULTS_THRESHOLD`), for runs and experiments alike. */
export const MAX_PAGE_SIZE = 50000

export const checkPageSize = (maxResults: number, max: number = MAX_PAGE_SIZE): Either.Either<number, InvalidInput> => {
  if (!Number.isInteger(maxResults) || maxResults <= 0) {
    return Either.left(
      new InvalidInput({ kind: "PageSize", input: String(maxResults), reason: "it must be a positive integer" })
    )
  }
  if (maxResults > max) {
    return Either.left(
      new InvalidInput({ kind: "PageSize", input: String(maxResults), reason: `it must be at most ${max}` })
    )
  }
  return Either.right(maxResults)
}

/** The attributes a filter may name: `strings` compare with a quoted value; `numerics` need a number. */
export interface FilterAttributes {
  readonly strings: ReadonlySet<string>
  readonly numerics: ReadonlySet<string>
}

export const RUN_FILTER_ATTRIBUTES: FilterAttributes = {
  strings: new Set(["run_id", "run_name", "status", "user_id", "artifact_uri"]),
  numerics: new Set(["start_time", "end_time", "created", "Created"])
}

export const EXPERIMENT_FILTER_ATTRIBUTES: FilterAttributes = {
  strings: new Set(["name"]),
  numerics: new Set(["creation_time", "last_update_time"])
}

/**
 * Syntax via `Filter.validate`, then the server's attribute rules: a numeric attribute (`start_time`, ...) needs an
 * unquoted number, which a rendered filter never has, so the server rejects it; an unknown attribute is rejected too.
 */
export const checkFilter = (
  filter: Filter.Filter | undefined,
  attributes: FilterAttributes
): Either.Either<Filter.Filter, InvalidInput> =>
  Either.gen(function*() {
    if (filter === undefined) return Filter.none
    yield* Filter.validate(filter)
    for (const clause of filter.clauses) {
      if (clause.kind !== "attribute" || attributes.strings.has(clause.key)) continue
      return yield* Either.left(
        new InvalidInput({
          kind: "Filter",
          input: clause.key,
          reason: attributes.numerics.has(clause.key)
            ? "a numeric attribute needs an unquoted number, which filters built from clauses never hold"
            : `not a searchable attribute (one of ${[...attributes.strings].join(", ")})`
        })
      )
    }
    return filter
  })

// ---------------------------------------------------------------------------------------------------------------
// Run order
// ---------------------------------------------------------------------------------------------------------------

export interface OrderKey {
  readonly kind: "attribute" | "tag"
  readonly key: string
  readonly ascending: boolean
}

const ORDERABLE_ATTRIBUTES = new Set([
  "run_id",
  "run_name",
  "status",
  "user_id",
  "artifact_uri",
  "start_time",
  "end_time"
])
const ATTRIBUTE_PREFIXES = new Set(["attribute", "attributes", "attr", "run"])
const TAG_PREFIXES = new Set(["tag", "tags"])

const unquoteIdentifier = (s: string): string =>
  s.length >= 2 && ((s.startsWith("`") && s.endsWith("`")) || (s.startsWith("\"") && s.endsWith("\"")))
    ? s.slice(1, -1)
    : s

/** Parses MLflow `order_by` clauses (attributes and tags) into keys; the server's tie-breakers are added later. */
export const parseOrderBy = (
  orderBy: ReadonlyArray<string> | undefined
): Either.Either<ReadonlyArray<OrderKey>, InvalidInput> =>
  Either.gen(function*() {
    const keys: Array<OrderKey> = []
    const seen = new Set<string>()
    for (const clause of orderBy ?? []) {
      const bad = (reason: string) => Either.left(new InvalidInput({ kind: "OrderBy", input: clause, reason }))
      const m = /^\s*(.+?)(?:\s+(ASC|DESC))?\s*$/i.exec(clause)
      if (m === null) return yield* bad("empty")
      const identifier = m[1]!
      const ascending = (m[2] ?? "ASC").toUpperCase() === "ASC"
      const dot = identifier.search(/[.`"]/)
      let kind: "attribute" | "tag" = "attribute"
      let key = identifier
      if (dot >= 0 && identifier[dot] === ".") {
        const prefix = identifier.slice(0, dot)
        key = identifier.slice(dot + 1)
        if (TAG_PREFIXES.has(prefix)) kind = "tag"
        else if (!ATTRIBUTE_PREFIXES.has(prefix)) return yield* bad(`unsupported entity type '${prefix}'`)
      }
      key = unquoteIdentifier(key)
      if (key === "") return yield* bad("empty key")
      if (kind === "attribute") {
        if (key === "created" || key === "Created") key = "start_time"
        if (!ORDERABLE_ATTRIBUTES.has(key)) return yield* bad(`not an orderable attribute '${key}'`)
      }
      const id = `${kind}:${key}`
      if (seen.has(id)) return yield* bad("order_by contains duplicate fields")
      seen.add(id)
      keys.push({ kind, key, ascending })
    }
    return keys
  })

/** What a search reads of a run: a `RunInfo` is one, so is a store's own record. */
export interface RunFields {
  readonly runId: string
  readonly experimentId: string
  readonly runName: string
  readonly userId: string
  readonly status: RunStatus
  readonly startTime: number
  readonly endTime?: number | undefined
  readonly artifactUri: string
  readonly lifecycleStage: LifecycleStage
}

/** How a store's run representation `R` gives its fields and tags to a search. */
export interface RunAccess<R> {
  readonly fields: (run: R) => RunFields
  readonly tag: (run: R, key: string) => string | undefined
}

const attributeValue = (run: RunFields, key: string): string | number | undefined => {
  switch (key) {
    case "run_id":
      return run.runId
    case "run_name":
      return run.runName
    case "status":
      return run.status
    case "user_id":
      return run.userId
    case "artifact_uri":
      return run.artifactUri
    case "start_time":
      return run.startTime
    case "end_time":
      return run.endTime
    default:
      return undefined
  }
}

/** Explicit keys (missing values last, as the server's CASE clause does), then start_time DESC, then run_id ASC. */
export const runComparator = <R>(keys: ReadonlyArray<OrderKey>, access: RunAccess<R>) => {
  const all: Array<OrderKey> = [...keys]
  if (!keys.some((k) => k.kind === "attribute" && k.key === "start_time")) {
    all.push({ kind: "attribute", key: "start_time", ascending: false })
  }
  all.push({ kind: "attribute", key: "run_id", ascending: true })
  const value = (run: R, key: OrderKey) =>
    key.kind === "tag" ? access.tag(run, key.key) : attributeValue(access.fields(run), key.key)
  return (a: R, b: R): number => {
    for (const key of all) {
      const va = value(a, key)
      const vb = value(b, key)
      if (va === undefined || vb === undefined) {
        if (va === vb) continue
        return va === undefined ? 1 : -1
      }
      const c = typeof va === "number" && typeof vb === "number"
        ? va - vb
        : compareStrings(String(va), String(vb))
      if (c !== 0) return key.ascending ? c : -c
    }
    return 0
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Selection
// ---------------------------------------------------------------------------------------------------------------

/** A runs search, checked in the server's order: page size, filter, order_by. */
export const checkRunsSearch = (
  maxResults: number,
  options: { readonly filter?: Filter.Filter | undefined; readonly orderBy?: ReadonlyArray<string> | undefined }
): Either.Either<
  { readonly maxResults: number; readonly filter: Filter.Filter; readonly order: ReadonlyArray<OrderKey> },
  InvalidInput
> =>
  Either.gen(function*() {
    return {
      maxResults: yield* checkPageSize(maxResults),
      filter: yield* checkFilter(options.filter, RUN_FILTER_ATTRIBUTES),
      order: yield* parseOrderBy(options.orderBy)
    }
  })

/** The runs of `experimentIds` that the view type and the filter admit, in the search's order. */
export const selectRuns = <R>(
  runs: Iterable<R>,
  access: RunAccess<R>,
  search: {
    readonly experimentIds: ReadonlyArray<string>
    readonly viewType?: ViewType | undefined
    readonly filter: Filter.Filter
    readonly order: ReadonlyArray<OrderKey>
  }
): Array<R> => {
  const ids = new Set(search.experimentIds)
  const selected: Array<R> = []
  for (const run of runs) {
    const fields = access.fields(run)
    if (!ids.has(fields.experimentId) || !viewAdmits(search.viewType, fields.lifecycleStage)) continue
    const admitted = Filter.matches(search.filter, {
      tag: (key) => access.tag(run, key),
      attribute: (key) => {
        const v = attributeValue(fields, key)
        return v === undefined ? undefined : String(v)
      }
    })
    if (admitted) selected.push(run)
  }
  return selected.sort(runComparator(search.order, access))
}

/** An experiments search, checked in the server's order: page size, filter. */
export const checkExperimentsSearch = (
  maxResults: number,
  options: { readonly filter?: Filter.Filter | undefined }
): Either.Either<{ readonly maxResults: number; readonly filter: Filter.Filter }, InvalidInput> =>
  Either.gen(function*() {
    return {
      maxResults: yield* checkPageSize(maxResults),
      filter: yield* checkFilter(options.filter, EXPERIMENT_FILTER_ATTRIBUTES)
    }
  })

/** Whether an experiment search (view type and filter) admits an experiment; the order is each store's own. */
export const experimentAdmitted = (
  search: { readonly viewType?: ViewType | undefined; readonly filter: Filter.Filter },
  experiment: { readonly name: string; readonly lifecycleStage: LifecycleStage },
  tag: (key: string) => string | undefined
): boolean =>
  viewAdmits(search.viewType, experiment.lifecycleStage) &&
  Filter.matches(search.filter, { tag, attribute: (key) => (key === "name" ? experiment.name : undefined) })

/** A SQL-backed server's answer to a write on a deleted run (the file store words it otherwise). */
export const notActiveRun = (runId: string) =>
  new MlflowApiError({
    status: 400,
    errorCode: "INVALID_PARAMETER_VALUE",
    detail: `The run ${runId} must be in the 'active' state. Current state is deleted.`
  })

/** A SQL-backed server's answer to a run created in, or a write to, a deleted experiment. */
export const notActiveExperiment = (experimentId: string) =>
  new MlflowApiError({
    status: 400,
    errorCode: "INVALID_PARAMETER_VALUE",
    detail: `The experiment ${experimentId} must be in the 'active' state. Current state is deleted.`
  })
