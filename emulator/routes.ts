/**
 * The REST API's routes (`/api/2.0/mlflow/<route>`): the methods each allows and its handler, which answers from the
 * store as the recorded servers do (their messages, their limits, 2.17's and 3.x's differences).
 */
import { Effect, Option } from "effect"
import { NotFound } from "../src/errors.js"
import { decodePageToken, encodePageToken, window } from "../src/mlflow/internal/paging.js"
import { validateTagKey } from "../src/mlflow/Mlflow.js"
import * as Wire from "../src/mlflow/wire.js"
import { listRunArtifacts } from "./artifacts.js"
import { fileStoreNameRefusal } from "./filters.js"
import { badValue, intLike, keyValues, optString, reqString, RUN_STATUSES, runIdOf, stopAtBadEnum } from "./params.js"
import type { Params } from "./params.js"
import { apiError, invalid } from "./replies.js"
import type { HandlerError } from "./replies.js"
import { searchExperiments, searchRuns } from "./searches.js"
import { extrasOf, runBody } from "./state.js"
import type { Metric, State } from "./state.js"

export const MAX_TAG_VALUE = 8000

type Handler = (state: State, p: Params) => Effect.Effect<unknown, HandlerError>

interface Route {
  readonly methods: ReadonlyArray<"GET" | "POST">
  readonly handle: Handler
}

const GET = ["GET"] as const
const POST = ["POST"] as const

/** The file store looks a name up through an unescaped filter, so a name it cannot quote is refused there. */
const checkName = (state: State, name: string) => {
  const refusal = state.backend === "file" ? fileStoreNameRefusal(name) : Option.none()
  return Option.isSome(refusal) ? Effect.fail(invalid(refusal.value)) : Effect.void
}

const getExperiment: Handler = (state, p) =>
  Effect.gen(function*() {
    const id = yield* reqString(p, "experiment_id")
    if (state.v3 && !/^\d+$/.test(id)) {
      return yield* invalid(`Invalid experiment ID '${id}'. Experiment IDs must be numeric.`)
    }
    return { experiment: Wire.experimentJson(yield* state.mlflow.getExperiment(id)) }
  })

const getExperimentByName: Handler = (state, p) =>
  Effect.gen(function*() {
    const name = yield* reqString(p, "experiment_name")
    yield* checkName(state, name)
    const e = yield* state.mlflow.getExperimentByName(name).pipe(
      Effect.catchTag("NotFound", () =>
        Effect.fail(apiError("RESOURCE_DOES_NOT_EXIST", `Could not find experiment with name '${name}'`)))
    )
    return { experiment: Wire.experimentJson(e) }
  })

const createExperiment: Handler = (state, p) =>
  Effect.gen(function*() {
    const name = yield* reqString(p, "name")
    yield* checkName(state, name)
    const tags = yield* keyValues(p, "tags")
    return { experiment_id: yield* state.mlflow.createExperiment(name, { tags }) }
  })

const setExperimentTag: Handler = (state, p) =>
  Effect.gen(function*() {
    const id = yield* reqString(p, "experiment_id")
    const key = yield* reqString(p, "key")
    const value = (yield* optString(p, "value")) ?? ""
    yield* state.handle.setExperimentTag(id, key, value.slice(0, MAX_TAG_VALUE))
    return {}
  })

const updateExperiment: Handler = (state, p) =>
  Effect.gen(function*() {
    const id = yield* reqString(p, "experiment_id")
    const name = yield* optString(p, "new_name")
    if (name !== undefined && name !== "") {
      yield* state.handle.renameExperiment(id, name).pipe(
        Effect.catchTag("AlreadyExists", () =>
          Effect.fail(apiError("BAD_REQUEST", "(sqlite3.IntegrityError) UNIQUE constraint failed: experiments.name")))
      )
    }
    return {}
  })

const createRun: Handler = (state, p) =>
  Effect.gen(function*() {
    const experimentId = yield* optString(p, "experiment_id")
    if (experimentId === undefined || experimentId === "") {
      return yield* apiError("BAD_REQUEST", "(sqlite3.IntegrityError) FOREIGN KEY constraint failed")
    }
    const tags = yield* keyValues(p, "tags")
    const run = yield* state.mlflow.createRun({
      experimentId,
      // the server does not fill in now(): a run created without start_time starts at 0
      startTime: intLike(p.start_time) ?? 0,
      userId: (yield* optString(p, "user_id")) ?? "",
      runName: yield* optString(p, "run_name"),
      tags: tags.map((t) => ({ key: t.key, value: t.value.slice(0, MAX_TAG_VALUE) }))
    })
    return { run: runBody(state, run, "create") }
  })

