/**
 * MlflowRegistry's close: the commit of the training in progress as a generation (states checked, tag.toml, the
 * commit tag last in one batch), then the settling of racing writers that committed the same number (none when the
 * instance is the only writer).
 *
 * @internal
 */
import { Array as Arr, Clock, Duration, Effect, Either, Option } from "effect"
import { GenerationKey } from "../../asset/GenerationKey.js"
import { Tag } from "../../asset/Tag.js"
import { InvalidInput } from "../../errors.js"
import type { Run } from "../../mlflow/Mlflow.js"
import * as Layout from "../layout.js"
import type { Registry } from "../Registry.js"
import type { Artifacts } from "./artifacts.js"
import { sha256, utf8 } from "./digest.js"
import type { Generations } from "./generations.js"
import type { Instance } from "./instance.js"
import type { Releases } from "./releases.js"
import type { Display, ReleaseRef, ReleaseRuns } from "./runs.js"
import {
  commitInstant,
  generationRef,
  releaseName,
  releaseRef,
  stateNotFound,
  training,
  withRunUpdate
} from "./runs.js"
import type { Training } from "./training.js"

/** @internal */
export const make = (
  i: Instance,
  { releases }: Releases,
  { sessionRuns, unbound }: Training,
  { committedAt, committedRuns, generations }: Generations,
  { checkStored }: Artifacts
): Registry.Service["close"] => {
  const { mlflow } = i

  /**
   * The runs holding `generation`, best first, once no other commit of it is in progress: those are waited for
   * (they are about to take their end time), up to `commitWait`; one still in progress then is taken as abandoned.
   * `own` is this run as it stands (whatever a search found of it), `found` the first search's result.
   */
  const holdersAt = (rel: ReleaseRuns, generation: GenerationKey, own: Run, found: ReadonlyArray<Run>) =>
    Effect.gen(function*() {
      const othersPending = (runs: ReadonlyArray<Run>) => runs.some((r) => r.runId !== own.runId && Layout.isPending(r))
      const withOwn = (runs: ReadonlyArray<Run>) =>
        Arr.sort([own, ...runs.filter((r) => r.runId !== own.runId)], Layout.byCommit)
      let holders = withOwn(found)
      const deadline = (yield* Clock.currentTimeMillis) + i.commitWait
      let pause = 10
      while (othersPending(holders) && (yield* Clock.currentTimeMillis) < deadline) {
        yield* Effect.sleep(Duration.millis(pause))
        pause = Math.min(pause * 2, 500)
        holders = withOwn(yield* committedAt(rel, generation))
      }
      return holders.filter((r) => r.runId === own.runId || !Layout.isPending(r))
    })

  /**
   * After committing `generation`, checks for another run committed with the same number. The run that keeps it is
   * the first by `Layout.byCommit`; the other moves to the next free number (and checks again). Returns the number
   * this run holds in the end.
   */
  const settle = (
    rel: ReleaseRuns,
    own: Run,
    generation: GenerationKey,
    display: (generation: GenerationKey) => Display
  ) =>
    Effect.gen(function*() {
      let number = generation
      while (true) {
        // the end time is taken here and sent beside the search (one round trip, not two): this run's own entry
        // in what the search finds is replaced by what the update makes of it
        const endTime = yield* commitInstant
        const [info, found] = yield* Effect.all(
          [mlflow.updateRun(own.runId, { status: "FINISHED", endTime }), committedAt(rel, number)],
          { concurrency: 2 }
        )
        const holders = yield* holdersAt(
          rel,
          number,
          withRunUpdate(own, info, [
            { key: Layout.TAG.commit, value: String(number) }
          ]),
          found
        )
        if (holders.length === 0 || holders[0]!.runId === own.runId) return [number, info] as const
        const taken = yield* committedRuns(rel)
        const next = GenerationKey.next(Arr.reduce([...taken.keys()], number, (a, b) => (b > a ? b : a)))
        // back to "in progress" first, so that nobody mistakes the move for a settled commit of `next`
        yield* mlflow.updateRun(own.runId, { status: "RUNNING" })
        // renamed and re-described in the same request that moves the commit (which goes last)
        const shown = display(next)
        yield* mlflow.setTags(own.runId, [...shown.tags, { key: Layout.TAG.commit, value: String(next) }], {
          metrics: shown.metrics
        })
        number = next
      }
    })

  /** The training of this instance; a cold instance can only close a tag without states, or resume a session. */
  const current = (ref: ReleaseRef, rel: ReleaseRuns, tag: Tag, where: string) =>
    Effect.gen(function*() {
      const cached = yield* unbound.peek(ref)
      if (Option.isSome(cached)) return cached.value
      if (i.sessionGiven) {
        const existing = yield* sessionRuns(rel)
        if (Arr.isNonEmptyReadonlyArray(existing)) {
          const resumed = training(existing[0])
          yield* unbound.set(ref, resumed)
          return resumed
        }
      }
      if (tag.states.length > 0) return yield* stateNotFound(where, tag.states[0]!)
      return yield* unbound.get(ref)
    })

  return Effect.fn("MlflowRegistry.close")(function*(project, release, generation, tag) {
    yield* i.ready
    if (!Tag.isTrained(tag)) {
      // ForML's Tag.loads needs [training].timestamp: such a generation could never be opened in ForML
      return yield* new InvalidInput({
        kind: "Tag",
        input: Tag.encode(tag),
        reason: "a generation tag needs a training timestamp (ForML cannot open one without)"
      })
    }
    const text = Tag.encode(tag)
    const ref = releaseRef(project, release)
    const rel = yield* releases.get(ref)
    const where = `${releaseName(project, release)} (training ${i.session})`
    const unboundNow = yield* current(ref, rel, tag, where)
    const { run, states } = unboundNow
    // nothing commits that is not stored whole: every state of the tag is in this run, with the size this
    // instance wrote (a state of a resumed session, written by another instance, only needs to be there)
    yield* checkStored(
      run.info,
      tag.states.map((sid) => ({ name: Layout.ARTIFACT.state(sid), size: states.get(sid)?.size })),
      (index) => stateNotFound(where, tag.states[index]!)
    )
    const bytes = utf8.encode(text)
    yield* mlflow.uploadArtifact(run.info, Layout.ARTIFACT.tag, bytes)
    // what MLflow's UI shows of the generation (name, description, the tag's numbers as metrics), sent with the
    // commit: no request of its own
    const closedAt = yield* Clock.currentTimeMillis
    const display = (n: GenerationKey): Display => ({
      tags: [
        { key: Layout.TAG.runName, value: Layout.generationRunName(project, release.toString(), n) },
        { key: Layout.TAG.note, value: Layout.generationNote(project, release.toString(), n, tag.states.length) }
      ],
      metrics: Layout.generationMetrics(tag, n, closedAt)
    })
    const shown = display(generation)
    const committed: ReadonlyArray<Layout.TagPair> = [
      ...[...unboundNow.pending].map(([key, value]) => ({ key, value })),
      { key: Layout.sha256Tag(Layout.ARTIFACT.tag), value: sha256(bytes) },
      ...shown.tags,
      // the commit tag goes last in the batch: MLflow writes a batch in order (sqlite: in one transaction)
      { key: Layout.TAG.commit, value: String(generation) }
    ]
    if (i.singleWriter) {
      // a single writer marks the run FINISHED beside the commit (one round trip): nobody else commits this number
      const endTime = yield* commitInstant
      const [tagging, updating] = yield* Effect.all([
        Effect.either(mlflow.setTags(run.runId, committed, { metrics: shown.metrics })),
        Effect.either(mlflow.updateRun(run.runId, { status: "FINISHED", endTime }))
      ], { concurrency: 2 })
      // not committed: the training stays, and closing it again sends both again
      if (Either.isLeft(tagging)) return yield* Effect.fail(tagging.left)
      return yield* Effect.gen(function*() {
        const info = yield* updating
        yield* generations.set(generationRef(project, release, generation), withRunUpdate(run, info, committed))
        return generation
      }).pipe(Effect.ensuring(unbound.invalidate(ref)))
    }
    yield* mlflow.setTags(run.runId, committed, { metrics: shown.metrics })
    // committed: whatever happens next, the next write starts a new training
    return yield* Effect.gen(function*() {
      const [used, info] = yield* settle(rel, withRunUpdate(run, run.info, committed), generation, display)
      // this run now holds `used` for good: later reads of it need no search
      yield* generations.set(
        generationRef(project, release, used),
        withRunUpdate(run, info, [...committed, { key: Layout.TAG.commit, value: String(used) }])
      )
      return used
    }).pipe(Effect.ensuring(unbound.invalidate(ref)))
  })
}
