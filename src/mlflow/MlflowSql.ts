/**
 * MlflowSql: the Mlflow service over MLflow's SQL tracking schema (what `MlflowClient('sqlite:///mlflow.db')`,
 * `postgresql://…` or `mysql://…` reads and writes itself, with no server), on Effect's SQL clients. The driver of a
 * dialect (better-sqlite3, pg, mysql2) is loaded only when a URI names it.
 *
 * Semantics are those of MLflow's SqlAlchemyStore (2.17.2 and 3.x alike):
 * - experiment ids are the table's autoincremented integers (Default is 0), returned as strings (read as text, so the
 *   18-digit ids of a migrated file store keep every digit); run ids are `uuid4().hex`;
 * - a new experiment's `artifact_location` is `<artifact root>/<id>` (default root: `./mlruns` made absolute, no
 *   scheme, as MLflow's client does); a run's `artifact_uri` is `<artifact_location>/<run id>/artifacts`;
 * - runs get `source_type 'UNKNOWN'`, empty source/entry point/version, `user_id` from the option, else the
 *   `mlflow.user` tag, else empty (as the REST API stores it); the run name goes to `runs.name` and to the
 *   `mlflow.runName` tag;
 * - deleting an experiment marks it and every run of it deleted (with `deleted_time`); restoring brings them back;
 * - tag values longer than the columns (8000 for runs, 5000 for experiments) are cut to them, as sqlite keeps them.
 * Every write is one transaction; on sqlite it takes the write lock at its start (so waiting writers queue on
 * `busy_timeout` instead of failing), and a transaction that meets a busy database or a serialization failure is
 * run again. Reads of a run or experiment with its tags are one statement (one snapshot).
 *
 * Schema: any database whose registry tables (experiments, experiment_tags, runs, tags, alembic_version) hold the
 * columns used here opens, whatever its alembic revision (2.17.2's f5a4f2784254 and 3.x's 7d34483879f0 both do; on
 * 3.x only the `default` workspace is seen and written). Anything else is refused with one line naming the revision.
 * A database with no table at all is created as MLflow 2.17.2 creates it (see `sql/ddl.ts`, README).
 */
import type * as FileSystem from "@effect/platform/FileSystem"
import type * as Path from "@effect/platform/Path"
import * as SqlClient from "@effect/sql/SqlClient"
import type { SqlError } from "@effect/sql/SqlError"
import type { Fragment } from "@effect/sql/Statement"
import { Clock, Context, Duration, Effect, Layer, Option, Schedule, Stream } from "effect"
import { existsSync, statSync } from "node:fs"
import * as nodePath from "node:path"
import {
  AlreadyExists,
  InvalidInput,
  MlflowApiError,
  NotFound,
  StorageError
} from "../errors.js"
import * as ArtifactStore from "./ArtifactStore.js"
import {
  EntityTag,
  Experiment,
  Mlflow,
  Run,
  RunInfo,
  validateArtifactPath,
  validateExtras,
  validateTagKey
} from "./Mlflow.js"
import type {
  ArtifactRoot,
  ArtifactSource,
  CreateRunOptions,
  LifecycleStage,
  LogBatchExtras,
  MetricPoint,
  RunStatus,
  SearchExperimentsOptions,
  SearchRunsOptions,
  UpdateRunOptions
} from "./Mlflow.js"
import {
  checkExperimentsSearch,
  checkRunsSearch,
  DEFAULT_PAGE_SIZE,
  experimentAdmitted,
  newRunId,
  notActiveExperiment,
  notActiveRun,
  randomRunName,
  selectRuns,
  validateTags
} from "./semantics.js"
import type { RunAccess } from "./semantics.js"
import * as Schema from "./sql/schema.js"
import * as SqlUri from "./sql/uri.js"
import type { Dialect, SqlTarget } from "./sql/uri.js"

export { CREATED_REVISION } from "./sql/ddl.js"
export { isDatabaseUri, redactUri } from "./sql/uri.js"

export interface MlflowSqlOptions {
  /** The tracking URI: `sqlite:///rel.db`, `sqlite:////abs.db`, `postgresql://…`, `mysql://…`. */
  readonly uri: string
  /**
   * Where new experiments keep their artifacts (`<root>/<experiment id>`): a local path (made absolute), a `file:`
   * URI or another store's URI. Default `./mlruns`, as MLflow's client with a database URI.
   */
  readonly artifactRoot?: string | undefined
  /** What relative paths (sqlite file, artifact root) are relative to; default the process's working directory. */
  readonly cwd?: string | undefined
  /** Settings of the object stores (`s3://`, `wasbs://`, `gs://` artifact URIs); MLflow's variables otherwise. */
  readonly artifactStores?: ArtifactStore.ObjectStoreOptions | undefined
}

