/**
 * The cross-process lock that serialises experiment creation: an exclusive lock file in the store root (MLflow
 * ignores it), broken when a crashed process left it stale.
 *
 * @internal
 */
import * as FileSystem from "@effect/platform/FileSystem"
import { Effect, Option } from "effect"
import { StorageError } from "../../errors.js"
import * as LocalArtifacts from "../LocalArtifacts.js"

const LOCK_STALE_MS = 30_000
const LOCK_TIMEOUT_MS = 60_000

/** Waits on the wall clock (a test clock must not stall a wait for another process's lock). */
const wallSleep = (ms: number): Effect.Effect<void> =>
  Effect.async<void>((resume) => {
    const timer = setTimeout(() => resume(Effect.void), ms)
    return Effect.sync(() => clearTimeout(timer))
  })

/** A function that holds the lock at `lockPath` (and one within this process) around an effect. */
export const makeCreateLock = (lockPath: string) =>
  Effect.gen(function*() {
    const fs = yield* FileSystem.FileSystem
    const createLock = yield* Effect.makeSemaphore(1)
    const encoder = new TextEncoder()
    const storage = LocalArtifacts.storageError
    const acquire: Effect.Effect<void, StorageError> = Effect.gen(function*() {
      const deadline = Date.now() + LOCK_TIMEOUT_MS
      while (true) {
        const taken = yield* fs.writeFile(lockPath, encoder.encode(`${process.pid} ${Date.now()}\n`), { flag: "wx" })
          .pipe(
            Effect.as(true),
            Effect.catchAll((e) =>
              e._tag === "SystemError" && e.reason === "AlreadyExists"
                ? Effect.succeed(false)
                : Effect.fail(storage(lockPath)(e))
            )
          )
        if (taken) return
        // A lock left by a crashed process is broken once it is old enough.
        const age = yield* fs.stat(lockPath).pipe(
          Effect.map((i) => Option.match(i.mtime, { onNone: () => 0, onSome: (d) => Date.now() - d.getTime() })),
          Effect.orElseSucceed(() => 0)
        )
        if (age > LOCK_STALE_MS) {
          yield* Effect.ignore(fs.remove(lockPath))
          continue
        }
        if (Date.now() > deadline) {
          return yield* new StorageError({ path: lockPath, reason: "timed out waiting for another process's lock" })
        }
        yield* wallSleep(5 + Math.floor(Math.random() * 20))
      }
    })
    return <A, E>(effect: Effect.Effect<A, E>): Effect.Effect<A, E | StorageError> =>
      createLock.withPermits(1)(
        Effect.acquireUseRelease(acquire, () => effect, () => Effect.ignore(fs.remove(lockPath)))
      )
  })
