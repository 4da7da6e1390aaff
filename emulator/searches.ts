/**
 * runs/search and experiments/search: parameters checked as the server checks them, equality filters answered by
 * the store's own pages, and LIKE, ILIKE, IN and experiment ordering filtered and paged here with the same window.
 */
import { Effect, Either, Option } from "effect"
import { decodePageToken, window } from "../src/mlflow/internal/paging.js"
import type { Experiment, Run, ViewType } from "../src/mlflow/Mlflow.js"
import { parseOrderBy } from "../src/mlflow/MlflowMemory.js"
import * as Wire from "../src/mlflow/wire.js"
import { asSimpleFilter, clauseMatches, entityKind, invalidAttributeKey, parseFilter, runAttribute } from "./filters.js"
import type { ParsedClause } from "./filters.js"
import { badValue, intLike, optString, pageTokenOf, stopAtBadEnum, stringList, VIEW_TYPES } from "./params.js"
import type { Params } from "./params.js"
import { type ApiError, invalid } from "./replies.js"
import { runBody } from "./state.js"
import type { State } from "./state.js"

const MAX_RESULTS = 50000

const notPositive = (maxResults: number) =>
  invalid(`Invalid value ${maxResults} for parameter 'max_results' supplied. It must be a positive integer`)

/** One page and its next token, as the endpoints answer them: empty lists and absent tokens are left out. */
const pageJson = <A>(name: string, items: ReadonlyArray<A>, next: string | undefined) => ({
  ...(items.length === 0 ? {} : { [name]: items }),
  ...(next === undefined ? {} : { next_page_token: next })
})

export const searchRuns = (state: State, raw: Params) =>
  Effect.gen(function*() {
    const p = stopAtBadEnum(raw, { run_view_type: VIEW_TYPES })
    const experimentIds = yield* stringList(p, "experiment_ids")
    const filterText = (yield* optString(p, "filter")) ?? ""
    const viewType = (p.run_view_type as ViewType | undefined) ?? "ACTIVE_ONLY"
    const orderBy = yield* stringList(p, "order_by")
    const pageToken = yield* pageTokenOf(p)
    const maxRaw = p.max_results
    const maxResults = maxRaw === undefined ? 1000 : intLike(maxRaw) ?? 0
    if (maxResults > MAX_RESULTS) return yield* badValue("max_results", maxRaw)
    if (maxResults <= 0) return yield* notPositive(maxResults)
    const clauses = yield* parseFilter(filterText, "runs")
    yield* Effect.mapError(parseOrderBy(orderBy), (e) => invalid(e.reason))
    if (experimentIds.length === 0) return {}
    const simple = asSimpleFilter(clauses)
    const search = { experimentIds, viewType, orderBy }
    if (Option.isSome(simple)) {
      const page = yield* state.handle.searchRunsPage({ ...search, filter: simple.value, pageToken, maxResults })
      return pageJson("runs", page.runs.map((r) => runBody(state, r, "read")), page.nextPageToken)
    }
    // LIKE, ILIKE and IN: the store orders every run, this server filters and pages
    const all = yield* state.handle.searchRunsPage({ ...search, maxResults: MAX_RESULTS })
    const selected = all.runs.filter((run) =>
      clauses.every((c) =>
        clauseMatches(c, c.kind === "tag" ? Option.getOrUndefined(run.tag(c.key)) : runAttribute(run, c.key))
      )
    )
    const w = window(selected, yield* decodePageToken(pageToken), maxResults, state.trailingEmptyPage)
    return pageJson("runs", w.items.map((r: Run) => runBody(state, r, "read")), w.nextPageToken)
  })

const EXPERIMENT_ORDER_ATTRIBUTES = new Set(["name", "experiment_id", "creation_time", "last_update_time"])

interface ExperimentOrder {
  readonly key: string
  readonly ascending: boolean
}

