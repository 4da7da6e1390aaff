/**
 * ForML packages: a `.4ml` zip (manifest first, DEFLATE, files only) or a directory with `__4ml__.py` at its root.
 * Entries stream between files and zips; only the manifest is held in memory, and untrusted zips are checked first.
 */
import * as FileSystem from "@effect/platform/FileSystem"
import type { PlatformError } from "@effect/platform/Error"
import * as NodeStream from "@effect/platform-node/NodeStream"
import { Data, Effect, Either, Option, Stream } from "effect"
import { randomUUID } from "node:crypto"
import * as nodeFs from "node:fs"
import * as nodePath from "node:path"
import type { Readable } from "node:stream"
import * as zlib from "node:zlib"
import yauzl from "yauzl"
import yazl from "yazl"
import { InvalidPackage, StorageError } from "../errors.js"
import { Manifest } from "./Manifest.js"

/**
 * yazl's lazy stream entry, which keeps one source file open at a time and which its typings lack. Declared here
 * rather than by augmenting module "yazl": an augmentation would be published in Package.d.ts, where yazl's typings
 * (a development dependency) are absent.
 */
interface LazyZipFile extends yazl.ZipFile {
  addReadStreamLazy(
    metadataPath: string,
    options: Partial<yazl.ReadStreamOptions>,
    getReadStream: (callback: (err: Error | null, stream: NodeJS.ReadableStream) => void) => void
  ): void
}

/** Caps that keep a hostile zip (a zip bomb) from filling memory or disk. */
export interface Limits {
  /** Most entries a package may have. */
  readonly maxEntries: number
  /** Most bytes all entries may hold uncompressed together. */
  readonly maxTotalBytes: number
  /** Highest uncompressed/compressed ratio of an entry, and of the whole zip, once past `ratioFloorBytes`. */
  readonly maxRatio: number
  /** Sizes below which the ratio is not checked (small files compress well without being bombs). */
  readonly ratioFloorBytes: number
  /** Largest manifest read into memory. */
  readonly maxManifestBytes: number
}

/** 100k entries, 8 GiB uncompressed, ratio 200 from 1 MiB on, manifest up to 1 MiB. */
export const defaultLimits: Limits = {
  maxEntries: 100_000,
  maxTotalBytes: 8 * 1024 ** 3,
  maxRatio: 200,
  ratioFloorBytes: 1024 ** 2,
  maxManifestBytes: 1024 ** 2
}

type PackageError = InvalidPackage | StorageError

const MANIFEST_MODE = 0o100644
const S_IFMT = 0o170000
const S_IFREG = 0o100000
const S_IFDIR = 0o040000
const S_IFLNK = 0o120000
/** Zip "version made by" hosts whose external attributes carry a Unix mode: Unix and OS X. */
const UNIX_HOSTS: ReadonlySet<number> = new Set([3, 19])

