/** Unpacking packages: ForML's zips, crafted zips (zip slip, symbolic links, bombs, corrupt data), and streaming. */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Either } from "effect"
import { createHash } from "node:crypto"
import * as nodeFs from "node:fs"
import * as nodePath from "node:path"
import { Manifest } from "../../src/asset/Manifest.js"
import { Package } from "../../src/asset/Package.js"
import { type RawEntry, rawZip } from "../support/zip.js"
import {
  file,
  hello1,
  hello2,
  layer,
  MANIFEST,
  put,
  sha256,
  tempDir,
  tempSource,
  treeOf,
  zipOf
} from "./packageSupport.js"

/** Unpacks `zip` into `<dir>/root/out`, which must fail with an InvalidPackage saying `reason` and leave root empty. */
const unpackRefused = (zip: string, dir: string, reason: RegExp) =>
  Effect.gen(function*() {
    const root = nodePath.join(dir, "root")
    nodeFs.mkdirSync(root)
    const error = yield* Effect.flip(Package.unpack(zip, nodePath.join(root, "out")))
    expect(error._tag).toBe("InvalidPackage")
    expect(error.message).toMatch(reason)
    expect(nodeFs.readdirSync(root)).toEqual([])
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
      const zip = yield* put(
        dir,
        "p.4ml",
        rawZip([MANIFEST, { name: "empty/" }, { ...file("a/b.py", "b"), method: 0 }])
      )
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
    [
      "a symbolic link",
      () => [MANIFEST, { name: "link", data: Buffer.from("/etc/passwd"), mode: 0o120777 }],
      /symbolic link/
    ],
    [
      "a symbolic link made on OS X",
      () => [MANIFEST, { name: "link", data: Buffer.from(".."), mode: 0o120755, versionMadeBy: 0x1314 }],
      /symbolic link/
    ],
    ["a device file", () => [MANIFEST, { name: "dev", mode: 0o020644 }], /special file/],
    ["a duplicate entry", () => [MANIFEST, file("a.py"), file("a.py", "y")], /appears twice/],
    ["a file that is also a directory", () => [MANIFEST, file("a"), file("a/b.py")], /both a file and a directory/],
    ["a dot segment", () => [MANIFEST, file("./a.py")], /not a normal path/],
    ["an empty segment", () => [MANIFEST, file("a//b.py")], /not a normal path/],
    ["an encrypted entry", () => [MANIFEST, { ...file("a.py"), flags: 1 }], /encrypted/],
    ["an unsupported compression method", () => [MANIFEST, { ...file("a.py"), method: 14 }], /compression method 14/],
    ["no manifest", () => [file("a.py")], /no manifest/],
    ["a manifest below the root", () => [{ ...MANIFEST, name: "x/__4ml__.py" }], /no manifest/],
    [
      "a bad manifest",
      () => [file("__4ml__.py", "NAME = 'x"), file("a.py")],
      /invalid manifest __4ml__\.py: syntax error/
    ],
    ["a manifest that is not UTF-8", () => [{ name: "__4ml__.py", data: Buffer.from([0xff, 0xfe]) }], /not UTF-8/],
    [
      "a zip bomb entry",
      () => [MANIFEST, file("zeros.bin", "\u0000".repeat(4 * 1024 * 1024))],
      /expands \d+ times .*zip bomb/
    ],
    [
      "a stored size that lies",
      () => [MANIFEST, { ...file("a.py", "0123456789"), method: 0, size: 5 }],
      /compressed\/uncompressed size mismatch/
    ]
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
        yield* unpackRefused(zip, dir, reason)
        expect(nodeFs.readdirSync(dir).sort()).toEqual(["p.4ml", "root"])
      }).pipe(Effect.provide(layer))
  )

  // These pass the central directory checks and fail while extracting: what was written is removed again.
  const corrupt: ReadonlyArray<readonly [string, ReadonlyArray<RawEntry>, RegExp]> = [
    ["a wrong CRC-32", [MANIFEST, file("a.py"), { ...file("b.py"), crc: 1234 }], /b\.py.*CRC-32/],
    [
      "corrupt deflate data",
      [MANIFEST, file("a.py"), { ...file("b.py"), raw: Buffer.from([0xff, 0xff, 0xff, 0xff]) }],
      /bad entry "b\.py"/
    ],
    [
      "a deflated size that lies",
      [MANIFEST, file("a.py"), { ...file("b.py", "0123456789".repeat(100)), size: 10 }],
      /too many bytes|b\.py/
    ]
  ]

  it.scoped.each(corrupt.map(([name, entries, reason]) => ({ name, entries, reason })))(
    "removes a partial unpack on $name",
    ({ entries, reason }) =>
      Effect.gen(function*() {
        const dir = yield* tempDir
        const zip = yield* put(dir, "p.4ml", rawZip(entries))
        yield* unpackRefused(zip, dir, reason)
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
