/**
 * Where the command writes bytes: files renamed into place (never half-written), and stdout left open.
 * Hand-written, because @effect/platform's FileSystem has no atomic write.
 *
 * @internal
 */
import * as NodeSink from "@effect/platform-node/NodeSink"
import { isPlatformError } from "@effect/platform/Error"
import * as FileSystem from "@effect/platform/FileSystem"
import { Effect } from "effect"
import { StorageError } from "../../errors.js"

/**
 * Writes `target` through a file beside it (`<target>.part-<pid>`, made by `write`) renamed into place, so that
 * `target` is never half-written; on failure the part is removed, and a file system failure is a StorageError of
 * `target`.
 */
export const writeAtomically = <E, R>(
  target: string,
  write: (part: string) => Effect.Effect<void, E, R>
) =>
  Effect.gen(function*() {
    const fs = yield* FileSystem.FileSystem
    const part = `${target}.part-${process.pid}`
    yield* write(part).pipe(
      Effect.zipRight(fs.rename(part, target)),
      Effect.tapError(() => Effect.ignore(fs.remove(part))),
      Effect.mapError((e) => isPlatformError(e) ? new StorageError({ path: target, reason: e.message }) : e)
    )
  })

/** A sink into stdout that leaves it open; a closed pipe (`| head`) is a storage failure of "stdout". */
export const stdoutSink = NodeSink.fromWritable<StorageError, Uint8Array>(
  () => process.stdout,
  (e) => new StorageError({ path: "stdout", reason: e instanceof Error ? e.message : String(e) }),
  { endOnDone: false }
)
