/**
 * The emulator's node:http server: each request is logged, may take a queued fault, and is otherwise dispatched to
 * the routes (API, artifact proxy, UI download, health and version) and answered as the recorded servers answer.
 */
import { Effect } from "effect"
import * as Http from "node:http"
import { artifact, ARTIFACTS_PREFIX, listProxy, uiArtifact } from "./artifacts.js"
import { type FaultQueue, statusReply } from "./faults.js"
import type { RequestRecord } from "./index.js"
import type { Params } from "./params.js"
import {
  apiError,
  errorReply,
  fromStore,
  HTML,
  internalErrorPage,
  invalid,
  jsonReply,
  methodNotAllowed,
  notFoundPage,
  Page
} from "./replies.js"
import type { HandlerError, Reply } from "./replies.js"
import { allowHeader, API_ROUTES } from "./routes.js"
import type { State } from "./state.js"

interface Request {
  readonly method: string
  readonly url: URL
  readonly contentType: string | undefined
  readonly body: Uint8Array
  /** Sent without Content-Length. */
  readonly chunked: boolean
}

/** A POST's JSON body (unparsable reads as `{}`, an array crashes the server) or a GET's query. */
const paramsOf = (request: Request, m: string): Effect.Effect<Params, HandlerError> =>
  Effect.gen(function*() {
    if (m !== "POST") {
      const q: Record<string, unknown> = {}
      for (const key of new Set(request.url.searchParams.keys())) {
        const all = request.url.searchParams.getAll(key)
        q[key] = key === "experiment_ids" || key === "order_by" ? all : all[all.length - 1]
      }
      return q
    }
    const contentType = request.contentType
    if (contentType === undefined) return yield* invalid("Bad Request. Content-Type header is missing.")
    if ((contentType.split(";")[0] ?? "").trim().toLowerCase() !== "application/json") {
      return yield* invalid("Bad Request. Content-Type must be one of ['application/json'].")
    }
    let parsed: unknown = {}
    try {
      parsed = JSON.parse(new TextDecoder().decode(request.body))
    } catch {
      parsed = {}
    }
    if (Array.isArray(parsed)) return yield* new Page({ reply: internalErrorPage })
    return typeof parsed === "object" && parsed !== null ? (parsed as Params) : {}
  })

const api = (state: State, request: Request, name: string): Effect.Effect<Reply, HandlerError> =>
  Effect.gen(function*() {
    const route = API_ROUTES[name]
    if (route === undefined) return notFoundPage
    const m = request.method === "HEAD" ? "GET" : request.method
    if (!(route.methods as ReadonlyArray<string>).includes(m)) return methodNotAllowed(allowHeader(route.methods))
    const params = yield* paramsOf(request, m)
    return jsonReply(yield* route.handle(state, params))
  })

/** The reply to one request; every failure becomes the reply the server gives. */
const dispatch = (state: State, request: Request): Effect.Effect<Reply> => {
  const path = request.url.pathname
  const handled: Effect.Effect<Reply, HandlerError> = Effect.suspend(() => {
    if (path === "/health") return Effect.succeed({ status: 200, headers: { "content-type": HTML }, body: "OK" })
    if (path === "/version") {
      const body = state.v3 ? "3.11.2.dev0" : "2.17.2"
      return Effect.succeed({ status: 200, headers: { "content-type": HTML }, body })
    }
    if (path === "/get-artifact") return uiArtifact(state, request.url)
    if (path === ARTIFACTS_PREFIX) {
      if (request.method !== "GET") return Effect.succeed(methodNotAllowed("GET, OPTIONS, HEAD"))
      return listProxy(state, request.url)
    }
    if (path.startsWith(`${ARTIFACTS_PREFIX}/`)) {
      return artifact(state, request.method, path.slice(ARTIFACTS_PREFIX.length + 1), request.body, request.chunked)
    }
    const name = /^\/(?:api|ajax-api)\/2\.0\/mlflow\/(.+)$/.exec(path)?.[1]
    return name === undefined ? Effect.succeed(notFoundPage) : api(state, request, name)
  })
  return handled.pipe(
    Effect.catchAll((e) => {
      const mapped = fromStore(e)
      return Effect.succeed(mapped instanceof Page ? mapped.reply : errorReply(mapped, state.v3))
    }),
    Effect.catchAllDefect((d) => Effect.succeed(errorReply(apiError("INTERNAL_ERROR", String(d)), state.v3)))
  )
}

const send = (res: Http.ServerResponse, record: RequestRecord, reply: Reply, truncate: boolean) => {
  record.status = truncate ? 0 : reply.status
  const headers: Record<string, string | number> = { ...reply.headers }
  const body = reply.body
  if (typeof body === "string" || body instanceof Uint8Array) {
    const bytes = typeof body === "string"
      ? Buffer.from(body, "utf8")
      : Buffer.from(body.buffer, body.byteOffset, body.length)
    headers["content-length"] = bytes.length
    res.writeHead(reply.status, headers)
    if (record.method === "HEAD") return res.end()
    if (truncate) {
      res.write(bytes.subarray(0, Math.floor(bytes.length / 2)))
      return res.destroy()
    }
    return res.end(bytes)
  }
  res.writeHead(reply.status, headers)
  if (truncate) {
    const first = body.chunks[0]
    if (first !== undefined) res.write(first.subarray(0, Math.floor(first.length / 2)))
    // let the partial chunk leave before the connection is cut
    return setTimeout(() => res.destroy(), 10)
  }
  for (const chunk of body.chunks) res.write(chunk)
  res.end()
}

/** A server answering for `state`, logging to `log` and taking faults from `faults`. */
export const createServer = (state: State, log: Array<RequestRecord>, faults: FaultQueue): Http.Server =>
  Http.createServer((req, res) => {
    const method = (req.method ?? "GET").toUpperCase()
    const record: RequestRecord = { method, path: req.url ?? "/", headers: { ...req.headers }, status: 0 }
    log.push(record)
    const chunks: Array<Buffer> = []
    req.on("data", (c: Buffer) => chunks.push(c))
    req.on("error", () => res.destroy())
    req.on("end", () => {
      if (String(req.headers["content-type"] ?? "").startsWith("application/json")) {
        try {
          record.json = JSON.parse(Buffer.concat(chunks).toString("utf8"))
        } catch {
          record.json = undefined
        }
      }
      const fault = faults.take(record)
      if (fault !== undefined && "reset" in fault) return req.socket.destroy()
      if (fault !== undefined && "status" in fault) return send(res, record, statusReply(fault), false)
      const run = () => {
        const request: Request = {
          method,
          url: new URL(req.url ?? "/", "http://127.0.0.1"),
          contentType: req.headers["content-type"],
          body: Buffer.concat(chunks),
          chunked: req.headers["content-length"] === undefined
        }
        void Effect.runPromise(dispatch(state, request)).then((reply) =>
          send(res, record, reply, fault !== undefined && "truncate" in fault)
        )
      }
      if (fault !== undefined && "delayMs" in fault) setTimeout(run, fault.delayMs)
      else run()
    })
  })