/** A ForML package: where it is, whether it is a zip or a directory, and its manifest. */
export class Package extends Data.Class<{
  readonly path: string
  readonly kind: "zip" | "directory"
  readonly manifest: Manifest
}> {
  static readonly defaultLimits: Limits = defaultLimits

  /**
   * Opens a `.4ml` zip or a package directory and reads its manifest. A zip is checked whole (entry names, types,
   * sizes) before it is accepted, so a package that opens can also be unpacked.
   */
  static readonly open: (
    path: string,
    limits?: Partial<Limits>
  ) => Effect.Effect<Package, PackageError, FileSystem.FileSystem> = Effect.fn("Package.open")(
    function*(path: string, limits?: Partial<Limits>) {
      const fs = yield* FileSystem.FileSystem
      const resolved = nodePath.resolve(path)
      const info = yield* statPackage(fs, resolved)
      if (info.type === "Directory") {
        const manifest = yield* readManifestFromDirectory(fs, resolved, { ...defaultLimits, ...limits })
        return new Package({ path: resolved, kind: "directory", manifest })
      }
      if (info.type !== "File") {
        return yield* new InvalidPackage({ path: resolved, reason: "not a file or directory" })
      }
      const manifest = yield* readZipManifest(resolved, { ...defaultLimits, ...limits })
      return new Package({ path: resolved, kind: "zip", manifest })
    }
  )

  /**
   * Zips `sourceDir` into `target` as ForML's `Package.create` does: `manifest` (as `Manifest.write` writes it) is
   * the first entry, then every file of the tree (in name order; ForML takes the directory listing order), without
   * the tree's own `__4ml__.py` and without directory entries, all DEFLATE. Symbolic links are followed, as ForML
   * does. The zip is written beside `target` and renamed into place, so `target` is never left half-written.
   */
  static readonly create: (
    sourceDir: string,
    manifest: Manifest,
    target: string
  ) => Effect.Effect<Package, PackageError, FileSystem.FileSystem> = Effect.fn("Package.create")(
    function*(sourceDir: string, manifest: Manifest, target: string) {
      const fs = yield* FileSystem.FileSystem
      const source = nodePath.resolve(sourceDir)
      const info = yield* statPackage(fs, source)
      if (info.type !== "Directory") return yield* new InvalidPackage({ path: source, reason: "not a directory" })
      const files = yield* listFiles(fs, source)
      const zipPath = nodePath.resolve(target)
      yield* writeZip(fs, zipPath, manifest, files)
      return new Package({ path: zipPath, kind: "zip", manifest })
    }
  )

  /**
   * The package as a zip file: a zip package's own path, or a directory package zipped (with its own manifest)
   * into `stagingDir`.
   */
  static readonly toZip: (
    pkg: Package,
    stagingDir: string
  ) => Effect.Effect<string, PackageError, FileSystem.FileSystem> = Effect.fn("Package.toZip")(
    function*(pkg: Package, stagingDir: string) {
      if (pkg.kind === "zip") return pkg.path
      const name = `${safeFileName(pkg.manifest.name)}-${safeFileName(pkg.manifest.version.toString())}.4ml`
      const created = yield* Package.create(pkg.path, pkg.manifest, nodePath.join(stagingDir, name))
      return created.path
    }
  )

  /**
   * Extracts a `.4ml` zip into `targetDir` (which must be absent or an empty directory). The zip is checked whole
   * first; entries stream to disk inside a fresh staging directory next to the target, which is renamed into place
   * at the end and removed on any failure, so nothing is written outside the target and no partial tree remains.
   */
  static readonly unpack: (
    zipPath: string,
    targetDir: string,
    limits?: Partial<Limits>
  ) => Effect.Effect<void, PackageError, FileSystem.FileSystem> = Effect.fn("Package.unpack")(
    function*(zipPath: string, targetDir: string, limits?: Partial<Limits>) {
      const fs = yield* FileSystem.FileSystem
      yield* unpackZip(fs, nodePath.resolve(zipPath), nodePath.resolve(targetDir), { ...defaultLimits, ...limits })
    }
  )

  /** The manifest of a `.4ml` zip, after checking the whole zip; only the manifest entry is read. */
  static readonly readManifestFromZip: (
    zipPath: string,
    limits?: Partial<Limits>
  ) => Effect.Effect<Manifest, PackageError, FileSystem.FileSystem> = Effect.fn("Package.readManifestFromZip")(
    function*(zipPath: string, limits?: Partial<Limits>) {
      const fs = yield* FileSystem.FileSystem
      const resolved = nodePath.resolve(zipPath)
      const info = yield* statPackage(fs, resolved)
      if (info.type !== "File") return yield* new InvalidPackage({ path: resolved, reason: "not a zip file" })
      return yield* readZipManifest(resolved, { ...defaultLimits, ...limits })
    }
  )
}

// ---------------------------------------------------------------------------------------------------------------
// Shared helpers

