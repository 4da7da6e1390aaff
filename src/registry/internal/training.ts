/**
 * The training in progress of one MlflowRegistry instance under a release: its unbound generation run, created on
 * the first write (or joined, when a given session already has one) and converged after a lost create reply.
 *
 * @internal
 */
import { Array as Arr, Clock, Effect, Either, Option } from "effect"
import { v4 } from "uuid"
import type { Run } from "../../mlflow/Mlflow.js"
import * as Layout from "../layout.js"
import type { Instance } from "./instance.js"
import { memo } from "./memo.js"
import type { Releases } from "./releases.js"
import type { ReleaseRef, ReleaseRuns } from "./runs.js"
import { training } from "./runs.js"

/** @internal */
export type Training = Effect.Effect.Success<ReturnType<typeof make>>

/** @internal */
export const make = (i: Instance, { releases }: Releases) =>
  Effect.gen(function*() {
    const { mlflow, repoid, session } = i

    /** The uncommitted runs of this session under the release, canonical first. */
    const sessionRuns = (rel: ReleaseRuns) =>
      Effect.map(
        i.searchAll([rel.experiment.id], Layout.sessionRuns(repoid, rel.canonical.runId, session)),
        (runs) => Arr.sort(runs.filter((r) => !Layout.isCommitted(r)), Layout.byStart)
      )

    const deleteAll = (runs: ReadonlyArray<Run>) => i.deleteRuns(runs.map((r) => r.runId))

    const unbound = yield* memo((ref: ReleaseRef) =>
      Effect.gen(function*() {
        const [project, release] = ref
        const rel = yield* releases.get(ref)
        if (i.sessionGiven) {
          // a given session may be shared (resumed training, or several instances): join its run
          const existing = yield* sessionRuns(rel)
          if (Arr.isNonEmptyReadonlyArray(existing)) return training(existing[0])
        }
        // one token for this create: the Mlflow layer looks for it before retrying a create whose reply was lost
        const token = v4()
        const created = yield* Effect.either(mlflow.createRun({
          experimentId: rel.experiment.id,
          runName: Layout.trainingRunName(project, release.toString()),
          userId: Layout.USER_ID,
          startTime: yield* Clock.currentTimeMillis,
          tags: [...Layout.generationTags(repoid, rel.canonical.runId, session), Layout.createTag(token)],
          idempotencyTag: Layout.TAG.create
        }))
        const mine = (r: Run) => Option.contains(Layout.createTokenOf(r), token)
        if (Either.isLeft(created)) {
          // the run may exist though the create failed (its reply lost, then the retry failed): it is ours
          const made = Arr.sort(
            yield* Effect.orElseSucceed(
              i.searchAll([rel.experiment.id], Layout.createdRuns(repoid, rel.canonical.runId, session, token)),
              (): ReadonlyArray<Run> => []
            ),
            Layout.byStart
          )
          if (!Arr.isNonEmptyReadonlyArray(made)) return yield* Effect.fail(created.left)
          yield* deleteAll(made.slice(1))
          return training(made[0])
        }
        const run = created.right
        if (i.sessionGiven) {
          const after = yield* sessionRuns(rel)
          if (Arr.isNonEmptyReadonlyArray(after)) {
            // every run of this create other than the one kept is an empty duplicate
            const kept = after[0]
            yield* deleteAll(
              [run, ...after.filter((r) => mine(r) && r.runId !== run.runId)].filter((r) => r.runId !== kept.runId)
            )
            return training(kept)
          }
        }
        return training(run)
      })
    )

    return { sessionRuns, unbound }
  })
