/**
 * MlflowRegistry's view of committed generations: the runs committed under a release (every release run a race
 * left), and the memo of the run that holds a generation, kept for good only once its number is settled.
 *
 * @internal
 */
import { Array as Arr, Effect, Option } from "effect"
import type { GenerationKey } from "../../asset/GenerationKey.js"
import type { ProjectKey } from "../../asset/ProjectKey.js"
import type { ReleaseKey } from "../../asset/ReleaseKey.js"
import type * as Filter from "../../mlflow/Filter.js"
import type { Run } from "../../mlflow/Mlflow.js"
import * as Layout from "../layout.js"
import type { Instance } from "./instance.js"
import { memo } from "./memo.js"
import type { Releases } from "./releases.js"
import type { GenerationRef, ReleaseRuns } from "./runs.js"
import { generationKeyOf, generationNotFound, generationRef, releaseRef } from "./runs.js"

/** @internal */
export type Generations = Effect.Effect.Success<ReturnType<typeof make>>

/** @internal */
export const make = (i: Instance, { releases }: Releases) =>
  Effect.gen(function*() {
    /** Searches each run of the release (a race may have left two) with `filter`, at most `concurrency` at once. */
    const underEach = (rel: ReleaseRuns, filter: (parentRunId: string) => Filter.Filter) =>
      Effect.map(
        Effect.forEach(rel.all, (parent) => i.searchAll([rel.experiment.id], filter(parent.runId)), {
          concurrency: i.concurrency
        }),
        (found) => found.flat()
      )

    /** The runs committed as `generation` under every run of the release, best first. */
    const committedAt = (rel: ReleaseRuns, generation: GenerationKey) =>
      Effect.map(
        underEach(rel, (parent) => Layout.committedRuns(i.repoid, parent, generation)),
        (found) => Arr.sort(found, Layout.byCommit)
      )

    /** Every committed generation run of the release, by number. */
    const committedRuns = (rel: ReleaseRuns) =>
      Effect.map(underEach(rel, (parent) => Layout.generationRuns(i.repoid, parent)), (found) => {
        const byNumber = new Map<GenerationKey, Array<Run>>()
        for (const run of found) {
          const key = generationKeyOf(run)
          if (Option.isNone(key)) continue // unbound (training in progress) or not ForML's
          const list = byNumber.get(key.value)
          if (list === undefined) byNumber.set(key.value, [run])
          else list.push(run)
        }
        return byNumber
      })

    const generations = yield* memo((ref: GenerationRef) =>
      Effect.gen(function*() {
        const [project, release, generation] = ref
        const rel = yield* releases.get(releaseRef(project, release))
        const holders = yield* committedAt(rel, generation)
        if (!Arr.isNonEmptyReadonlyArray(holders)) return yield* generationNotFound(project, release, generation)
        return holders[0]
      })
    )

    /** The run that holds a committed generation; kept for good only once its number is settled. */
    const generationRun = (project: ProjectKey, release: ReleaseKey, generation: GenerationKey) => {
      const ref = generationRef(project, release, generation)
      return Effect.tap(
        generations.get(ref),
        (run) => (Layout.isSettled(run) ? Effect.void : generations.invalidate(ref))
      )
    }

    return { committedAt, committedRuns, generations, generationRun }
  })
