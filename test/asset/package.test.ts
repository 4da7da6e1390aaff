/**
 * Opening, creating and re-zipping packages against ForML's own zips (helloworld*.4ml, packages.json); unpacking and
 * the checks on crafted zips are in package-unpack.test.ts.
 */
import { FileSystem } from "@effect/platform"
import { describe, expect, it } from "@effect/vitest"
import { Effect, Either } from "effect"
import * as nodeFs from "node:fs"
import * as nodePath from "node:path"
import { Manifest } from "../../src/asset/Manifest.js"
import { Package } from "../../src/asset/Package.js"
import {
  hello1,
  hello2,
  layer,
  listZip,
  manifestVectors,
  plain,
  put,
  sha256,
  smallManifest,
  tempDir,
  tempSource,
  vectors,
  type ZipEntryVector,
  zipOf
} from "./packageSupport.js"

describe("Package.open", () => {
  it.scoped.each([hello1, hello2])("opens ForML's $file", (v) =>
    Effect.gen(function*() {
      const pkg = yield* Package.open(zipOf(v))
      expect(pkg.kind).toBe("zip")
      expect(pkg.path).toBe(zipOf(v))
      expect(plain(pkg.manifest)).toEqual(v.manifest)
      expect(Manifest.write(pkg.manifest)).toBe(v.manifestText)
      expect(plain(yield* Package.readManifestFromZip(zipOf(v)))).toEqual(v.manifest)
    }).pipe(Effect.provide(layer)))

  it.scoped("opens a package directory and reads its hand-written manifest", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const source = manifestVectors.read.find((c) => c.name === "helloworld-source")?.source as string
      yield* put(dir, "__4ml__.py", Buffer.from(source, "utf-8"))
      yield* put(dir, "hello/world/__init__.py", Buffer.from("", "utf-8"))
      const pkg = yield* Package.open(nodePath.join(dir, "."))
      expect(pkg.kind).toBe("directory")
      expect(pkg.path).toBe(dir)
      expect(plain(pkg.manifest)).toEqual(vectors.sourceManifest)
    }).pipe(Effect.provide(layer)))

  it.scoped("rejects a directory without a manifest (ForML: MissingError)", () =>
    Effect.gen(function*() {
      expect(manifestVectors.readNoManifestFile.error.message).toMatch(/No module named '__4ml__'/)
      const dir = yield* tempDir
      yield* put(dir, "hello.py", Buffer.from("", "utf-8"))
      const error = yield* Effect.flip(Package.open(dir))
      expect(error._tag).toBe("InvalidPackage")
      expect(error.message).toMatch(/no manifest \(__4ml__\.py is missing\)/)
    }).pipe(Effect.provide(layer)))

  it.scoped("rejects a directory whose manifest is bad or not UTF-8", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      yield* put(dir, "a/__4ml__.py", Buffer.from("NAME = 'x'\n", "utf-8"))
      yield* put(dir, "b/__4ml__.py", Buffer.from([0x4e, 0x41, 0x4d, 0x45, 0x3d, 0x27, 0xff, 0x27]))
      const a = yield* Effect.flip(Package.open(nodePath.join(dir, "a")))
      expect(a.message).toMatch(/invalid manifest __4ml__\.py: VERSION is not defined/)
      const b = yield* Effect.flip(Package.open(nodePath.join(dir, "b")))
      expect(b.message).toMatch(/invalid manifest __4ml__\.py: not UTF-8 text/)
    }).pipe(Effect.provide(layer)))

  it.scoped("rejects a missing path and a file that is not a zip", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const missing = yield* Effect.flip(Package.open(nodePath.join(dir, "nope.4ml")))
      expect(missing._tag).toBe("InvalidPackage")
      expect(missing.message).toMatch(/no such file or directory/)
      const text = yield* put(dir, "text.4ml", Buffer.from("NAME = 'x'\n".repeat(10), "utf-8"))
      const notZip = yield* Effect.flip(Package.open(text))
      expect(notZip._tag).toBe("InvalidPackage")
      expect(notZip.message).toMatch(/not a zip file/)
      const empty = yield* put(dir, "empty.4ml", new Uint8Array(0))
      expect((yield* Effect.flip(Package.open(empty)))._tag).toBe("InvalidPackage")
      const bytes = nodeFs.readFileSync(zipOf(hello1))
      const truncated = yield* put(dir, "truncated.4ml", bytes.subarray(0, bytes.length - 30))
      expect((yield* Effect.flip(Package.open(truncated)))._tag).toBe("InvalidPackage")
    }).pipe(Effect.provide(layer)))
})

