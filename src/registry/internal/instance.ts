/**
 * One MlflowRegistry instance's settings and the store calls every piece of it makes: the filter check that opens
 * each operation, searches read whole, and the deletion of runs that races or lost replies left behind.
 *
 * @internal
 */
import * as FileSystem from "@effect/platform/FileSystem"
import * as Path from "@effect/platform/Path"
import { Chunk, Duration, Effect, Either, Stream } from "effect"
import { v4 } from "uuid"
import type { InvalidInput, MlflowFailure } from "../../errors.js"
import * as Filter from "../../mlflow/Filter.js"
import { Mlflow } from "../../mlflow/Mlflow.js"
import type { Run, ViewType } from "../../mlflow/Mlflow.js"
import * as Layout from "../layout.js"
import type { MlflowRegistryOptions } from "../MlflowRegistry.js"

/** @internal */
export interface Instance {
  readonly mlflow: Mlflow.Service
  readonly fs: FileSystem.FileSystem
  readonly path: Path.Path
  readonly repoid: string
  /** The `forml.session` tag of this instance's training runs, and whether it was given (so may be shared). */
  readonly session: string
  readonly sessionGiven: boolean
  /** How many searches or deletions run at once. */
  readonly concurrency: number
  /** How long (ms) a close waits for another writer's commit of the same number. */
  readonly commitWait: number
  /** Whether this instance is the only writer of its releases and generations (`writers: "one"`). */
  readonly singleWriter: boolean
  /** Fails with InvalidInput when the repoid or the session cannot be quoted in a filter; nothing is sent before. */
  readonly ready: Effect.Effect<void, InvalidInput>
  /** Every run the filter finds in the experiments, all pages read. */
  readonly searchAll: (
    experimentIds: ReadonlyArray<string>,
    filter: Filter.Filter,
    viewType?: ViewType
  ) => Effect.Effect<ReadonlyArray<Run>, InvalidInput | MlflowFailure>
  /** Deletes runs (failures ignored: a run left behind is found and dropped again). */
  readonly deleteRuns: (runIds: Iterable<string>) => Effect.Effect<void>
  /**
   * Release runs searched anew, without those a lost create reply abandoned (see Layout.abandoned), which are
   * deleted on the way: a late reply may have made them after their writer's own check.
   */
  readonly dropAbandoned: (runs: ReadonlyArray<Run>) => Effect.Effect<ReadonlyArray<Run>>
}

/** @internal */
export const make = (
  options: MlflowRegistryOptions
): Effect.Effect<Instance, never, Mlflow | FileSystem.FileSystem | Path.Path> =>
  Effect.gen(function*() {
    const mlflow = yield* Mlflow
    const fs = yield* FileSystem.FileSystem
    const path = yield* Path.Path
    const repoid = options.repoid ?? ""
    const session = options.session ?? v4()
    const concurrency = Math.max(1, Math.floor(options.concurrency ?? 4))

    // The repoid and the session are the only free text in this instance's filters: a value MLflow cannot quote is
    // reported by every operation before anything is sent.
    const ready: Effect.Effect<void, InvalidInput> = Either.match(
      Either.all([
        Filter.validate(Layout.releaseRuns(repoid)),
        Filter.validate(Layout.sessionRuns(repoid, "run", session))
      ]),
      { onLeft: (e) => Effect.fail(e), onRight: () => Effect.void }
    )

    const searchAll: Instance["searchAll"] = (experimentIds, filter, viewType = "ACTIVE_ONLY") =>
      Effect.map(Stream.runCollect(mlflow.searchRuns({ experimentIds, filter, viewType })), Chunk.toReadonlyArray)

    const deleteRuns: Instance["deleteRuns"] = (runIds) =>
      Effect.forEach(runIds, (runId) => Effect.ignore(mlflow.deleteRun(runId)), { concurrency, discard: true })

    const dropAbandoned: Instance["dropAbandoned"] = (runs) =>
      Effect.gen(function*() {
        const gone = Layout.abandoned(runs)
        if (gone.length === 0) return runs
        yield* deleteRuns(gone.map((r) => r.runId))
        const ids = new Set(gone.map((r) => r.runId))
        return runs.filter((r) => !ids.has(r.runId))
      })

    return {
      mlflow,
      fs,
      path,
      repoid,
      session,
      sessionGiven: options.session !== undefined,
      concurrency,
      commitWait: Duration.toMillis(Duration.decode(options.commitWait ?? "10 seconds")),
      singleWriter: options.writers === "one",
      ready,
      searchAll,
      deleteRuns,
      dropAbandoned
    }
  })
