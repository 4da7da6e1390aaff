/**
 * One open tracking database as the statements of `MlflowSql` use it: the client, its dialect's few differences, the
 * schema checked (or created), and transactions that serialise, retry and map failures the same way for every write.
 *
 * Every write is one transaction; on sqlite it takes the write lock at its start (so waiting writers queue on
 * `busy_timeout` instead of failing), and a transaction that meets a busy database or a serialization failure is run
 * again.
 *
 * @internal
 */
import type * as SqlClient from "@effect/sql/SqlClient"
import type { SqlError } from "@effect/sql/SqlError"
import type { Fragment, Identifier } from "@effect/sql/Statement"
import { Duration, Effect, Option, Schedule } from "effect"
import type { StorageError } from "../../errors.js"
import type * as ArtifactStore from "../ArtifactStore.js"
import { dbError, isSqlError, isTransient, isUniqueViolation } from "./errors.js"
import * as Schema from "./schema.js"
import type { Dialect, SqlTarget } from "./uri.js"

/** @internal */
export type Transaction = <A, E>(
  body: Effect.Effect<A, E | SqlError>,
  onUnique?: () => E
) => Effect.Effect<A, E | StorageError>

/** @internal */
export interface Session {
  readonly sql: SqlClient.SqlClient
  readonly target: SqlTarget
  readonly dialect: Dialect
  /** Where new experiments keep their artifacts (`<artifactRoot>/<experiment id>`). */
  readonly artifactRoot: string
  /** The store a run's artifact URI points at. */
  readonly storeOf: ArtifactStore.Resolver["resolve"]
  /** The type an id is cast to when read as text (the 18-digit ids of a migrated file store keep every digit). */
  readonly text: Fragment
  /** The `key` column, quoted as the dialect quotes it. */
  readonly key: Identifier
  readonly error: (e: SqlError) => StorageError
  /** One transaction, run again on a transient failure; a unique violation is `onUnique` when given. */
  readonly transaction: Transaction
  /** One write transaction (on sqlite holding the write lock from its start). */
  readonly write: Transaction
  /** ` AND <alias>.workspace = 'default'` on MLflow 3's schema (only the default workspace is seen), else nothing. */
  readonly inWorkspace: (alias: string) => Fragment
  /** An experiment id as the column takes it, or none when it cannot name a row (not an integer, out of range). */
  readonly experimentKey: (id: string) => Option.Option<number | bigint>
}

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

const retrying = Schedule.intersect(
  Schedule.exponential(Duration.millis(20)).pipe(Schedule.jittered),
  Schedule.recurs(8)
)

const MAX_SQLITE_ID = 9223372036854775807n
const MAX_INTEGER_ID = 2147483647n

/** The session over an open client: sets sqlite's session pragmas, checks (or creates) the schema. @internal */
export const open = (
  sql: SqlClient.SqlClient,
  target: SqlTarget,
  artifactRoot: string,
  storeOf: ArtifactStore.Resolver["resolve"]
): Effect.Effect<Session, StorageError> =>
  Effect.gen(function*() {
    const dialect: Dialect = target.dialect
    const error = dbError(target)

    if (dialect === "sqlite") {
      // what MLflow sets on every sqlite session
      for (const pragma of ["foreign_keys = ON", "busy_timeout = 20000", "case_sensitive_like = true"]) {
        yield* Effect.mapError(sql.unsafe(`PRAGMA ${pragma}`), error)
      }
    }

    /** sqlite: a write first, so the transaction holds the write lock from its start (waiting on busy_timeout). */
    const lock = dialect === "sqlite"
      ? Effect.asVoid(sql`UPDATE alembic_version SET version_num = version_num WHERE 1 = 0`)
      : Effect.void

    // better-sqlite3 waits for a lock synchronously, which would stall the holder when it is in this same process:
    // writers of one file in one process take turns here first, and only wait on sqlite for other processes
    const inProcess = target.dialect === "sqlite" ? fileLock(target.filename) : undefined
    const serialised = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
      inProcess === undefined ? effect : inProcess.withPermits(1)(effect)

    const transaction = <A, E>(
      body: Effect.Effect<A, E | SqlError>,
      onUnique?: () => E
    ): Effect.Effect<A, E | StorageError> =>
      serialised(sql.withTransaction(body)).pipe(
        Effect.retry({ schedule: retrying, while: (e) => isSqlError(e) && isTransient(e) }),
        Effect.catchIf(
          isSqlError,
          (e): Effect.Effect<never, E | StorageError> =>
            onUnique !== undefined && isUniqueViolation(e) ? Effect.fail(onUnique()) : Effect.fail(error(e))
        )
      )

    const write = <A, E>(
      body: Effect.Effect<A, E | SqlError>,
      onUnique?: () => E
    ): Effect.Effect<A, E | StorageError> => transaction(Effect.zipRight(lock, body), onUnique)

    const { workspaced } = yield* Schema.open({ sql, target, artifactRoot, transaction, error })

    const experimentKey = (id: string): Option.Option<number | bigint> => {
      if (!/^\d{1,19}$/.test(id)) return Option.none()
      const n = BigInt(id)
      if (dialect === "sqlite") return n <= MAX_SQLITE_ID ? Option.some(n) : Option.none()
      return n <= MAX_INTEGER_ID ? Option.some(Number(n)) : Option.none()
    }

    return {
      sql,
      target,
      dialect,
      artifactRoot,
      storeOf,
      text: sql.literal(dialect === "mysql" ? "CHAR" : "TEXT"),
      key: sql("key"),
      error,
      transaction,
      write,
      inWorkspace: (alias) => sql.literal(workspaced ? ` AND ${alias}.workspace = 'default'` : ""),
      experimentKey
    }
  })
