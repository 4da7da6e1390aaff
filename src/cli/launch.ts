#!/usr/bin/env node
/**
 * The installed `forml-mlflow` executable (built to `dist/cli/main.js`): runs the bundled command
 * (`forml-mlflow.cjs`, made from `main.ts`) through V8's code cache, so that a start does not parse and compile
 * megabytes of JavaScript again. See the Performance section of the README.
 *
 * The cache beside the bundle is made by `npm run build`. When it is missing, or V8 refuses it (another Node
 * version or other V8 flags), the run compiles as usual and leaves a cache for the next run in the user's cache
 * directory. A cache only ever speeds a start up: anything wrong with it falls back to compiling.
 */
import { mkdirSync, readFileSync, renameSync, rmSync, writeFileSync, writeSync } from "node:fs"
import { createRequire } from "node:module"
import { homedir } from "node:os"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import { Script } from "node:vm"
import { colour } from "./terminal.js"

/** The bundle's CommonJS parameters: its code runs as the body of a function taking them. */
type Body = (exports: object, require: NodeJS.Require, module: object, filename: string, dirname: string) => void

const dir = path.dirname(fileURLToPath(import.meta.url))

/**
 * Writes all of `text` to stdout, synchronously (the process exits right after): a full non-blocking pipe is waited
 * for, a reader that went away (`| head -1`) ends the writing quietly, as it ends the program's.
 */
const writeOut = (text: string): void => {
  const bytes = Buffer.from(text, "utf8")
  for (let at = 0; at < bytes.length;) {
    try {
      at += writeSync(1, bytes, at)
    } catch (e) {
      const code = typeof e === "object" && e !== null && "code" in e ? e.code : undefined
      if (code !== "EAGAIN") return
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 5)
    }
  }
}

// `forml-mlflow --version` alone is answered here, byte for byte as the program answers it, without loading the
// program: the package version (0.0.0 when package.json cannot be read)
if (process.argv.length === 3 && process.argv[2] === "--version") {
  let version = "0.0.0"
  try {
    const pkg: unknown = JSON.parse(readFileSync(path.join(dir, "..", "..", "package.json"), "utf8"))
    if (typeof pkg === "object" && pkg !== null && "version" in pkg && typeof pkg.version === "string") {
      version = pkg.version
    }
  } catch {
    // as the program: 0.0.0
  }
  writeOut(`${version}\n\n`)
  process.exit(0)
}

/**
 * The program's answer to `forml-mlflow [COMMAND] --help`, stored by the build (`npm run build` runs the program for
 * each and keeps what it printed, plain and in colour); undefined when the file or the entry is missing or malformed.
 */
const storedHelp = (command: string): { readonly plain: string; readonly colour: string } | undefined => {
  try {
    const stored: unknown = JSON.parse(readFileSync(path.join(dir, "forml-mlflow.help.json"), "utf8"))
    if (typeof stored !== "object" || stored === null || !Object.hasOwn(stored, command)) return undefined
    const texts: unknown = (stored as Record<string, unknown>)[command]
    if (typeof texts !== "object" || texts === null) return undefined
    const { colour: coloured, plain } = texts as Record<string, unknown>
    return typeof plain === "string" && typeof coloured === "string" ? { plain, colour: coloured } : undefined
  } catch {
    return undefined
  }
}

// `forml-mlflow --help` and `forml-mlflow COMMAND --help` (or `-h`), alone, are answered here as well, without
// loading the program: with what the program printed for them at build time, in colour by the program's own rule
const args = process.argv.slice(2)
if ((args.length === 1 || args.length === 2) && (args.at(-1) === "--help" || args.at(-1) === "-h")) {
  const texts = storedHelp(args.length === 2 ? args[0]! : "")
  if (texts !== undefined) {
    writeOut(colour(process.stdout) ? texts.colour : texts.plain)
    process.exit(0)
  }
}

const bundle = path.join(dir, "forml-mlflow.cjs")
const text = readFileSync(bundle, "utf8")
// V8 checks its version, its flags and the length of the source; the build's id (a random one, on the bundle's first
// lines, made by each build) makes the cache this bundle's own. A bundle without one is run without a cache.
const buildId = /^(?:#![^\n]*\n)?\/\/ forml-mlflow build ([0-9a-f]{16})\n/.exec(text)?.[1]
// what a cache file of this build starts with
const stamp = Buffer.from(buildId ?? "", "latin1")
const built = path.join(dir, "forml-mlflow.cache")
/** Where a run leaves a cache when the built one does not fit: per user, never a shared directory. */
const userCache = (): string | undefined => {
  try {
    const given = [process.env.XDG_CACHE_HOME, process.env.LOCALAPPDATA]
      .find((d) => d !== undefined && path.isAbsolute(d))
    const base = given ?? path.join(homedir(), ".cache")
    return buildId === undefined ? undefined : path.join(base, "forml-mlflow", `${buildId}-${process.version}.v8`)
  } catch {
    return undefined
  }
}

/** Runs `f`, ignoring a failure: the cache is an optimisation, never a reason for the command to fail. */
const quietly = (f: () => void): void => {
  try {
    f()
  } catch {
    // the next start compiles, as this one did
  }
}

/** The code cache in `file` if it was made for this bundle. */
const readCache = (file: string): Buffer | undefined => {
  try {
    const data = readFileSync(file)
    return buildId !== undefined && data.length > stamp.length && data.subarray(0, stamp.length).equals(stamp)
      ? data.subarray(stamp.length)
      : undefined
  } catch {
    return undefined
  }
}

// a hashbang is only valid at the very start of a source: keep the line, as a comment
const source = `(function (exports, require, module, __filename, __dirname) { ${
  text.startsWith("#!") ? `//${text.slice(2)}` : text
}\n})`

const compile = (cachedData: Buffer | undefined): Script =>
  new Script(source, cachedData === undefined ? { filename: bundle } : { filename: bundle, cachedData })

// a cache a run left for this Node is tried before the built one (which it was made because of); a refused cache
// costs a compile, so the source is compiled at most twice, and a refused cache of a run's is removed (a run with
// other V8 flags made it), so that the next start does not pay for it again
const userFile = userCache()
let script: Script | undefined
for (const file of [userFile, built]) {
  const data = file === undefined ? undefined : readCache(file)
  if (file === undefined || data === undefined) continue
  script = compile(data)
  if (!script.cachedDataRejected) break
  if (file === userFile) quietly(() => rmSync(file, { force: true }))
}
if (script === undefined || script.cachedDataRejected !== false) {
  const compiled = script ?? compile(undefined)
  script = compiled
  if (userFile !== undefined) {
    // at exit the cache also holds the functions this run compiled on the way (a temporary file and a rename, so
    // that a concurrent start never reads half a cache)
    process.once("exit", () => {
      const staged = `${userFile}.${process.pid}.tmp`
      quietly(() => {
        mkdirSync(path.dirname(userFile), { recursive: true })
        writeFileSync(staged, Buffer.concat([stamp, compiled.createCachedData()]))
        renameSync(staged, userFile)
      })
      quietly(() => rmSync(staged, { force: true }))
    })
  }
}

const body = script.runInThisContext() as Body
const module = { exports: {} }
body.call(module.exports, module.exports, createRequire(bundle), module, bundle, dir)
