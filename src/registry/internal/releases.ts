/**
 * MlflowRegistry's memo of projects (experiments) and releases (release runs), with their get-or-create: a created
 * release run is checked against racing writers' runs, and every writer converges onto the canonical one.
 *
 * @internal
 */
import { Array as Arr, Clock, Effect, Either, Option } from "effect"
import { v4 } from "uuid"
import type { ProjectKey } from "../../asset/ProjectKey.js"
import type { ReleaseKey } from "../../asset/ReleaseKey.js"
import { NotFound } from "../../errors.js"
import type { Run } from "../../mlflow/Mlflow.js"
import * as Layout from "../layout.js"
import type { Instance } from "./instance.js"
import { memo } from "./memo.js"
import type { ExperimentRef, ReleaseRef, ReleaseRuns } from "./runs.js"
import { isActive, orVanished, releaseNotFound, runsOf, vanished } from "./runs.js"

/**
 * The active runs of a release after a create or restore. Every run carrying this create's token is ours (a lost
 * reply and its retry may have made several); those that are not canonical are deleted (they are still empty).
 * `ours`: whether a run of this create was found.
 */
const converge = (
  i: Instance,
  experiment: ExperimentRef,
  release: ReleaseKey,
  own: Option.Option<Run>,
  token: Option.Option<string>
) =>
  Effect.gen(function*() {
    let after = yield* i.dropAbandoned(
      runsOf(yield* i.searchAll([experiment.id], Layout.releaseRuns(i.repoid)), release)
    )
    const mine = (r: Run) =>
      Option.exists(own, (o) => o.runId === r.runId) ||
      Option.exists(token, (t) => Option.contains(Layout.createTokenOf(r), t))
    const ours = after.some(mine)
    if (Arr.isNonEmptyReadonlyArray(after)) {
      const canonical = after[0]
      const duplicates = new Set(after.filter((r) => r.runId !== canonical.runId && mine(r)).map((r) => r.runId))
      // our run may not show in the search yet
      if (Option.isSome(own) && own.value.runId !== canonical.runId) duplicates.add(own.value.runId)
      yield* i.deleteRuns(duplicates)
      after = after.filter((r) => !duplicates.has(r.runId))
    }
    const runs = Arr.isNonEmptyReadonlyArray(after)
      ? Option.some<ReleaseRuns>({ experiment, canonical: after[0], all: after })
      : Option.map(own, (run): ReleaseRuns => ({ experiment, canonical: run, all: [run] }))
    return { runs, ours: ours || Option.isSome(own) }
  })

/** The canonical release runs `converge` found, or the error of a release that vanished meanwhile. */
const found = (project: ProjectKey, release: ReleaseKey) => ({ runs }: { readonly runs: Option.Option<ReleaseRuns> }) =>
  Option.match(runs, {
    onNone: () => Effect.fail(vanished(releaseNotFound(project, release))),
    onSome: Effect.succeed
  })

/** Creates a release run, then (unless this instance is the only writer) converges onto the canonical one. */
const createRelease = (i: Instance, experiment: ExperimentRef, project: ProjectKey, release: ReleaseKey) =>
  Effect.gen(function*() {
    // one token for this create: every HTTP attempt of it sends the same body
    const token = v4()
    const creation = yield* Effect.either(orVanished(i.mlflow.createRun({
      experimentId: experiment.id,
      runName: Layout.releaseRunName(project, release.toString()),
      userId: Layout.USER_ID,
      startTime: yield* Clock.currentTimeMillis,
      tags: [...Layout.newReleaseTags(i.repoid, release.toString()), Layout.createTag(token)],
      idempotencyTag: Layout.TAG.create
    })))
    if (Either.isLeft(creation)) {
      // the run may exist though the create failed (its reply lost, then the retry failed): it is ours
      const value = yield* Effect.option(converge(i, experiment, release, Option.none(), Option.some(token)))
      if (Option.isSome(value) && value.value.ours && Option.isSome(value.value.runs)) return value.value.runs.value
      return yield* Effect.fail(creation.left)
    }
    // a single writer's run is the release's only one: nothing to converge with
    if (i.singleWriter) return { experiment, canonical: creation.right, all: [creation.right] } satisfies ReleaseRuns
    const converged = yield* converge(i, experiment, release, Option.some(creation.right), Option.some(token))
    return yield* found(project, release)(converged)
  })

