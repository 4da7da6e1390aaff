/**
 * GCS artifacts through `@google-cloud/storage` against a stand-in written here: a few routes of the JSON API (simple
 * and resumable uploads, object metadata and media, delimited listings, deletes) over an in-memory map. It is not GCS
 * (no auth, no lost chunks, no conditions), so it checks this client's use of the SDK, not the service (see README).
 */
import { NodeContext } from "@effect/platform-node"
import { describe, expect, it } from "@effect/vitest"
import { CRC32C } from "@google-cloud/storage"
import { Chunk, Effect, Stream } from "effect"
import { createHash } from "node:crypto"
import * as Http from "node:http"
import type { AddressInfo } from "node:net"
import * as ArtifactStore from "../src/mlflow/ArtifactStore.js"
import { concatBytes } from "../src/mlflow/Mlflow.js"

const text = (s: string) => new TextEncoder().encode(s)
const decode = (b: Uint8Array) => new TextDecoder().decode(b)
const collect = <E>(s: Stream.Stream<Uint8Array, E>) =>
  Effect.map(Stream.runCollect(s), (c) => concatBytes(Chunk.toReadonlyArray(c)))

const crc32c = (bytes: Buffer): string => {
  const c = new CRC32C()
  c.update(bytes)
  return c.toString()
}

