/**
 * Artifacts under a local directory (a run whose artifact URI is `file:`): upload, download and list with the
 * semantics of `Mlflow.Service`, streaming, with atomic writes and no path (or symlink) leaving the root.
 */
import type { PlatformError } from "@effect/platform/Error"
import * as FileSystem from "@effect/platform/FileSystem"
import * as Path from "@effect/platform/Path"
import { Effect, Either, Exit, Stream } from "effect"
import { randomBytes } from "node:crypto"
import { fileURLToPath } from "node:url"
import { InvalidInput, NotFound, StorageError, UnsupportedArtifactStore } from "../errors.js"
import * as Confined from "./Confined.js"
import { type ArtifactSource, FileInfo, validateArtifactPath } from "./Mlflow.js"

// ---------------------------------------------------------------------------------------------------------------
// URIs
// ---------------------------------------------------------------------------------------------------------------

/**
 * The local path of a `file:` URI (`file:///abs/dir`, `file:/abs/dir`); a bare absolute path is taken as is, as
 * MLflow does for an artifact location without a scheme. Another scheme is UnsupportedArtifactStore.
 */
export const fileUriToPath = (uri: string): Either.Either<string, InvalidInput | UnsupportedArtifactStore> => {
  if (uri.startsWith("/")) return Either.right(uri)
  if (!/^file:/i.test(uri)) return Either.left(new UnsupportedArtifactStore({ uri }))
  return Either.try({
    try: () => fileURLToPath(uri),
    catch: (e) => new InvalidInput({ kind: "FileUri", input: uri, reason: e instanceof Error ? e.message : String(e) })
  })
}

/**
 * The `file:///...` URI of an absolute local path, percent-encoded as Python's `Path.as_uri()` does (every byte but
 * `A-Z a-z 0-9 _ . - ~ /`), so that URIs written here match MLflow's byte for byte.
 */
export const pathToFileUri = (path: string): string => {
  let out = ""
  for (const byte of new TextEncoder().encode(path)) {
    const c = String.fromCharCode(byte)
    out += /^[A-Za-z0-9_.~/-]$/.test(c) ? c : `%${byte.toString(16).toUpperCase().padStart(2, "0")}`
  }
  return `file://${out}`
}

/** Whether a URI names a local directory (a `file:` URI or a bare absolute path). */
export const isLocalUri = (uri: string): boolean => uri.startsWith("/") || /^file:/i.test(uri)

// ---------------------------------------------------------------------------------------------------------------
// Temporary files
// ---------------------------------------------------------------------------------------------------------------

const TEMP_PREFIX = ".forml-tmp-"

/** A fresh name for a temporary file or directory; readers skip such names (see `isTempName`). */
export const tempName = (): string => `${TEMP_PREFIX}${randomBytes(8).toString("hex")}`

/** Whether a directory entry is a temporary file of an unfinished (or crashed) write. */
export const isTempName = (name: string): boolean => name.startsWith(TEMP_PREFIX)

/** An artifact path as `validateArtifactPath` checks it, and holding no reserved temporary-file name. */
export const validatePath = (path: string): Either.Either<ReadonlyArray<string>, InvalidInput> =>
  Either.flatMap(validateArtifactPath(path), (valid) => {
    const segments = valid.split("/")
    return segments.some(isTempName)
      ? Either.left(
        new InvalidInput({
          kind: "ArtifactPath",
          input: path,
          reason: `a segment starts with ${TEMP_PREFIX} (reserved)`
        })
      )
      : Either.right(segments)
  })

export const storageError = (path: string) => (e: PlatformError): StorageError =>
  new StorageError({ path, reason: e.message })

const isNotFound = (e: PlatformError): boolean => e._tag === "SystemError" && e.reason === "NotFound"

// ---------------------------------------------------------------------------------------------------------------
// The service shape
// ---------------------------------------------------------------------------------------------------------------

export interface LocalArtifacts {
  /** Writes `path` under `rootDir` (created as needed) atomically: a temporary file in the same directory, renamed. */
  readonly upload: <E = never>(
    rootDir: string,
    path: string,
    source: ArtifactSource<E>
  ) => Effect.Effect<void, E | InvalidInput | StorageError>
  /** Streams the file at `path`; a missing file (or a directory) fails with NotFound. */
  readonly download: (
    rootDir: string,
    path: string
  ) => Stream.Stream<Uint8Array, NotFound | InvalidInput | StorageError>
  /** The file at `path` whole; a missing file (or a directory) fails with NotFound. */
  readonly read: (rootDir: string, path: string) => Effect.Effect<Uint8Array, NotFound | InvalidInput | StorageError>
  /** One level under `path` (the root when absent), sorted by name; a missing directory or a file lists empty. */
  readonly list: (rootDir: string, path?: string) => Effect.Effect<ReadonlyArray<FileInfo>, InvalidInput | StorageError>
  /** Deletes the file or directory at `path` (and all under it); a missing one is no error. */
  readonly remove: (rootDir: string, path: string) => Effect.Effect<void, InvalidInput | StorageError>
  /**
   * Writes bytes (or a byte stream) to `target` atomically: a temporary file next to it, synced, then renamed.
   * The parent directory must exist. Used for every file the file store writes.
   */
  readonly writeAtomic: <E = never>(
    target: string,
    source: ArtifactSource<E>
  ) => Effect.Effect<void, E | StorageError>
}

