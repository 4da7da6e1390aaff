/**
 * Writing `.4ml` zips with `yazl` as ForML's `Package.create` does: the manifest first, then the tree's files in name
 * order (symbolic links followed, never around a cycle), all DEFLATE, streamed from disk to a partial file that is
 * renamed into place.
 *
 * @internal
 */
import * as NodeStream from "@effect/platform-node/NodeStream"
import type * as FileSystem from "@effect/platform/FileSystem"
import { Effect, Option, Stream } from "effect"
import { randomUUID } from "node:crypto"
import * as nodeFs from "node:fs"
import * as nodePath from "node:path"
import type { Readable } from "node:stream"
import yazl from "yazl"
import { InvalidPackage, StorageError } from "../../errors.js"
import { Manifest } from "../Manifest.js"
import { orStorageError, type PackageError, S_IFREG, statPackage, storageError } from "./packageFiles.js"

/**
 * yazl's lazy stream entry, which keeps one source file open at a time and which its typings lack. Declared here
 * rather than by augmenting module "yazl": an augmentation would be published in the declaration files, where yazl's
 * typings (a development dependency) are absent.
 */
interface LazyZipFile extends yazl.ZipFile {
  addReadStreamLazy(
    metadataPath: string,
    options: Partial<yazl.ReadStreamOptions>,
    getReadStream: (callback: (err: Error | null, stream: NodeJS.ReadableStream) => void) => void
  ): void
}

const MANIFEST_MODE = 0o100644

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
              reason: `file name ${
                JSON.stringify(segments.join("/"))
              } has a backslash, which zip readers take for a separator`
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

/**
 * Zips the tree at `sourceDir` with `manifest` into `target` (see `Package.create`); the zip's resolved path. Fails
 * when the source is not a directory, and leaves no partial zip behind.
 */
export const createZip = (fs: FileSystem.FileSystem, sourceDir: string, manifest: Manifest, target: string) =>
  Effect.gen(function*() {
    const source = nodePath.resolve(sourceDir)
    const info = yield* statPackage(fs, source)
    if (info.type !== "Directory") return yield* new InvalidPackage({ path: source, reason: "not a directory" })
    const files = yield* listFiles(fs, source)
    const zipPath = nodePath.resolve(target)
    yield* writeZip(fs, zipPath, manifest, files)
    return zipPath
  })
