/**
 * What the package tests share: ForML's package vectors, an independent zip lister, temporary trees and crafted
 * entries.
 */
import { FileSystem } from "@effect/platform"
import { NodeFileSystem } from "@effect/platform-node"
import { Effect, Either } from "effect"
import { createHash } from "node:crypto"
import * as nodeFs from "node:fs"
import * as nodePath from "node:path"
import yauzl from "yauzl"
import { Manifest } from "../../src/asset/Manifest.js"
import { readJson, sharedPath } from "../support/shared.js"
import type { RawEntry } from "../support/zip.js"

export interface ZipEntryVector {
  readonly name: string
  readonly compressType: number
  readonly fileSize: number
  readonly externalAttr: string
  readonly sha256: string
}
export interface PackageVector {
  readonly file: string
  readonly entries: ReadonlyArray<ZipEntryVector>
  readonly manifestText: string
  readonly manifest: { name: string; version: string; package: string; modules: Record<string, string> }
}
export interface PackagesVectors {
  readonly sourceManifest: PackageVector["manifest"]
  readonly sourceFiles: ReadonlyArray<string>
  readonly packages: ReadonlyArray<PackageVector>
}
export interface ManifestVectors {
  readonly read: ReadonlyArray<{ readonly name: string; readonly source: string }>
  readonly readNoManifestFile: { readonly ok: boolean; readonly error: { readonly message: string } }
}

export const vectors = readJson<PackagesVectors>("forml-vectors", "packages.json")
export const manifestVectors = readJson<ManifestVectors>("forml-vectors", "manifests.json")
export const [hello1, hello2] = vectors.packages as [PackageVector, PackageVector]
export const zipOf = (v: PackageVector) => sharedPath("forml-vectors", v.file)

export const plain = (m: Manifest) => ({
  name: m.name,
  version: m.version.toString(),
  package: m.package,
  modules: { ...m.modules }
})
export const sha256 = (data: Uint8Array) => createHash("sha256").update(data).digest("hex")

export interface ListedEntry {
  readonly name: string
  readonly method: number
  readonly externalAttr: number
  readonly data: Buffer
}

/** Every entry of a zip with its data, read independently of the code under test. */
export const listZip = (path: string) =>
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
export const treeOf = (root: string): Record<string, string> => {
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

export const MANIFEST: RawEntry = { name: "__4ml__.py", data: Buffer.from(hello1.manifestText, "utf-8") }
export const file = (name: string, text = "x = 1\n"): RawEntry => ({ name, data: Buffer.from(text, "utf-8") })

export const layer = NodeFileSystem.layer

/** A fresh temporary directory for the test's scope. */
export const tempDir = Effect.flatMap(FileSystem.FileSystem, (fs) => fs.makeTempDirectoryScoped())

/** A fresh temporary directory and the path of a package source tree (`src`, not yet created) inside it. */
export const tempSource = Effect.map(tempDir, (dir) => ({ dir, source: nodePath.join(dir, "src") }))

/** The manifest of the small packages these tests create. */
export const smallManifest = Either.getOrThrow(Manifest.make({ name: "p", version: "1", package: "pkg" }))

/** Writes bytes to `<dir>/<name>` and returns the path. */
export const put = (dir: string, name: string, bytes: Uint8Array) =>
  Effect.sync(() => {
    const path = nodePath.join(dir, name)
    nodeFs.mkdirSync(nodePath.dirname(path), { recursive: true })
    nodeFs.writeFileSync(path, bytes)
    return path
  })
