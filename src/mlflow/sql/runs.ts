/**
 * The run methods of `MlflowSql`, as MLflow's SqlAlchemyStore writes runs: `source_type 'UNKNOWN'`, the user from
 * the option or the `mlflow.user` tag, the name in `runs.name` and the `mlflow.runName` tag; a log-batch in MLflow's
 * order (params, metrics, tags) in one transaction.
 *
 * @internal
 */
import { Clock, Effect, Option, Stream } from "effect"
import { InvalidInput, NotFound } from "../../errors.js"
import type {
  CreateRunOptions,
  KeyValue,
  LifecycleStage,
  LogBatchExtras,
  Mlflow,
  Run,
  SearchRunsOptions,
  UpdateRunOptions
} from "../Mlflow.js"
import { validateExtras, validateTagKey } from "../Mlflow.js"
import type { RunAccess } from "../semantics.js"
import {
  checkRunsSearch,
  DEFAULT_PAGE_SIZE,
  newRunId,
  newRunName,
  notActiveExperiment,
  selectRuns,
  validateTags
} from "../semantics.js"
import { activeRun, findExperiment, findRun, runStage, runsWhere } from "./reads.js"
import * as Rows from "./rows.js"
import type { Session } from "./session.js"
import { cut, MAX_PARAM_VALUE, MAX_RUN_NAME, writeMetrics, writeParams, writeRunTags } from "./writes.js"

const runAccess: RunAccess<Run> = {
  fields: (run) => run.info,
  tag: (run, key) => Option.getOrUndefined(run.tag(key))
}

const getRun = (db: Session) => (runId: string) => findRun(db, runId).pipe(Effect.withSpan("MlflowSql.getRun"))

