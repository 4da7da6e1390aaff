/**
 * The memo under MlflowRegistry's get-or-create: concurrent callers share one lookup, and a failure is never served
 * again, not even at the same instant (why it drops failures instead of giving them a zero time-to-live).
 */
import { describe, expect, it } from "@effect/vitest"
import { Deferred, Effect, Fiber, Option } from "effect"
import { memo } from "../src/registry/internal/memo.js"

describe("registry memo", () => {
  it.effect("concurrent callers share one lookup; the value is kept", () =>
    Effect.gen(function*() {
      let lookups = 0
      const gate = yield* Deferred.make<void>()
      const m = yield* memo((key: string) =>
        Effect.zipRight(Deferred.await(gate), Effect.sync(() => `${key}${++lookups}`))
      )
      const callers = yield* Effect.fork(Effect.all([m.getFresh("a"), m.getFresh("a"), m.getFresh("a")], {
        concurrency: "unbounded"
      }))
      yield* Deferred.succeed(gate, undefined)
      const results = yield* Fiber.join(callers)
      expect(lookups).toBe(1)
      expect(results.map(([value]) => value)).toEqual(["a1", "a1", "a1"])
      expect(results.filter(([, fresh]) => fresh)).toHaveLength(1)
      expect(yield* m.get("a")).toBe("a1")
      expect(yield* m.peek("a")).toEqual(Option.some("a1"))
    }))

  it.effect("a failure is not kept, even when the clock has not moved (TestClock)", () =>
    Effect.gen(function*() {
      let lookups = 0
      const m = yield* memo((_: string) =>
        Effect.suspend(() => (++lookups === 1 ? Effect.fail("down") : Effect.succeed(lookups)))
      )
      expect(yield* Effect.flip(m.get("a"))).toBe("down")
      expect(yield* m.peek("a")).toEqual(Option.none())
      expect(yield* m.get("a")).toBe(2)
      expect(yield* m.get("a")).toBe(2)
      expect(lookups).toBe(2)
    }))

  it.effect("set replaces the value; invalidate makes the next caller look again", () =>
    Effect.gen(function*() {
      let lookups = 0
      const m = yield* memo((_: string) => Effect.sync(() => ++lookups))
      yield* m.set("a", 10)
      expect(yield* m.get("a")).toBe(10)
      yield* m.invalidate("a")
      expect(yield* m.get("a")).toBe(1)
    }))
})