/** The longest tag values the 2.17.2 schema keeps (runs' `tags.value`, `experiment_tags.value`). */
export const MAX_RUN_TAG_VALUE = 8000
/** MLflow's limit on a param value (`MAX_PARAM_VAL_LENGTH`): a longer one is refused, not cut. */
export const MAX_PARAM_VALUE = 6000
export const MAX_EXPERIMENT_TAG_VALUE = 5000
const MAX_EXPERIMENT_NAME = 256

// ---------------------------------------------------------------------------------------------------------------
// Rows
// ---------------------------------------------------------------------------------------------------------------

interface ExperimentRow {
  readonly experiment_id: string
  readonly name: string
  readonly artifact_location: string | null
  readonly lifecycle_stage: string | null
  readonly creation_time: number | string | null
  readonly last_update_time: number | string | null
  readonly tag_key: string | null
  readonly tag_value: string | null
}

interface RunRow {
  readonly run_uuid: string
  readonly name: string | null
  readonly user_id: string | null
  readonly status: string | null
  readonly start_time: number | string | null
  readonly end_time: number | string | null
  readonly lifecycle_stage: string | null
  readonly artifact_uri: string | null
  readonly experiment_id: string | null
  readonly tag_key: string | null
  readonly tag_value: string | null
}

const num = (v: number | string | bigint | null | undefined): number | undefined =>
  v === null || v === undefined ? undefined : Number(v)

const stage = (v: string | null): LifecycleStage => (v === "deleted" ? "deleted" : "active")

const STATUSES: ReadonlySet<string> = new Set(["RUNNING", "SCHEDULED", "FINISHED", "FAILED", "KILLED"])
const status = (v: string | null): RunStatus => (v !== null && STATUSES.has(v) ? (v as RunStatus) : "RUNNING")

/** Rows of an entity joined with its tags (one row per tag, or one with no tag) → entities in first-seen order. */
const group = <Row extends { readonly tag_key: string | null; readonly tag_value: string | null }>(
  rows: ReadonlyArray<Row>,
  id: (row: Row) => string
): Array<{ readonly row: Row; readonly tags: Array<EntityTag> }> => {
  const out = new Map<string, { readonly row: Row; readonly tags: Array<EntityTag> }>()
  for (const row of rows) {
    let entry = out.get(id(row))
    if (entry === undefined) {
      entry = { row, tags: [] }
      out.set(id(row), entry)
    }
    if (row.tag_key !== null) entry.tags.push(new EntityTag({ key: row.tag_key, value: row.tag_value ?? "" }))
  }
  for (const entry of out.values()) entry.tags.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0))
  return [...out.values()]
}

const toExperiment = (e: { readonly row: ExperimentRow; readonly tags: ReadonlyArray<EntityTag> }): Experiment => {
  const creationTime = num(e.row.creation_time)
  const lastUpdateTime = num(e.row.last_update_time)
  return new Experiment({
    experimentId: e.row.experiment_id,
    name: e.row.name,
    artifactLocation: e.row.artifact_location ?? "",
    lifecycleStage: stage(e.row.lifecycle_stage),
    ...(creationTime === undefined ? {} : { creationTime }),
    ...(lastUpdateTime === undefined ? {} : { lastUpdateTime }),
    tags: e.tags
  })
}

const toRun = (r: { readonly row: RunRow; readonly tags: ReadonlyArray<EntityTag> }): Run => {
  const endTime = num(r.row.end_time)
  return new Run({
    info: new RunInfo({
      runId: r.row.run_uuid,
      experimentId: r.row.experiment_id ?? "",
      runName: r.row.name ?? "",
      userId: r.row.user_id ?? "",
      status: status(r.row.status),
      startTime: num(r.row.start_time) ?? 0,
      ...(endTime === undefined ? {} : { endTime }),
      artifactUri: r.row.artifact_uri ?? "",
      lifecycleStage: stage(r.row.lifecycle_stage)
    }),
    tags: r.tags
  })
}

const runAccess: RunAccess<Run> = {
  fields: (run) => run.info,
  tag: (run, key) => Option.getOrUndefined(run.tag(key))
}

// ---------------------------------------------------------------------------------------------------------------
// Database errors
// ---------------------------------------------------------------------------------------------------------------

interface DriverError {
  readonly code?: unknown
  readonly errno?: unknown
  readonly message?: unknown
}

const driverError = (e: SqlError): DriverError =>
  typeof e.cause === "object" && e.cause !== null ? (e.cause as DriverError) : {}

const isUniqueViolation = (e: SqlError): boolean => {
  const { code, errno } = driverError(e)
  return code === "SQLITE_CONSTRAINT_UNIQUE" || code === "SQLITE_CONSTRAINT_PRIMARYKEY" || code === "23505" ||
    code === "ER_DUP_ENTRY" || errno === 1062
}

/** A failure that running the transaction again can cure: a busy sqlite file, a deadlock, a serialization failure. */
const isTransient = (e: SqlError): boolean => {
  const { code, errno } = driverError(e)
  return (typeof code === "string" && (code.startsWith("SQLITE_BUSY") || code.startsWith("SQLITE_LOCKED"))) ||
    code === "40001" || code === "40P01" || errno === 1213 || errno === 1205
}

