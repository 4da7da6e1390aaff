/**
 * Packages against ForML's own zips (helloworld*.4ml, packages.json), and the checks that keep crafted zips
 * (zip slip, symbolic links, bombs, corrupt data) from being opened or unpacked.
 */
import { FileSystem } from "@effect/platform"
import { NodeFileSystem } from "@effect/platform-node"
import { describe, expect, it } from "@effect/vitest"
import { Effect, Either } from "effect"
import { createHash } from "node:crypto"
import * as nodeFs from "node:fs"
import * as nodePath from "node:path"
import yauzl from "yauzl"
import { Manifest } from "../../src/asset/Manifest.js"
import { Package } from "../../src/asset/Package.js"
import { readJson, sharedPath } from "../support/shared.js"
import { type RawEntry, rawZip } from "../support/zip.js"

interface ZipEntryVector {
  readonly name: string
  readonly compressType: number
  readonly fileSize: number
  readonly externalAttr: string
  readonly sha256: string
}
interface PackageVector {
  readonly file: string
  readonly entries: ReadonlyArray<ZipEntryVector>
  readonly manifestText: string
  readonly manifest: { name: string; version: string; package: string; modules: Record<string, string> }
}
interface PackagesVectors {
  readonly sourceManifest: PackageVector["manifest"]
  readonly sourceFiles: ReadonlyArray<string>
  readonly packages: ReadonlyArray<PackageVector>
}
interface ManifestVectors {
  readonly read: ReadonlyArray<{ readonly name: string; readonly source: string }>
  readonly readNoManifestFile: { readonly ok: boolean; readonly error: { readonly message: string } }
}

const vectors = readJson<PackagesVectors>("forml-vectors", "packages.json")
const manifestVectors = readJson<ManifestVectors>("forml-vectors", "manifests.json")
const [hello1, hello2] = vectors.packages as [PackageVector, PackageVector]
const zipOf = (v: PackageVector) => sharedPath("forml-vectors", v.file)

const plain = (m: Manifest) => ({ name: m.name, version: m.version.toString(), package: m.package, modules: { ...m.modules } })
const sha256 = (data: Uint8Array) => createHash("sha256").update(data).digest("hex")

interface ListedEntry {
  readonly name: string
  readonly method: number
  readonly externalAttr: number
  readonly data: Buffer
}

/** Every entry of a zip with its data, read independently of the code under test. */
const listZip = (path: string) =>
  Effect.async<ReadonlyArray<ListedEntry>, Error>((resume) => {
    yauzl.open(path, { lazyEntries: true }, (err, zip) => {
      if (err !== null) return resume(Effect.fail(err))
      const out: Array<ListedEntry> = []
      zip.on("error", (e: Error) => resume(Effect.fail(e)))
      zip.on("end", () => resume(Effect.succeed(out)))
      zip.on("entry", (entry: yauzl.Entry) => {
        zip.openReadStream(entry, (e, stream) => {
          if (e !== null) return resume(Effect.fail(e))
          const chunks: Array<Buffer> = []
          stream.on("data", (c: Buffer) => chunks.push(c))
          stream.on("end", () => {
            out.push({
              name: entry.fileName,
              method: entry.compressionMethod,
              externalAttr: entry.externalFileAttributes >>> 0,
              data: Buffer.concat(chunks)
            })
            zip.readEntry()
          })
        })
      })
      zip.readEntry()
    })
  })

/** Files under a directory, as relative path -> sha256. */
const treeOf = (root: string): Record<string, string> => {
  const out: Record<string, string> = {}
  const walk = (dir: string, prefix: string) => {
    for (const name of nodeFs.readdirSync(dir).sort()) {
      const abs = nodePath.join(dir, name)
      if (nodeFs.statSync(abs).isDirectory()) walk(abs, `${prefix}${name}/`)
      else out[`${prefix}${name}`] = sha256(nodeFs.readFileSync(abs))
    }
  }
  walk(root, "")
  return out
}

const MANIFEST: RawEntry = { name: "__4ml__.py", data: Buffer.from(hello1.manifestText, "utf-8") }
const file = (name: string, text = "x = 1\n"): RawEntry => ({ name, data: Buffer.from(text, "utf-8") })

