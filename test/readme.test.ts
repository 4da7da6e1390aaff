/**
 * Every ```ts block of README.md, read from the README at test time so that the two cannot drift: each is
 * typechecked under the project's compiler settings and run as printed, the import "forml-mlflow" alone pointed at
 * the build. A block that cannot run says so right before its fence: `<!-- not run: reason -->`.
 */
import { Effect, Exit, Scope } from "effect"
import { copyFileSync, existsSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import * as path from "node:path"
import ts from "typescript"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { type Emulator, startEmulator } from "../emulator/index.js"
import { type CliResult, isBuilt, repoRoot, runProgram } from "./support/cli.js"
import { type Block, readmeBlocks } from "./support/readme.js"
import { sharedPath } from "./support/shared.js"

const blocks = readmeBlocks(readFileSync(path.join(repoRoot, "README.md"), "utf-8"))
const distIndex = path.join(repoRoot, "dist", "index.js")

/** A block's source as compiled: the package import pointed at the build, nothing else changed. */
const rewrite = (code: string): string => code.replace(/(from\s+)"forml-mlflow"/g, `$1${JSON.stringify(distIndex)}`)

const fileOf = (block: Block) => `readme-${block.index}${block.isTest ? ".test" : ""}.ts`

/** One program for all blocks (one load of effect's declarations); diagnostics per block, JS emitted beside each. */
const compile = (dir: string): ReadonlyMap<number, string> => {
  const config = ts.getParsedCommandLineOfConfigFile(path.join(repoRoot, "tsconfig.json"), {}, {
    ...ts.sys,
    onUnRecoverableConfigFileDiagnostic: (d) => {
      throw new Error(ts.flattenDiagnosticMessageText(d.messageText, "\n"))
    }
  })
  if (config === undefined) throw new Error("tsconfig.json cannot be read")
  const options: ts.CompilerOptions = {
    ...config.options,
    noEmit: false,
    declaration: false,
    sourceMap: false,
    incremental: false,
    rootDir: dir,
    outDir: dir,
    typeRoots: [path.join(repoRoot, "node_modules", "@types")]
  }
  const files = blocks.map((block) => path.join(dir, fileOf(block)))
  const program = ts.createProgram(files, options)
  const host: ts.FormatDiagnosticsHost = {
    getCanonicalFileName: (f) => f,
    getCurrentDirectory: () => dir,
    getNewLine: () => "\n"
  }
  const result = new Map<number, string>()
  for (const block of blocks) {
    const source = program.getSourceFile(path.join(dir, fileOf(block)))
    if (source === undefined) throw new Error(`${fileOf(block)} is not in the program`)
    const diagnostics = [...program.getSyntacticDiagnostics(source), ...program.getSemanticDiagnostics(source)]
    result.set(block.index, ts.formatDiagnostics(diagnostics, host))
    if (!block.isTest) program.emit(source)
  }
  const global = program.getGlobalDiagnostics().concat(program.getOptionsDiagnostics())
  if (global.length > 0) throw new Error(ts.formatDiagnostics(global, host))
  return result
}

/** What vitest's JSON reporter writes, as far as it is read here. */
interface VitestReport {
  readonly testResults: ReadonlyArray<{
    readonly name: string
    readonly status: string
    readonly assertionResults: ReadonlyArray<unknown>
  }>
}

const describeResult = (r: CliResult) => `exit ${r.code}\nstdout:\n${r.out}\nstderr:\n${r.stderr}`

describe("README.md's TypeScript blocks", () => {
  let dir = ""
  let diagnostics: ReadonlyMap<number, string> = new Map()
  let emulator: Emulator
  const scope = Effect.runSync(Scope.make())
  const ran = new Set<number>()

  beforeAll(async () => {
    if (!isBuilt()) throw new Error("dist/ is missing: run `npm run build` before these tests")
    // A directory outside the repository, as a user's project: the dependencies through a link to ours, and the
    // package the examples open (ForML's helloworld) in the working directory.
    dir = mkdtempSync(path.join(tmpdir(), "forml-readme-"))
    symlinkSync(path.join(repoRoot, "node_modules"), path.join(dir, "node_modules"), "dir")
    copyFileSync(sharedPath("forml-vectors", "helloworld.4ml"), path.join(dir, "helloworld.4ml"))
    for (const block of blocks) writeFileSync(path.join(dir, fileOf(block)), rewrite(block.code))
    diagnostics = compile(dir)
    emulator = await Effect.runPromise(Scope.extend(startEmulator(), scope))
  })
  afterAll(async () => {
    await Effect.runPromise(Scope.close(scope, Exit.void))
    if (dir !== "") rmSync(dir, { recursive: true, force: true })
  })

  it("has blocks, and every marked block gives its reason", () => {
    expect(blocks.length).toBeGreaterThan(0)
    for (const block of blocks) if (block.notRun !== undefined) expect(block.notRun, `line ${block.line}`).not.toBe("")
  })

  const env = () => ({ MLFLOW_TRACKING_URI: emulator.url, MLFLOW_HTTP_REQUEST_MAX_RETRIES: "0" })
  /** The test blocks run in one vitest (one start for all of them); each block's outcome is read from its report. */
  let testRun: Promise<{ readonly result: CliResult; readonly report: VitestReport | undefined }> | undefined
  const runTestBlocks = () => {
    testRun ??= (async () => {
      const files = blocks.filter((b) => b.isTest && b.notRun === undefined).map(fileOf)
      const output = path.join(dir, "vitest-report.json")
      const result = await runProgram(
        process.execPath,
        [
          path.join(repoRoot, "node_modules", "vitest", "vitest.mjs"),
          "run",
          "--root",
          dir,
          "--reporter=json",
          `--outputFile=${output}`,
          ...files
        ],
        { cwd: dir, env: env() }
      )
      const report = existsSync(output) ? (JSON.parse(readFileSync(output, "utf-8")) as VitestReport) : undefined
      return { result, report }
    })()
    return testRun
  }

  for (const block of blocks) {
    const name = `block ${block.index} (line ${block.line}, ${block.heading})`
    it(`${name} typechecks${block.notRun === undefined ? " and runs" : `; not run: ${block.notRun}`}`, async () => {
      expect(diagnostics.get(block.index), "tsc").toBe("")
      if (block.notRun !== undefined) return
      if (block.isTest) {
        const { report, result } = await runTestBlocks()
        const file = report?.testResults.find((r) => path.basename(r.name) === fileOf(block))
        expect(file?.status, describeResult(result)).toBe("passed")
        expect(file?.assertionResults.length ?? 0, describeResult(result)).toBeGreaterThan(0)
      } else {
        const result = await runProgram(process.execPath, [path.join(dir, fileOf(block).replace(/\.ts$/, ".js"))], {
          cwd: dir,
          env: env()
        })
        expect(result.code, describeResult(result)).toBe(0)
      }
      ran.add(block.index)
    })
  }

  it("ran every block not marked `<!-- not run: … -->`", () => {
    const unmarked = blocks.filter((b) => b.notRun === undefined).map((b) => b.index)
    expect([...ran].sort((a, b) => a - b)).toEqual(unmarked)
  })
})
