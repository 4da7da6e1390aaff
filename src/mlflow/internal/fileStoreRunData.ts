/**
 * What is logged on a run of the file store: tags, params and metrics, one file per key under `tags/`, `params/` and
 * `metrics/`, each written atomically; a batch is checked whole before any file is written.
 *
 * @internal
 */
import { Effect } from "effect"
import { floatRepr } from "../../asset/internal/pythonRepr.js"
import { NotFound } from "../../errors.js"
import { type LogBatchExtras, validateExtras } from "../Mlflow.js"
import type { Disk } from "./fileStoreDisk.js"
import { apiError, checkTags, lastWins, notActiveRun, RUN_NAME_TAG, type TagInput, TAGS } from "./fileStoreLayout.js"
import type { Records } from "./fileStoreRecords.js"

/** The tag, param and metric methods over one store's disk and records. */
export const makeRunData = (disk: Disk, records: Records) => {
  const { artifacts, confined, encoder, path, readText, updateMeta, writeTags } = disk
  const { findRun, locateRun } = records

  /** Writes tags on an active run; `mlflow.runName` also renames the run in its meta.yaml, as MLflow does. */
  const writeRunTags = (
    runId: string,
    tags: ReadonlyArray<TagInput>
  ) =>
    Effect.gen(function*() {
      const { loc, run } = yield* findRun(runId)
      if (run.info.lifecycleStage !== "active") return yield* notActiveRun(runId)
      yield* confined(loc.dir)
      yield* writeTags(path.join(loc.dir, TAGS), tags)
      const name = [...tags].reverse().find((t) => t.key === RUN_NAME_TAG)
      if (name !== undefined) yield* updateMeta(loc.dir, (meta) => ({ ...meta, run_name: name.value }))
    })

  const setTag = Effect.fn("MlflowFileStore.setTag")(function*(runId: string, key: string, value: string) {
    if ((yield* locateRun(runId)) === undefined) return yield* new NotFound({ entity: "run", key: runId })
    yield* checkTags([{ key, value }])
    yield* writeRunTags(runId, [{ key, value }])
  })

  const setTags = Effect.fn("MlflowFileStore.setTags")(function*(
    runId: string,
    tags: ReadonlyArray<TagInput>,
    extras?: LogBatchExtras
  ) {
    const metrics = extras?.metrics ?? []
    const params = extras?.params ?? []
    if (tags.length === 0 && metrics.length === 0 && params.length === 0) return
    // Every key is checked before any file is written, so a rejected call changes nothing.
    yield* checkTags(tags)
    yield* validateExtras(extras)
    yield* checkTags([...metrics, ...params].map((x) => ({ key: x.key, value: "" })))
    if (metrics.length > 0 || params.length > 0) {
      const { loc, run } = yield* findRun(runId)
      if (run.info.lifecycleStage !== "active") return yield* notActiveRun(runId)
      yield* confined(loc.dir)
      // as MLflow's file store logs a batch: params, then metrics, then tags
      const paramsDir = path.join(loc.dir, "params")
      const logged = yield* Effect.forEach(params, (p) => readText(path.join(paramsDir, p.key)))
      const changed = params.findIndex((p, i) => logged[i] !== undefined && logged[i] !== p.value)
      if (changed >= 0) {
        // MLflow's file store raises this without an error code: a server over it answers 500 INTERNAL_ERROR
        return yield* apiError(
          500,
          "INTERNAL_ERROR",
          `Changing param values is not allowed. Param with key='${params[changed]!.key}' was already logged.`
        )
      }
      yield* writeTags(paramsDir, params.filter((_, i) => logged[i] === undefined))
      // one line a point, "<timestamp> <value> <step>", the value as Python prints a float
      const metricsDir = path.join(loc.dir, "metrics")
      const lines = new Map<string, string>()
      for (const m of metrics) {
        lines.set(m.key, `${lines.get(m.key) ?? ""}${m.timestamp} ${floatRepr(m.value)} ${m.step}\n`)
      }
      yield* Effect.forEach(
        lines,
        ([key, added]) =>
          Effect.flatMap(
            readText(path.join(metricsDir, key)),
            (before) => artifacts.upload(metricsDir, key, encoder.encode(`${before ?? ""}${added}`))
          ),
        { discard: true }
      )
    }
    if (tags.length > 0) yield* writeRunTags(runId, lastWins(tags))
  })

  return { setTag, setTags }
}