const layer = NodeFileSystem.layer

/** A fresh temporary directory for the test's scope. */
const tempDir = Effect.flatMap(FileSystem.FileSystem, (fs) => fs.makeTempDirectoryScoped())

/** A fresh temporary directory and the path of a package source tree (`src`, not yet created) inside it. */
const tempSource = Effect.map(tempDir, (dir) => ({ dir, source: nodePath.join(dir, "src") }))

/** The manifest of the small packages these tests create. */
const smallManifest = Either.getOrThrow(Manifest.make({ name: "p", version: "1", package: "pkg" }))

/** Writes bytes to `<dir>/<name>` and returns the path. */
const put = (dir: string, name: string, bytes: Uint8Array) =>
  Effect.sync(() => {
    const path = nodePath.join(dir, name)
    nodeFs.mkdirSync(nodePath.dirname(path), { recursive: true })
    nodeFs.writeFileSync(path, bytes)
    return path
  })

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
      expect(entries.find((e) => e.name === "pkg/run.sh")?.externalAttr).toBe(((0o100755 << 16) >>> 0))
      expect(entries.find((e) => e.name === "linked/data.txt")?.data.toString()).toBe("linked")
    }).pipe(Effect.provide(layer)))

  it.scoped("rejects a symbolic link cycle and a missing source, leaving no partial zip", () =>
    Effect.gen(function*() {
      const { dir, source } = yield* tempSource
      yield* put(source, "a/f.py", Buffer.from("", "utf-8"))
      nodeFs.symlinkSync("..", nodePath.join(source, "a", "up"))
      const cycle = yield* Effect.flip(Package.create(source, smallManifest, nodePath.join(dir, "p.4ml")))
      expect(cycle.message).toMatch(/directory cycle/)
      const missing = yield* Effect.flip(Package.create(nodePath.join(dir, "nope"), smallManifest, nodePath.join(dir, "q.4ml")))
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

describe("Package.unpack", () => {
  it.scoped("extracts ForML's helloworld.4ml entry for entry", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const target = nodePath.join(dir, "a", "b")
      yield* Package.unpack(zipOf(hello1), target)
      expect(treeOf(target)).toEqual(Object.fromEntries(hello1.entries.map((e) => [e.name, e.sha256])))
      expect(nodeFs.readdirSync(nodePath.join(dir, "a"))).toEqual(["b"])
      // An existing empty directory is fine; a non-empty one is not touched.
      const empty = nodePath.join(dir, "empty")
      nodeFs.mkdirSync(empty)
      yield* Package.unpack(zipOf(hello2), empty)
      expect(Object.keys(treeOf(empty)).length).toBe(5)
      const error = yield* Effect.flip(Package.unpack(zipOf(hello1), target))
      expect(error._tag).toBe("StorageError")
      expect(error.message).toMatch(/not an empty directory/)
      expect(treeOf(target)).toEqual(Object.fromEntries(hello1.entries.map((e) => [e.name, e.sha256])))
    }).pipe(Effect.provide(layer)))

  it.scoped("extracts directory entries and files in subdirectories of a crafted zip", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const zip = yield* put(dir, "p.4ml", rawZip([MANIFEST, { name: "empty/" }, { ...file("a/b.py", "b"), method: 0 }]))
      const target = nodePath.join(dir, "out")
      yield* Package.unpack(zip, target)
      expect(nodeFs.statSync(nodePath.join(target, "empty")).isDirectory()).toBe(true)
      expect(nodeFs.readFileSync(nodePath.join(target, "a/b.py"), "utf-8")).toBe("b")
    }).pipe(Effect.provide(layer)))

  const evilName = (dir: string) => nodePath.join(dir, "evil.py")

  // Each crafted zip must fail open and unpack with InvalidPackage, and leave the directory as it was.
  const hostile: ReadonlyArray<readonly [string, (dir: string) => ReadonlyArray<RawEntry>, RegExp]> = [
    ["a parent path", () => [MANIFEST, file("../evil.py")], /invalid relative path|escapes/],
    ["a nested parent path", () => [MANIFEST, file("a/../../evil.py")], /invalid relative path|escapes/],
    ["an absolute path", (dir) => [MANIFEST, file(evilName(dir))], /absolute path/],
    ["a backslash parent path", () => [MANIFEST, file("..\\evil.py")], /invalid relative path|escapes/],
    ["a backslash absolute path", () => [MANIFEST, file("\\tmp\\evil.py")], /absolute path/],
    ["a drive letter", () => [MANIFEST, file("C:/evil.py")], /absolute path/],
    ["a symbolic link", () => [MANIFEST, { name: "link", data: Buffer.from("/etc/passwd"), mode: 0o120777 }], /symbolic link/],
    ["a symbolic link made on OS X", () => [MANIFEST, { name: "link", data: Buffer.from(".."), mode: 0o120755, versionMadeBy: 0x1314 }], /symbolic link/],
    ["a device file", () => [MANIFEST, { name: "dev", mode: 0o020644 }], /special file/],
    ["a duplicate entry", () => [MANIFEST, file("a.py"), file("a.py", "y")], /appears twice/],
    ["a file that is also a directory", () => [MANIFEST, file("a"), file("a/b.py")], /both a file and a directory/],
    ["a dot segment", () => [MANIFEST, file("./a.py")], /not a normal path/],
    ["an empty segment", () => [MANIFEST, file("a//b.py")], /not a normal path/],
    ["an encrypted entry", () => [MANIFEST, { ...file("a.py"), flags: 1 }], /encrypted/],
    ["an unsupported compression method", () => [MANIFEST, { ...file("a.py"), method: 14 }], /compression method 14/],
    ["no manifest", () => [file("a.py")], /no manifest/],
    ["a manifest below the root", () => [{ ...MANIFEST, name: "x/__4ml__.py" }], /no manifest/],
    ["a bad manifest", () => [file("__4ml__.py", "NAME = 'x"), file("a.py")], /invalid manifest __4ml__\.py: syntax error/],
    ["a manifest that is not UTF-8", () => [{ name: "__4ml__.py", data: Buffer.from([0xff, 0xfe]) }], /not UTF-8/],
    ["a zip bomb entry", () => [MANIFEST, file("zeros.bin", "\u0000".repeat(4 * 1024 * 1024))], /expands \d+ times .*zip bomb/],
    ["a stored size that lies", () => [MANIFEST, { ...file("a.py", "0123456789"), method: 0, size: 5 }], /compressed\/uncompressed size mismatch/]
  ]

  it.scoped.each(hostile.map(([name, entries, reason]) => ({ name, entries, reason })))(
    "rejects $name",
    ({ entries, reason }) =>
      Effect.gen(function*() {
        const dir = yield* tempDir
        const zip = yield* put(dir, "p.4ml", rawZip(entries(dir)))
        const opened = yield* Effect.flip(Package.open(zip))
        expect(opened._tag).toBe("InvalidPackage")
        expect(opened.message).toMatch(reason)
        const root = nodePath.join(dir, "root")
        nodeFs.mkdirSync(root)
        const unpacked = yield* Effect.flip(Package.unpack(zip, nodePath.join(root, "out")))
        expect(unpacked._tag).toBe("InvalidPackage")
        expect(unpacked.message).toMatch(reason)
        expect(nodeFs.readdirSync(root)).toEqual([])
        expect(nodeFs.readdirSync(dir).sort()).toEqual(["p.4ml", "root"])
      }).pipe(Effect.provide(layer))
  )

  // These pass the central directory checks and fail while extracting: what was written is removed again.
  const corrupt: ReadonlyArray<readonly [string, ReadonlyArray<RawEntry>, RegExp]> = [
    ["a wrong CRC-32", [MANIFEST, file("a.py"), { ...file("b.py"), crc: 1234 }], /b\.py.*CRC-32/],
    ["corrupt deflate data", [MANIFEST, file("a.py"), { ...file("b.py"), raw: Buffer.from([0xff, 0xff, 0xff, 0xff]) }], /bad entry "b\.py"/],
    ["a deflated size that lies", [MANIFEST, file("a.py"), { ...file("b.py", "0123456789".repeat(100)), size: 10 }], /too many bytes|b\.py/]
  ]

  it.scoped.each(corrupt.map(([name, entries, reason]) => ({ name, entries, reason })))(
    "removes a partial unpack on $name",
    ({ entries, reason }) =>
      Effect.gen(function*() {
        const dir = yield* tempDir
        const zip = yield* put(dir, "p.4ml", rawZip(entries))
        const root = nodePath.join(dir, "root")
        nodeFs.mkdirSync(root)
        const error = yield* Effect.flip(Package.unpack(zip, nodePath.join(root, "out")))
        expect(error._tag).toBe("InvalidPackage")
        expect(error.message).toMatch(reason)
        expect(nodeFs.readdirSync(root)).toEqual([])
      }).pipe(Effect.provide(layer))
  )

  it.scoped("applies configurable limits: entries, total size, manifest size, ratio", () =>
    Effect.gen(function*() {
      const zip = zipOf(hello1)
      const entries = yield* Effect.flip(Package.open(zip, { maxEntries: 4 }))
      expect(entries.message).toMatch(/5 entries \(more than 4\)/)
      const total = yield* Effect.flip(Package.open(zip, { maxTotalBytes: 8000 }))
      expect(total.message).toMatch(/more than 8000 bytes uncompressed/)
      const manifest = yield* Effect.flip(Package.readManifestFromZip(zip, { maxManifestBytes: 69 }))
      expect(manifest.message).toMatch(/manifest larger than 69 bytes/)
      const ratio = yield* Effect.flip(Package.open(zip, { maxRatio: 1.5, ratioFloorBytes: 1000 }))
      expect(ratio.message).toMatch(/expands 2 times \(more than 1\.5\)/)
      const dir = yield* tempDir
      const unpack = yield* Effect.flip(Package.unpack(zip, nodePath.join(dir, "out"), { maxTotalBytes: 8000 }))
      expect(unpack._tag).toBe("InvalidPackage")
      expect(nodeFs.readdirSync(dir)).toEqual([])
      expect(Package.defaultLimits.maxManifestBytes).toBe(1024 * 1024)
    }).pipe(Effect.provide(layer)))

  it.scoped("rejects many small entries that together expand past the zip's size ratio", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const chunk = "\u0000".repeat(512 * 1024)
      const entries = [MANIFEST, ...Array.from({ length: 8 }, (_, k) => file(`z${k}.bin`, chunk))]
      const zip = yield* put(dir, "p.4ml", rawZip(entries))
      const error = yield* Effect.flip(Package.open(zip))
      expect(error.message).toMatch(/entries expand \d+ times the zip size/)
    }).pipe(Effect.provide(layer)))
})

