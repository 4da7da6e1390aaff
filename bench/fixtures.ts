/**
 * What the benchmark pushes and writes: small ForML packages (built with Package.create), large stored-entry packages
 * written chunk by chunk, and byte payloads, in memory or generated as fresh chunks so that nothing is held whole.
 */
import * as NodeContext from "@effect/platform-node/NodeContext"
import { Effect, Either, Stream } from "effect"
import { createHash, randomBytes } from "node:crypto"
import { createWriteStream } from "node:fs"
import { mkdir, writeFile } from "node:fs/promises"
import { join } from "node:path"
import { Readable } from "node:stream"
import { pipeline } from "node:stream/promises"
import yazl from "yazl"
import { Manifest } from "../src/asset/Manifest.js"
import { Package } from "../src/asset/Package.js"

const manifestOf = (name: string, version: string): Manifest =>
  Either.getOrThrow(Manifest.make({ name, version, package: "bench.model" }))

/** A small package zip (a few source files, as ForML's helloworld) for project `name`, release `version`. */
export const smallPackage = async (dir: string, name: string, version: string): Promise<string> => {
  const sources = join(dir, `sources-${name}-${version}`)
  await mkdir(join(sources, "bench", "model"), { recursive: true })
  await writeFile(join(sources, "bench", "__init__.py"), "")
  await writeFile(join(sources, "bench", "model", "__init__.py"), "from . import pipeline\n")
  await writeFile(join(sources, "bench", "model", "pipeline.py"), `# pipeline of ${name}\n${"x = 1\n".repeat(400)}`)
  const target = join(dir, `${name}-${version}.4ml`)
  const pkg = await Effect.runPromise(
    Package.create(sources, manifestOf(name, version), target).pipe(Effect.provide(NodeContext.layer))
  )
  return pkg.path
}

const CHUNK = 1024 * 1024
/** One random block; each chunk handed out is a fresh copy of it, so a retained chunk really costs memory. */
const block = randomBytes(CHUNK)

/** `size` bytes as fresh 1 MiB chunks, generated lazily. */
export async function* chunks(size: number): AsyncGenerator<Uint8Array> {
  for (let offset = 0; offset < size; offset += CHUNK) {
    yield Buffer.from(block.subarray(0, Math.min(CHUNK, size - offset)))
  }
}

/** The same as an Effect stream. */
export const chunkStream = (size: number): Stream.Stream<Uint8Array> =>
  Stream.fromAsyncIterable(chunks(size), (e) => e as never)

/** The sha256 (hex) of `chunks(size)`, computed without holding them. */
export const chunksDigest = (size: number): string => {
  const hash = createHash("sha256")
  for (let offset = 0; offset < size; offset += CHUNK) hash.update(block.subarray(0, Math.min(CHUNK, size - offset)))
  return hash.digest("hex")
}

/**
 * A package zip of about `size` bytes: the manifest, then one stored (uncompressed) data entry written chunk by chunk,
 * so that neither building nor pushing it needs the whole in memory.
 */
export const largePackage = async (dir: string, name: string, version: string, size: number): Promise<string> => {
  const target = join(dir, `${name}-${version}.4ml`)
  const zip = new yazl.ZipFile()
  zip.addBuffer(Buffer.from(Manifest.write(manifestOf(name, version)), "utf8"), Manifest.FILENAME)
  zip.addBuffer(Buffer.from("", "utf8"), "bench/__init__.py")
  zip.addReadStream(Readable.from(chunks(size)), "bench/weights.bin", { compress: false, size })
  zip.end()
  await pipeline(zip.outputStream, createWriteStream(target))
  return target
}

/** Random payloads of `size` bytes each. */
export const payloads = (count: number, size: number): ReadonlyArray<Uint8Array> =>
  Array.from({ length: count }, () => new Uint8Array(randomBytes(size)))

export const sha256 = (bytes: Uint8Array): string => createHash("sha256").update(bytes).digest("hex")

export const sameBytes = (a: Uint8Array, b: Uint8Array): boolean =>
  Buffer.from(a.buffer, a.byteOffset, a.length).equals(b)
