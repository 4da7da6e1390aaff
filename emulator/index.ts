/**
 * A test MLflow tracking server: MLflow's REST API and artifact proxy over node:http, backed by MlflowMemory, answering
 * like the recorded servers (`../shared/mlflow-wire`), with HTTP-level fault hooks and a request log. The tests and
 * the benchmark import it from here; its parts are `server.ts` (node:http and dispatch), `routes.ts` (the REST API),
 * `searches.ts`, `filters.ts` (MLflow's filter grammar), `artifacts.ts` (the proxy), `params.ts`, `replies.ts`,
 * `faults.ts` and `state.ts`.
 */
import { Effect, type Scope } from "effect"
import type { AddressInfo } from "node:net"
import { MlflowMemory, type MlflowMemoryHandle } from "../src/mlflow/MlflowMemory.js"
import { FaultQueue, matches } from "./faults.js"
import { createServer } from "./server.js"
import type { State } from "./state.js"

export { fileStoreNameRefusal, type FilterTarget, parseFilter } from "./filters.js"
export { pythonJson } from "./replies.js"

/**
 * Which recorded server to answer like. `2.17-sqlite` (the default) is the baseline, MLflow 2.17.2 under gunicorn;
 * `3.x-sqlite` adds 3.x's differences: `outputs` on runs, 404 for a missing artifact, `sqlstate`/`error_class` in
 * errors, paged metric history, 400 for a non-numeric experiment id, no trailing empty runs/search page, and, as
 * uvicorn does, an artifact PUT sent chunked (no Content-Length) stored as an empty file with a `200 {}`.
 * Both flavors refuse entity prefixes other than `attribute`, `tag` and `tags` in experiment searches
 * (`attributes.name` is a 400 there), while run searches also take `attributes`, `attr` and `run`.
 */
export type Flavor = "2.17-sqlite" | "3.x-sqlite"

/**
 * The tracking store behind the server, for the behaviour that follows the store rather than the version.
 * `file` (`mlflow server --backend-store-uri /dir`) answers get-by-name through its own unescaped filter
 * `name = '<name>'`, so a name holding a lone `'` is a 400 INVALID_PARAMETER_VALUE there (a search whose filter
 * quotes the name with `"` still finds it); experiments/create checks the name the same way first, so such an
 * experiment cannot be created at all.
 */
export type Backend = "sqlite" | "file"

export interface EmulatorOptions {
  readonly flavor?: Flavor | undefined
  /** The store's behaviour (default `sqlite`, whatever the flavor's name says). */
  readonly backend?: Backend | undefined
  /** Overrides the flavor's trailing empty runs/search page (on for 2.17 sqlite). */
  readonly trailingEmptyPage?: boolean | undefined
  /**
   * The server's `--default-artifact-root` (default: its proxy, `mlflow-artifacts:`). An object store URI
   * (`s3://bucket/prefix`) answers as a server run with `--no-serve-artifacts`: runs point there, and clients read
   * and write the store themselves.
   */
  readonly artifactRoot?: string | undefined
}

export interface RequestRecord {
  readonly method: string
  /** The path with its query string, as received. */
  readonly path: string
  readonly headers: Readonly<Record<string, string | ReadonlyArray<string> | undefined>>
  /** The status answered (0 when the connection was reset or the reply cut short). */
  status: number
  /** The parsed body of a JSON request (artifact bodies are not kept). */
  json?: unknown
}

export interface FaultMatch {
  readonly method?: string | undefined
  /** A substring of the path (with query), or a pattern. */
  readonly path?: string | RegExp | undefined
}

/** One HTTP-level fault, applied to the next `times` (default 1) matching requests. */
export type HttpFault =
  & { readonly times?: number | undefined; readonly match?: FaultMatch | undefined }
  & (
    | {
      /** Answer with this status instead; the body is MLflow's error JSON unless `body` is given. */
      readonly status: number
      readonly errorCode?: string | undefined
      readonly body?: string | undefined
      readonly contentType?: string | undefined
      readonly retryAfter?: number | string | undefined
    }
    /** Close the connection without an answer. */
    | { readonly reset: true }
    /** Answer normally but cut the body short (after half of it) and close the connection. */
    | { readonly truncate: true }
    /** Wait this long (real time) before handling the request normally. */
    | { readonly delayMs: number }
  )

export interface Emulator {
  /** The base URL, to use as MLFLOW_TRACKING_URI. */
  readonly url: string
  readonly flavor: Flavor
  readonly backend: Backend
  /** The store behind the server. */
  readonly handle: MlflowMemoryHandle.Service
  /** Every request so far (oldest first). */
  readonly requests: () => ReadonlyArray<RequestRecord>
  /** How many requests so far matched (all without a match). */
  readonly count: (match?: FaultMatch) => number
  readonly clearRequests: () => void
  /** Queues a fault; faults apply in the order they were queued. */
  readonly fault: (fault: HttpFault) => void
  readonly clearFaults: () => void
}

/** Starts an emulator on 127.0.0.1 (a free port) for the scope. */
export const startEmulator = (options: EmulatorOptions = {}): Effect.Effect<Emulator, never, Scope.Scope> =>
  Effect.gen(function*() {
    const flavor: Flavor = options.flavor ?? "2.17-sqlite"
    const v3 = flavor === "3.x-sqlite"
    const backend: Backend = options.backend ?? "sqlite"
    const handle = yield* MlflowMemory.make({
      trailingEmptyPage: options.trailingEmptyPage ?? !v3,
      defaultArtifactRoot: options.artifactRoot
    })
    const state: State = {
      v3,
      backend,
      handle,
      mlflow: handle.mlflow,
      trailingEmptyPage: !v3 && options.trailingEmptyPage !== false,
      extras: new Map()
    }
    const log: Array<RequestRecord> = []
    const faults = new FaultQueue()
    const server = createServer(state, log, faults)

    const url = yield* Effect.acquireRelease(
      Effect.async<string>((resume) => {
        server.listen(0, "127.0.0.1", () => {
          const address = server.address() as AddressInfo
          resume(Effect.succeed(`http://127.0.0.1:${address.port}`))
        })
      }),
      () =>
        Effect.async<void>((resume) => {
          server.closeAllConnections()
          server.close(() => resume(Effect.void))
        })
    )

    return {
      url,
      flavor,
      backend,
      handle,
      requests: () => log.slice(),
      count: (match?: FaultMatch) => log.filter((r) => matches(match, r)).length,
      clearRequests: () => {
        log.length = 0
      },
      fault: (fault: HttpFault) => faults.push(fault),
      clearFaults: () => faults.clear()
    }
  })

/** Runs `f` with an emulator that lives as long as the returned Effect. */
export const withEmulator = <A, E, R>(
  f: (emulator: Emulator) => Effect.Effect<A, E, R>,
  options?: EmulatorOptions
): Effect.Effect<A, E, R> => Effect.scoped(Effect.flatMap(startEmulator(options), f))
