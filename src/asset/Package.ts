/**
 * ForML packages: a `.4ml` zip (manifest first, DEFLATE, files only) or a directory with `__4ml__.py` at its root.
 * Entries stream between files and zips; only the manifest is held in memory, and untrusted zips are checked first
 * (the zip reader and its checks are in `internal/zipRead.ts`, the writer in `internal/zipWrite.ts`).
 */
import * as FileSystem from "@effect/platform/FileSystem"
import { Data, Effect } from "effect"
import * as nodePath from "node:path"
import type { InvalidPackage, StorageError } from "../errors.js"
import { readPackage, unpackZip } from "./internal/zipRead.js"
import { createZip } from "./internal/zipWrite.js"
import type { Manifest } from "./Manifest.js"

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
      return new Package(yield* readPackage(fs, path, { ...defaultLimits, ...limits }, false))
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
      const zipPath = yield* createZip(fs, sourceDir, manifest, target)
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
      return (yield* readPackage(fs, zipPath, { ...defaultLimits, ...limits }, true)).manifest
    }
  )
}

const safeFileName = (s: string): string => s.replace(/[^A-Za-z0-9._+!-]/g, "_")