/** The first `n` code points of `s` (as Python slices and PostgreSQL counts a varchar), never half a pair. */
const cut = (s: string, n: number): string => (s.length <= n ? s : Array.from(s).slice(0, n).join(""))

const firstLine = (s: string): string => s.split("\n")[0]!.trim()

const reasonOf = (e: SqlError): string => {
  const { message } = driverError(e)
  const detail = typeof message === "string" && message !== "" ? message : e.message
  return firstLine(SqlUri.redactUri(String(detail)))
}

// ---------------------------------------------------------------------------------------------------------------
// Drivers (loaded when a URI asks for them)
// ---------------------------------------------------------------------------------------------------------------

const storageError = (target: SqlTarget, reason: string) => new StorageError({ path: target.display, reason })

const causeText = (e: unknown): string => {
  if (typeof e === "object" && e !== null) {
    const cause = (e as { readonly cause?: unknown }).cause
    if (cause instanceof Error && cause.message !== "") return cause.message
    if (e instanceof Error && e.message !== "") return e.message
  }
  return String(e)
}

const clientLayer = (
  target: SqlTarget
): Effect.Effect<Layer.Layer<SqlClient.SqlClient, unknown>, StorageError> => {
  const missing = (module: string) => (e: unknown) =>
    storageError(target, `the ${module} driver could not be loaded (${firstLine(causeText(e))})`)
  switch (target.dialect) {
    case "sqlite": {
      const dir = nodePath.dirname(target.filename)
      if (!existsSync(dir) || !statSync(dir).isDirectory()) {
        return Effect.fail(storageError(target, `no directory ${dir} for the database file`))
      }
      return Effect.map(
        Effect.tryPromise({ try: () => import("@effect/sql-sqlite-node"), catch: missing("sqlite (@effect/sql-sqlite-node, better-sqlite3)") }),
        // MLflow's files stay in their rollback-journal mode (no WAL side files)
        (m) => m.SqliteClient.layer({ filename: target.filename, disableWAL: true })
      )
    }
    case "pg":
      return Effect.map(
        Effect.tryPromise({ try: () => import("@effect/sql-pg"), catch: missing("PostgreSQL (@effect/sql-pg)") }),
        (m) =>
          m.PgClient.layer({
            url: target.url,
            maxConnections: 4,
            connectTimeout: Duration.seconds(10),
            applicationName: "forml-mlflow"
          })
      )
    case "mysql":
      return Effect.map(
        Effect.tryPromise({ try: () => import("@effect/sql-mysql2"), catch: missing("MySQL (@effect/sql-mysql2)") }),
        (m) => m.MysqlClient.layer({ url: target.url, maxConnections: 4 })
      )
  }
}

// ---------------------------------------------------------------------------------------------------------------
// The layer
// ---------------------------------------------------------------------------------------------------------------

/** The Mlflow service on the database a tracking URI names (created, as MLflow creates it, when it holds no table). */
export const layer = (
  options: MlflowSqlOptions
): Layer.Layer<Mlflow, InvalidInput | StorageError, FileSystem.FileSystem | Path.Path> =>
  Layer.scoped(
    Mlflow,
    Effect.gen(function*() {
      const cwd = options.cwd ?? process.cwd()
      const target = yield* SqlUri.parse(options.uri, cwd)
      const driver = yield* clientLayer(target)
      const context = yield* Layer.build(driver).pipe(
        Effect.catchAllDefect((d) => Effect.fail(d)),
        Effect.mapError((e) => storageError(target, `cannot open the database: ${firstLine(SqlUri.redactUri(causeText(e)))}`))
      )
      const sql = Context.get(context, SqlClient.SqlClient)
      const rootOption = options.artifactRoot ?? "./mlruns"
      const artifactRoot = /^[a-z][a-z0-9+.-]+:/i.test(rootOption) ? rootOption : nodePath.resolve(cwd, rootOption)
      // a run's artifacts are where its artifact URI points: a local directory or an object store
      const stores = yield* ArtifactStore.makeResolver(options.artifactStores ?? {})
      return yield* make(sql, target, artifactRoot, stores.resolve)
    })
  )