describe("Package.create", () => {
  it.scoped.each([hello1, hello2])("zips a directory as ForML made $file", (v) =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const source = nodePath.join(dir, "source")
      yield* Package.unpack(zipOf(hello1), source)
      // The source tree's own manifest (single quotes, licence header) is replaced by the written one.
      const handWritten = manifestVectors.read.find((c) => c.name === "helloworld-source")?.source as string
      nodeFs.writeFileSync(nodePath.join(source, "__4ml__.py"), handWritten)
      const manifest = Either.getOrThrow(Manifest.make(v.manifest))
      const target = nodePath.join(dir, "out", "package.4ml")
      const pkg = yield* Package.create(source, manifest, target)
      expect(pkg.kind).toBe("zip")
      expect(pkg.path).toBe(target)

      const entries = yield* listZip(target)
      // ForML: manifest first, then every file in directory listing order (here: name order), no directories.
      expect(entries[0]?.name).toBe("__4ml__.py")
      expect(entries.map((e) => e.name).sort()).toEqual(v.entries.map((e) => e.name).sort())
      expect(entries.map((e) => e.name)).toEqual([
        "__4ml__.py",
        "hello/world/__init__.py",
        "hello/world/evaluation.py",
        "hello/world/pipeline.py",
        "hello/world/source.py"
      ])
      for (const entry of entries) {
        const expected = v.entries.find((e) => e.name === entry.name) as ZipEntryVector
        expect(entry.method).toBe(expected.compressType)
        expect(entry.data.length).toBe(expected.fileSize)
        expect(sha256(entry.data), entry.name).toBe(expected.sha256)
      }
      expect(entries[0]?.data.toString("utf-8")).toBe(v.manifestText)
      expect(entries[0]?.externalAttr).toBe(Number(v.entries[0]?.externalAttr))
      expect(plain((yield* Package.open(target)).manifest)).toEqual(v.manifest)
      expect(nodeFs.readdirSync(nodePath.join(dir, "out"))).toEqual(["package.4ml"])
    }).pipe(Effect.provide(layer)))

  it.scoped("follows symbolic links and keeps file modes, skipping only the root manifest", () =>
    Effect.gen(function*() {
      const { dir, source } = yield* tempSource
      yield* put(source, "pkg/__4ml__.py", Buffer.from("nested, kept", "utf-8"))
      yield* put(source, "pkg/run.sh", Buffer.from("#!/bin/sh\n", "utf-8"))
      nodeFs.chmodSync(nodePath.join(source, "pkg/run.sh"), 0o755)
      yield* put(dir, "outside/data.txt", Buffer.from("linked", "utf-8"))
      nodeFs.symlinkSync(nodePath.join(dir, "outside"), nodePath.join(source, "linked"))
      nodeFs.symlinkSync("linked", nodePath.join(source, "loop"), "dir") // a second way to the same tree
      const target = nodePath.join(dir, "p.4ml")
      yield* Package.create(source, smallManifest, target)
      const entries = yield* listZip(target)
      expect(entries.map((e) => e.name)).toEqual([
        "__4ml__.py",
        "linked/data.txt",
        "loop/data.txt",
        "pkg/__4ml__.py",
        "pkg/run.sh"
      ])
      expect(entries.find((e) => e.name === "pkg/run.sh")?.externalAttr).toBe((0o100755 << 16) >>> 0)
      expect(entries.find((e) => e.name === "linked/data.txt")?.data.toString()).toBe("linked")
    }).pipe(Effect.provide(layer)))

  it.scoped("rejects a symbolic link cycle and a missing source, leaving no partial zip", () =>
    Effect.gen(function*() {
      const { dir, source } = yield* tempSource
      yield* put(source, "a/f.py", Buffer.from("", "utf-8"))
      nodeFs.symlinkSync("..", nodePath.join(source, "a", "up"))
      const cycle = yield* Effect.flip(Package.create(source, smallManifest, nodePath.join(dir, "p.4ml")))
      expect(cycle.message).toMatch(/directory cycle/)
      const missing = yield* Effect.flip(
        Package.create(nodePath.join(dir, "nope"), smallManifest, nodePath.join(dir, "q.4ml"))
      )
      expect(missing._tag).toBe("InvalidPackage")
      expect(nodeFs.readdirSync(dir)).toEqual(["src"])
    }).pipe(Effect.provide(layer)))

  it.scoped("fails with a StorageError and removes the partial zip when a file changes while it is zipped", () =>
    Effect.gen(function*() {
      const { dir, source } = yield* tempSource
      yield* put(source, "a.py", Buffer.from("x", "utf-8"))
      // The file is listed, then grows before its bytes are read: the declared size no longer holds.
      const fs = yield* FileSystem.FileSystem
      const growing: FileSystem.FileSystem = {
        ...fs,
        stat: (p) =>
          Effect.tap(fs.stat(p), () =>
            Effect.sync(() => {
              if (p.endsWith("a.py")) nodeFs.writeFileSync(p, "much longer now")
            }))
      }
      const error = yield* Effect.flip(
        Package.create(source, smallManifest, nodePath.join(dir, "p.4ml")).pipe(
          Effect.provideService(FileSystem.FileSystem, growing)
        )
      )
      expect(error._tag).toBe("StorageError")
      expect(nodeFs.readdirSync(dir)).toEqual(["src"])
    }).pipe(Effect.provide(layer)))
})

describe("Package.toZip", () => {
  it.scoped("returns a zip package's own path and zips a directory package into staging", () =>
    Effect.gen(function*() {
      const zip = yield* Package.open(zipOf(hello2))
      expect(yield* Package.toZip(zip, "/nonexistent")).toBe(zipOf(hello2))
      const { dir, source } = yield* tempSource
      yield* Package.unpack(zipOf(hello2), source)
      const directory = yield* Package.open(source)
      expect(directory.kind).toBe("directory")
      const staging = nodePath.join(dir, "staging")
      const path = yield* Package.toZip(directory, staging)
      expect(nodePath.dirname(path)).toBe(staging)
      expect(nodePath.basename(path)).toBe("helloworld-2.4ml")
      const reopened = yield* Package.open(path)
      expect(plain(reopened.manifest)).toEqual(hello2.manifest)
      expect((yield* listZip(path)).map((e) => e.name).sort()).toEqual(hello2.entries.map((e) => e.name).sort())
    }).pipe(Effect.provide(layer)))
})