/** The memos of one instance: `experiments` and `releases` find, `createdReleases` gets or creates. @internal */
export type Releases = Effect.Effect.Success<ReturnType<typeof make>>

/** @internal */
export const make = (i: Instance) =>
  Effect.gen(function*() {
    const { mlflow, repoid } = i

    const projectNotFound = (project: ProjectKey) =>
      new NotFound({ entity: "project", key: Layout.experimentName(project, repoid) })

    const experiments = yield* memo((project: ProjectKey) =>
      mlflow.getExperimentByName(Layout.experimentName(project, repoid)).pipe(
        Effect.catchTag("NotFound", () => Effect.fail(projectNotFound(project))),
        Effect.flatMap((e) =>
          e.lifecycleStage === "active"
            ? Effect.succeed<ExperimentRef>({ id: e.experimentId, name: e.name })
            : Effect.fail(projectNotFound(project))
        )
      )
    )

    /** Get-or-create of a project's experiment (restoring a deleted one); true when this call created it. */
    const createdExperiments = yield* memo((project: ProjectKey) =>
      Effect.gen(function*() {
        const name = Layout.experimentName(project, repoid)
        const adopt = (e: { readonly experimentId: string; readonly lifecycleStage: string }) =>
          Effect.gen(function*() {
            if (e.lifecycleStage !== "active") {
              yield* orVanished(mlflow.restoreExperiment(e.experimentId))
            }
            const ref: ExperimentRef = { id: e.experimentId, name }
            yield* experiments.set(project, ref)
            return [ref, false] as const
          })
        const existing = yield* mlflow.getExperimentByName(name).pipe(
          Effect.map(Option.some),
          Effect.catchTag("NotFound", () => Effect.succeedNone)
        )
        if (Option.isSome(existing)) return yield* adopt(existing.value)
        const created = yield* mlflow.createExperiment(name).pipe(
          Effect.map(Option.some),
          Effect.catchTag("AlreadyExists", () => Effect.succeedNone)
        )
        if (Option.isNone(created)) {
          // another writer created it between our look-up and our create
          return yield* adopt(yield* orVanished(mlflow.getExperimentByName(name)))
        }
        const ref: ExperimentRef = { id: created.value, name }
        yield* experiments.set(project, ref)
        return [ref, true] as const
      })
    )

    const releases = yield* memo((ref: ReleaseRef) =>
      Effect.gen(function*() {
        const [project, release] = ref
        const experiment = yield* experiments.get(project)
        const found = runsOf(
          (yield* i.dropAbandoned(yield* i.searchAll([experiment.id], Layout.releaseRuns(repoid)))).filter(
            Layout.isPublished
          ),
          release
        )
        if (!Arr.isNonEmptyReadonlyArray(found)) return yield* releaseNotFound(project, release)
        const value: ReleaseRuns = { experiment, canonical: found[0], all: found }
        return value
      })
    )

    /**
     * Get-or-create of a release run. After creating, the runs are searched again: when a racing writer's run is
     * canonical, ours (still empty) is deleted and theirs used, so every writer ends on the same run.
     */
    const createdReleases = yield* memo((ref: ReleaseRef) =>
      Effect.gen(function*() {
        const [project, release] = ref
        const [[experiment, created], computed] = yield* createdExperiments.getFresh(project)
        // an experiment this very call created holds no run yet: skip the search (the check after creating runs)
        if (created && computed) return yield* createRelease(i, experiment, project, release)
        const runs = runsOf(yield* i.searchAll([experiment.id], Layout.releaseRuns(repoid), "ALL"), release)
        const active = yield* i.dropAbandoned(runs.filter(isActive))
        if (Arr.isNonEmptyReadonlyArray(active)) {
          const value: ReleaseRuns = { experiment, canonical: active[0], all: active }
          return value
        }
        if (!Arr.isNonEmptyReadonlyArray(runs)) return yield* createRelease(i, experiment, project, release)
        yield* orVanished(mlflow.restoreRun(runs[0].runId))
        const restored = yield* converge(i, experiment, release, Option.none(), Option.none())
        return yield* found(project, release)(restored)
      })
    )

    return { experiments, releases, createdReleases }
  })
