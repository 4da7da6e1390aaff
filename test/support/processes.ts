/**
 * Runs `test/support/worker.ts` in OS processes: bundles it with esbuild (vite's own, so no build of `dist/` is
 * needed) and spawns it with a plan, collecting its JSON-line events, exit status and signal.
 */
import { type ChildProcess, spawn } from "node:child_process"
import { createHash } from "node:crypto"
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import type { Event, Plan } from "./worker.js"

export type { Event, Plan, Step } from "./worker.js"

let bundled: Promise<string> | undefined

const repoRoot = fileURLToPath(new URL("../../", import.meta.url))

/** A digest of every source the worker bundles (the library and the worker), naming its cached bundle. */
const sourceDigest = (): string => {
  const hash = createHash("sha256")
  const walk = (dir: string): void => {
    for (const entry of readdirSync(dir, { withFileTypes: true }).sort((a, b) => (a.name < b.name ? -1 : 1))) {
      const full = join(dir, entry.name)
      if (entry.isDirectory()) walk(full)
      else if (entry.name.endsWith(".ts")) hash.update(full).update(readFileSync(full))
    }
  }
  walk(join(repoRoot, "src"))
  walk(join(repoRoot, "test", "support"))
  hash.update(readFileSync(join(repoRoot, "package-lock.json")))
  return hash.digest("hex").slice(0, 16)
}

/**
 * The worker as one self-contained ES module. It is built on first use and cached in the temporary directory under
 * a digest of its sources, so the test files (and runs) share one build until a source changes.
 */
export const workerScript = (): Promise<string> => {
  if (bundled === undefined) {
    bundled = (async () => {
      const dir = join(tmpdir(), "forml-mlflow-worker")
      mkdirSync(dir, { recursive: true })
      const outfile = join(dir, `worker-${sourceDigest()}.mjs`)
      if (existsSync(outfile)) return outfile
      const { build } = await import("esbuild")
      const staged = `${outfile}.${process.pid}.tmp`
      await build({
        entryPoints: [join(repoRoot, "test", "support", "worker.ts")],
        outfile: staged,
        bundle: true,
        platform: "node",
        format: "esm",
        target: "node20",
        logLevel: "silent",
        // CommonJS dependencies bundled into ESM need a require of their own
        banner: { js: "import { createRequire as __cr } from 'node:module'; const require = __cr(import.meta.url);" }
      })
      renameSync(staged, outfile)
      // bundles of older sources are of no further use
      for (const name of readdirSync(dir)) {
        if (name.startsWith("worker-") && name.endsWith(".mjs") && join(dir, name) !== outfile) {
          rmSync(join(dir, name), { force: true })
        }
      }
      return outfile
    })()
  }
  return bundled
}

export interface Worker {
  readonly child: ChildProcess
  readonly events: Array<Event>
  /** Everything the worker wrote (stdout and stderr), for scans and failure messages. */
  readonly output: () => string
  /** Resolves with the first event that satisfies `match` (rejects if the process ends first or after `ms`). */
  readonly waitFor: (match: (e: Event) => boolean, ms?: number) => Promise<Event>
  /** Resolves when the process has ended: its exit code, or the signal that ended it. */
  readonly exited: Promise<{ readonly code: number | null; readonly signal: NodeJS.Signals | null }>
  readonly kill: () => Promise<void>
}

/** Starts a worker with `plan`, with `env` added to this process's environment. */
export const startWorker = async (plan: Plan, env: Record<string, string> = {}): Promise<Worker> => {
  const script = await workerScript()
  const child = spawn(process.execPath, [script, JSON.stringify(plan)], {
    env: { ...process.env, ...env },
    stdio: ["ignore", "pipe", "pipe"]
  })
  const events: Array<Event> = []
  let text = ""
  let pending = ""
  const listeners = new Set<() => void>()
  let ended = false
  child.stdout!.setEncoding("utf8")
  child.stderr!.setEncoding("utf8")
  child.stdout!.on("data", (chunk: string) => {
    text += chunk
    pending += chunk
    const lines = pending.split("\n")
    pending = lines.pop() ?? ""
    for (const line of lines) {
      if (line.trim() === "") continue
      try {
        events.push(JSON.parse(line) as Event)
      } catch {
        // not an event: kept in the output only
      }
    }
    for (const l of listeners) l()
  })
  child.stderr!.on("data", (chunk: string) => {
    text += chunk
  })
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.on("close", (code, signal) => {
      ended = true
      for (const l of listeners) l()
      resolve({ code, signal })
    })
  })
  const waitFor = (match: (e: Event) => boolean, ms = 30_000) =>
    new Promise<Event>((resolve, reject) => {
      const check = () => {
        const found = events.find(match)
        if (found !== undefined) {
          done()
          resolve(found)
        } else if (ended) {
          done()
          reject(new Error(`worker ended before the awaited event; output:\n${text}`))
        }
      }
      const timer = setTimeout(() => {
        done()
        reject(new Error(`no awaited event within ${ms} ms; output:\n${text}`))
      }, ms)
      const done = () => {
        clearTimeout(timer)
        listeners.delete(check)
      }
      listeners.add(check)
      check()
    })
  const kill = async () => {
    if (!ended) child.kill("SIGKILL")
    await exited
  }
  return { child, events, output: () => text, waitFor, exited, kill }
}

/** Runs a worker to its end and returns it; fails with the worker's output unless it exits 0. */
export const runWorker = async (plan: Plan, env: Record<string, string> = {}): Promise<Worker> => {
  const worker = await startWorker(plan, env)
  const { code, signal } = await worker.exited
  if (code !== 0) throw new Error(`worker exited with ${code ?? signal}; output:\n${worker.output()}`)
  return worker
}
