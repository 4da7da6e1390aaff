/**
 * The tracking server's artifact proxy (`mlflow-artifacts:` URIs) as an `ArtifactStore`: uploads with their length,
 * downloads streamed, reads and listings retried like every other call.
 *
 * @internal
 */
import type * as FileSystem from "@effect/platform/FileSystem"
import * as HttpClientRequest from "@effect/platform/HttpClientRequest"
import type * as HttpClientResponse from "@effect/platform/HttpClientResponse"
import { Chunk, Effect, Either, Option, Ref, Sink, Stream } from "effect"
import { StorageError, TransportError } from "../../errors.js"
import * as ArtifactStore from "../ArtifactStore.js"
import * as LocalArtifacts from "../LocalArtifacts.js"
import type { ArtifactSource } from "../Mlflow.js"
import * as Wire from "../wire.js"
import { Acknowledged, describeHttpError, type Exchange, isDomain, readText, unexpected } from "./httpExchange.js"
import { encodePath } from "./httpUris.js"

/** Where the proxy keeps a run's artifacts: the server's base URL and the root's path segments. */
export interface ProxyLocation {
  readonly base: string
  readonly root: ReadonlyArray<string>
}

/** The proxy of `location` as a store for the run whose artifact root is `root`. */
export const make = (
  exchange: Exchange,
  fs: FileSystem.FileSystem,
  root: string,
  location: ProxyLocation
): ArtifactStore.ArtifactStore => {
  const proxyUrl = (path: string) =>
    `${location.base}/api/2.0/mlflow-artifacts/artifacts/${encodePath([...location.root, ...path.split("/")])}`

  const proxyUpload = <E = never>(path: string, source: ArtifactSource<E>) =>
    Effect.gen(function*() {
      const url = proxyUrl(path)
      if (source instanceof Uint8Array) {
        const put = HttpClientRequest.put(url, { acceptJson: true })
        const text = yield* exchange.withRetries(
          exchange.attempt(HttpClientRequest.bodyUint8Array(put, source, "application/octet-stream"), {
            entity: "artifact",
            key: path
          }, readText)
        ).pipe(Effect.catchIf(isDomain, unexpected))
        yield* exchange.decode(put, Acknowledged, text)
        return
      }
      if ("file" in source) return yield* putFile(url, path, source.file)
      // Every body carries its length: MLflow 3.x stores a chunked body as an empty file and answers 200. A
      // stream of unknown length is spooled to a temporary file first, then sent like a file.
      return yield* Effect.scoped(
        Effect.gen(function*() {
          const spool = yield* fs.makeTempFileScoped({ prefix: "forml-mlflow-upload-" }).pipe(
            Effect.mapError(LocalArtifacts.storageError("temporary upload file"))
          )
          yield* source.pipe(
            Stream.filter((chunk) => chunk.length > 0), // the file sink refuses an empty write
            Stream.run(Sink.mapError(fs.sink(spool), LocalArtifacts.storageError(spool)))
          )
          return yield* putFile(url, path, spool)
        })
      )
    })

  /**
   * A file PUT with the size the file has when it starts; a file that grows or shrinks while it is sent fails the
   * upload with StorageError (not the server's fault, so not retried). A failed PUT is sent again from the start.
   */
  const putFile = (url: string, path: string, file: string) =>
    Effect.gen(function*() {
      const put = HttpClientRequest.put(url, { acceptJson: true })
      const info = yield* fs.stat(file).pipe(Effect.mapError(LocalArtifacts.storageError(file)))
      const contentLength = Number(info.size)
      const changed = new StorageError({
        path: file,
        reason: `the file changed while it was sent (${contentLength} bytes when it started)`
      })
      const sourceError = yield* Ref.make<Option.Option<StorageError>>(Option.none())
      const body = Stream.suspend(() => {
        let sent = 0
        return fs.stream(file).pipe(
          Stream.mapError(LocalArtifacts.storageError(file)),
          Stream.mapChunksEffect((chunks) => {
            sent += Chunk.reduce(chunks, 0, (n, c) => n + c.length)
            return sent > contentLength ? Effect.fail(changed) : Effect.succeed(chunks)
          }),
          Stream.concat(Stream.suspend(() => (sent === contentLength ? Stream.empty : Stream.fail(changed)))),
          Stream.tapError((e) => Ref.set(sourceError, Option.some(e)))
        )
      })
      const once = Effect.gen(function*() {
        yield* Ref.set(sourceError, Option.none())
        // (an empty body goes as bytes: the platform writes no Content-Length of 0 for a stream)
        const request = contentLength === 0
          ? HttpClientRequest.bodyUint8Array(put, new Uint8Array(0), "application/octet-stream")
          : HttpClientRequest.bodyStream(put, body, { contentType: "application/octet-stream", contentLength })
        const exit = yield* Effect.either(
          exchange.attempt(request, { entity: "artifact", key: path }, readText, { timeout: false })
        )
        if (Either.isRight(exit)) return exit.right
        const failed = yield* Ref.get(sourceError)
        if (Option.isSome(failed)) return yield* Effect.fail(failed.value)
        return yield* exit.left
      })
      const text = yield* exchange.withRetries(once).pipe(Effect.catchIf(isDomain, unexpected))
      // a 2xx that is not MLflow's `{}` (a proxy's sign-in page) did not store the artifact
      yield* exchange.decode(put, Acknowledged, text)
    })

  const proxyDownload = (path: string) =>
    Stream.unwrap(
      Effect.gen(function*() {
        const request = HttpClientRequest.get(proxyUrl(path))
        const response = yield* exchange.withRetries(
          exchange.attempt(request, { entity: "artifact", key: path }, Effect.succeed, { missingArtifact: true })
        ).pipe(Effect.catchTag("AlreadyExists", unexpected))
        return response.stream.pipe(
          Stream.mapError((e) =>
            new TransportError({ operation: exchange.operationOf(request), reason: describeHttpError(e) })
          )
        )
      })
    )

  const proxyRead = (path: string) => {
    // the body is read within the attempt: one cut short is sent for again, which a stream cannot be
    const read = (response: HttpClientResponse.HttpClientResponse) =>
      Effect.map(response.arrayBuffer, (buffer) => new Uint8Array(buffer))
    return exchange.withRetries(
      exchange.attempt(HttpClientRequest.get(proxyUrl(path)), { entity: "artifact", key: path }, read, {
        missingArtifact: true
      })
    ).pipe(Effect.catchTag("AlreadyExists", unexpected))
  }

  const proxyList = (dir: string | undefined) =>
    Effect.gen(function*() {
      const listed = [...location.root, ...(dir === undefined ? [] : dir.split("/"))].join("/")
      const request = HttpClientRequest.get(`${location.base}/api/2.0/mlflow-artifacts/artifacts`, {
        urlParams: { path: listed },
        acceptJson: true
      })
      const r = yield* exchange.call(request, Wire.ListArtifactsResponse, { entity: "artifact", key: dir ?? "" }).pipe(
        Effect.catchTag("NotFound", () => Effect.succeed({ files: [] }))
      )
      const prefix = dir === undefined ? "" : `${dir}/`
      return r.files.map((f) => Wire.toFileInfo(f, prefix + f.path))
    })

  const proxyRemove = (path: string) =>
    exchange.call(HttpClientRequest.del(proxyUrl(path), { acceptJson: true }), Acknowledged, {
      entity: "artifact",
      key: path
    }).pipe(Effect.catchTag("NotFound", () => Effect.void), Effect.asVoid)

  return ArtifactStore.checked({
    root,
    upload: proxyUpload,
    download: proxyDownload,
    read: proxyRead,
    list: proxyList,
    remove: proxyRemove
  })
}
