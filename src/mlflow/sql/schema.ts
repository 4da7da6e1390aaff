/**
 * The schema of a tracking database: checked (the registry tables hold every column MlflowSql uses, whatever the
 * alembic revision), or, when the database holds no table at all, created exactly as MLflow 2.17.2 creates it
 * (`ddl.ts`: every table, index and constraint, `alembic_version` and the Default experiment).
 *
 * @internal
 */
import type * as SqlClient from "@effect/sql/SqlClient"
import type { SqlError } from "@effect/sql/SqlError"
import { Clock, Effect, Either } from "effect"
import { StorageError } from "../../errors.js"
import { CREATED_REVISION, POSTGRES_DDL, SQLITE_DDL } from "./ddl.js"
import type { SqlTarget } from "./uri.js"

/** What must be there for this layer to work, per table (the columns it reads or writes). */
export const REQUIRED: ReadonlyArray<readonly [string, ReadonlyArray<string>]> = [
  ["experiments", [
    "experiment_id",
    "name",
    "artifact_location",
    "lifecycle_stage",
    "creation_time",
    "last_update_time"
  ]],
  ["experiment_tags", ["key", "value", "experiment_id"]],
  [
    "runs",
    [
      "run_uuid",
      "name",
      "source_type",
      "source_name",
      "entry_point_name",
      "user_id",
      "status",
      "start_time",
      "end_time",
      "source_version",
      "lifecycle_stage",
      "artifact_uri",
      "experiment_id",
      "deleted_time"
    ]
  ],
  ["tags", ["key", "value", "run_uuid"]],
  ["params", ["key", "value", "run_uuid"]],
  ["metrics", ["key", "value", "timestamp", "run_uuid", "step", "is_nan"]],
  ["latest_metrics", ["key", "value", "timestamp", "step", "is_nan", "run_uuid"]],
  ["alembic_version", ["version_num"]]
]

export interface OpenOptions {
  readonly sql: SqlClient.SqlClient
  readonly target: SqlTarget
  /** Where the Default experiment of a new database keeps its artifacts: `<artifactRoot>/0`. */
  readonly artifactRoot: string
  /** Runs a transaction as the layer runs its own (serialised in this process, retried when transient). */
  readonly transaction: <A, E>(body: Effect.Effect<A, E | SqlError>) => Effect.Effect<A, E | StorageError>
  readonly error: (e: SqlError) => StorageError
}

/** Checks the schema (creating it in an empty database); `workspaced` when experiments have MLflow 3's workspace. */
export const open = (
  options: OpenOptions
): Effect.Effect<{ readonly workspaced: boolean }, StorageError> =>
  Effect.gen(function*() {
    const { artifactRoot, error, sql, target, transaction } = options
    const dialect = target.dialect

    const listTables = Effect.mapError(
      dialect === "sqlite"
        ? sql<{ readonly name: string }>`SELECT name FROM sqlite_master WHERE type = 'table'`
        : dialect === "pg"
        ? sql<
          { readonly name: string }
        >`SELECT table_name AS name FROM information_schema.tables WHERE table_schema = current_schema()`
        : sql<
          { readonly name: string }
        >`SELECT table_name AS name FROM information_schema.tables WHERE table_schema = DATABASE()`,
      error
    ).pipe(Effect.map((rows) => new Set(rows.map((r) => r.name))))

    const quote = (name: string) => (dialect === "mysql" ? `\`${name}\`` : `"${name}"`)

    const readRevision = sql<{ readonly version_num: string }>`SELECT version_num FROM alembic_version`.pipe(
      Effect.map((rows) => (rows.length === 0 ? "none" : rows.map((r) => r.version_num).join(","))),
      Effect.orElseSucceed(() => "none")
    )

    const create = Effect.gen(function*() {
      if (dialect === "mysql") {
        return yield* new StorageError({
          path: target.display,
          reason:
            "the database holds no MLflow schema; create it with `mlflow db upgrade <uri>` of the MLflow version that serves it"
        })
      }
      const now = yield* Clock.currentTimeMillis
      const body = Effect.gen(function*() {
        if (dialect === "sqlite") {
          // the first statement takes the write lock; another process that created the schema meanwhile wins
          yield* sql.unsafe(SQLITE_DDL.find((s) => s.startsWith("CREATE TABLE alembic_version"))!.replace(
            "CREATE TABLE alembic_version",
            "CREATE TABLE IF NOT EXISTS alembic_version"
          ))
        } else {
          yield* sql`SELECT pg_advisory_xact_lock(7271957)`
        }
        const tables = yield* listTables
        if (tables.has("experiments")) return
        for (const statement of dialect === "sqlite" ? SQLITE_DDL : POSTGRES_DDL) {
          if (dialect === "sqlite" && statement.startsWith("CREATE TABLE alembic_version")) continue
          yield* sql.unsafe(statement)
        }
        yield* sql`INSERT INTO alembic_version (version_num) VALUES (${CREATED_REVISION})`
        yield* sql`INSERT INTO experiments (experiment_id, name, artifact_location, lifecycle_stage, creation_time, last_update_time) VALUES (0, 'Default', ${`${artifactRoot}/0`}, 'active', ${now}, ${now})`
      })
      yield* transaction(body)
    })

    const check = Effect.gen(function*() {
      const revision = yield* readRevision
      for (const [table, columns] of REQUIRED) {
        const missing: Array<string> = []
        const all = yield* Effect.either(
          sql.unsafe(`SELECT ${columns.map(quote).join(", ")} FROM ${table} WHERE 1 = 0`)
        )
        if (Either.isRight(all)) continue
        for (const column of columns) {
          const one = yield* Effect.either(sql.unsafe(`SELECT ${quote(column)} FROM ${table} WHERE 1 = 0`))
          if (Either.isLeft(one)) missing.push(column)
        }
        const what = missing.length === columns.length ? `no ${table} table` : `${table} lacks ${missing.join(", ")}`
        return yield* new StorageError({
          path: target.display,
          reason:
            `unsupported MLflow schema at alembic revision ${revision}: ${what} (MLflow 2.x/3.x tracking databases are supported; upgrade with 'mlflow db upgrade')`
        })
      }
      // MLflow 3 keeps experiments per workspace; without workspaces enabled everything is in 'default'
      return Either.isRight(yield* Effect.either(sql`SELECT workspace FROM experiments WHERE 1 = 0`))
    })

    const tables = yield* listTables
    if (tables.size === 0) yield* create
    return { workspaced: yield* check }
  })
