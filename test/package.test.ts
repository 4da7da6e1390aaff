/**
 * The published package as a new user gets it: `npm pack` of the build, installed from the tarball (its dependencies
 * from the npm registry) into a fresh strict ESM TypeScript project with `skipLibCheck: false`, where the README's
 * programs must typecheck against the published declarations. Skipped, saying why, when the registry is unreachable.
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import * as path from "node:path"
import { afterAll, describe, expect, it } from "vitest"
import { type CliResult, isBuilt, repoRoot, runProgram } from "./support/cli.js"
import { readmeBlocks } from "./support/readme.js"

/** Settings npm passes to the scripts it runs (`npm test`) would steer the inner npm; it gets none of them. */
const npmEnv = (): Record<string, string | undefined> =>
  Object.fromEntries(Object.keys(process.env).filter((k) => /^npm_/i.test(k)).map((k) => [k, undefined]))

const npm = (args: ReadonlyArray<string>, cwd: string): Promise<CliResult> =>
  runProgram("npm", args, { cwd, env: npmEnv() })

const show = (r: CliResult) => `exit ${r.code}\n${r.out}\n${r.stderr}`

/** Why the registry cannot be used, or undefined when it answers. */
const registryProblem = async (): Promise<string | undefined> => {
  const configured = await npm(["config", "get", "registry"], repoRoot)
  const registry = configured.out.trim() || "https://registry.npmjs.org/"
  try {
    await fetch(registry, { method: "HEAD", signal: AbortSignal.timeout(10_000) })
    return undefined
  } catch (e) {
    const cause = e instanceof Error && e.cause instanceof Error ? e.cause.message : String(e)
    return `npm registry ${registry} unreachable (${cause})`
  }
}

/** The version of a package installed here, so that the consumer's install hits the npm cache. */
const installedVersion = (name: string): string =>
  (JSON.parse(readFileSync(path.join(repoRoot, "node_modules", name, "package.json"), "utf-8")) as { version: string })
    .version

/** The consumer project: package.json, a strict tsconfig that checks every declaration file, one file per program. */
const writeConsumer = (app: string, programs: ReadonlyArray<string>): void => {
  mkdirSync(app)
  const files: Record<string, string> = {
    "package.json": JSON.stringify({ name: "forml-mlflow-consumer", private: true, type: "module" }),
    "tsconfig.json": JSON.stringify({
      compilerOptions: {
        target: "ES2022",
        module: "NodeNext",
        moduleResolution: "NodeNext",
        strict: true,
        skipLibCheck: false,
        noEmit: true,
        types: ["node"]
      },
      include: ["*.ts"]
    })
  }
  programs.forEach((code, i) => {
    files[`example-${i + 1}.ts`] = code
  })
  for (const [name, text] of Object.entries(files)) writeFileSync(path.join(app, name), text)
}

const problem = await registryProblem()
if (problem !== undefined) console.warn(`test/package.test.ts skipped: ${problem}`)

describe("the packed package in a fresh strict ESM project", () => {
  const dir = mkdtempSync(path.join(tmpdir(), "forml-pack-"))
  afterAll(() => rmSync(dir, { recursive: true, force: true }))

  it.skipIf(problem !== undefined)(
    `typechecks the README's programs against the published declarations${
      problem === undefined ? "" : ` (skipped: ${problem})`
    }`,
    async () => {
      if (!isBuilt()) throw new Error("dist/ is missing: run `npm run build` before these tests")
      const packed = await npm(["pack", "--json", "--ignore-scripts", "--pack-destination", dir], repoRoot)
      expect(packed.code, show(packed)).toBe(0)
      const tarball = path.join(dir, packed.json<Array<{ filename: string }>>()[0]!.filename)

      const app = path.join(dir, "app")
      // the README's programs but the tracing one (it needs @effect/opentelemetry, which the library does not depend on)
      const programs = readmeBlocks(readFileSync(path.join(repoRoot, "README.md"), "utf-8"))
        .filter((b) => !b.isTest && !b.code.includes("@effect/opentelemetry"))
      expect(programs.length).toBeGreaterThan(0)
      writeConsumer(app, programs.map((b) => b.code))

      // @types/node and @types/ws are what any strict consumer of @effect/platform-node installs: its declarations
      // import node's modules and "ws". Nothing of forml-mlflow's own development dependencies is installed.
      const installed = await npm([
        "install",
        "--no-audit",
        "--no-fund",
        "--prefer-offline",
        "--ignore-scripts",
        "--no-package-lock",
        tarball,
        `@types/node@${installedVersion("@types/node")}`,
        "@types/ws@8"
      ], app)
      expect(installed.code, show(installed)).toBe(0)

      const tsc = await runProgram(
        process.execPath,
        [path.join(repoRoot, "node_modules", "typescript", "bin", "tsc"), "-p", app],
        { cwd: app }
      )
      expect(tsc.out + tsc.stderr, "tsc with skipLibCheck: false").toBe("")
      expect(tsc.code).toBe(0)
    },
    300_000
  )
})