const storageError = (path: string) => (e: PlatformError): StorageError =>
  new StorageError({ path, reason: e.message })

/** Keeps package errors, and turns a file system error into a `StorageError` at `path`. */
const orStorageError = (path: string) => (e: PackageError | PlatformError): PackageError =>
  e._tag === "InvalidPackage" || e._tag === "StorageError" ? e : storageError(path)(e)

const isNotFound = (e: PlatformError): boolean => e._tag === "SystemError" && e.reason === "NotFound"

const statPackage = (fs: FileSystem.FileSystem, path: string) =>
  fs.stat(path).pipe(
    Effect.mapError((e): PackageError =>
      isNotFound(e) ? new InvalidPackage({ path, reason: "no such file or directory" }) : storageError(path)(e)
    )
  )

const safeFileName = (s: string): string => s.replace(/[^A-Za-z0-9._+!-]/g, "_")

const invalidManifest = (path: string) => (reason: string) =>
  new InvalidPackage({ path, reason: `invalid manifest ${Manifest.FILENAME}: ${reason}` })

/** Decodes manifest bytes (UTF-8, as Python reads source) and reads them. */
const parseManifest = (path: string, bytes: Uint8Array): Either.Either<Manifest, InvalidPackage> =>
  Either.try({
    try: () => new TextDecoder("utf-8", { fatal: true }).decode(bytes),
    catch: () => invalidManifest(path)("not UTF-8 text")
  }).pipe(Either.flatMap((text) => Either.mapLeft(Manifest.read(text), (e) => invalidManifest(path)(e.reason))))

const readManifestFromDirectory = (fs: FileSystem.FileSystem, dir: string, limits: Limits) =>
  Effect.gen(function*() {
    const file = nodePath.join(dir, Manifest.FILENAME)
    const info = yield* fs.stat(file).pipe(
      Effect.mapError((e): PackageError =>
        isNotFound(e)
          ? new InvalidPackage({ path: dir, reason: `no manifest (${Manifest.FILENAME} is missing)` })
          : storageError(file)(e)
      )
    )
    if (info.type !== "File") {
      return yield* new InvalidPackage({ path: dir, reason: `${Manifest.FILENAME} is not a file` })
    }
    if (Number(info.size) > limits.maxManifestBytes) {
      return yield* new InvalidPackage({
        path: dir,
        reason: `manifest larger than ${limits.maxManifestBytes} bytes`
      })
    }
    const bytes = yield* fs.readFile(file).pipe(Effect.mapError(storageError(file)))
    return yield* parseManifest(dir, bytes)
  })

// ---------------------------------------------------------------------------------------------------------------
// Reading zips (yauzl)

/** An error from the zip reader: an I/O failure of the file (it has a code), or a malformed zip. */
const zipError = (path: string, context: string) => (e: unknown): PackageError => {
  const message = e instanceof Error ? e.message : String(e)
  const code = e instanceof Error && "code" in e ? e.code : undefined
  return typeof code === "string" && /^E[A-Z]+$/.test(code)
    ? new StorageError({ path, reason: message })
    : new InvalidPackage({ path, reason: `${context}${message}` })
}

/** An open zip, closed with the scope. Errors the reader emits later are kept from crashing the process. */
const openZip = (path: string) =>
  Effect.acquireRelease(
    Effect.async<yauzl.ZipFile, PackageError>((resume) => {
      yauzl.open(
        path,
        { lazyEntries: true, autoClose: false, validateEntrySizes: true, decodeStrings: true, strictFileNames: false },
        (err, zip) => {
          if (err !== null) return resume(Effect.fail(zipError(path, "not a zip file: ")(err)))
          zip.on("error", () => {}) // each read below listens for its own errors
          resume(Effect.succeed(zip))
        }
      )
    }),
    (zip) => Effect.sync(() => zip.close())
  )