/** Builds the artifact functions over the platform's FileSystem and Path. */
export const make: Effect.Effect<LocalArtifacts, never, FileSystem.FileSystem | Path.Path> = Effect.gen(function*() {
  const fs = yield* FileSystem.FileSystem
  const pathApi = yield* Path.Path

  const inside = Confined.inside

  const escapes = (path: string) =>
    new InvalidInput({ kind: "ArtifactPath", input: path, reason: "resolves outside the artifact root" })

  const sourceStream = <E>(source: ArtifactSource<E>): Stream.Stream<Uint8Array, E | StorageError> => {
    if (source instanceof Uint8Array) return Stream.make(source)
    if ("file" in source) return fs.stream(source.file).pipe(Stream.mapError(storageError(source.file)))
    return source
  }

  const writeAtomic = <E = never>(target: string, source: ArtifactSource<E>): Effect.Effect<void, E | StorageError> => {
    const tmp = pathApi.join(pathApi.dirname(target), tempName())
    const write = Effect.scoped(
      Effect.gen(function*() {
        const file = yield* fs.open(tmp, { flag: "wx" }).pipe(Effect.mapError(storageError(tmp)))
        // An empty chunk is skipped: a write of 0 bytes reads as a failed write (WriteZero).
        yield* Stream.runForEach(
          sourceStream(source),
          (chunk) => chunk.length === 0 ? Effect.void : file.writeAll(chunk).pipe(Effect.mapError(storageError(tmp)))
        )
        yield* file.sync.pipe(Effect.mapError(storageError(tmp)))
      })
    )
    return write.pipe(
      Effect.zipRight(fs.rename(tmp, target).pipe(Effect.mapError(storageError(target)))),
      Effect.onExit((exit) => (Exit.isFailure(exit) ? Effect.ignore(fs.remove(tmp)) : Effect.void))
    )
  }

  /** The real path of `p`, or none when it does not exist. */
  const realPathOption = Confined.realPath

  /** The real path of `p`, which must exist. */
  const realPathOf = (p: string): Effect.Effect<string, StorageError> =>
    Effect.flatMap(
      realPathOption(p),
      (real) =>
        real === undefined
          ? Effect.fail(new StorageError({ path: p, reason: "no such file or directory" }))
          : Effect.succeed(real)
    )

  const upload: LocalArtifacts["upload"] = (rootDir, path, source) =>
    Effect.gen(function*() {
      const segments = yield* validatePath(path)
      yield* fs.makeDirectory(rootDir, { recursive: true }).pipe(Effect.mapError(storageError(rootDir)))
      const root = yield* realPathOf(rootDir)
      // Walk down one directory at a time, resolving each, so that no symlink on the way leads out of the root.
      let dir = root
      for (const segment of segments.slice(0, -1)) {
        const next = pathApi.join(dir, segment)
        let real = yield* realPathOption(next)
        if (real === undefined) {
          yield* fs.makeDirectory(next).pipe(
            Effect.catchIf((e) => e._tag === "SystemError" && e.reason === "AlreadyExists", () => Effect.void),
            Effect.mapError(storageError(next))
          )
          real = yield* realPathOf(next)
        }
        if (!inside(root, real)) return yield* escapes(path)
        dir = real
      }
      yield* writeAtomic(pathApi.join(dir, segments[segments.length - 1]!), source)
    }).pipe(Effect.withSpan("LocalArtifacts.upload", { attributes: { path } }))

  /** The real path of `rootDir/path` if it exists inside the real root; escaping it is InvalidInput. */
  const resolveExisting = (rootDir: string, path: string, segments: ReadonlyArray<string>) =>
    Effect.gen(function*() {
      const root = yield* realPathOption(rootDir)
      if (root === undefined) return undefined
      const real = yield* realPathOption(pathApi.join(root, ...segments))
      if (real === undefined) return undefined
      if (!inside(root, real)) return yield* escapes(path)
      return { root, real }
    })

  /** The real path of the regular file at `path`; a missing file (or a directory) is NotFound. */
  const existingFile = (rootDir: string, path: string) =>
    Effect.gen(function*() {
      const segments = yield* validatePath(path)
      const found = yield* resolveExisting(rootDir, path, segments)
      const notFound = new NotFound({ entity: "artifact", key: path })
      if (found === undefined) return yield* notFound
      const info = yield* fs.stat(found.real).pipe(Effect.mapError(storageError(found.real)))
      if (info.type !== "File") return yield* notFound
      return found.real
    })

  const download = (rootDir: string, path: string): Stream.Stream<Uint8Array, NotFound | InvalidInput | StorageError> =>
    Stream.unwrap(
      Effect.map(existingFile(rootDir, path), (real) => fs.stream(real).pipe(Stream.mapError(storageError(real)))).pipe(
        Effect.withSpan("LocalArtifacts.download", { attributes: { path } })
      )
    )

  const read = (rootDir: string, path: string): Effect.Effect<Uint8Array, NotFound | InvalidInput | StorageError> =>
    Effect.flatMap(existingFile(rootDir, path), (real) => fs.readFile(real).pipe(Effect.mapError(storageError(real))))
      .pipe(Effect.withSpan("LocalArtifacts.read", { attributes: { path } }))

  const list = (rootDir: string, path?: string): Effect.Effect<ReadonlyArray<FileInfo>, InvalidInput | StorageError> =>
    Effect.gen(function*() {
      const segments = path === undefined || path === "" ? [] : yield* validatePath(path)
      const found = yield* resolveExisting(rootDir, path ?? "", segments)
      if (found === undefined) return []
      const info = yield* fs.stat(found.real).pipe(Effect.mapError(storageError(found.real)))
      if (info.type !== "Directory") return []
      const listed = yield* Confined.entries(found.real)
      const visible = listed.filter((entry) => !isTempName(entry.name))
        .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
      const prefix = segments.length === 0 ? "" : `${segments.join("/")}/`
      const entries = yield* Effect.forEach(
        visible,
        (dirent) =>
          Effect.gen(function*() {
            const name = dirent.name
            // a plain directory of the real directory listed is inside the root: nothing to stat or resolve
            if (dirent.isDirectory()) return new FileInfo({ path: prefix + name, isDir: true })
            const at = pathApi.join(found.real, name)
            // only a symlink (or an entry of unknown type) is resolved
            const real = dirent.isSymbolicLink() || !Confined.typeKnown(dirent) ? yield* realPathOption(at) : at
            // A dangling link, or one that leads out of the root, is not part of the listing.
            if (real === undefined || !inside(found.root, real)) return undefined
            const entry = yield* fs.stat(real).pipe(
              Effect.map((i): FileSystem.File.Info | undefined => i),
              Effect.catchAll((e) => (isNotFound(e) ? Effect.succeed(undefined) : Effect.fail(storageError(real)(e))))
            )
            if (entry === undefined) return undefined
            return entry.type === "Directory"
              ? new FileInfo({ path: prefix + name, isDir: true })
              : new FileInfo({ path: prefix + name, isDir: false, fileSize: Number(entry.size) })
          }),
        { concurrency: 16 }
      )
      return entries.filter((e): e is FileInfo => e !== undefined)
    }).pipe(Effect.withSpan("LocalArtifacts.list", { attributes: { path: path ?? "" } }))

  const remove = (rootDir: string, path: string): Effect.Effect<void, InvalidInput | StorageError> =>
    Effect.gen(function*() {
      const segments = yield* validatePath(path)
      const found = yield* resolveExisting(rootDir, path, segments)
      if (found === undefined) return
      // the link itself when the entry is one (resolveExisting resolved it to check it stays inside the root)
      const at = pathApi.join(found.root, ...segments)
      yield* fs.remove(at, { recursive: true }).pipe(
        Effect.catchIf(isNotFound, () => Effect.void),
        Effect.mapError(storageError(at))
      )
    }).pipe(Effect.withSpan("LocalArtifacts.remove", { attributes: { path } }))

  return { upload, download, read, list, remove, writeAtomic }
})

// ---------------------------------------------------------------------------------------------------------------
// The same as plain functions over the context's FileSystem and Path
// ---------------------------------------------------------------------------------------------------------------

export const upload = <E = never>(
  rootDir: string,
  path: string,
  source: ArtifactSource<E>
): Effect.Effect<void, E | InvalidInput | StorageError, FileSystem.FileSystem | Path.Path> =>
  Effect.flatMap(make, (a) => a.upload(rootDir, path, source))

export const download = (
  rootDir: string,
  path: string
): Stream.Stream<Uint8Array, NotFound | InvalidInput | StorageError, FileSystem.FileSystem | Path.Path> =>
  Stream.unwrap(Effect.map(make, (a) => a.download(rootDir, path)))

export const list = (
  rootDir: string,
  path?: string
): Effect.Effect<ReadonlyArray<FileInfo>, InvalidInput | StorageError, FileSystem.FileSystem | Path.Path> =>
  Effect.flatMap(make, (a) => a.list(rootDir, path))
