/**
 * The file store's disk: its root (created with the Default experiment and `.trash/` as MLflow's `FileStore.__init__`
 * does), confinement to it, and the reading and writing of meta.yaml and tag files that every record goes through.
 *
 * @internal
 */
import * as FileSystem from "@effect/platform/FileSystem"
import * as Path from "@effect/platform/Path"
import type { PlatformError } from "@effect/platform/Error"
import { Clock, Effect, Either } from "effect"
import { StorageError } from "../../errors.js"
import * as Confined from "../Confined.js"
import * as LocalArtifacts from "../LocalArtifacts.js"
import { EntityTag } from "../Mlflow.js"
import { compareStrings } from "../semantics.js"
import {
  DEFAULT_EXPERIMENT_ID,
  experimentMeta,
  META,
  RUN_READ_ATTEMPTS,
  TAGS,
  type TagInput,
  TRASH
} from "./fileStoreLayout.js"
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
      (real) => real === undefined ? Effect.fail(new StorageError({ path: root, reason: "the store root is missing" })) : Effect.succeed(real)
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

    // -- reading ----------------------------------------------------------------------------------------------------

    /** The real path of `p` when it exists inside the store; undefined when it is missing or leads out of it. */
    const realInside = (p: string): Effect.Effect<string | undefined, StorageError> =>
      Effect.map(Confined.realPath(p), (real) => (real !== undefined && Confined.inside(rootReal, real) ? real : undefined))

    /** A metadata file's text; one that is missing or is a symlink leading out of the store reads as missing. */
    const readInside = (p: string): Effect.Effect<string | undefined, StorageError> =>
      Effect.flatMap(realInside(p), (real) => (real === undefined ? Effect.succeed(undefined) : Confined.readText(real)))

    /**
     * `readInside` for a file `name` of a directory whose real path (`realDir`) is inside the store: read without
     * resolving the directory again; only a symlink in its place is resolved (and checked).
     */
    const readInDir = (realDir: string, name: string): Effect.Effect<string | undefined, StorageError> => {
      const file = path.join(realDir, name)
      return Effect.flatMap(Confined.readTextNoFollow(file), (read) =>
        read._tag === "Text" ? Effect.succeed(read.text) : read._tag === "Missing" ? Effect.succeed(undefined) : readInside(file))
    }

    // Entities read from disk are built from values already coerced to their types (`str`, `num`, `statusOf`), so
    // their constructors skip validation (`true`), as `wire.ts` does for decoded replies.
    // A tags directory or tag file that is a symlink leading out of the store is skipped: it reads as absent.
    // The listing carries each entry's type: plain files and directories under a real directory of the store are
    // inside it and read directly; only symlinks (and entries of unknown type) are resolved and checked.
    const readTags = (dir: string): Effect.Effect<ReadonlyArray<EntityTag>, StorageError> => {
      const none: ReadonlyArray<EntityTag> = []
      const walk = (real: string, rel: string, depth: number): Effect.Effect<ReadonlyArray<EntityTag>, StorageError> =>
        Effect.gen(function*() {
          const listed = yield* Confined.entries(real)
          const found = yield* Effect.forEach(
            listed.filter((entry) => !LocalArtifacts.isTempName(entry.name)),
            (entry): Effect.Effect<ReadonlyArray<EntityTag>, StorageError> => {
              const key = rel === "" ? entry.name : `${rel}/${entry.name}`
              const at = path.join(real, entry.name)
              const tag = (value: string | undefined) => (value === undefined ? none : [new EntityTag({ key, value }, true)])
              if (entry.isFile()) return Effect.map(readInDir(real, entry.name), tag)
              if (entry.isDirectory()) return depth < 32 ? walk(at, key, depth + 1) : Effect.succeed(none)
              if (!entry.isSymbolicLink() && Confined.typeKnown(entry)) return Effect.succeed(none)
              return Effect.gen(function*() {
                const target = yield* realInside(at)
                if (target === undefined) return none
                const type = yield* Confined.statType(target)
                if (type === "Directory") return depth < 32 ? yield* walk(target, key, depth + 1) : none
                if (type !== "File") return none
                return tag(yield* Confined.readText(target))
              })
            },
            { concurrency: 8 }
          )
          return found.flat()
        })
      return Effect.gen(function*() {
        const real = yield* realInside(dir)
        if (real === undefined) return []
        const tags = yield* walk(real, "", 0)
        return [...tags].sort((a, b) => compareStrings(a.key, b.key))
      })
    }

    const readMeta = (dir: string): Effect.Effect<Meta | undefined, StorageError> =>
      Effect.gen(function*() {
        const file = path.join(dir, META)
        const real = yield* realInside(dir)
        const text = real === undefined ? undefined : yield* readInDir(real, META)
        if (text === undefined) return undefined
        // A malformed meta.yaml is skipped, as MLflow skips it with a warning.
        return Either.getOrUndefined(parseYaml(file, text))
      })

    /**
     * A run's meta.yaml and tags as they stood at one moment: meta.yaml is read again after the tags and the pair
     * taken only when it did not change meanwhile (a writer moving a commit rewrites both, one after the other).
     */
    const readRunFiles = (dir: string) =>
      Effect.gen(function*() {
        const file = path.join(dir, META)
        const real = yield* realInside(dir)
        if (real === undefined) return undefined
        let text = yield* readInDir(real, META)
        for (let attempt = 0;; attempt++) {
          if (text === undefined) return undefined
          const tags = yield* readTags(path.join(real, TAGS))
          const again = yield* readInDir(real, META)
          if (again === text || attempt >= RUN_READ_ATTEMPTS) {
            // A malformed meta.yaml is skipped, as MLflow skips it with a warning.
            const meta = Either.getOrUndefined(parseYaml(file, text))
            return meta === undefined ? undefined : { meta, tags }
          }
          text = again
        }
      })

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
      realInside,
      readTags,
      readMeta,
      readRunFiles,
      writeTags,
      updateMeta
    }
  })

/** The disk functions of one store. */
export type Disk = Effect.Effect.Success<ReturnType<typeof makeDisk>>