const nextEntry = (zip: yauzl.ZipFile, path: string) =>
  Effect.async<Option.Option<yauzl.Entry>, PackageError>((resume) => {
    const cleanup = () => {
      zip.off("entry", onEntry)
      zip.off("end", onEnd)
      zip.off("error", onError)
    }
    const onEntry = (entry: yauzl.Entry) => {
      cleanup()
      resume(Effect.succeed(Option.some(entry)))
    }
    const onEnd = () => {
      cleanup()
      resume(Effect.succeed(Option.none()))
    }
    const onError = (err: unknown) => {
      cleanup()
      resume(Effect.fail(zipError(path, "bad entry: ")(err)))
    }
    zip.on("entry", onEntry)
    zip.on("end", onEnd)
    zip.on("error", onError)
    zip.readEntry()
    return Effect.sync(cleanup)
  })

/** A checked entry: its name split into path segments. */
interface CheckedEntry {
  readonly entry: yauzl.Entry
  readonly name: string
  readonly segments: ReadonlyArray<string>
  readonly directory: boolean
}

/** Why an entry must not be extracted, or undefined when it is a plain file or directory at a safe path. */
const entryProblem = (entry: yauzl.Entry, limits: Limits): string | undefined => {
  const name = entry.fileName
  // yauzl already rejects absolute paths, `..` and backslashes; these checks keep that true whatever it does.
  if (name === "" || name.includes("\u0000")) return `bad entry name ${JSON.stringify(name)}`
  if (name.startsWith("/") || /^[A-Za-z]:/.test(name) || name.includes("\\")) {
    return `entry ${JSON.stringify(name)} has an absolute path`
  }
  const segments = name.replace(/\/$/, "").split("/")
  if (segments.includes("..")) return `entry ${JSON.stringify(name)} escapes the package root`
  if (segments.some((s) => s === "" || s === ".")) return `entry ${JSON.stringify(name)} is not a normal path`
  const mode = (entry.externalFileAttributes >>> 16) & 0xffff
  const type = mode & S_IFMT
  if (UNIX_HOSTS.has(entry.versionMadeBy >>> 8) && type !== 0) {
    if (type === S_IFLNK) return `entry ${JSON.stringify(name)} is a symbolic link`
    if (type !== S_IFREG && type !== S_IFDIR) return `entry ${JSON.stringify(name)} is a special file`
    if ((type === S_IFDIR) !== name.endsWith("/")) return `entry ${JSON.stringify(name)} has a mismatched type`
  }
  if (entry.isEncrypted()) return `entry ${JSON.stringify(name)} is encrypted`
  if (entry.compressionMethod !== 0 && entry.compressionMethod !== 8) {
    return `entry ${JSON.stringify(name)} uses unsupported compression method ${entry.compressionMethod}`
  }
  if (name.endsWith("/") && entry.uncompressedSize !== 0) return `directory entry ${JSON.stringify(name)} has data`
  if (entry.uncompressedSize > limits.ratioFloorBytes) {
    const ratio = entry.uncompressedSize / Math.max(entry.compressedSize, 1)
    if (ratio > limits.maxRatio) {
      return `entry ${JSON.stringify(name)} expands ${Math.round(ratio)} times (more than ${limits.maxRatio}): ` +
        "a zip bomb?"
    }
  }
  return undefined
}

