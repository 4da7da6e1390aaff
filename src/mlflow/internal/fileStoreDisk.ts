/**
 * The file store's disk: its root (created with the Default experiment and `.trash/` as MLflow's `FileStore.__init__`
 * does), confinement to it, and the reading and writing of meta.yaml and tag files that every record goes through.
 *
 * @internal
 */
import type { PlatformError } from "@effect/platform/Error"
import * as FileSystem from "@effect/platform/FileSystem"
import * as Path from "@effect/platform/Path"
import { Clock, Effect } from "effect"
import { StorageError } from "../../errors.js"
import * as Confined from "../Confined.js"
import * as LocalArtifacts from "../LocalArtifacts.js"
import { DEFAULT_EXPERIMENT_ID, experimentMeta, META, type TagInput, TRASH } from "./fileStoreLayout.js"
import { makeReader } from "./fileStoreRead.js"
import { type Meta, parseYaml, renderYaml } from "./metaYaml.js"

const isNotFound = (e: PlatformError) => e._tag === "SystemError" && e.reason === "NotFound"

/** The disk of a store rooted at `rootOption` (resolved), initialised as MLflow initialises one. */
export const makeDisk = (rootOption: string) =>
  Effect.gen(function*() {
    const fs = yield* FileSystem.FileSystem
    const path = yield* Path.Path
    const artifacts = yield* LocalArtifacts.make
    const root = path.resolve(rootOption)
    const rootUri = LocalArtifacts.pathToFileUri(root)
    const trash = path.join(root, TRASH)
    const storage = LocalArtifacts.storageError
    const metaLock = yield* Effect.makeSemaphore(1)
    const encoder = new TextEncoder()

    // -- file system helpers ----------------------------------------------------------------------------------------

    const exists = (p: string) => fs.exists(p).pipe(Effect.mapError(storage(p)))

    const readDir = (p: string): Effect.Effect<ReadonlyArray<string>, StorageError> =>
      fs.readDirectory(p).pipe(
        Effect.catchAll((e) =>
          isNotFound(e) || (e._tag === "SystemError" && e.reason === "BadResource")
            ? Effect.succeed([])
            : Effect.fail(storage(p)(e))
        )
      )

    const readText = (p: string): Effect.Effect<string | undefined, StorageError> =>
      fs.readFileString(p).pipe(
        Effect.map((s): string | undefined => s),
        Effect.catchAll((e) => (isNotFound(e) ? Effect.succeed(undefined) : Effect.fail(storage(p)(e))))
      )

    const mkdir = (p: string) => fs.makeDirectory(p, { recursive: true }).pipe(Effect.mapError(storage(p)))

    const writeYaml = (file: string, data: Meta) => artifacts.writeAtomic(file, encoder.encode(renderYaml(data)))

    const removeQuietly = (p: string) => Effect.ignore(fs.remove(p, { recursive: true }))

    // -- initialisation (MLflow's FileStore.__init__) ---------------------------------------------------------------

    if (!(yield* exists(root))) {
      yield* mkdir(root)
      const staged = path.join(root, LocalArtifacts.tempName())
      yield* mkdir(staged)
      const now = yield* Clock.currentTimeMillis
      yield* writeYaml(path.join(staged, META), experimentMeta(rootUri, DEFAULT_EXPERIMENT_ID, "Default", now))
      // Another process initialising the same root at once wins the rename; its Default is as good as ours.
      yield* fs.rename(staged, path.join(root, DEFAULT_EXPERIMENT_ID)).pipe(
        Effect.catchAll(() => removeQuietly(staged))
      )
    }
    yield* mkdir(trash)
    // Resolved once: every confinement check compares real paths with it.
    const rootReal = yield* Effect.flatMap(
      Confined.realPath(root),
      (real) =>
        real === undefined
          ? Effect.fail(new StorageError({ path: root, reason: "the store root is missing" }))
          : Effect.succeed(real)
    )

    /** The real path of an existing directory in the store; one whose real path is outside it is refused. */
    const confined = (p: string): Effect.Effect<string | undefined, StorageError> =>
      Confined.realPath(p).pipe(
        Effect.flatMap((real) =>
          real === undefined || Confined.inside(rootReal, real)
            ? Effect.succeed(real)
            : Effect.fail(new StorageError({ path: p, reason: "resolves outside the store root" }))
        )
      )

    // -- writing ----------------------------------------------------------------------------------------------------

    /**
     * One file per tag (a `/` in a key makes subdirectories), each written atomically, never outside the store. On a
     * visible run the files are written in the batch's order, as MLflow writes a batch, so a reader that sees a tag
     * sees the ones before it (a commit tag sent last lands last); a directory still staged takes them all at once.
     */
    const writeTags = (
      tagsDir: string,
      tags: ReadonlyArray<TagInput>,
      staged = false
    ) =>
      Effect.zipRight(
        confined(tagsDir),
        Effect.forEach(tags, (t) => artifacts.upload(tagsDir, t.key, encoder.encode(t.value)), {
          discard: true,
          concurrency: staged ? 8 : 1
        })
      )

    /** Reads a `meta.yaml`, changes it and writes it back (atomically), one update at a time in this process. */
    const updateMeta = (dir: string, change: (meta: Meta) => Meta) =>
      metaLock.withPermits(1)(
        Effect.gen(function*() {
          yield* confined(dir)
          const file = path.join(dir, META)
          const text = yield* readText(file)
          if (text === undefined) return yield* new StorageError({ path: file, reason: "meta.yaml is missing" })
          const meta = yield* parseYaml(file, text)
          const changed = change({ ...meta })
          yield* writeYaml(file, changed)
          return changed
        })
      )

    return {
      fs,
      path,
      artifacts,
      root,
      rootUri,
      trash,
      storage,
      encoder,
      exists,
      readDir,
      readText,
      mkdir,
      writeYaml,
      removeQuietly,
      confined,
      ...makeReader(rootReal, path),
      writeTags,
      updateMeta
    }
  })

/** The disk functions of one store. */
export type Disk = Effect.Effect.Success<ReturnType<typeof makeDisk>>
