/**
 * The writes of a log-batch as MLflow's SQL store makes them, inside the caller's transaction: tags (upserted, values
 * cut to the column), params (a changed value refuses the whole batch) and metrics (every point once, `latest_metrics`
 * the greatest).
 *
 * @internal
 */
import type { SqlError } from "@effect/sql/SqlError"
import { Effect } from "effect"
import { MlflowApiError } from "../../errors.js"
import type { KeyValue, MetricPoint } from "../Mlflow.js"
import { lastWins } from "../semantics.js"
import type { Session } from "./session.js"

/** The longest tag values the 2.17.2 schema keeps (runs' `tags.value`, `experiment_tags.value`). @internal */
export const MAX_RUN_TAG_VALUE = 8000
/** @internal */
export const MAX_EXPERIMENT_TAG_VALUE = 5000
/** MLflow's limit on a param value (`MAX_PARAM_VAL_LENGTH`): a longer one is refused, not cut. @internal */
export const MAX_PARAM_VALUE = 6000
/** The `runs.name` column. @internal */
export const MAX_RUN_NAME = 250

/** The first `n` code points of `s` (as Python slices and PostgreSQL counts a varchar), never half a pair. @internal */
export const cut = (s: string, n: number): string => (s.length <= n ? s : Array.from(s).slice(0, n).join(""))

/** A write of a run's entries inside the caller's transaction. @internal */
export type RunWrite<A, E = never> = (
  db: Session,
  runId: string,
  entries: ReadonlyArray<A>
) => Effect.Effect<void, E | SqlError>

/** `INSERT … <upsert>`: the value of an existing (key, `owner`) row is replaced. */
const upsert = (db: Session, owner: "run_uuid" | "experiment_id") =>
  db.dialect === "mysql"
    ? db.sql.literal("ON DUPLICATE KEY UPDATE value = VALUES(value)")
    : db.sql`ON CONFLICT (${db.key}, ${db.sql.literal(owner)}) DO UPDATE SET value = excluded.value`

/** A run's tags (the last value of a key wins); `mlflow.runName` also names the run. @internal */
export const writeRunTags: RunWrite<KeyValue> = (db, runId, tags) =>
  Effect.gen(function*() {
    const { sql } = db
    const rows = lastWins(tags).map((t) => ({ key: t.key, value: cut(t.value, MAX_RUN_TAG_VALUE), run_uuid: runId }))
    for (let i = 0; i < rows.length; i += 100) {
      yield* sql`INSERT INTO tags ${sql.insert(rows.slice(i, i + 100))} ${upsert(db, "run_uuid")}`
    }
    const name = rows.find((r) => r.key === "mlflow.runName")
    if (name !== undefined) {
      yield* sql`UPDATE runs SET name = ${cut(name.value, MAX_RUN_NAME)} WHERE run_uuid = ${runId}`
    }
  })

/** A new experiment's tags (already one value a key). @internal */
export const writeExperimentTags = (
  db: Session,
  experimentId: number | bigint,
  tags: ReadonlyArray<KeyValue>
): Effect.Effect<void, SqlError> => {
  const { sql } = db
  const rows = tags.map((t) => ({
    key: t.key,
    value: cut(t.value, MAX_EXPERIMENT_TAG_VALUE),
    experiment_id: experimentId
  }))
  return rows.length === 0
    ? Effect.void
    : Effect.asVoid(sql`INSERT INTO experiment_tags ${sql.insert(rows)} ${upsert(db, "experiment_id")}`)
}

/**
 * Params as MLflow's SQL store logs them: a key already logged with the same value is left as it is, another value
 * is refused (400 INVALID_PARAMETER_VALUE), which fails the whole transaction.
 *
 * @internal
 */
export const writeParams: RunWrite<KeyValue, MlflowApiError> = (db, runId, params) =>
  Effect.gen(function*() {
    if (params.length === 0) return
    const { key, sql } = db
    const given = lastWins(params)
    const existing = yield* sql<KeyValue>`SELECT ${key} AS ${
      sql("key")
    }, value FROM params WHERE run_uuid = ${runId} AND ${key} IN ${sql.in(given.map((p) => p.key))}`
    const logged = new Map(existing.map((r) => [r.key, r.value]))
    const changed = given.find((p) => logged.has(p.key) && logged.get(p.key) !== p.value)
    if (changed !== undefined) {
      return yield* Effect.fail(
        new MlflowApiError({
          status: 400,
          errorCode: "INVALID_PARAMETER_VALUE",
          detail: `Changing param values is not allowed. Param with key='${changed.key}' was already logged with ` +
            `value='${logged.get(changed.key)}' for run ID='${runId}'. Attempted logging new value '${changed.value}'.`
        })
      )
    }
    const fresh = given.filter((p) => !logged.has(p.key)).map((p) => ({ key: p.key, value: p.value, run_uuid: runId }))
    if (fresh.length > 0) yield* sql`INSERT INTO params ${sql.insert(fresh)}`
  })

interface Point {
  readonly step: number
  readonly timestamp: number
  readonly value: number
}

/** MLflow's order of a key's points: by step, then timestamp, then value. */
const later = (a: Point, b: Point): boolean =>
  a.step !== b.step ? a.step > b.step : a.timestamp !== b.timestamp ? a.timestamp > b.timestamp : a.value > b.value

/** The latest point of each key. */
const latestOf = (metrics: ReadonlyArray<MetricPoint>): Map<string, MetricPoint> => {
  const latest = new Map<string, MetricPoint>()
  for (const m of metrics) {
    const seen = latest.get(m.key)
    if (seen === undefined || later(m, seen)) latest.set(m.key, m)
  }
  return latest
}

/**
 * Metrics as MLflow's SQL store logs them: every point kept once, `latest_metrics` the greatest (step, timestamp,
 * value).
 *
 * @internal
 */
export const writeMetrics: RunWrite<MetricPoint> = (db, runId, metrics) =>
  Effect.gen(function*() {
    if (metrics.length === 0) return
    const { dialect, key, sql } = db
    const nan = dialect === "pg" ? false : 0
    const ignore = dialect === "mysql" ? sql.literal("") : sql.literal("ON CONFLICT DO NOTHING")
    const insert = dialect === "mysql" ? sql.literal("INSERT IGNORE INTO") : sql.literal("INSERT INTO")
    for (const m of metrics) {
      yield* sql`${insert} metrics ${
        sql.insert({ key: m.key, value: m.value, timestamp: m.timestamp, run_uuid: runId, step: m.step, is_nan: nan })
      } ${ignore}`
    }
    const latest = latestOf(metrics)
    const stored = yield* sql<Point & { readonly key: string }>`SELECT ${key} AS ${
      sql("key")
    }, value, timestamp, step FROM latest_metrics WHERE run_uuid = ${runId} AND ${key} IN ${sql.in([...latest.keys()])}`
    const current = new Map(
      stored.map((r) => [r.key, { step: Number(r.step), timestamp: Number(r.timestamp), value: Number(r.value) }])
    )
    for (const m of latest.values()) {
      const was = current.get(m.key)
      if (was === undefined) {
        yield* sql`INSERT INTO latest_metrics ${
          sql.insert({ key: m.key, value: m.value, timestamp: m.timestamp, step: m.step, is_nan: nan, run_uuid: runId })
        }`
      } else if (later(m, was)) {
        yield* sql`UPDATE latest_metrics SET value = ${m.value}, timestamp = ${m.timestamp}, step = ${m.step}, is_nan = ${nan} WHERE run_uuid = ${runId} AND ${key} = ${m.key}`
      }
    }
  })