/** Reads and checks the whole central directory: safe names, plain files, no clashes, within the limits. */
const scanZip = (zip: yauzl.ZipFile, path: string, limits: Limits) =>
  Effect.gen(function*() {
    const fail = (reason: string) => Effect.fail(new InvalidPackage({ path, reason }))
    if (zip.entryCount > limits.maxEntries) {
      return yield* fail(`${zip.entryCount} entries (more than ${limits.maxEntries})`)
    }
    const entries: Array<CheckedEntry> = []
    const files = new Set<string>()
    const directories = new Set<string>()
    let total = 0
    for (;;) {
      const next = yield* nextEntry(zip, path)
      if (Option.isNone(next)) break
      const entry = next.value
      const problem = entryProblem(entry, limits)
      if (problem !== undefined) return yield* fail(problem)
      const directory = entry.fileName.endsWith("/")
      const segments = entry.fileName.replace(/\/$/, "").split("/")
      const key = segments.join("/")
      if (files.has(key) || (!directory && directories.has(key))) {
        return yield* fail(`entry ${JSON.stringify(entry.fileName)} appears twice`)
      }
      ;(directory ? directories : files).add(key)
      for (let k = 1; k < segments.length; k++) directories.add(segments.slice(0, k).join("/"))
      total += entry.uncompressedSize
      if (total > limits.maxTotalBytes) {
        return yield* fail(`entries hold more than ${limits.maxTotalBytes} bytes uncompressed`)
      }
      entries.push({ entry, name: entry.fileName, segments, directory })
    }
    for (const file of files) {
      if (directories.has(file)) return yield* fail(`entry ${JSON.stringify(file)} is both a file and a directory`)
    }
    if (total > limits.ratioFloorBytes && total / Math.max(zip.fileSize, 1) > limits.maxRatio) {
      return yield* fail(
        `entries expand ${Math.round(total / Math.max(zip.fileSize, 1))} times the zip size ` +
          `(more than ${limits.maxRatio}): a zip bomb?`
      )
    }
    return entries
  })

const openEntryStream = (zip: yauzl.ZipFile, entry: yauzl.Entry, path: string) =>
  Effect.async<Readable, PackageError>((resume) => {
    zip.openReadStream(entry, (err, stream) => {
      if (err !== null) return resume(Effect.fail(zipError(path, `bad entry ${JSON.stringify(entry.fileName)}: `)(err)))
      resume(Effect.succeed(stream))
    })
  })

/**
 * An entry's bytes as a stream, checked against the entry's CRC-32 at the end (yauzl checks sizes, not CRCs).
 * `budget` is charged for every byte, so the extracted total can never pass the limit, whatever the headers say.
 */
const entryBytes = (
  zip: yauzl.ZipFile,
  entry: yauzl.Entry,
  path: string,
  budget: { remaining: number }
): Stream.Stream<Uint8Array, PackageError> => {
  const label = JSON.stringify(entry.fileName)
  const crc = { value: 0 }
  const checkCrc = typeof zlib.crc32 === "function"
  return Stream.unwrap(
    Effect.map(openEntryStream(zip, entry, path), (readable) =>
      NodeStream.fromReadable<PackageError, Uint8Array>(
        () => readable,
        zipError(path, `bad entry ${label}: `)
      ))
  ).pipe(
    Stream.mapEffect((chunk) => {
      budget.remaining -= chunk.length
      if (budget.remaining < 0) {
        return Effect.fail(new InvalidPackage({ path, reason: `entry ${label} expands past the size limit` }))
      }
      if (checkCrc) crc.value = zlib.crc32(chunk, crc.value)
      return Effect.succeed(chunk)
    }),
    Stream.concat(
      Stream.fromEffect(
        Effect.suspend(() =>
          checkCrc && crc.value >>> 0 !== entry.crc32 >>> 0
            ? Effect.fail(new InvalidPackage({ path, reason: `entry ${label} fails its CRC-32 check` }))
            : Effect.void
        )
      ).pipe(Stream.drain)
    )
  )
}

