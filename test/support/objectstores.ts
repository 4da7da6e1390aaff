/**
 * Local object stores for the tests, started by the tests themselves: s3rver (S3) in this process, azurite (Azure
 * Blob) as a child process, each on a free loopback port over a temporary directory; and a fault proxy to put in front
 * of either (refuse a request, drop a connection) with a log of what passed.
 */
import { NodeContext } from "@effect/platform-node"
import { Effect, Exit, Redacted, Scope } from "effect"
import { type ChildProcess, spawn } from "node:child_process"
import { mkdtempSync, rmSync } from "node:fs"
import * as Http from "node:http"
import type { AddressInfo } from "node:net"
import * as Net from "node:net"
import { tmpdir } from "node:os"
import { join } from "node:path"
import S3rver from "s3rver"
import { makeResolver, type ObjectStoreOptions } from "../../src/mlflow/ArtifactStore.js"

const tempDir = (prefix: string) =>
  Effect.acquireRelease(
    Effect.sync(() => mkdtempSync(join(tmpdir(), prefix))),
    (dir) => Effect.sync(() => rmSync(dir, { recursive: true, force: true }))
  )

// ---------------------------------------------------------------------------------------------------------------
// s3rver
// ---------------------------------------------------------------------------------------------------------------

export interface S3Server {
  /** `http://127.0.0.1:<port>`, for MLFLOW_S3_ENDPOINT_URL. */
  readonly endpoint: string
  readonly directory: string
  /** The S3 settings for a client of this server (at `endpoint`, or another URL such as a fault proxy in front). */
  readonly options: (endpoint?: string) => ObjectStoreOptions
}

/**
 * Starts s3rver with `buckets` for the scope. s3rver does not check SigV4 signatures (any key pair is accepted). Its
 * listing of more than 1,000 keys needs node's `--openssl-legacy-provider` on Node 20 (page tokens are DES-encrypted):
 * the tests never list that many keys under one prefix.
 */
export const startS3rver = (buckets: ReadonlyArray<string>): Effect.Effect<S3Server, never, Scope.Scope> =>
  Effect.gen(function*() {
    const directory = yield* tempDir("forml-s3rver-")
    const server = new S3rver({
      address: "127.0.0.1",
      port: 0,
      silent: true,
      directory,
      configureBuckets: buckets.map((name) => ({ name, configs: [] }))
    })
    const address = yield* Effect.acquireRelease(
      Effect.promise(() => server.run() as Promise<AddressInfo>),
      () => Effect.promise(() => server.close())
    )
    const endpoint = `http://127.0.0.1:${address.port}`
    return {
      endpoint,
      directory,
      options: (at = endpoint) => ({
        s3: {
          endpointUrl: at,
          region: "us-east-1",
          credentials: { accessKeyId: Redacted.make("S3RVER"), secretAccessKey: Redacted.make("S3RVER") },
          // s3rver stores an `aws-chunked` body with its framing (the SDK's default checksums send one): checksums
          // only where S3 requires them keeps the bodies plain. Needed for s3rver only, never for S3 itself.
          requestChecksumCalculation: "WHEN_REQUIRED",
          maxAttempts: 3
        }
      })
    }
  })

// ---------------------------------------------------------------------------------------------------------------
// azurite
// ---------------------------------------------------------------------------------------------------------------

/** Azurite's well-known development account and key (public, documented by Microsoft). */
export const AZURITE_ACCOUNT = "devstoreaccount1"
export const AZURITE_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="

export interface AzureServer {
  readonly endpoint: string
  /** The connection string of the development account at `endpoint` (or another URL in front of it). */
  readonly connectionString: (endpoint?: string) => string
  readonly options: (endpoint?: string) => ObjectStoreOptions
}

/** A free loopback port, from the OS. */
export const freePort: Effect.Effect<number> = Effect.async((resume) => {
  const probe = Net.createServer()
  probe.listen(0, "127.0.0.1", () => {
    const port = (probe.address() as AddressInfo).port
    probe.close(() => resume(Effect.succeed(port)))
  })
})

/**
 * Starts azurite's blob service (3.35.0: the last to run on Node 20) for the scope, in a child process on a free port,
 * telemetry off. It checks shared-key signatures as Azure does.
 */