const createRun = (db: Session) => (options: CreateRunOptions) =>
  Effect.gen(function*() {
    const { sql } = db
    const tags = options.tags ?? []
    yield* validateTags(tags)
    const { runName, tagged } = yield* newRunName(options.runName, tags)
    const startTime = options.startTime ?? (yield* Clock.currentTimeMillis)
    let userTag: string | undefined
    for (const t of tags) if (t.key === "mlflow.user") userTag = t.value
    const userId = options.userId ?? userTag ?? ""
    const runId = newRunId()
    const experiment = yield* findExperiment(db, options.experimentId)
    if (experiment.lifecycleStage !== "active") return yield* notActiveExperiment(options.experimentId)
    const id = Option.getOrThrow(db.experimentKey(experiment.experimentId))
    const artifactUri = `${experiment.artifactLocation}/${runId}/artifacts`
    const allTags = tagged ? tags : [...tags, { key: "mlflow.runName", value: runName }]
    yield* db.write(
      Effect.gen(function*() {
        const rows = yield* sql<
          { readonly lifecycle_stage: string | null }
        >`SELECT lifecycle_stage FROM experiments WHERE experiment_id = ${id}`
        const row = rows[0]
        if (row === undefined) {
          return yield* Effect.fail(new NotFound({ entity: "experiment", key: options.experimentId }))
        }
        if (Rows.stage(row.lifecycle_stage) !== "active") {
          return yield* Effect.fail(notActiveExperiment(options.experimentId))
        }
        yield* sql`INSERT INTO runs ${
          sql.insert({
            run_uuid: runId,
            name: cut(runName, MAX_RUN_NAME),
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
        yield* writeRunTags(db, runId, allTags)
      })
    )
    return yield* getRun(db)(runId)
  }).pipe(Effect.withSpan("MlflowSql.createRun"))

const VIEWS = { ACTIVE_ONLY: ["active"], DELETED_ONLY: ["deleted"], ALL: ["active", "deleted"] } as const

const searchRuns = (db: Session) => (options: SearchRunsOptions) =>
  Stream.unwrap(
    Effect.gen(function*() {
      const { key, sql } = db
      const { filter, order } = yield* checkRunsSearch(options.pageSize ?? DEFAULT_PAGE_SIZE, options)
      const keys = options.experimentIds.flatMap((id) => Option.toArray(db.experimentKey(id)))
      if (keys.length === 0) return Stream.empty
      const views = VIEWS[options.viewType ?? "ACTIVE_ONLY"]
      // a tag equality narrows the rows read (the shared rules below still decide, as the other stores do)
      const narrowing = filter.clauses.filter((c) => c.kind === "tag" && c.comparator === "=").map((c) =>
        sql` AND EXISTS (SELECT 1 FROM tags x WHERE x.run_uuid = r.run_uuid AND x.${key} = ${c.key} AND x.value = ${c.value})`
      )
      const runs = yield* runsWhere(
        db,
        sql`r.experiment_id IN ${sql.in(keys)} AND r.lifecycle_stage IN ${sql.in(views)}${
          sql.join("", false)(narrowing)
        }`
      )
      const experimentIds = keys.map(String)
      const search = { experimentIds, viewType: options.viewType, filter, order }
      return Stream.fromIterable(selectRuns(runs, runAccess, search))
    })
  ).pipe(Stream.withSpan("MlflowSql.searchRuns"))

const setTags = (db: Session) => (runId: string, tags: ReadonlyArray<KeyValue>, extras?: LogBatchExtras) =>
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
      yield* getRun(db)(runId)
      return
    }
    // MLflow's log-batch order: params, metrics, tags; a refused param writes nothing of the batch
    yield* db.write(
      Effect.gen(function*() {
        yield* activeRun(db, runId)
        yield* writeParams(db, runId, params)
        yield* writeMetrics(db, runId, metrics)
        if (tags.length > 0) yield* writeRunTags(db, runId, tags)
      })
    )
  })

const setRunStage = (db: Session, runId: string, to: LifecycleStage) =>
  Effect.gen(function*() {
    const now = yield* Clock.currentTimeMillis
    yield* db.write(
      Effect.gen(function*() {
        yield* runStage(db, runId)
        yield* db.sql`UPDATE runs SET lifecycle_stage = ${to}, deleted_time = ${
          to === "deleted" ? now : null
        } WHERE run_uuid = ${runId}`
      })
    )
  })

const updateRun = (db: Session) => (runId: string, options: UpdateRunOptions) =>
  Effect.gen(function*() {
    const { sql } = db
    yield* db.write(
      Effect.gen(function*() {
        yield* activeRun(db, runId)
        if (options.status !== undefined) {
          yield* sql`UPDATE runs SET status = ${options.status} WHERE run_uuid = ${runId}`
        }
        if (
          options.endTime !== undefined
        ) yield* sql`UPDATE runs SET end_time = ${options.endTime} WHERE run_uuid = ${runId}`
        if (options.runName !== undefined && options.runName !== "") {
          yield* writeRunTags(db, runId, [{ key: "mlflow.runName", value: options.runName }])
        }
      })
    )
    return (yield* getRun(db)(runId)).info
  }).pipe(Effect.withSpan("MlflowSql.updateRun"))

type RunMethods = Pick<
  Mlflow.Service,
  "createRun" | "getRun" | "searchRuns" | "setTag" | "setTags" | "deleteRun" | "restoreRun" | "updateRun"
>

/** The run methods of the service over `db`. @internal */
export const methods = (db: Session): RunMethods => ({
  createRun: createRun(db),
  getRun: getRun(db),
  searchRuns: searchRuns(db),
  setTag: (runId, key, value) =>
    Effect.zipRight(validateTagKey(key), setTags(db)(runId, [{ key, value }])).pipe(
      Effect.withSpan("MlflowSql.setTag")
    ),
  setTags: (runId, tags, extras) => setTags(db)(runId, tags, extras).pipe(Effect.withSpan("MlflowSql.setTags")),
  deleteRun: (runId) => setRunStage(db, runId, "deleted").pipe(Effect.withSpan("MlflowSql.deleteRun")),
  restoreRun: (runId) => setRunStage(db, runId, "active").pipe(Effect.withSpan("MlflowSql.restoreRun")),
  updateRun: updateRun(db)
})