/** Reads the root manifest entry of a checked zip into memory, capped at `maxManifestBytes`. */
const manifestOf = (zip: yauzl.ZipFile, entries: ReadonlyArray<CheckedEntry>, path: string, limits: Limits) =>
  Effect.gen(function*() {
    const found = entries.find((e) => e.name === Manifest.FILENAME)
    if (found === undefined) {
      return yield* new InvalidPackage({ path, reason: `no manifest (${Manifest.FILENAME} at the zip root)` })
    }
    if (found.entry.uncompressedSize > limits.maxManifestBytes) {
      return yield* new InvalidPackage({ path, reason: `manifest larger than ${limits.maxManifestBytes} bytes` })
    }
    const chunks = yield* Stream.runCollect(
      entryBytes(zip, found.entry, path, { remaining: limits.maxManifestBytes })
    )
    return yield* parseManifest(path, Buffer.concat(Array.from(chunks)))
  })

const readZipManifest = (path: string, limits: Limits) =>
  Effect.scoped(
    Effect.gen(function*() {
      const zip = yield* openZip(path)
      const entries = yield* scanZip(zip, path, limits)
      return yield* manifestOf(zip, entries, path, limits)
    })
  )

const unpackZip = (fs: FileSystem.FileSystem, zipPath: string, target: string, limits: Limits) =>
  Effect.gen(function*() {
    const existing = yield* fs.stat(target).pipe(
      Effect.map(Option.some),
      Effect.catchIf(isNotFound, () => Effect.succeed(Option.none())),
      Effect.mapError(storageError(target))
    )
    if (Option.isSome(existing)) {
      const empty = existing.value.type === "Directory" &&
        (yield* fs.readDirectory(target).pipe(Effect.mapError(storageError(target)))).length === 0
      if (!empty) return yield* new StorageError({ path: target, reason: "target exists and is not an empty directory" })
    }
    const parent = nodePath.dirname(target)
    yield* fs.makeDirectory(parent, { recursive: true }).pipe(Effect.mapError(storageError(parent)))
    const staging = yield* fs.makeTempDirectory({ directory: parent, prefix: `.${nodePath.basename(target)}.unpack-` })
      .pipe(Effect.mapError(storageError(parent)))

    const extract = Effect.scoped(Effect.gen(function*() {
      const zip = yield* openZip(zipPath)
      const entries = yield* scanZip(zip, zipPath, limits)
      yield* manifestOf(zip, entries, zipPath, limits)
      const budget = { remaining: limits.maxTotalBytes }
      for (const { directory, entry, segments } of entries) {
        const destination = nodePath.join(staging, ...segments)
        const relative = nodePath.relative(staging, destination)
        if (relative === "" || relative.startsWith("..") || nodePath.isAbsolute(relative)) {
          return yield* new InvalidPackage({
            path: zipPath,
            reason: `entry ${JSON.stringify(entry.fileName)} escapes the package root`
          })
        }
        const dir = directory ? destination : nodePath.dirname(destination)
        yield* fs.makeDirectory(dir, { recursive: true }).pipe(Effect.mapError(storageError(dir)))
        if (directory) continue
        // "wx": never follow or replace anything already there.
        yield* Stream.run(entryBytes(zip, entry, zipPath, budget), fs.sink(destination, { flag: "wx" })).pipe(
          Effect.mapError(orStorageError(destination))
        )
      }
    }))

    yield* extract.pipe(
      Effect.zipRight(fs.rename(staging, target).pipe(Effect.mapError(storageError(target)))),
      Effect.onError(() => fs.remove(staging, { recursive: true }).pipe(Effect.ignore))
    )
  })

// ---------------------------------------------------------------------------------------------------------------
// Writing zips (yazl)

interface SourceFile {
  readonly absolute: string
  readonly name: string
  readonly size: number
  readonly mode: number
  readonly mtime: Date
}

/**
 * Every file under `root` (following symbolic links, as ForML does, but never around a cycle), in name order,
 * without the root's own manifest.
 */
