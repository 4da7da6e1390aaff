/**
 * Reading the file store's metadata under its real root: meta.yaml and tag files, each read only where its real path
 * stays inside the root (a symlink leading out reads as absent), and a run's meta.yaml and tags as one snapshot.
 *
 * @internal
 */
import type * as Path from "@effect/platform/Path"
import { Effect, Either } from "effect"
import type { StorageError } from "../../errors.js"
import * as Confined from "../Confined.js"
import * as LocalArtifacts from "../LocalArtifacts.js"
import { EntityTag } from "../Mlflow.js"
import { compareStrings } from "../semantics.js"
import { META, RUN_READ_ATTEMPTS, TAGS } from "./fileStoreLayout.js"
import { type Meta, parseYaml } from "./metaYaml.js"

/** The metadata readers of a store whose root's real path is `rootReal`. */
export const makeReader = (rootReal: string, path: Path.Path) => {
  /** The real path of `p` when it exists inside the store; undefined when it is missing or leads out of it. */
  const realInside = (p: string): Effect.Effect<string | undefined, StorageError> =>
    Effect.map(
      Confined.realPath(p),
      (real) => (real !== undefined && Confined.inside(rootReal, real) ? real : undefined)
    )

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
      read._tag === "Text"
        ? Effect.succeed(read.text)
        : read._tag === "Missing"
        ? Effect.succeed(undefined)
        : readInside(file))
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
            const tag = (value: string | undefined) =>
              value === undefined ? none : [new EntityTag({ key, value }, true)]
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

  return { realInside, readTags, readMeta, readRunFiles }
}
