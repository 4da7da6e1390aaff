/**
 * MlflowMemory's call counting and injected faults: every service method enters through `enter`, which counts the
 * call, applies a queued failure and sleeps a configured delay.
 *
 * @internal
 */
import { Duration, Effect } from "effect"
import type { MlflowFailure } from "../../errors.js"
import type { MethodName, MlflowMemoryHandle } from "../MlflowMemory.js"

type Fault =
  | { readonly kind: "nth"; readonly method: MethodName | "*"; remaining: number; readonly error: MlflowFailure }
  | { readonly kind: "next"; readonly method: MethodName | "*"; remaining: number; readonly error: MlflowFailure }

/** The handle's part that counts calls and injects faults. */
export type CallsHandle = Pick<
  MlflowMemoryHandle.Service,
  "calls" | "resetCalls" | "failNth" | "failNext" | "delay" | "clearFaults"
>

export interface Calls extends CallsHandle {
  /** Counts a call to `method` and applies the faults and delay queued for it. */
  readonly enter: (method: MethodName) => Effect.Effect<void, MlflowFailure>
}

export const makeCalls = (): Calls => {
  const counts: Partial<Record<MethodName, number>> = {}
  let faults: Array<Fault> = []
  const delays = new Map<MethodName | "*", Duration.Duration>()

  const enter = (method: MethodName): Effect.Effect<void, MlflowFailure> =>
    Effect.suspend(() => {
      counts[method] = (counts[method] ?? 0) + 1
      let failure: MlflowFailure | undefined
      for (const fault of faults) {
        if (fault.method !== method && fault.method !== "*") continue
        if (fault.kind === "nth") {
          fault.remaining -= 1
          if (fault.remaining === 0 && failure === undefined) failure = fault.error
        } else if (failure === undefined && fault.remaining > 0) {
          fault.remaining -= 1
          failure = fault.error
        }
      }
      faults = faults.filter((f) => f.remaining > 0)
      const delay = delays.get(method) ?? delays.get("*")
      const sleep = delay === undefined ? Effect.void : Effect.sleep(delay)
      return failure === undefined ? sleep : Effect.zipRight(sleep, Effect.fail(failure))
    })

  return {
    enter,
    calls: Effect.sync(() => ({ ...counts })),
    resetCalls: Effect.sync(() => {
      for (const key of Object.keys(counts) as Array<MethodName>) delete counts[key]
    }),
    failNth: (method, n, error) =>
      Effect.sync(() => {
        if (n >= 1) faults.push({ kind: "nth", method, remaining: Math.floor(n), error })
      }),
    failNext: (method, error, times = 1) =>
      Effect.sync(() => {
        if (times >= 1) faults.push({ kind: "next", method, remaining: Math.floor(times), error })
      }),
    delay: (method, duration) => Effect.sync(() => void delays.set(method, Duration.decode(duration))),
    clearFaults: Effect.sync(() => {
      faults = []
      delays.clear()
    })
  }
}
