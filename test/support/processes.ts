/**
 * Runs `test/support/worker.ts` in OS processes: bundles it with esbuild (vite's own, so no build of `dist/` is
 * needed) and spawns it with a plan, collecting its JSON-line events, exit status and signal.
 */
import { type ChildProcess, spawn } from "node:child_process"
import { createHash } from "node:crypto"
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync } from "node:fs"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import type { Event, Plan } from "./worker.js"

export type { Event, Plan, Step } from "./worker.js"

const repoRoot = fileURLToPath(new URL("../../", import.meta.url))

/** A digest of every source a bundle may hold (the library, the CLI and the test support), naming cached bundles. */
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
 * Bundles live two levels under the repository (`node_modules/.forml-mlflow-test/`), so that a module finding
 * `../../package.json` from its own place (the CLI's version) finds the repository's, as it does from `dist/cli/`.
 */
const bundleDir = join(repoRoot, "node_modules", ".forml-mlflow-test")

const bundles = new Map<string, Promise<string>>()

/**
 * One entry point as a self-contained ES module, built on first use and cached under a digest of the sources, so
 * that the test files (and runs) share one build until a source changes.
 */
const bundle = (name: string, entry: string): Promise<string> => {
  let built = bundles.get(name)
  if (built === undefined) {
    built = (async () => {
      mkdirSync(bundleDir, { recursive: true })
      const outfile = join(bundleDir, `${name}-${sourceDigest()}.mjs`)
      if (existsSync(outfile)) return outfile
      const { build } = await import("esbuild")
      const staged = `${outfile}.${process.pid}.tmp`
      await build({
        entryPoints: [entry],
        outfile: staged,
        bundle: true,
        platform: "node",
        format: "esm",
        target: "node20",
        logLevel: "silent",
        // the native sqlite driver (and pg's optional native one) load from node_modules
        external: ["better-sqlite3", "pg-native"],
        // CommonJS dependencies bundled into ESM need a require of their own
        banner: { js: "import { createRequire as __cr } from 'node:module'; const require = __cr(import.meta.url);" }
      })
      renameSync(staged, outfile)
      // bundles of older sources are of no further use
      for (const file of readdirSync(bundleDir)) {
        if (file.startsWith(`${name}-`) && file.endsWith(".mjs") && join(bundleDir, file) !== outfile) {
          rmSync(join(bundleDir, file), { force: true })
        }
      }
      return outfile
    })()
    bundles.set(name, built)
  }
  return built
}

/** The worker script (`test/support/worker.ts`) as one ES module. */
export const workerScript = (): Promise<string> => bundle("worker", join(repoRoot, "test", "support", "worker.ts"))

/** The `forml-mlflow` command (`src/cli/main.ts`) as one ES module. */
export const cliScript = (): Promise<string> => bundle("cli", join(repoRoot, "src", "cli", "main.ts"))

export interface CliResult {
  readonly code: number | null
  readonly stdout: string
  readonly stderr: string
}

/** Runs `forml-mlflow args...` to its end with `env` added to this process's environment. */
export const runCli = async (
  args: ReadonlyArray<string>,
  env: Record<string, string | undefined> = {},
  cwd: string = repoRoot
): Promise<CliResult> => {
  const script = await cliScript()
  return await new Promise((resolve) => {
    const child = spawn(process.execPath, [script, ...args], {
      env: { ...process.env, ...env },
      cwd,
      stdio: ["ignore", "pipe", "pipe"]
    })
    let stdout = ""
    let stderr = ""
    child.stdout.setEncoding("utf8").on("data", (c: string) => (stdout += c))
    child.stderr.setEncoding("utf8").on("data", (c: string) => (stderr += c))
    child.on("close", (code) => resolve({ code, stdout, stderr }))
  })
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