/** The stand-in: bucket → name → bytes, and the requests it saw. */
const startStandIn = Effect.acquireRelease(
  Effect.async<{ url: string; server: Http.Server; requests: Array<string> }>((resume) => {
    const objects = new Map<string, Buffer>()
    const sessions = new Map<string, { bucket: string; name: string; data: Array<Buffer> }>()
    const base = () => `http://127.0.0.1:${(server.address() as AddressInfo).port}`
    const requests: Array<string> = []
    const json = (res: Http.ServerResponse, status: number, body: unknown) => {
      res.writeHead(status, { "content-type": "application/json" })
      res.end(JSON.stringify(body))
    }
    const missing = (res: Http.ServerResponse, what: string) =>
      json(res, 404, { error: { code: 404, message: `No such object: ${what}`, errors: [{ reason: "notFound" }] } })
    const meta = (bucket: string, name: string, bytes: Buffer) => ({
      kind: "storage#object",
      bucket,
      name,
      size: String(bytes.length),
      generation: "1",
      // the SDK checks an upload against the hashes the service computed
      md5Hash: createHash("md5").update(bytes).digest("base64"),
      crc32c: crc32c(bytes)
    })
    const server = Http.createServer((req, res) => {
      const chunks: Array<Buffer> = []
      req.on("data", (c: Buffer) => chunks.push(c))
      req.on("end", () => {
        const url = new URL(req.url ?? "/", "http://x")
        requests.push(`${req.method} ${url.pathname}`)
        const body = Buffer.concat(chunks)
        let m = /^\/upload\/storage\/v1\/b\/([^/]+)\/o$/.exec(url.pathname)
        if (m !== null && url.searchParams.get("uploadType") === "resumable") {
          // a resumable upload: POST opens a session, PUTs send its chunks (308 until the one with the total)
          if (req.method === "POST") {
            const metadata = JSON.parse(body.toString("utf8") || "{}") as { name?: string }
            const id = String(sessions.size + 1)
            sessions.set(id, { bucket: m[1]!, name: metadata.name ?? url.searchParams.get("name") ?? "", data: [] })
            res.writeHead(200, {
              location: `${base()}/upload/storage/v1/b/${m[1]}/o?uploadType=resumable&upload_id=${id}`
            })
            return res.end()
          }
          const session = sessions.get(url.searchParams.get("upload_id") ?? "")
          if (session === undefined) return json(res, 404, { error: { code: 404, message: "no such upload" } })
          session.data.push(body)
          const total = /\/(\d+)$/.exec(req.headers["content-range"] ?? "")?.[1]
          const received = Buffer.concat(session.data)
          if (total === undefined || Number(total) !== received.length) {
            res.writeHead(308, received.length === 0 ? {} : { range: `bytes=0-${received.length - 1}` })
            return res.end()
          }
          objects.set(`${session.bucket}/${session.name}`, received)
          return json(res, 200, meta(session.bucket, session.name, received))
        }
        if (m !== null && req.method === "POST") {
          // multipart/related: a JSON part (the metadata, with the name) and the media part
          const boundary = /boundary=([^;]+)/.exec(req.headers["content-type"] ?? "")?.[1]?.replace(/"/g, "")
          if (boundary === undefined) return json(res, 400, { error: { code: 400, message: "no boundary" } })
          const parts: Array<Buffer> = []
          const marker = Buffer.from(`--${boundary}`)
          let at = body.indexOf(marker)
          while (at >= 0) {
            const next = body.indexOf(marker, at + marker.length)
            if (next < 0) break
            parts.push(body.subarray(at + marker.length, next))
            at = next
          }
          const payload = (p: Buffer) => {
            const start = p.indexOf("\r\n\r\n") + 4
            return p.subarray(start, p.length - 2) // the CRLF before the next boundary
          }
          const metadata = JSON.parse(payload(parts[0]!).toString("utf8")) as { name?: string }
          const name = metadata.name ?? url.searchParams.get("name") ?? ""
          const media = Buffer.from(payload(parts[1]!))
          objects.set(`${m[1]}/${name}`, media)
          return json(res, 200, meta(m[1]!, name, media))
        }
        m = /^\/storage\/v1\/b\/([^/]+)\/o\/(.+)$/.exec(url.pathname)
        if (m !== null) {
          const name = decodeURIComponent(m[2]!)
          const bytes = objects.get(`${m[1]}/${name}`)
          if (req.method === "DELETE") {
            if (bytes === undefined) return missing(res, name)
            objects.delete(`${m[1]}/${name}`)
            res.writeHead(204).end()
            return
          }
          if (bytes === undefined) return missing(res, name)
          if (url.searchParams.get("alt") === "media") {
            res.writeHead(200, { "content-type": "application/octet-stream", "content-length": String(bytes.length) })
            return res.end(bytes)
          }
          return json(res, 200, meta(m[1]!, name, bytes))
        }
        m = /^\/storage\/v1\/b\/([^/]+)\/o$/.exec(url.pathname)
        if (m !== null && req.method === "GET") {
          const prefix = url.searchParams.get("prefix") ?? ""
          const delimiter = url.searchParams.get("delimiter")
          const items: Array<unknown> = []
          const prefixes = new Set<string>()
          for (const [key, bytes] of [...objects].sort(([a], [b]) => (a < b ? -1 : 1))) {
            if (!key.startsWith(`${m[1]}/`)) continue
            const name = key.slice(m[1]!.length + 1)
            if (!name.startsWith(prefix)) continue
            const rest = name.slice(prefix.length)
            const cut = delimiter === null ? -1 : rest.indexOf(delimiter)
            if (cut >= 0) prefixes.add(prefix + rest.slice(0, cut + 1))
            else items.push(meta(m[1]!, name, bytes))
          }
          return json(res, 200, { kind: "storage#objects", items, prefixes: [...prefixes] })
        }
        json(res, 404, { error: { code: 404, message: `not in the stand-in: ${req.method} ${url.pathname}` } })
      })
    })
    server.listen(0, "127.0.0.1", () => {
      resume(Effect.succeed({ url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, server, requests }))
    })
  }),
  ({ server }) =>
    Effect.async<void>((resume) => {
      server.close(() => resume(Effect.void))
    })
)

describe("GCS artifact store on a stand-in of the JSON API", () => {
  it.scoped("round-trips, lists one level with sizes, NotFound, deletes", () =>
    Effect.gen(function*() {
      const standIn = yield* startStandIn
      // a stream (unknown length) goes as a resumable upload of 256 KiB chunks here (MLflow's default is 100 MiB)
      const stores = yield* Effect.provide(
        ArtifactStore.makeResolver({ gcs: { apiEndpoint: standIn.url, maxAttempts: 1, uploadChunkSize: 256 * 1024 } }),
        NodeContext.layer
      )
      const store = yield* stores.resolve("gs://forml/mlruns/1/abc/artifacts")
      yield* store.upload("tag.toml", text("states = []\n"))
      yield* store.upload("dir/sub/state.bin", Stream.make(text("ab"), text("cd")))
      const large = new Uint8Array(600 * 1024).map((_, i) => i % 251)
      yield* store.upload("large.bin", Stream.make(large.subarray(0, 100_000), large.subarray(100_000)))
      expect(yield* store.read("large.bin")).toEqual(large)
      expect(decode(yield* store.read("tag.toml"))).toBe("states = []\n")
      expect(decode(yield* collect(store.download("dir/sub/state.bin")))).toBe("abcd")
      expect((yield* store.list()).map((f) => [f.path, f.isDir, f.fileSize])).toEqual([
        ["dir", true, undefined],
        ["large.bin", false, large.length],
        ["tag.toml", false, 12]
      ])
      expect((yield* store.list("dir")).map((f) => f.path)).toEqual(["dir/sub"])
      expect(yield* Effect.flip(store.read("nope"))).toMatchObject({ _tag: "NotFound", key: "nope" })
      expect(yield* Effect.flip(collect(store.download("nope")))).toMatchObject({ _tag: "NotFound" })
      yield* store.remove("dir")
      expect((yield* store.list()).map((f) => f.path)).toEqual(["large.bin", "tag.toml"])
      expect(standIn.requests.some((r) => r.startsWith("POST /upload/storage/v1/b/forml/o"))).toBe(true)
      // the large stream went in several chunks
      expect(standIn.requests.filter((r) => r.startsWith("PUT /upload/storage/v1/b/forml/o")).length).toBeGreaterThan(2)
    }))
})
