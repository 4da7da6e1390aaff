/**
 * The reads of `MlflowSql`: an experiment or a run with its tags is one statement (one snapshot), and the lifecycle
 * checks a write makes inside its transaction.
 *
 * @internal
 */
import type { SqlError } from "@effect/sql/SqlError"
import type { Fragment } from "@effect/sql/Statement"
import { Effect, Option } from "effect"
import type { StorageError } from "../../errors.js"
import { NotFound } from "../../errors.js"
import type { Experiment, LifecycleStage, Run } from "../Mlflow.js"
import { notActiveRun } from "../semantics.js"
import * as Rows from "./rows.js"
import type { Session } from "./session.js"

/** The experiments (with their tags) that `where` selects (`e` is experiments). @internal */
export const experimentsWhere = (db: Session, where: Fragment): Effect.Effect<Array<Experiment>, StorageError> => {
  const { inWorkspace, key, sql, text } = db
  return sql<
    Rows.ExperimentRow
  >`SELECT CAST(e.experiment_id AS ${text}) AS experiment_id, e.name, e.artifact_location, e.lifecycle_stage, e.creation_time, e.last_update_time, t.${key} AS tag_key, t.value AS tag_value FROM experiments e LEFT JOIN experiment_tags t ON t.experiment_id = e.experiment_id WHERE ${where}${
    inWorkspace("e")
  }`.pipe(Effect.mapError(db.error), Effect.map(Rows.experiments))
}

/** The runs (with their tags) that `where` selects (`r` is runs). @internal */
export const runsWhere = (db: Session, where: Fragment): Effect.Effect<Array<Run>, StorageError> => {
  const { key, sql, text } = db
  return sql<
    Rows.RunRow
  >`SELECT r.run_uuid, r.name, r.user_id, r.status, r.start_time, r.end_time, r.lifecycle_stage, r.artifact_uri, CAST(r.experiment_id AS ${text}) AS experiment_id, t.${key} AS tag_key, t.value AS tag_value FROM runs r LEFT JOIN tags t ON t.run_uuid = r.run_uuid WHERE ${where}`
    .pipe(Effect.mapError(db.error), Effect.map(Rows.runs))
}

const first = <A>(found: ReadonlyArray<A>, notFound: () => NotFound): Effect.Effect<A, NotFound> => {
  const one = found[0]
  return one === undefined ? Effect.fail(notFound()) : Effect.succeed(one)
}

/** @internal */
export const findExperiment = (
  db: Session,
  experimentId: string
): Effect.Effect<Experiment, NotFound | StorageError> => {
  const notFound = () => new NotFound({ entity: "experiment", key: experimentId })
  return Option.match(db.experimentKey(experimentId), {
    onNone: () => Effect.fail(notFound()),
    onSome: (id) =>
      Effect.flatMap(experimentsWhere(db, db.sql`e.experiment_id = ${id}`), (found) => first(found, notFound))
  })
}

/** @internal */
export const findExperimentByName = (db: Session, name: string): Effect.Effect<Experiment, NotFound | StorageError> =>
  Effect.flatMap(
    experimentsWhere(db, db.sql`e.name = ${name}`),
    (found) => first(found, () => new NotFound({ entity: "experiment", key: name }))
  )

/** @internal */
export const findRun = (db: Session, runId: string): Effect.Effect<Run, NotFound | StorageError> =>
  Effect.flatMap(
    runsWhere(db, db.sql`r.run_uuid = ${runId}`),
    (found) => first(found, () => new NotFound({ entity: "run", key: runId }))
  )

/** Inside a write: the run's lifecycle stage, NotFound when there is no such run. @internal */
export const runStage = (db: Session, runId: string): Effect.Effect<LifecycleStage, NotFound | SqlError> =>
  Effect.flatMap(
    db.sql<{ readonly lifecycle_stage: string | null }>`SELECT lifecycle_stage FROM runs WHERE run_uuid = ${runId}`,
    (rows) =>
      Effect.map(
        first(rows, () => new NotFound({ entity: "run", key: runId })),
        (row) => Rows.stage(row.lifecycle_stage)
      )
  )

/** Inside a write: NotFound or MLflow's answer unless the run is active. @internal */
export const activeRun = (db: Session, runId: string) =>
  Effect.flatMap(runStage(db, runId), (s) => (s === "active" ? Effect.void : Effect.fail(notActiveRun(runId))))