/** The service over an open client: checks (or creates) the schema first. */
export const make = (
  sql: SqlClient.SqlClient,
  target: SqlTarget,
  artifactRoot: string,
  storeOf: ArtifactStore.Resolver["resolve"]
): Effect.Effect<Mlflow.Service, StorageError> =>
  Effect.gen(function*() {
    const dialect: Dialect = target.dialect
    const dbError = (e: SqlError) => storageError(target, reasonOf(e))
    const q = <A>(effect: Effect.Effect<A, SqlError>): Effect.Effect<A, StorageError> => Effect.mapError(effect, dbError)
    const text = sql.literal(dialect === "mysql" ? "CHAR" : "TEXT")
    const key = sql("key")

    if (dialect === "sqlite") {
      // what MLflow sets on every sqlite session
      yield* q(sql.unsafe("PRAGMA foreign_keys = ON"))
      yield* q(sql.unsafe("PRAGMA busy_timeout = 20000"))
      yield* q(sql.unsafe("PRAGMA case_sensitive_like = true"))
    }

    // -- transactions -------------------------------------------------------------------------------------------

    /** sqlite: a write first, so the transaction holds the write lock from its start (waiting on busy_timeout). */
    const lock = dialect === "sqlite"
      ? Effect.asVoid(sql`UPDATE alembic_version SET version_num = version_num WHERE 1 = 0`)
      : Effect.void

    // better-sqlite3 waits for a lock synchronously, which would stall the holder when it is in this same process:
    // writers of one file in one process take turns here first, and only wait on sqlite for other processes
    const inProcess = target.dialect === "sqlite" ? fileLock(target.filename) : undefined
    const serialised = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
      inProcess === undefined ? effect : inProcess.withPermits(1)(effect)

    const retrying = Schedule.intersect(Schedule.exponential(Duration.millis(20)).pipe(Schedule.jittered), Schedule.recurs(8))

    /** One transaction, run again on a transient failure; a unique violation is `onUnique` when given. */
    const transaction = <A, E>(
      body: Effect.Effect<A, E | SqlError>,
      onUnique?: () => E
    ): Effect.Effect<A, E | StorageError> =>
      serialised(sql.withTransaction(body)).pipe(
        Effect.retry({ schedule: retrying, while: (e) => isSqlError(e) && isTransient(e) }),
        Effect.catchIf(isSqlError, (e): Effect.Effect<never, E | StorageError> =>
          onUnique !== undefined && isUniqueViolation(e) ? Effect.fail(onUnique()) : Effect.fail(dbError(e)))
      )

    /** One write transaction (on sqlite holding the write lock from its start). */
    const write = <A, E>(body: Effect.Effect<A, E | SqlError>, onUnique?: () => E): Effect.Effect<A, E | StorageError> =>
      transaction(Effect.zipRight(lock, body), onUnique)

    // -- schema: checked, or created when the database holds no table ------------------------------------------

    const { workspaced } = yield* Schema.open({ sql, target, artifactRoot, transaction, error: dbError })
    const inWorkspace = (alias: string) => sql.literal(workspaced ? ` AND ${alias}.workspace = 'default'` : "")

    // -- ids ----------------------------------------------------------------------------------------------------

    /** An experiment id as the column takes it, or none when it cannot name a row (not an integer, out of range). */
    const experimentKey = (id: string): Option.Option<number | bigint> => {
      if (!/^\d{1,19}$/.test(id)) return Option.none()
      const n = BigInt(id)
      if (dialect === "sqlite") return n <= 9223372036854775807n ? Option.some(n) : Option.none()
      return n <= 2147483647n ? Option.some(Number(n)) : Option.none()
    }

    // -- reads --------------------------------------------------------------------------------------------------

    const experimentsWhere = (where: Fragment) =>
      sql<ExperimentRow>`SELECT CAST(e.experiment_id AS ${text}) AS experiment_id, e.name, e.artifact_location, e.lifecycle_stage, e.creation_time, e.last_update_time, t.${key} AS tag_key, t.value AS tag_value FROM experiments e LEFT JOIN experiment_tags t ON t.experiment_id = e.experiment_id WHERE ${where}${
        inWorkspace("e")
      }`.pipe(Effect.mapError(dbError), Effect.map((rows) => group(rows, (r) => r.experiment_id).map(toExperiment)))

    const runsWhere = (where: Fragment) =>
      sql<RunRow>`SELECT r.run_uuid, r.name, r.user_id, r.status, r.start_time, r.end_time, r.lifecycle_stage, r.artifact_uri, CAST(r.experiment_id AS ${text}) AS experiment_id, t.${key} AS tag_key, t.value AS tag_value FROM runs r LEFT JOIN tags t ON t.run_uuid = r.run_uuid WHERE ${where}`
        .pipe(Effect.mapError(dbError), Effect.map((rows) => group(rows, (r) => r.run_uuid).map(toRun)))

    const findExperiment = (experimentId: string) =>
      Option.match(experimentKey(experimentId), {
        onNone: () => Effect.fail(new NotFound({ entity: "experiment", key: experimentId })),
        onSome: (id) =>
          Effect.flatMap(experimentsWhere(sql`e.experiment_id = ${id}`), (found) =>
            found.length === 0
              ? Effect.fail(new NotFound({ entity: "experiment", key: experimentId }))
              : Effect.succeed(found[0]!))
      })

    const findRun = (runId: string) =>
      Effect.flatMap(runsWhere(sql`r.run_uuid = ${runId}`), (found) =>
        found.length === 0 ? Effect.fail(new NotFound({ entity: "run", key: runId })) : Effect.succeed(found[0]!))

    /** Inside a write: the run's lifecycle stage, NotFound when there is no such run. */
    const runStage = (runId: string) =>
      Effect.flatMap(
        sql<{ readonly lifecycle_stage: string | null }>`SELECT lifecycle_stage FROM runs WHERE run_uuid = ${runId}`,
        (rows) =>
          rows.length === 0
            ? Effect.fail(new NotFound({ entity: "run", key: runId }))
            : Effect.succeed(stage(rows[0]!.lifecycle_stage))
      )

    const activeRunInTx = (runId: string) =>
      Effect.flatMap(runStage(runId), (s) => (s === "active" ? Effect.void : Effect.fail(notActiveRun(runId))))

    // -- tags ---------------------------------------------------------------------------------------------------

    const upsert = dialect === "mysql"
      ? sql.literal("ON DUPLICATE KEY UPDATE value = VALUES(value)")
      : sql`ON CONFLICT (${key}, run_uuid) DO UPDATE SET value = excluded.value`
    const upsertExperimentTag = dialect === "mysql"
      ? sql.literal("ON DUPLICATE KEY UPDATE value = VALUES(value)")
      : sql`ON CONFLICT (${key}, experiment_id) DO UPDATE SET value = excluded.value`

    /** The last value of each key, in first-seen order (MLflow's log-batch: the last value wins). */
    const lastWins = (tags: ReadonlyArray<{ readonly key: string; readonly value: string }>) => {
      const out = new Map<string, string>()
      for (const t of tags) out.set(t.key, t.value)
      return [...out].map(([k, v]) => ({ key: k, value: v }))
    }

    const writeRunTags = (runId: string, tags: ReadonlyArray<{ readonly key: string; readonly value: string }>) =>
      Effect.gen(function*() {
        const rows = lastWins(tags).map((t) => ({ key: t.key, value: cut(t.value, MAX_RUN_TAG_VALUE), run_uuid: runId }))
        for (let i = 0; i < rows.length; i += 100) {
          yield* sql`INSERT INTO tags ${sql.insert(rows.slice(i, i + 100))} ${upsert}`
        }
        const name = rows.find((r) => r.key === "mlflow.runName")
        if (name !== undefined) yield* sql`UPDATE runs SET name = ${cut(name.value, 250)} WHERE run_uuid = ${runId}`
      })

    // -- experiments --------------------------------------------------------------------------------------------

    const getExperiment = (experimentId: string) =>
      findExperiment(experimentId).pipe(
        Effect.withSpan("MlflowSql.getExperiment")
      )

    const getExperimentByName = (name: string) =>
      experimentsWhere(sql`e.name = ${name}`).pipe(
        Effect.flatMap((found) =>
          found.length === 0 ? Effect.fail(new NotFound({ entity: "experiment", key: name })) : Effect.succeed(found[0]!)
        ),
        Effect.withSpan("MlflowSql.getExperimentByName")
      )

    const createExperiment = (
      name: string,
      options?: { readonly tags?: ReadonlyArray<{ readonly key: string; readonly value: string }> }
    ) =>
      Effect.gen(function*() {
        if (name === "") return yield* new InvalidInput({ kind: "ExperimentName", input: name, reason: "empty" })
        if (name.length > MAX_EXPERIMENT_NAME) {
          return yield* new InvalidInput({
            kind: "ExperimentName",
            input: name.slice(0, 40),
            reason: `longer than ${MAX_EXPERIMENT_NAME} characters`
          })
        }
        const tags = lastWins(options?.tags ?? [])
        yield* validateTags(tags)
        const now = yield* Clock.currentTimeMillis
        const taken = () => new AlreadyExists({ entity: "experiment", key: name })
        return yield* write(
          Effect.gen(function*() {
            const existing = yield* sql`SELECT 1 AS one FROM experiments e WHERE e.name = ${name}${inWorkspace("e")}`
            if (existing.length > 0) return yield* Effect.fail(taken())
            yield* sql`INSERT INTO experiments (name, lifecycle_stage, creation_time, last_update_time) VALUES (${name}, 'active', ${now}, ${now})`
            const rows = yield* sql<{ readonly experiment_id: string }>`SELECT CAST(e.experiment_id AS ${text}) AS experiment_id FROM experiments e WHERE e.name = ${name}${
              inWorkspace("e")
            }`
            const id = rows[0]!.experiment_id
            const idKey = Option.getOrThrow(experimentKey(id))
            yield* sql`UPDATE experiments SET artifact_location = ${`${artifactRoot}/${id}`} WHERE experiment_id = ${idKey}`
            if (tags.length > 0) {
              const tagRows = tags.map((t) => ({ key: t.key, value: cut(t.value, MAX_EXPERIMENT_TAG_VALUE), experiment_id: idKey }))
              yield* sql`INSERT INTO experiment_tags ${sql.insert(tagRows)} ${upsertExperimentTag}`
            }
            return id
          }),
          taken
        )
      }).pipe(Effect.withSpan("MlflowSql.createExperiment"))

    const setExperimentStage = (experimentId: string, from: LifecycleStage, to: LifecycleStage) =>
      Effect.gen(function*() {
        const notFound = new NotFound({ entity: "experiment", key: experimentId })
        const id = yield* Option.match(experimentKey(experimentId), {
          onNone: () => Effect.fail(notFound),
          onSome: Effect.succeed
        })
        const now = yield* Clock.currentTimeMillis
        yield* write(
          Effect.gen(function*() {
            const rows = yield* sql<{ readonly lifecycle_stage: string | null }>`SELECT e.lifecycle_stage FROM experiments e WHERE e.experiment_id = ${id}${
              inWorkspace("e")
            }`
            if (rows.length === 0 || stage(rows[0]!.lifecycle_stage) !== from) return yield* Effect.fail(notFound)
            yield* sql`UPDATE experiments SET lifecycle_stage = ${to}, last_update_time = ${now} WHERE experiment_id = ${id}`
            yield* sql`UPDATE runs SET lifecycle_stage = ${to}, deleted_time = ${to === "deleted" ? now : null} WHERE experiment_id = ${id}`
          })
        )
      })

    const deleteExperiment = (experimentId: string) =>
      setExperimentStage(experimentId, "active", "deleted").pipe(Effect.withSpan("MlflowSql.deleteExperiment"))
    const restoreExperiment = (experimentId: string) =>
      setExperimentStage(experimentId, "deleted", "active").pipe(Effect.withSpan("MlflowSql.restoreExperiment"))

    const searchExperiments = (options: SearchExperimentsOptions = {}) =>
      Stream.unwrap(
        Effect.gen(function*() {
          const { filter } = yield* checkExperimentsSearch(options.pageSize ?? DEFAULT_PAGE_SIZE, options)
          const all = yield* experimentsWhere(sql.literal("1 = 1"))
          const selected = all.filter((e) =>
            experimentAdmitted({ viewType: options.viewType, filter }, e, (k) => Option.getOrUndefined(e.tag(k)))
          )
          // MLflow's SQL store order: creation_time DESC, then experiment_id ASC
          selected.sort((a, b) => {
            const c = (b.creationTime ?? 0) - (a.creationTime ?? 0)
            if (c !== 0) return c
            const x = BigInt(a.experimentId)
            const y = BigInt(b.experimentId)
            return x < y ? -1 : x > y ? 1 : 0
          })
          return Stream.fromIterable(selected)
        })
      ).pipe(Stream.withSpan("MlflowSql.searchExperiments"))

    // -- runs ---------------------------------------------------------------------------------------------------

    const createRun = (options: CreateRunOptions) =>
      Effect.gen(function*() {
        const tags = options.tags ?? []
        yield* validateTags(tags)
        let nameTag: string | undefined
        let userTag: string | undefined
        for (const t of tags) {
          if (t.key === "mlflow.runName") nameTag = t.value
          if (t.key === "mlflow.user") userTag = t.value
        }
        const given = options.runName === undefined || options.runName === "" ? undefined : options.runName
        if (given !== undefined && nameTag !== undefined && given !== nameTag) {
          return yield* new InvalidInput({
            kind: "RunName",
            input: given,
            reason: `the run name differs from the mlflow.runName tag '${nameTag}'`
          })
        }
        const runName = given ?? nameTag ?? (yield* randomRunName)
        const startTime = options.startTime ?? (yield* Clock.currentTimeMillis)
        const userId = options.userId ?? userTag ?? ""
        const runId = newRunId()
        const experiment = yield* findExperiment(options.experimentId)
        if (experiment.lifecycleStage !== "active") return yield* notActiveExperiment(options.experimentId)
        const id = Option.getOrThrow(experimentKey(experiment.experimentId))
        const artifactUri = `${experiment.artifactLocation}/${runId}/artifacts`
        const allTags = nameTag === undefined ? [...tags, { key: "mlflow.runName", value: runName }] : tags
        yield* write(
          Effect.gen(function*() {
            const rows = yield* sql<{ readonly lifecycle_stage: string | null }>`SELECT lifecycle_stage FROM experiments WHERE experiment_id = ${id}`
            if (rows.length === 0) return yield* Effect.fail(new NotFound({ entity: "experiment", key: options.experimentId }))
            if (stage(rows[0]!.lifecycle_stage) !== "active") return yield* Effect.fail(notActiveExperiment(options.experimentId))
            yield* sql`INSERT INTO runs ${
              sql.insert({
                run_uuid: runId,
                name: cut(runName, 250),
                source_type: "UNKNOWN",
                source_name: "",
                entry_point_name: "",
                user_id: userId,
                status: "RUNNING",
                start_time: startTime,
                end_time: null,
                source_version: "",
                lifecycle_stage: "active",
                artifact_uri: artifactUri,
                experiment_id: id,
                deleted_time: null
              })
            }`
            yield* writeRunTags(runId, allTags)
          })
        )
        return yield* getRun(runId)
      }).pipe(Effect.withSpan("MlflowSql.createRun"))

    const getRun = (runId: string) =>
      findRun(runId).pipe(
        Effect.withSpan("MlflowSql.getRun")
      )

    const searchRuns = (options: SearchRunsOptions) =>
      Stream.unwrap(
        Effect.gen(function*() {
          const { filter, order } = yield* checkRunsSearch(options.pageSize ?? DEFAULT_PAGE_SIZE, options)
          const keys = options.experimentIds.flatMap((id) => Option.toArray(experimentKey(id)))
          if (keys.length === 0) return Stream.empty
          const views = options.viewType === "ALL"
            ? ["active", "deleted"]
            : options.viewType === "DELETED_ONLY"
            ? ["deleted"]
            : ["active"]
          // a tag equality narrows the rows read (the shared rules below still decide, as the other stores do)
          const narrowing = filter.clauses.filter((c) => c.kind === "tag" && c.comparator === "=").map((c) =>
            sql` AND EXISTS (SELECT 1 FROM tags x WHERE x.run_uuid = r.run_uuid AND x.${key} = ${c.key} AND x.value = ${c.value})`
          )
          const runs = yield* runsWhere(
            sql`r.experiment_id IN ${sql.in(keys)} AND r.lifecycle_stage IN ${sql.in(views)}${sql.join("", false)(narrowing)}`
          )
          const experimentIds = keys.map(String)
          return Stream.fromIterable(selectRuns(runs, runAccess, { experimentIds, viewType: options.viewType, filter, order }))
        })
      ).pipe(Stream.withSpan("MlflowSql.searchRuns"))

    /**
     * Params as MLflow's SQL store logs them: a key already logged with the same value is left as it is, another
     * value is refused (400 INVALID_PARAMETER_VALUE), which fails the whole transaction.
     */
    const writeParams = (runId: string, params: ReadonlyArray<{ readonly key: string; readonly value: string }>) =>
      Effect.gen(function*() {
        if (params.length === 0) return
        const given = lastWins(params)
        const existing = yield* sql<{ readonly key: string; readonly value: string }>`SELECT ${key} AS ${
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
        const fresh = given.filter((p) => !logged.has(p.key))
          .map((p) => ({ key: p.key, value: p.value, run_uuid: runId }))
        if (fresh.length > 0) yield* sql`INSERT INTO params ${sql.insert(fresh)}`
      })

    /** Metrics as MLflow's SQL store logs them: every point kept once, `latest_metrics` the greatest (step, timestamp, value). */
    const writeMetrics = (runId: string, metrics: ReadonlyArray<MetricPoint>) =>
      Effect.gen(function*() {
        if (metrics.length === 0) return
        const nan = dialect === "pg" ? false : 0
        const ignore = dialect === "mysql" ? sql.literal("") : sql.literal("ON CONFLICT DO NOTHING")
        const insert = dialect === "mysql" ? sql.literal("INSERT IGNORE INTO") : sql.literal("INSERT INTO")
        for (const m of metrics) {
          yield* sql`${insert} metrics ${
            sql.insert({ key: m.key, value: m.value, timestamp: m.timestamp, run_uuid: runId, step: m.step, is_nan: nan })
          } ${ignore}`
        }
        const latest = new Map<string, MetricPoint>()
        const later = (a: MetricPoint, b: { readonly step: number; readonly timestamp: number; readonly value: number }) =>
          a.step !== b.step ? a.step > b.step : a.timestamp !== b.timestamp ? a.timestamp > b.timestamp : a.value > b.value
        for (const m of metrics) {
          const seen = latest.get(m.key)
          if (seen === undefined || later(m, seen)) latest.set(m.key, m)
        }
        const stored = yield* sql<{ readonly key: string; readonly value: number; readonly timestamp: number; readonly step: number }>`SELECT ${key} AS ${
          sql("key")
        }, value, timestamp, step FROM latest_metrics WHERE run_uuid = ${runId} AND ${key} IN ${sql.in([...latest.keys()])}`
        const current = new Map(stored.map((r) => [r.key, { step: Number(r.step), timestamp: Number(r.timestamp), value: Number(r.value) }]))
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

    const setTags = (
      runId: string,
      tags: ReadonlyArray<{ readonly key: string; readonly value: string }>,
      extras?: LogBatchExtras
    ) =>
      Effect.gen(function*() {
        yield* validateTags(tags)
        yield* validateExtras(extras)
        const params = extras?.params ?? []
        const long = params.find((p) => p.value.length > MAX_PARAM_VALUE)
        if (long !== undefined) {
          return yield* new InvalidInput({
            kind: "Param",
            input: long.key,
            reason: `its value is longer than MLflow's ${MAX_PARAM_VALUE} characters`
          })
        }
        const metrics = extras?.metrics ?? []
        if (tags.length === 0 && params.length === 0 && metrics.length === 0) {
          yield* getRun(runId)
          return
        }
        // MLflow's log-batch order: params, metrics, tags; a refused param writes nothing of the batch
        yield* write(
          Effect.gen(function*() {
            yield* activeRunInTx(runId)
            yield* writeParams(runId, params)
            yield* writeMetrics(runId, metrics)
            if (tags.length > 0) yield* writeRunTags(runId, tags)
          })
        )
      })

    const setTag = (runId: string, key: string, value: string) =>
      Effect.zipRight(validateTagKey(key), setTags(runId, [{ key, value }])).pipe(Effect.withSpan("MlflowSql.setTag"))

    const setRunStage = (runId: string, to: LifecycleStage) =>
      Effect.gen(function*() {
        const now = yield* Clock.currentTimeMillis
        yield* write(
          Effect.gen(function*() {
            yield* runStage(runId)
            yield* sql`UPDATE runs SET lifecycle_stage = ${to}, deleted_time = ${to === "deleted" ? now : null} WHERE run_uuid = ${runId}`
          })
        )
      })

    const updateRun = (runId: string, options: UpdateRunOptions) =>
      Effect.gen(function*() {
        yield* write(
          Effect.gen(function*() {
            yield* activeRunInTx(runId)
            if (options.status !== undefined) yield* sql`UPDATE runs SET status = ${options.status} WHERE run_uuid = ${runId}`
            if (options.endTime !== undefined) yield* sql`UPDATE runs SET end_time = ${options.endTime} WHERE run_uuid = ${runId}`
            if (options.runName !== undefined && options.runName !== "") {
              yield* writeRunTags(runId, [{ key: "mlflow.runName", value: options.runName }])
            }
          })
        )
        return (yield* getRun(runId)).info
      }).pipe(Effect.withSpan("MlflowSql.updateRun"))

    // -- artifacts ----------------------------------------------------------------------------------------------

    const storeFor = (run: ArtifactRoot) => storeOf(run.artifactUri)

    const uploadArtifact = <E = never>(run: ArtifactRoot, path: string, source: ArtifactSource<E>) =>
      Effect.gen(function*() {
        yield* validateArtifactPath(path)
        const store = yield* storeFor(run)
        yield* store.upload(path, source)
      }).pipe(Effect.withSpan("MlflowSql.uploadArtifact", { attributes: { path } }))

    const downloadArtifact = (run: ArtifactRoot, path: string) =>
      Stream.unwrap(
        Effect.gen(function*() {
          yield* validateArtifactPath(path)
          const store = yield* storeFor(run)
          return store.download(path)
        })
      ).pipe(Stream.withSpan("MlflowSql.downloadArtifact", { attributes: { path } }))

    const readArtifact = (run: ArtifactRoot, path: string) =>
      Effect.gen(function*() {
        yield* validateArtifactPath(path)
        const store = yield* storeFor(run)
        return yield* store.read(path)
      }).pipe(Effect.withSpan("MlflowSql.readArtifact", { attributes: { path } }))

    const listArtifacts = (run: ArtifactRoot, path?: string) =>
      Effect.gen(function*() {
        if (path !== undefined && path !== "") yield* validateArtifactPath(path)
        const store = yield* storeFor(run)
        return yield* store.list(path)
      }).pipe(Effect.withSpan("MlflowSql.listArtifacts"))

    const service: Mlflow.Service = {
      getExperiment,
      getExperimentByName,
      createExperiment,
      deleteExperiment,
      restoreExperiment,
      searchExperiments,
      createRun,
      getRun,
      searchRuns,
      setTag,
      setTags: (runId, tags, extras) => setTags(runId, tags, extras).pipe(Effect.withSpan("MlflowSql.setTags")),
      deleteRun: (runId) => setRunStage(runId, "deleted").pipe(Effect.withSpan("MlflowSql.deleteRun")),
      restoreRun: (runId) => setRunStage(runId, "active").pipe(Effect.withSpan("MlflowSql.restoreRun")),
      updateRun,
      uploadArtifact,
      downloadArtifact,
      readArtifact,
      listArtifacts
    }
    return service
  })

/** One lock per sqlite file and process (see `serialised`). */
const fileLocks = new Map<string, Effect.Semaphore>()
const fileLock = (filename: string): Effect.Semaphore => {
  let lock = fileLocks.get(filename)
  if (lock === undefined) {
    lock = Effect.unsafeMakeSemaphore(1)
    fileLocks.set(filename, lock)
  }
  return lock
}

const isSqlError = (e: unknown): e is SqlError =>
  typeof e === "object" && e !== null && "_tag" in e && (e as { readonly _tag: unknown })._tag === "SqlError"
