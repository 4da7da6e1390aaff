/**
 * The experiment methods of `MlflowSql`: created with the artifact location MLflow gives them (`<root>/<id>`),
 * deleted and restored with every run of them, searched in MLflow's SQL store order.
 *
 * @internal
 */
import { Clock, Effect, Option, Stream } from "effect"
import { AlreadyExists, InvalidInput, NotFound } from "../../errors.js"
import type { KeyValue, LifecycleStage, Mlflow, SearchExperimentsOptions } from "../Mlflow.js"
import { checkExperimentsSearch, DEFAULT_PAGE_SIZE, experimentAdmitted, lastWins, validateTags } from "../semantics.js"
import { experimentsWhere, findExperiment, findExperimentByName } from "./reads.js"
import * as Rows from "./rows.js"
import type { Session } from "./session.js"
import { writeExperimentTags } from "./writes.js"

const MAX_EXPERIMENT_NAME = 256

const checkName = (name: string) => {
  if (name === "") return Effect.fail(new InvalidInput({ kind: "ExperimentName", input: name, reason: "empty" }))
  if (name.length > MAX_EXPERIMENT_NAME) {
    return Effect.fail(
      new InvalidInput({
        kind: "ExperimentName",
        input: name.slice(0, 40),
        reason: `longer than ${MAX_EXPERIMENT_NAME} characters`
      })
    )
  }
  return Effect.void
}

const createExperiment = (db: Session) =>
(
  name: string,
  options?: { readonly tags?: ReadonlyArray<KeyValue> }
) =>
  Effect.gen(function*() {
    yield* checkName(name)
    const tags = lastWins(options?.tags ?? [])
    yield* validateTags(tags)
    const now = yield* Clock.currentTimeMillis
    const { experimentKey, inWorkspace, sql, text } = db
    const taken = () => new AlreadyExists({ entity: "experiment", key: name })
    return yield* db.write(
      Effect.gen(function*() {
        const existing = yield* sql`SELECT 1 AS one FROM experiments e WHERE e.name = ${name}${inWorkspace("e")}`
        if (existing.length > 0) return yield* Effect.fail(taken())
        yield* sql`INSERT INTO experiments (name, lifecycle_stage, creation_time, last_update_time) VALUES (${name}, 'active', ${now}, ${now})`
        const rows = yield* sql<
          { readonly experiment_id: string }
        >`SELECT CAST(e.experiment_id AS ${text}) AS experiment_id FROM experiments e WHERE e.name = ${name}${
          inWorkspace("e")
        }`
        const id = rows[0]!.experiment_id
        const idKey = Option.getOrThrow(experimentKey(id))
        yield* sql`UPDATE experiments SET artifact_location = ${`${db.artifactRoot}/${id}`} WHERE experiment_id = ${idKey}`
        yield* writeExperimentTags(db, idKey, tags)
        return id
      }),
      taken
    )
  }).pipe(Effect.withSpan("MlflowSql.createExperiment"))

/** Deletes (or restores) an experiment and every run of it, as MLflow's SQL store does. */
const setExperimentStage = (db: Session, experimentId: string, from: LifecycleStage, to: LifecycleStage) =>
  Effect.gen(function*() {
    const { inWorkspace, sql } = db
    const notFound = new NotFound({ entity: "experiment", key: experimentId })
    const id = yield* Option.match(db.experimentKey(experimentId), {
      onNone: () => Effect.fail(notFound),
      onSome: Effect.succeed
    })
    const now = yield* Clock.currentTimeMillis
    yield* db.write(
      Effect.gen(function*() {
        const rows = yield* sql<
          { readonly lifecycle_stage: string | null }
        >`SELECT e.lifecycle_stage FROM experiments e WHERE e.experiment_id = ${id}${inWorkspace("e")}`
        const row = rows[0]
        if (row === undefined || Rows.stage(row.lifecycle_stage) !== from) return yield* Effect.fail(notFound)
        yield* sql`UPDATE experiments SET lifecycle_stage = ${to}, last_update_time = ${now} WHERE experiment_id = ${id}`
        yield* sql`UPDATE runs SET lifecycle_stage = ${to}, deleted_time = ${
          to === "deleted" ? now : null
        } WHERE experiment_id = ${id}`
      })
    )
  })

/** MLflow's SQL store order: creation_time DESC, then experiment_id ASC. */
const byCreation = (
  a: { readonly creationTime?: number | undefined; readonly experimentId: string },
  b: { readonly creationTime?: number | undefined; readonly experimentId: string }
): number => {
  const c = (b.creationTime ?? 0) - (a.creationTime ?? 0)
  if (c !== 0) return c
  const x = BigInt(a.experimentId)
  const y = BigInt(b.experimentId)
  return x < y ? -1 : x > y ? 1 : 0
}

const searchExperiments = (db: Session) => (options: SearchExperimentsOptions = {}) =>
  Stream.unwrap(
    Effect.gen(function*() {
      const { filter } = yield* checkExperimentsSearch(options.pageSize ?? DEFAULT_PAGE_SIZE, options)
      const all = yield* experimentsWhere(db, db.sql.literal("1 = 1"))
      const selected = all.filter((e) =>
        experimentAdmitted({ viewType: options.viewType, filter }, e, (k) => Option.getOrUndefined(e.tag(k)))
      )
      return Stream.fromIterable(selected.sort(byCreation))
    })
  ).pipe(Stream.withSpan("MlflowSql.searchExperiments"))

type ExperimentMethods = Pick<
  Mlflow.Service,
  | "getExperiment"
  | "getExperimentByName"
  | "createExperiment"
  | "deleteExperiment"
  | "restoreExperiment"
  | "searchExperiments"
>

/** The experiment methods of the service over `db`. @internal */
export const methods = (db: Session): ExperimentMethods => ({
  getExperiment: (experimentId) => findExperiment(db, experimentId).pipe(Effect.withSpan("MlflowSql.getExperiment")),
  getExperimentByName: (name) => findExperimentByName(db, name).pipe(Effect.withSpan("MlflowSql.getExperimentByName")),
  createExperiment: createExperiment(db),
  deleteExperiment: (experimentId) =>
    setExperimentStage(db, experimentId, "active", "deleted").pipe(Effect.withSpan("MlflowSql.deleteExperiment")),
  restoreExperiment: (experimentId) =>
    setExperimentStage(db, experimentId, "deleted", "active").pipe(Effect.withSpan("MlflowSql.restoreExperiment")),
  searchExperiments: searchExperiments(db)
})
