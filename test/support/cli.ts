/**
 * Runs the built `forml-mlflow` command (`dist/cli/main.js`) as a child process and collects what it printed.
 */
import { spawn } from "node:child_process"
import { existsSync, mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import * as path from "node:path"
import { fileURLToPath } from "node:url"

/** The repository root. */
export const repoRoot = fileURLToPath(new URL("../../", import.meta.url))

/** The built entry point (`npm run build` makes it; the test script builds before running the tests). */
export const mainJs = path.join(repoRoot, "dist", "cli", "main.js")

export const isBuilt = (): boolean => existsSync(mainJs)

export interface CliResult {
  readonly code: number | null
  readonly stdout: Buffer
  readonly stderr: string
  /** stdout as UTF-8 text. */
  readonly out: string
  /** stdout parsed as JSON, of the shape the caller states (throws with the output when it is not JSON). */
  readonly json: <A = unknown>() => A
}

export interface CliOptions {
  readonly cwd: string
  /** Variables added to (or, when undefined, removed from) the inherited environment. */
  readonly env?: Readonly<Record<string, string | undefined>> | undefined
}

/** The environment of a run: the parent's without MLflow settings (so a developer's server is never used), plus `extra`. */
const environment = (extra: Readonly<Record<string, string | undefined>>): NodeJS.ProcessEnv => {
  const env: NodeJS.ProcessEnv = {}
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith("MLFLOW_")) env[k] = v
  for (const [k, v] of Object.entries(extra)) {
    if (v === undefined) delete env[k]
    else env[k] = v
  }
  return env
}

/** Runs any program (such as `npm`) in the same way. */
export const runProgram = (
  command: string,
  args: ReadonlyArray<string>,
  options: CliOptions
): Promise<CliResult> =>
  new Promise((resolve, reject) => {
    const child = spawn(command, [...args], {
      cwd: options.cwd,
      env: environment(options.env ?? {}),
      stdio: ["ignore", "pipe", "pipe"]
    })
    const out: Array<Buffer> = []
    const err: Array<Buffer> = []
    child.stdout.on("data", (b: Buffer) => out.push(b))
    child.stderr.on("data", (b: Buffer) => err.push(b))
    child.on("error", reject)
    child.on("close", (code) => {
      const stdout = Buffer.concat(out)
      const text = stdout.toString("utf-8")
      const stderr = Buffer.concat(err).toString("utf-8")
      resolve({
        code,
        stdout,
        stderr,
        out: text,
        json: <A>() => {
          try {
            return JSON.parse(text) as A
          } catch {
            throw new Error(`not JSON (exit ${code}): ${text}\nstderr: ${stderr}`)
          }
        }
      })
    })
  })

/** Runs `node dist/cli/main.js ...args`. */
export const cli = (args: ReadonlyArray<string>, options: CliOptions): Promise<CliResult> =>
  runProgram(process.execPath, [mainJs, ...args], options)

/** A fresh temporary directory and its removal. */
export const tempDir = (prefix = "forml-cli-"): { readonly dir: string; readonly remove: () => void } => {
  const dir = mkdtempSync(path.join(tmpdir(), prefix))
  return { dir, remove: () => rmSync(dir, { recursive: true, force: true }) }
}
