/**
 * What reading and writing packages share: file system errors as package errors, the Unix file type bits of zip
 * entries, and the manifest read from a package directory or from its bytes.
 *
 * @internal
 */
import type { PlatformError } from "@effect/platform/Error"
import type * as FileSystem from "@effect/platform/FileSystem"
import { Effect, Either } from "effect"
import * as nodePath from "node:path"
import { InvalidPackage, StorageError } from "../../errors.js"
import { Manifest } from "../Manifest.js"
import type { Limits } from "../Package.js"

export type PackageError = InvalidPackage | StorageError

/** The file type bits of a Unix mode, as zip external attributes carry them. */
export const S_IFMT = 0o170000
export const S_IFREG = 0o100000
export const S_IFDIR = 0o040000
export const S_IFLNK = 0o120000

export const storageError = (path: string) => (e: PlatformError): StorageError =>
  new StorageError({ path, reason: e.message })

/** Keeps package errors, and turns a file system error into a `StorageError` at `path`. */
export const orStorageError = (path: string) => (e: PackageError | PlatformError): PackageError =>
  e._tag === "InvalidPackage" || e._tag === "StorageError" ? e : storageError(path)(e)

export const isNotFound = (e: PlatformError): boolean => e._tag === "SystemError" && e.reason === "NotFound"

export const statPackage = (fs: FileSystem.FileSystem, path: string) =>
  fs.stat(path).pipe(
    Effect.mapError((e): PackageError =>
      isNotFound(e) ? new InvalidPackage({ path, reason: "no such file or directory" }) : storageError(path)(e)
    )
  )

const invalidManifest = (path: string) => (reason: string) =>
  new InvalidPackage({ path, reason: `invalid manifest ${Manifest.FILENAME}: ${reason}` })

/** Decodes manifest bytes (UTF-8, as Python reads source) and reads them. */
export const parseManifest = (path: string, bytes: Uint8Array): Either.Either<Manifest, InvalidPackage> =>
  Either.try({
    try: () => new TextDecoder("utf-8", { fatal: true }).decode(bytes),
    catch: () => invalidManifest(path)("not UTF-8 text")
  }).pipe(Either.flatMap((text) => Either.mapLeft(Manifest.read(text), (e) => invalidManifest(path)(e.reason))))

export const readManifestFromDirectory = (fs: FileSystem.FileSystem, dir: string, limits: Limits) =>
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