describe("Package streaming", () => {
  it.scoped("creates and unpacks a package much larger than the memory it uses", () =>
    Effect.gen(function*() {
      const { dir, source } = yield* tempSource
      nodeFs.mkdirSync(source)
      const size = 96 * 1024 * 1024
      const block = Buffer.alloc(1024 * 1024)
      for (let k = 0; k < block.length; k++) block[k] = (k * 2654435761) >>> 24
      const hash = createHash("sha256")
      const fd = nodeFs.openSync(nodePath.join(source, "weights.bin"), "w")
      for (let written = 0; written < size; written += block.length) {
        block.writeUInt32LE(written, 0)
        nodeFs.writeSync(fd, block)
        hash.update(block)
      }
      nodeFs.closeSync(fd)
      const expected = hash.digest("hex")

      const manifest = Either.getOrThrow(Manifest.make({ name: "big", version: "1", package: "big" }))
      const before = process.memoryUsage()
      let peak = 0
      const timer = setInterval(() => {
        const now = process.memoryUsage()
        peak = Math.max(peak, now.rss - before.rss)
      }, 5)
      yield* Effect.ensuring(
        Effect.gen(function*() {
          yield* Package.create(source, manifest, nodePath.join(dir, "big.4ml"))
          yield* Package.unpack(nodePath.join(dir, "big.4ml"), nodePath.join(dir, "out"))
        }),
        Effect.sync(() => clearInterval(timer))
      )
      expect(sha256(nodeFs.readFileSync(nodePath.join(dir, "out", "weights.bin")))).toBe(expected)
      expect(peak).toBeLessThan(size / 2)
    }).pipe(Effect.provide(layer)), 60_000)
})