const setTag: Handler = (state, p) =>
  Effect.gen(function*() {
    const runId = yield* runIdOf(p)
    const key = yield* reqString(p, "key")
    const value = (yield* optString(p, "value")) ?? ""
    yield* state.mlflow.getRun(runId)
    yield* Effect.mapError(validateTagKey(key), (e) =>
      invalid(`Invalid value "${key}" for parameter 'key' supplied: ${e.reason}`))
    yield* state.mlflow.setTag(runId, key, value.slice(0, MAX_TAG_VALUE))
    return {}
  })

const deleteTag: Handler = (state, p) =>
  Effect.gen(function*() {
    const runId = yield* reqString(p, "run_id")
    const key = yield* reqString(p, "key")
    yield* state.handle.deleteTag(runId, key).pipe(
      Effect.catchIf(
        (e): e is NotFound => e instanceof NotFound && e.entity.toLowerCase() === "tag",
        () => Effect.fail(apiError("RESOURCE_DOES_NOT_EXIST", `No tag with name: ${key} in run with id ${runId}`))
      )
    )
    return {}
  })

const updateRun: Handler = (state, p) =>
  Effect.gen(function*() {
    const q = stopAtBadEnum(p, { status: RUN_STATUSES })
    const info = yield* state.mlflow.updateRun(yield* runIdOf(q), {
      status: q.status as (typeof RUN_STATUSES)[number] | undefined,
      endTime: intLike(q.end_time),
      runName: yield* optString(q, "run_name")
    })
    return { run_info: Wire.runInfoJson(info) }
  })

/** 2.17 answers the whole history; 3.x pages it, and without `max_results` answers only a token. */
const metricHistory: Handler = (state, p) =>
  Effect.gen(function*() {
    const runId = yield* runIdOf(p)
    const key = yield* reqString(p, "metric_key")
    yield* state.mlflow.getRun(runId)
    const history = (state.extras.get(runId)?.metrics ?? [])
      .filter((m) => m.key === key)
      .sort((a, b) => a.step - b.step)
    if (!state.v3) return history.length === 0 ? {} : { metrics: history }
    const max = intLike(p.max_results)
    if (max === undefined) return { next_page_token: encodePageToken(0) }
    const w = window(history, yield* decodePageToken(yield* optString(p, "page_token")), max, false)
    return {
      ...(w.items.length === 0 ? {} : { metrics: w.items }),
      ...(w.nextPageToken === undefined ? {} : { next_page_token: w.nextPageToken })
    }
  })

const batchMetrics = (p: Params) =>
  Effect.gen(function*() {
    const metricsRaw = p.metrics
    const metrics: Array<Metric> = []
    if (Array.isArray(metricsRaw)) {
      for (
        const m of metricsRaw as ReadonlyArray<{ key?: unknown; value?: unknown; timestamp?: unknown; step?: unknown }>
      ) {
        if (typeof m.key !== "string" || typeof m.value !== "number") return yield* badValue("metrics", metricsRaw)
        metrics.push({ key: m.key, value: m.value, timestamp: intLike(m.timestamp) ?? 0, step: intLike(m.step) ?? 0 })
      }
    }
    return metrics
  })