/** experiments/search's `order_by`, read through the same `_get_identifier` as the filter: entity first, then key. */
const experimentOrder = (orderBy: ReadonlyArray<string>): Either.Either<ReadonlyArray<ExperimentOrder>, ApiError> => {
  const order: Array<ExperimentOrder> = []
  for (const clause of orderBy) {
    const m = /^\s*(?:([A-Za-z_]+)\.)?([A-Za-z_]+)(?:\s+(ASC|DESC))?\s*$/i.exec(clause)
    const entity = m?.[1] === undefined ? Either.right("attribute" as const) : entityKind("experiments", m[1])
    if (Either.isLeft(entity)) return Either.left(invalid(entity.left))
    if (entity.right === "tag") return Either.left(invalid("Invalid order_by entity: tag"))
    const key = m?.[2]
    if (m === null || key === undefined || !EXPERIMENT_ORDER_ATTRIBUTES.has(key)) {
      return Either.left(invalid(invalidAttributeKey(key ?? clause, EXPERIMENT_ORDER_ATTRIBUTES)))
    }
    order.push({ key, ascending: (m[3] ?? "ASC").toUpperCase() === "ASC" })
  }
  return Either.right(order)
}

const orderValue = (e: Experiment, key: string): string | number =>
  key === "name"
    ? e.name
    : key === "experiment_id"
    ? Number(e.experimentId)
    : key === "creation_time"
    ? e.creationTime ?? 0
    : e.lastUpdateTime ?? 0

const sortExperiments = (experiments: ReadonlyArray<Experiment>, order: ReadonlyArray<ExperimentOrder>) =>
  [...experiments].sort((a, b) => {
    for (const o of order) {
      const va = orderValue(a, o.key)
      const vb = orderValue(b, o.key)
      const c = va < vb ? -1 : va > vb ? 1 : 0
      if (c !== 0) return o.ascending ? c : -c
    }
    return 0
  })

const experimentMatches = (clauses: ReadonlyArray<ParsedClause>) => (e: Experiment) =>
  clauses.every((c) =>
    clauseMatches(c, c.kind === "tag" ? Option.getOrUndefined(e.tag(c.key)) : c.key === "name" ? e.name : undefined)
  )

export const searchExperiments = (state: State, p: Params) =>
  Effect.gen(function*() {
    const maxRaw = p.max_results
    const maxResults = intLike(maxRaw) ?? 0
    const viewRaw = p.view_type
    const numbered = typeof viewRaw === "number" && viewRaw >= 1 && viewRaw <= 3
    if (viewRaw !== undefined && !VIEW_TYPES.includes(viewRaw as ViewType) && !numbered) {
      return yield* badValue("view_type", viewRaw)
    }
    const viewType = typeof viewRaw === "number"
      ? VIEW_TYPES[viewRaw - 1]
      : (viewRaw as ViewType | undefined) ?? "ACTIVE_ONLY"
    if (maxResults <= 0) return yield* notPositive(maxResults)
    if (maxResults > MAX_RESULTS) {
      return yield* invalid(
        `Invalid value ${maxResults} for parameter 'max_results' supplied. It must be at most ${MAX_RESULTS}`
      )
    }
    const filterText = (yield* optString(p, "filter")) ?? ""
    const orderBy = yield* stringList(p, "order_by")
    const pageToken = yield* pageTokenOf(p)
    const clauses = yield* parseFilter(filterText, "experiments")
    const order = yield* experimentOrder(orderBy)
    const simple = asSimpleFilter(clauses)
    if (Option.isSome(simple) && order.length === 0) {
      const page = yield* state.handle.searchExperimentsPage({ filter: simple.value, viewType, pageToken, maxResults })
      return pageJson("experiments", page.experiments.map(Wire.experimentJson), page.nextPageToken)
    }
    const all = yield* state.handle.searchExperimentsPage({ viewType, maxResults: MAX_RESULTS })
    const sorted = sortExperiments(all.experiments.filter(experimentMatches(clauses)), order)
    const w = window(sorted, yield* decodePageToken(pageToken), maxResults, false)
    return pageJson("experiments", w.items.map(Wire.experimentJson), w.nextPageToken)
  })
