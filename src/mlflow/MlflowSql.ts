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
import type * as SqlClient from "@effect/sql/SqlClient"
import { Effect, Layer } from "effect"
import * as nodePath from "node:path"
import type { InvalidInput, StorageError } from "../errors.js"
import * as ArtifactStore from "./ArtifactStore.js"
import { resolvedArtifacts } from "./internal/resolvedArtifacts.js"
import { Mlflow, validateArtifactPath } from "./Mlflow.js"
import * as Client from "./sql/client.js"
import * as Experiments from "./sql/experiments.js"
import * as Runs from "./sql/runs.js"
import * as Session from "./sql/session.js"
import * as SqlUri from "./sql/uri.js"
import type { SqlTarget } from "./sql/uri.js"
import * as Writes from "./sql/writes.js"

// the alembic revision of the databases this layer creates; whether a tracking URI names a database; a URI as
// messages show it (the password masked)
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
export const MAX_RUN_TAG_VALUE = Writes.MAX_RUN_TAG_VALUE
/** MLflow's limit on a param value (`MAX_PARAM_VAL_LENGTH`): a longer one is refused, not cut. */
export const MAX_PARAM_VALUE = Writes.MAX_PARAM_VALUE
/** The longest experiment tag value the 2.17.2 schema keeps; a longer one is cut to it. */
export const MAX_EXPERIMENT_TAG_VALUE = Writes.MAX_EXPERIMENT_TAG_VALUE

/**
 * The service over an open client of the database `target` names: checks the schema (creating it in a database with
 * no table) first. New experiments keep their artifacts under `artifactRoot`; a run's artifacts are in the store
 * `storeOf` resolves its artifact URI to.
 */
export const make = (
  sql: SqlClient.SqlClient,
  target: SqlTarget,
  artifactRoot: string,
  storeOf: ArtifactStore.Resolver["resolve"]
): Effect.Effect<Mlflow.Service, StorageError> =>
  Effect.map(Session.open(sql, target, artifactRoot, storeOf), (db): Mlflow.Service => {
    const locate = (run: { readonly artifactUri: string }) => storeOf(run.artifactUri)
    return {
      ...Experiments.methods(db),
      ...Runs.methods(db),
      ...resolvedArtifacts("MlflowSql", locate),
      listArtifacts: (run, path) =>
        Effect.gen(function*() {
          if (path !== undefined && path !== "") yield* validateArtifactPath(path)
          const store = yield* locate(run)
          return yield* store.list(path)
        }).pipe(Effect.withSpan("MlflowSql.listArtifacts"))
    }
  })

/** The Mlflow service on the database a tracking URI names (created, as MLflow creates it, when it holds no table). */
export const layer = (
  options: MlflowSqlOptions
): Layer.Layer<Mlflow, InvalidInput | StorageError, FileSystem.FileSystem | Path.Path> =>
  Layer.scoped(
    Mlflow,
    Effect.gen(function*() {
      const cwd = options.cwd ?? process.cwd()
      const target = yield* SqlUri.parse(options.uri, cwd)
      const sql = yield* Client.open(target)
      const rootOption = options.artifactRoot ?? "./mlruns"
      const artifactRoot = /^[a-z][a-z0-9+.-]+:/i.test(rootOption) ? rootOption : nodePath.resolve(cwd, rootOption)
      // a run's artifacts are where its artifact URI points: a local directory or an object store
      const stores = yield* ArtifactStore.makeResolver(options.artifactStores ?? {})
      return yield* make(sql, target, artifactRoot, stores.resolve)
    })
  )
