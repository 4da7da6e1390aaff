/**
 * gc: orphaned trainings (uncommitted generation runs) older than a given age are found and deleted; a committed
 * generation never is, whatever its age, nor a training of another repository or one committed meanwhile.
 */
import { describe, expect, it } from "@effect/vitest"
import { Duration, Effect, Either, Option, TestClock } from "effect"
import { Package } from "../../src/asset/Package.js"
import { StateId } from "../../src/asset/StateId.js"
import * as Gc from "../../src/cli/gc.js"
import { Mlflow } from "../../src/mlflow/Mlflow.js"
import * as Layout from "../../src/registry/layout.js"
import { MlflowRegistry } from "../../src/registry/MlflowRegistry.js"
import { bytes, helloworldZip, key, readBack, store, trainedTag, unboundRuns } from "./support.js"

const project = key.project("helloworld")
const release = key.release("1")

/** A registry instance that writes a state (starting a training) and stops there, as a killed process would. */
const abandoned = (repoid: string) =>
  Effect.scoped(
    Effect.flatMap(MlflowRegistry.make({ repoid }), (r) => r.write(project, release, StateId.random(), bytes("x")))
  )

describe("gc", () => {
  it("reads durations", () => {
    const ms = (s: string) => Either.map(Gc.parseDuration(s), Duration.toMillis)
    expect(ms("0")).toEqual(Either.right(0))
    expect(ms("90s")).toEqual(Either.right(90_000))
    expect(ms("1d12h")).toEqual(Either.right(36 * 3_600_000))
    expect(ms(" 2 w ")).toEqual(Either.right(14 * 86_400_000))
    expect(ms("1.5h")).toEqual(Either.right(5_400_000))
    for (const bad of ["", "soon", "12", "h", "-1d", "1d x", "1y"]) {
      expect(Either.getLeft(Gc.parseDuration(bad)).pipe(Option.map((e) => e._tag))).toEqual(Option.some("InvalidInput"))
    }
  })

  it.scoped("finds orphans older than the age, deletes them, and never touches a generation", () =>
    Effect.gen(function*() {
      const mlflow = yield* Mlflow
      yield* TestClock.setTime(Duration.toMillis(Duration.days(100)))
      // a committed generation and an orphan, both old; an orphan of another repository
      yield* Effect.scoped(Effect.gen(function*() {
        const registry = yield* MlflowRegistry.make({ repoid: "gc" })
        yield* registry.push(yield* Package.open(helloworldZip))
        const sid = StateId.random()
        yield* registry.write(project, release, sid, bytes("kept"))
        yield* registry.close(project, release, key.generation(1), trainedTag([sid]))
      }))
      yield* abandoned("gc")
      yield* Effect.scoped(
        Effect.flatMap(
          MlflowRegistry.make({ repoid: "other" }),
          (r) => Effect.flatMap(Package.open(helloworldZip), (pkg) => r.push(pkg))
        )
      )
      yield* abandoned("other")
      yield* TestClock.adjust(Duration.days(2))
      // a fresh orphan: a training that may still be running
      yield* abandoned("gc")
      const before = yield* readBack("gc")

      const old = yield* Gc.orphans("gc", Duration.days(1))
      expect(old).toHaveLength(1)
      expect(old[0]).toMatchObject({ project: "helloworld", release: Option.some("1") })
      expect(yield* Gc.orphans("gc", Duration.zero)).toHaveLength(2)
      expect(yield* Gc.orphans("gc", Duration.days(3))).toEqual([])

      // an orphan committed between the listing and the deletion is left alone
      const all = yield* Gc.orphans("gc", Duration.zero)
      yield* mlflow.setTag(all[1]!.run.runId, Layout.TAG.commit, "2")
      expect(yield* Gc.remove(all[1]!)).toBe(false)
      expect(yield* Gc.remove(all[0]!)).toBe(true)
      expect(yield* Gc.remove(all[0]!)).toBe(false)

      expect(yield* unboundRuns("helloworld@gc", "gc")).toEqual([])
      // the generation, and the other repository's orphan, are still there
      const generation1 = before[0]!.releases[0]!.generations[0]!
      expect(generation1.generation).toBe(1)
      const reader = yield* MlflowRegistry.make({ repoid: "gc" })
      const tag = yield* reader.open(project, release, key.generation(1))
      expect(tag.states).toEqual(generation1.states.map(([sid]) => sid))
      expect(yield* unboundRuns("helloworld@other", "other")).toHaveLength(1)
    }).pipe(Effect.provide(store("memory"))))
})