/** runs/log-batch: the server's limits and key checks, then params (never changed), metrics and tags. */
const logBatch: Handler = (state, p) =>
  Effect.gen(function*() {
    const runId = yield* reqString(p, "run_id")
    const tags = yield* keyValues(p, "tags")
    const params = yield* keyValues(p, "params")
    const metrics = yield* batchMetrics(p)
    if (tags.length > 100) {
      return yield* invalid(
        `A batch logging request can contain at most 100 tags. Got ${tags.length} tags. Please split up tags across multiple requests and try again.`
      )
    }
    if (params.length > 100) {
      return yield* invalid(`A batch logging request can contain at most 100 params. Got ${params.length} params.`)
    }
    if (metrics.length > 1000) {
      return yield* invalid(`A batch logging request can contain at most 1000 metrics. Got ${metrics.length} metrics.`)
    }
    const check = (kind: string, list: ReadonlyArray<{ readonly key: string }>) =>
      Effect.forEach(list, (item, i) =>
        Effect.mapError(validateTagKey(item.key), (e) =>
          invalid(`Invalid value "${item.key}" for parameter '${kind}[${i}].key' supplied: ${e.reason}`)))
    yield* check("metrics", metrics)
    yield* check("params", params)
    yield* check("tags", tags)
    const run = yield* state.mlflow.getRun(runId)
    if (run.info.lifecycleStage !== "active") {
      return yield* invalid(`The run ${runId} must be in the 'active' state. Current state is deleted.`)
    }
    if (tags.length + params.length + metrics.length === 0) {
      return {}
    }
    const e = extrasOf(state, runId)
    const changed = params.filter((x) =>
      e.params.has(x.key) && e.params.get(x.key) !== x.value
    )
    const first = changed[0]
    if (first !== undefined && state.backend === "file") {
      // MLflow's file store raises it without an error code (2.17.2 and 3.x alike): 500 INTERNAL_ERROR
      return yield* apiError(
        "INTERNAL_ERROR",
        `Changing param values is not allowed. Param with key='${first.key}' was already logged with value='${
          e.params.get(first.key)
        }' for run ID='${runId}'. Attempted logging new value '${first.value}'.`
      )
    }
    if (changed.length > 0) {
      return yield* invalid(
        `Changing param values is not allowed. Params were already logged='[${
          changed.map((x) => `{'key': '${x.key}', 'old_value': '${e.params.get(x.key)}', 'new_value': '${x.value}'}`)
            .join(", ")
        }]' for run ID='${runId}'.`
      )
    }
    for (const x of params) e.params.set(x.key, x.value)
    e.metrics.push(...metrics)
    if (tags.length > 0) {
      yield* state.mlflow.setTags(runId, tags.map((t) => ({ key: t.key, value: t.value.slice(0, MAX_TAG_VALUE) })))
    }
    return {}
  })

/** A handler that changes one entity by its id and answers `{}`. */
const byId =
  (param: string, change: (state: State, id: string) => Effect.Effect<void, HandlerError>): Handler => (state, p) =>
    Effect.as(Effect.flatMap(reqString(p, param), (id) => change(state, id)), {})

export const API_ROUTES: Readonly<Record<string, Route>> = {
  "experiments/get": { methods: GET, handle: getExperiment },
  "experiments/get-by-name": { methods: GET, handle: getExperimentByName },
  "experiments/create": { methods: POST, handle: createExperiment },
  "experiments/delete": { methods: POST, handle: byId("experiment_id", (s, id) => s.mlflow.deleteExperiment(id)) },
  "experiments/restore": { methods: POST, handle: byId("experiment_id", (s, id) => s.mlflow.restoreExperiment(id)) },
  "experiments/search": { methods: ["GET", "POST"], handle: searchExperiments },
  "experiments/set-experiment-tag": { methods: POST, handle: setExperimentTag },
  "experiments/update": { methods: POST, handle: updateExperiment },
  "runs/create": { methods: POST, handle: createRun },
  "runs/get": {
    methods: GET,
    handle: (state, p) =>
      Effect.map(Effect.flatMap(runIdOf(p), state.mlflow.getRun), (run) => ({ run: runBody(state, run, "read") }))
  },
  "runs/search": { methods: POST, handle: searchRuns },
  "runs/set-tag": { methods: POST, handle: setTag },
  "runs/delete-tag": { methods: POST, handle: deleteTag },
  "runs/log-batch": { methods: POST, handle: logBatch },
  "runs/delete": { methods: POST, handle: byId("run_id", (s, id) => s.mlflow.deleteRun(id)) },
  "runs/restore": { methods: POST, handle: byId("run_id", (s, id) => s.mlflow.restoreRun(id)) },
  "runs/update": { methods: POST, handle: updateRun },
  "metrics/get-history": { methods: GET, handle: metricHistory },
  "artifacts/list": { methods: GET, handle: listRunArtifacts }
}

/** The Allow header of a 405, as Flask lists a route's methods. */
export const allowHeader = (methods: ReadonlyArray<string>): string =>
  methods.includes("GET") && methods.includes("POST")
    ? "GET, OPTIONS, POST, HEAD"
    : methods.includes("GET")
    ? "GET, OPTIONS, HEAD"
    : "OPTIONS, POST"