const listFiles = (fs: FileSystem.FileSystem, root: string) =>
  Effect.gen(function*() {
    const out: Array<SourceFile> = []
    const walk = (dir: string, prefix: ReadonlyArray<string>, ancestors: ReadonlySet<string>): Effect.Effect<
      void,
      PackageError
    > =>
      Effect.gen(function*() {
        const real = yield* fs.realPath(dir).pipe(Effect.mapError(storageError(dir)))
        if (ancestors.has(real)) {
          return yield* new InvalidPackage({ path: root, reason: `directory cycle through ${dir}` })
        }
        const inside = new Set([...ancestors, real])
        const names = (yield* fs.readDirectory(dir).pipe(Effect.mapError(storageError(dir)))).sort((a, b) =>
          a < b ? -1 : a > b ? 1 : 0
        )
        for (const name of names) {
          const absolute = nodePath.join(dir, name)
          const segments = [...prefix, name]
          if (segments.length === 1 && name === Manifest.FILENAME) continue
          if (name.includes("\\")) {
            return yield* new InvalidPackage({
              path: root,
              reason: `file name ${JSON.stringify(segments.join("/"))} has a backslash, which zip readers take for a separator`
            })
          }
          const info = yield* fs.stat(absolute).pipe(Effect.mapError(storageError(absolute)))
          if (info.type === "Directory") yield* walk(absolute, segments, inside)
          else if (info.type === "File") {
            out.push({
              absolute,
              name: segments.join("/"),
              size: Number(info.size),
              mode: (info.mode & 0o7777) | S_IFREG,
              mtime: Option.getOrElse(info.mtime, () => new Date())
            })
          }
          // Sockets, FIFOs and devices are not package content.
        }
      })
    yield* walk(root, [], new Set())
    return out
  })

/** Streams the manifest and the files into a zip beside `zipPath`, then renames it into place. */
const writeZip = (
  fs: FileSystem.FileSystem,
  zipPath: string,
  manifest: Manifest,
  files: ReadonlyArray<SourceFile>
) =>
  Effect.gen(function*() {
    const dir = nodePath.dirname(zipPath)
    yield* fs.makeDirectory(dir, { recursive: true }).pipe(Effect.mapError(storageError(dir)))
    const partial = nodePath.join(dir, `.${nodePath.basename(zipPath)}.${randomUUID()}.partial`)
    // Source files yazl has opened and not yet finished; closed on any exit so a failure leaks no descriptor.
    const inputs = new Set<nodeFs.ReadStream>()
    const write = Effect.suspend(() => {
      const zip = new yazl.ZipFile() as LazyZipFile
      const output = zip.outputStream as Readable
      // Any failure of yazl or of a source file ends the output stream with that error.
      zip.on("error", (err: unknown) => output.destroy(err instanceof Error ? err : new Error(String(err))))
      zip.addBuffer(Buffer.from(Manifest.write(manifest), "utf-8"), Manifest.FILENAME, {
        mtime: new Date(),
        mode: MANIFEST_MODE,
        compress: true
      })
      for (const file of files) {
        zip.addReadStreamLazy(
          file.name,
          { mtime: file.mtime, mode: file.mode, compress: true, size: file.size },
          (callback: (err: Error | null, stream: NodeJS.ReadableStream) => void) => {
            const input = nodeFs.createReadStream(file.absolute)
            inputs.add(input)
            input.on("close", () => inputs.delete(input))
            input.on("error", (err) => zip.emit("error", err))
            callback(null, input)
          }
        )
      }
      zip.end()
      return Stream.run(
        NodeStream.fromReadable<StorageError, Uint8Array>(
          () => output,
          (e) => new StorageError({ path: zipPath, reason: e instanceof Error ? e.message : String(e) })
        ),
        fs.sink(partial, { flag: "wx" })
      )
    }).pipe(Effect.ensuring(Effect.sync(() => inputs.forEach((input) => input.destroy()))))
    yield* write.pipe(
      Effect.mapError(orStorageError(partial)),
      Effect.zipRight(fs.rename(partial, zipPath).pipe(Effect.mapError(storageError(zipPath)))),
      Effect.onError(() => fs.remove(partial).pipe(Effect.ignore))
    )
  })