export const startAzurite: Effect.Effect<AzureServer, Error, Scope.Scope> = Effect.gen(function*() {
  const location = yield* tempDir("forml-azurite-")
  const port = yield* freePort
  const main = join(process.cwd(), "node_modules", "azurite", "dist", "src", "blob", "main.js")
  const args = [
    main,
    "--blobHost",
    "127.0.0.1",
    "--blobPort",
    String(port),
    "--location",
    location,
    "--silent",
    "--disableTelemetry"
  ]
  const child = yield* Effect.acquireRelease(
    Effect.sync((): ChildProcess => spawn(process.execPath, args, { stdio: ["ignore", "pipe", "pipe"] })),
    (child) =>
      Effect.async<void>((resume) => {
        if (child.exitCode !== null) return resume(Effect.void)
        child.once("exit", () => resume(Effect.void))
        child.kill()
      })
  )
  yield* Effect.async<void, Error>((resume) => {
    let output = ""
    const onData = (chunk: Buffer) => {
      output += chunk.toString()
      if (/successfully listen/.test(output)) resume(Effect.void)
    }
    child.stdout?.on("data", onData)
    child.stderr?.on("data", (chunk: Buffer) => {
      output += chunk.toString()
    })
    child.once("exit", (code) => resume(Effect.fail(new Error(`azurite exited (${code}): ${output.slice(0, 500)}`))))
  }).pipe(Effect.timeoutFail({ duration: "30 seconds", onTimeout: () => new Error("azurite did not start in 30 s") }))
  const endpoint = `http://127.0.0.1:${port}`
  const connectionString = (at = endpoint) =>
    `DefaultEndpointsProtocol=http;AccountName=${AZURITE_ACCOUNT};AccountKey=${AZURITE_KEY};BlobEndpoint=${at}/${AZURITE_ACCOUNT};`
  return {
    endpoint,
    connectionString,
    options: (at = endpoint) => ({
      azure: { connectionString: Redacted.make(connectionString(at)), maxAttempts: 3 }
    })
  }
})

// ---------------------------------------------------------------------------------------------------------------
// A fault proxy
// ---------------------------------------------------------------------------------------------------------------

export interface ProxyFault {
  readonly method?: string | undefined
  /** Matched against the path with its query. */
  readonly url?: RegExp | undefined
  /** How many matching requests it applies to (default 1). */
  readonly times?: number | undefined
  /** Answer with this status and body (an S3 or Azure error document) instead of forwarding. */
  readonly status?: number | undefined
  readonly body?: string | undefined
  /** Read the request, then drop the connection without an answer. */
  readonly reset?: boolean | undefined
}

export interface FaultProxy {
  readonly url: string
  readonly fault: (fault: ProxyFault) => void
  /** Every request so far: method, path with query, and the status answered (0 for a dropped connection). */
  readonly requests: () => ReadonlyArray<{ readonly method: string; readonly url: string; readonly status: number }>
}

/** An HTTP proxy to `target` (bodies streamed through) that applies queued faults to matching requests. */
export const startFaultProxy = (target: string): Effect.Effect<FaultProxy, never, Scope.Scope> =>
  Effect.gen(function*() {
    const to = new URL(target)
    const faults: Array<{ fault: ProxyFault; remaining: number }> = []
    const log: Array<{ method: string; url: string; status: number }> = []
    const server = Http.createServer((req, res) => {
      const method = req.method ?? "GET"
      const url = req.url ?? "/"
      const entry = { method, url, status: 0 }
      log.push(entry)
      const queued = faults.find((f) =>
        f.remaining > 0 && (f.fault.method === undefined || f.fault.method === method) &&
        (f.fault.url === undefined || f.fault.url.test(url))
      )
      if (queued !== undefined) {
        queued.remaining -= 1
        req.resume()
        req.on("end", () => {
          if (queued.fault.reset === true) {
            req.socket.destroy()
            return
          }
          entry.status = queued.fault.status ?? 500
          res.writeHead(entry.status, { "content-type": "application/xml" })
          res.end(queued.fault.body ?? "")
        })
        return
      }
      const upstream = Http.request(
        { host: to.hostname, port: to.port, method, path: url, headers: { ...req.headers, host: to.host } },
        (up) => {
          entry.status = up.statusCode ?? 0
          res.writeHead(up.statusCode ?? 502, up.headers)
          up.pipe(res)
        }
      )
      upstream.on("error", () => req.socket.destroy())
      req.pipe(upstream)
    })
    const port = yield* Effect.acquireRelease(
      Effect.async<number>((resume) => {
        server.listen(0, "127.0.0.1", () => resume(Effect.succeed((server.address() as AddressInfo).port)))
      }),
      () =>
        Effect.async<void>((resume) => {
          server.closeAllConnections()
          server.close(() => resume(Effect.void))
        })
    )
    return {
      url: `http://127.0.0.1:${port}`,
      fault: (fault) => {
        faults.push({ fault, remaining: fault.times ?? 1 })
      },
      requests: () => log
    }
  })

