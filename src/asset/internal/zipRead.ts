/**
 * Reading `.4ml` zips with `yauzl`, and the checks an untrusted zip passes before anything is extracted: entry names
 * that stay under the root (no zip-slip), plain files and directories only (no symbolic links or devices), entry
 * count, total size and compression ratio within the limits (no zip bombs), and every entry's CRC-32 as it streams.
 * The checks are written here because yauzl checks names and sizes only. `readPackage` opens a zip or a directory.
 *
 * @internal
 */
import * as NodeStream from "@effect/platform-node/NodeStream"
import type * as FileSystem from "@effect/platform/FileSystem"
import { Effect, Option, Stream } from "effect"
import * as nodePath from "node:path"
import type { Readable } from "node:stream"
import * as zlib from "node:zlib"
import yauzl from "yauzl"
import { InvalidPackage, StorageError } from "../../errors.js"
import { Manifest } from "../Manifest.js"
import type { Limits } from "../Package.js"
import {
  isNotFound,
  orStorageError,
  type PackageError,
  parseManifest,
  readManifestFromDirectory,
  S_IFDIR,
  S_IFLNK,
  S_IFMT,
  S_IFREG,
  statPackage,
  storageError
} from "./packageFiles.js"

/** Zip "version made by" hosts whose external attributes carry a Unix mode: Unix and OS X. */
const UNIX_HOSTS: ReadonlySet<number> = new Set([3, 19])

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

export const readZipManifest = (path: string, limits: Limits) =>
  Effect.scoped(
    Effect.gen(function*() {
      const zip = yield* openZip(path)
      const entries = yield* scanZip(zip, path, limits)
      return yield* manifestOf(zip, entries, path, limits)
    })
  )

export const unpackZip = (fs: FileSystem.FileSystem, zipPath: string, target: string, limits: Limits) =>
  Effect.gen(function*() {
    const existing = yield* fs.stat(target).pipe(
      Effect.map(Option.some),
      Effect.catchIf(isNotFound, () => Effect.succeed(Option.none())),
      Effect.mapError(storageError(target))
    )
    if (Option.isSome(existing)) {
      const empty = existing.value.type === "Directory" &&
        (yield* fs.readDirectory(target).pipe(Effect.mapError(storageError(target)))).length === 0
      if (!empty) {
        return yield* new StorageError({ path: target, reason: "target exists and is not an empty directory" })
      }
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

/**
 * The package at `path` (resolved), its kind and its manifest. A zip is checked whole first. `zipOnly` refuses a
 * directory, as reading a zip's manifest does.
 */
export const readPackage = (fs: FileSystem.FileSystem, path: string, limits: Limits, zipOnly: boolean) =>
  Effect.gen(function*() {
    const resolved = nodePath.resolve(path)
    const info = yield* statPackage(fs, resolved)
    if (info.type === "Directory" && !zipOnly) {
      const manifest = yield* readManifestFromDirectory(fs, resolved, limits)
      return { path: resolved, kind: "directory" as const, manifest }
    }
    if (info.type !== "File") {
      const reason = zipOnly ? "not a zip file" : "not a file or directory"
      return yield* new InvalidPackage({ path: resolved, reason })
    }
    const manifest = yield* readZipManifest(resolved, limits)
    return { path: resolved, kind: "zip" as const, manifest }
  })
