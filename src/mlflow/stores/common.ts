/**
 * What the object stores share: an upload source as a Node body (its own failure kept apart from the store's), and
 * the order of a listing.
 */
import * as NodeStream from "@effect/platform-node/NodeStream"
import { Effect, Stream } from "effect"
import * as NodeFs from "node:fs"
import type { Readable } from "node:stream"
import { StorageError } from "../../errors.js"
import type { ArtifactSource, FileInfo } from "../Mlflow.js"

/** An upload body, and the source's own failure if it failed while the body was read. */
export interface Body<E> {
  readonly readable: Uint8Array | Readable
  /** The length when known before sending (bytes, a file). */
  readonly length: number | undefined
  readonly failure: Effect.Effect<E | StorageError | undefined>
}

/** The source as a body for an SDK: bytes as they are, a file as a read stream, an Effect stream as a Readable. */
export const bodyOf = <E>(source: ArtifactSource<E>): Effect.Effect<Body<E>, StorageError> =>
  Effect.suspend((): Effect.Effect<Body<E>, StorageError> => {
    let failed: E | StorageError | undefined
    const failure = Effect.sync(() => failed)
    if (source instanceof Uint8Array) return Effect.succeed({ readable: source, length: source.length, failure })
    if ("file" in source) {
      const file = source.file
      return Effect.try({
        try: () => {
          const length = NodeFs.statSync(file).size
          const readable = NodeFs.createReadStream(file)
          readable.on("error", (e) => {
            failed = new StorageError({ path: file, reason: e.message })
          })
          return { readable, length, failure }
        },
        catch: (e) => new StorageError({ path: file, reason: e instanceof Error ? e.message : String(e) })
      })
    }
    const readable = NodeStream.toReadableNever(
      source.pipe(
        Stream.filter((chunk) => chunk.length > 0),
        Stream.tapError((e) =>
          Effect.sync(() => {
            failed = e
          })
        )
      )
    )
    return Effect.succeed({ readable, length: undefined, failure })
  })

/** A listing in path order (directories and files together), as a local listing is. */
export const sortEntries = (entries: Array<FileInfo>): ReadonlyArray<FileInfo> =>
  entries.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0))