// ---------------------------------------------------------------------------------------------------------------
// One server for a whole test file
// ---------------------------------------------------------------------------------------------------------------

/**
 * A server started once for a test file (on first use) and stopped by `close` (an `afterAll`), so that every test
 * of a contract suite does not pay for its start; tests keep apart by unique key prefixes.
 */
export const shared = <A, E>(start: Effect.Effect<A, E, Scope.Scope>) => {
  let scope: Scope.CloseableScope | undefined
  let started: Promise<A> | undefined
  return {
    get: Effect.suspend((): Effect.Effect<A> => {
      if (started === undefined) {
        scope = Effect.runSync(Scope.make())
        started = Effect.runPromise(Effect.orDie(Scope.extend(start, scope)))
      }
      const running = started
      return Effect.promise(() => running)
    }),
    close: (): Promise<
      void
    > => (scope === undefined ? Promise.resolve() : Effect.runPromise(Scope.close(scope, Exit.void)))
  }
}

// ---------------------------------------------------------------------------------------------------------------
// The forml-mlflow command against a direct-mode server
// ---------------------------------------------------------------------------------------------------------------

export interface CommandLifecycle {
  /** Exit codes and stderr of each step, in order: demo, list, list project, pull, state. */
  readonly steps: ReadonlyArray<
    { readonly args: ReadonlyArray<string>; readonly code: number | null; readonly stderr: string }
  >
  readonly projects: unknown
  readonly releases: unknown
  /** The size of the pulled package file (0 when missing). */
  readonly pulledBytes: number
}

/**
 * A ForML lifecycle through the built `forml-mlflow` command against `trackingUri` with the store's variables in
 * `env` (as a user sets them): demo (pushes releases, trains generations), list, pull, state.
 */
export const commandLifecycle = (
  trackingUri: string,
  env: Readonly<Record<string, string>>
): Effect.Effect<CommandLifecycle> =>
  Effect.promise(async () => {
    const { cli, tempDir: cliTempDir } = await import("./cli.js")
    const tmp = cliTempDir("forml-direct-")
    try {
      const run = (...args: Array<string>) =>
        cli(args, { cwd: tmp.dir, env: { MLFLOW_TRACKING_URI: trackingUri, ...env } })
      const steps: Array<{ args: ReadonlyArray<string>; code: number | null; stderr: string }> = []
      const step = async (...args: Array<string>) => {
        const r = await run(...args)
        steps.push({ args, code: r.code, stderr: r.stderr })
        return r
      }
      await step("demo")
      const projects = (await step("--json", "list")).json()
      const releases = (await step("--json", "list", "forml-demo")).json()
      const pulled = join(tmp.dir, "pulled.4ml")
      await step("pull", "forml-demo", "0.2.0", "-o", pulled)
      await step("state", "forml-demo", "0.2.0", "1", "1", "-o", join(tmp.dir, "state.bin"))
      const { existsSync, statSync } = await import("node:fs")
      return { steps, projects, releases, pulledBytes: existsSync(pulled) ? statSync(pulled).size : 0 }
    } finally {
      tmp.remove()
    }
  })

/** The artifact-store resolver for `options`, on Node's file system. */
export const resolver = (options: ObjectStoreOptions) => Effect.provide(makeResolver(options), NodeContext.layer)
