/**
 * The artifact proxy (`/api/2.0/mlflow-artifacts/artifacts`), the UI's `/get-artifact` and the API's
 * artifacts/list, over the store's proxy view, with the failures the recorded servers give.
 */
import { Effect, Either, Option } from "effect"
import type { InvalidInput, MlflowFailure, NotFound } from "../src/errors.js"
import { validateArtifactPath } from "../src/mlflow/Mlflow.js"
import * as Wire from "../src/mlflow/wire.js"
import { optString, runIdOf } from "./params.js"
import type { Params } from "./params.js"
import { apiError, internalErrorPage, invalid, jsonReply, methodNotAllowed, Page } from "./replies.js"
import type { ApiError, HandlerError, Reply } from "./replies.js"
import type { State } from "./state.js"

export const ARTIFACTS_PREFIX = "/api/2.0/mlflow-artifacts/artifacts"
const DOWNLOAD_CHUNK = 64 * 1024

const contentTypeOf = (name: string): string => /\.(txt|toml)$/i.test(name) ? "text/plain" : "application/octet-stream"

/** A download's headers, named after the file. */
const download = (name: string, body: Reply["body"]): Reply => ({
  status: 200,
  headers: { "content-type": contentTypeOf(name), "content-disposition": `attachment; filename=${name}` },
  body
})

/** The location of a run's artifact root under the proxy (`<exp>/<run>/artifacts`). */
const proxyRoot = (artifactUri: string): string =>
  artifactUri.replace(/^mlflow-artifacts:/, "").replace(/^\/+/, "").replace(/\/+$/, "")

const decodeLocation = (encoded: string): Either.Either<string, ApiError> => {
  let location: string
  try {
    location = decodeURIComponent(encoded)
  } catch {
    return Either.left(invalid("Invalid path"))
  }
  location = location.replace(/\/+$/, "")
  if (location.split("/").includes("..") || location.startsWith("/")) return Either.left(invalid("Invalid path"))
  return Either.mapLeft(validateArtifactPath(location), () => invalid("Invalid path"))
}

/** The failure of a GET for a missing file: a directory crashes the server; 3.x says 404, 2.17 a 500. */
const missingArtifact = (state: State, location: string) =>
  Effect.gen(function*() {
    const listed = yield* state.handle.listArtifactsAt(location)
    if (listed.length > 0) return yield* new Page({ reply: internalErrorPage })
    return yield* state.v3
      ? apiError(
        "RESOURCE_DOES_NOT_EXIST",
        `The following failures occurred while downloading one or more artifacts from /srv/mlflow/artifacts:\n##### File ${location} #####\nNo such artifact: '${location}'`
      )
      : apiError(
        "INTERNAL_ERROR",
        `The following failures occurred while downloading one or more artifacts from /srv/mlflow/artifacts:\n##### File ${location} #####\n[Errno 2] No such file or directory: '/srv/mlflow/artifacts/${location}'`
      )
  })

/** One file of the proxy: PUT, GET (sent chunked) or DELETE. */
export const artifact = (
  state: State,
  method: string,
  encoded: string,
  body: Uint8Array,
  chunked: boolean
): Effect.Effect<Reply, ApiError | Page | InvalidInput | MlflowFailure> =>
  Effect.gen(function*() {
    const location = yield* decodeLocation(encoded)
    switch (method) {
      case "PUT":
        // 3.x under uvicorn reads no body from a request without Content-Length: it stores an empty file and
        // still answers 200 {}; 2.17 under gunicorn stores the chunked bytes
        yield* state.handle.putArtifactAt(location, state.v3 && chunked ? new Uint8Array(0) : body)
        return jsonReply({})
      case "DELETE":
        yield* state.handle.deleteArtifactAt(location)
        return jsonReply({})
      case "GET": {
        const bytes = yield* state.handle.getArtifactAt(location).pipe(Effect.option)
        if (Option.isNone(bytes)) return yield* missingArtifact(state, location)
        const chunks: Array<Uint8Array> = []
        for (let i = 0; i < bytes.value.length; i += DOWNLOAD_CHUNK) {
          chunks.push(bytes.value.subarray(i, i + DOWNLOAD_CHUNK))
        }
        return download(location.slice(location.lastIndexOf("/") + 1), { chunks })
      }
      default:
        return yield* new Page({ reply: methodNotAllowed("DELETE, GET, OPTIONS, HEAD, PUT") })
    }
  })

/** The proxy's listing (`?path=`): no path lists nothing. */
export const listProxy = (state: State, url: URL): Effect.Effect<Reply, ApiError | InvalidInput> =>
  Effect.gen(function*() {
    const raw = (url.searchParams.get("path") ?? "").replace(/\/+$/, "")
    if (raw === "") return jsonReply({})
    if (raw.split("/").includes("..")) return yield* invalid("Invalid path")
    const files = yield* state.handle.listArtifactsAt(raw)
    return jsonReply(files.length === 0 ? {} : { files: files.map(Wire.fileInfoJson) })
  })

/** The UI's `/get-artifact?run_uuid=&path=`: the whole file with Content-Length. */
export const uiArtifact = (
  state: State,
  url: URL
): Effect.Effect<Reply, ApiError | NotFound | MlflowFailure | InvalidInput> =>
  Effect.gen(function*() {
    const runId = url.searchParams.get("run_uuid") ?? url.searchParams.get("run_id") ?? ""
    const path = url.searchParams.get("path") ?? ""
    const run = yield* state.mlflow.getRun(runId)
    const bytes = yield* state.handle.getArtifactAt(`${proxyRoot(run.info.artifactUri)}/${path}`)
    return download(path.slice(path.lastIndexOf("/") + 1), bytes)
  })

/** The API's artifacts/list: one level under a run's root, paths relative to that root. */
export const listRunArtifacts = (state: State, p: Params): Effect.Effect<unknown, HandlerError> =>
  Effect.gen(function*() {
    const run = yield* state.mlflow.getRun(yield* runIdOf(p))
    const path = ((yield* optString(p, "path")) ?? "").replace(/\/+$/, "")
    if (path.split("/").includes("..")) return yield* invalid("Invalid path")
    const root = proxyRoot(run.info.artifactUri)
    const files = yield* state.handle.listArtifactsAt(path === "" ? root : `${root}/${path}`)
    return {
      root_uri: run.info.artifactUri,
      ...(files.length === 0
        ? {}
        : { files: files.map((f) => Wire.fileInfoJson({ ...f, path: path === "" ? f.path : `${path}/${f.path}` })) })
    }
  })
