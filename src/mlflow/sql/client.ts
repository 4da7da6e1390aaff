/**
 * The `@effect/sql` client of a tracking URI's dialect; each driver (better-sqlite3, pg, mysql2) is imported only
 * when a URI names it, so that a command that never opens a database never loads one.
 *
 * @internal
 */
import * as SqlClient from "@effect/sql/SqlClient"
import { Context, Duration, Effect, Layer } from "effect"
import type { Scope } from "effect"
import { existsSync, statSync } from "node:fs"
import * as nodePath from "node:path"
import type { StorageError } from "../../errors.js"
import { causeText, firstLine, storageError } from "./errors.js"
import { redactUri } from "./uri.js"
import type { SqlTarget } from "./uri.js"

const driverLayer = (target: SqlTarget): Effect.Effect<Layer.Layer<SqlClient.SqlClient, unknown>, StorageError> => {
  const missing = (module: string) => (e: unknown) =>
    storageError(target, `the ${module} driver could not be loaded (${firstLine(causeText(e))})`)
  switch (target.dialect) {
    case "sqlite": {
      const dir = nodePath.dirname(target.filename)
      if (!existsSync(dir) || !statSync(dir).isDirectory()) {
        return Effect.fail(storageError(target, `no directory ${dir} for the database file`))
      }
      return Effect.map(
        Effect.tryPromise({
          try: () => import("@effect/sql-sqlite-node"),
          catch: missing("sqlite (@effect/sql-sqlite-node, better-sqlite3)")
        }),
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

/** An open client of the database `target` names, closed with the scope. @internal */
export const open = (target: SqlTarget): Effect.Effect<SqlClient.SqlClient, StorageError, Scope.Scope> =>
  Effect.gen(function*() {
    const driver = yield* driverLayer(target)
    const context = yield* Layer.build(driver).pipe(
      Effect.catchAllDefect((d) => Effect.fail(d)),
      Effect.mapError((e) => storageError(target, `cannot open the database: ${firstLine(redactUri(causeText(e)))}`))
    )
    return Context.get(context, SqlClient.SqlClient)
  })
