/**
 * MlflowRegistry's listings (projects, releases, generations). Each fills the memos with what it found, so that the
 * operations that follow a listing need no search of their own.
 *
 * @internal
 */
import { Array as Arr, Chunk, Effect, MutableHashMap, Option, Stream } from "effect"
import { GenerationKey } from "../../asset/GenerationKey.js"
import { ReleaseKey } from "../../asset/ReleaseKey.js"
import type { Run } from "../../mlflow/Mlflow.js"
import * as Layout from "../layout.js"
import type { Registry } from "../Registry.js"
import type { Generations } from "./generations.js"
import type { Instance } from "./instance.js"
import type { Releases } from "./releases.js"
import { generationRef, releaseKeyOf, releaseRef } from "./runs.js"

/** @internal */
export const make = (
  i: Instance,
  { experiments, releases }: Releases,
  { committedRuns, generations }: Generations
): Pick<Registry.Service, "projects" | "releases" | "generations"> => {
  const { mlflow, repoid } = i

  const projects: Registry.Service["projects"] = Stream.unwrap(
    Effect.gen(function*() {
      yield* i.ready
      const all = yield* Stream.runCollect(mlflow.searchExperiments({ viewType: "ACTIVE_ONLY" }))
      const candidates = Arr.filterMap(
        Chunk.toReadonlyArray(all),
        (e) => Option.map(Layout.projectOf(e.name, repoid), (project) => ({ project, experiment: e }))
      )
      // a project is an experiment of this repository holding a release run: Default, `my-exp` and any other
      // experiment that merely looks like a project name are skipped
      const holders = new Set<string>()
      yield* Effect.forEach(
        Arr.chunksOf(candidates, 100),
        (chunk) =>
          Effect.map(
            Effect.flatMap(
              i.searchAll(chunk.map((c) => c.experiment.experimentId), Layout.releaseRuns(repoid)),
              i.dropAbandoned
            ),
            (runs) => {
              for (const run of runs) {
                if (Layout.isPublished(run) && Option.isSome(releaseKeyOf(run))) holders.add(run.info.experimentId)
              }
            }
          ),
        { concurrency: i.concurrency, discard: true }
      )
      const found = candidates.filter((c) => holders.has(c.experiment.experimentId))
      yield* Effect.forEach(
        found,
        (c) => experiments.set(c.project, { id: c.experiment.experimentId, name: c.experiment.name }),
        { discard: true }
      )
      return Stream.fromIterable(found.map((c) => c.project))
    })
  ).pipe(Stream.withSpan("MlflowRegistry.projects"))

  const listReleases: Registry.Service["releases"] = (project) =>
    Stream.unwrap(
      Effect.gen(function*() {
        yield* i.ready
        const experiment = yield* experiments.get(project)
        const runs = (yield* i.dropAbandoned(yield* i.searchAll([experiment.id], Layout.releaseRuns(repoid)))).filter(
          Layout.isPublished
        )
        // one key per PEP 440 version, as its canonical run spells it (`1.0` and `1.0.0` are one release); each
        // version is parsed once and grouped by ReleaseKey's Hash, so a listing stays linear in its runs
        const keys: Array<ReleaseKey> = []
        const groups = MutableHashMap.empty<ReleaseKey, Array<Run>>()
        for (const run of Arr.sort(runs, Layout.byStart)) {
          const key = releaseKeyOf(run)
          if (Option.isNone(key)) continue
          const group = MutableHashMap.get(groups, key.value)
          if (Option.isSome(group)) group.value.push(run)
          else {
            keys.push(key.value)
            MutableHashMap.set(groups, key.value, [run])
          }
        }
        for (const key of keys) {
          const all = Option.getOrElse(MutableHashMap.get(groups, key), (): Array<Run> => [])
          yield* releases.set(releaseRef(project, key), { experiment, canonical: all[0]!, all })
        }
        return Stream.fromIterable(Arr.sort(keys, ReleaseKey.Order))
      })
    ).pipe(Stream.withSpan("MlflowRegistry.releases"))

  const listGenerations: Registry.Service["generations"] = (project, release) =>
    Stream.unwrap(
      Effect.gen(function*() {
        yield* i.ready
        const rel = yield* releases.get(releaseRef(project, release))
        const byNumber = yield* committedRuns(rel)
        for (const [generation, runs] of byNumber) {
          const winner = Arr.sort(runs, Layout.byCommit)[0]!
          if (Layout.isSettled(winner)) {
            yield* generations.set(generationRef(project, release, generation), winner)
          }
        }
        return Stream.fromIterable(Arr.sort([...byNumber.keys()], GenerationKey.Order))
      })
    ).pipe(Stream.withSpan("MlflowRegistry.generations"))

  return { projects, releases: listReleases, generations: listGenerations }
}
