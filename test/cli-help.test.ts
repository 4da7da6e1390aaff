/**
 * The built command's help: every option and argument says what it is for, without @effect/cli's generic type
 * sentences, and in colour only on a terminal (never with NO_COLOR).
 */
import { execFileSync, spawn } from "node:child_process"
import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { describe, expect, it } from "vitest"
import * as Help from "../src/cli/Help.js"
import { cli, isBuilt, mainJs, repoRoot, runProgram, tempDir } from "./support/cli.js"

const COMMANDS = ["list", "push", "pull", "show", "state", "commit", "demo", "gc"] as const
const GENERIC = ["A user-defined piece of text.", "A true or false value."]

const hasScript = (() => {
  try {
    execFileSync("script", ["--version"], { stdio: "ignore" })
    return true
  } catch {
    return false
  }
})()

/** The paragraphs under each heading of a section (OPTIONS or ARGUMENTS) of a help text. */
const entries = (help: string, section: string): Map<string, Array<string>> => {
  const lines = help.split("\n")
  const start = lines.indexOf(section)
  const found = new Map<string, Array<string>>()
  let current: Array<string> | undefined
  for (const line of start < 0 ? [] : lines.slice(start + 1)) {
    if (/^[A-Z]+$/.test(line)) break
    if (line === "") continue
    if (/^\S/.test(line)) found.set(line, current = [])
    else current?.push(line.trim())
  }
  return found
}

describe("Help (unit)", () => {
  it("colours a terminal only, and never with NO_COLOR set to anything", () => {
    expect(Help.colour({ isTTY: true }, {})).toBe(true)
    expect(Help.colour({ isTTY: false }, {})).toBe(false)
    expect(Help.colour({}, {})).toBe(false)
    expect(Help.colour({ isTTY: true }, { NO_COLOR: "1" })).toBe(false)
    expect(Help.colour({ isTTY: true }, { NO_COLOR: "false" })).toBe(false)
    expect(Help.colour({ isTTY: true }, { NO_COLOR: "" })).toBe(true)
    expect(Help.colour({ isTTY: true }, { TERM: "dumb" })).toBe(false)
  })

  it("takes FORCE_COLOR first, as Node does: 0 or false never, any other value always", () => {
    expect(Help.colour({ isTTY: false }, { FORCE_COLOR: "1" })).toBe(true)
    expect(Help.colour({}, { FORCE_COLOR: "3", NO_COLOR: "1", TERM: "dumb" })).toBe(true)
    expect(Help.colour({ isTTY: true }, { FORCE_COLOR: "0" })).toBe(false)
    expect(Help.colour({ isTTY: true }, { FORCE_COLOR: "false" })).toBe(false)
    expect(Help.colour({ isTTY: true }, { FORCE_COLOR: "" })).toBe(true)
    expect(Help.colour({ isTTY: false }, { FORCE_COLOR: "" })).toBe(false)
  })

  it("knows @effect/cli's type sentences from @effect/cli itself, and drops them with their blank line", () => {
    for (const sentence of [...GENERIC, "A floating point number.", "A file.", "An existing file or directory."]) {
      expect(Help.typeSentences().has(sentence), sentence).toBe(true)
    }
    const help = "--json\n\n  A true or false value.\n\n  Print JSON\n"
    expect(Help.withoutTypeSentences(help)).toBe("--json\n\n  Print JSON\n")
    expect(Help.withoutTypeSentences("A true or false value.")).toBe("A true or false value.")
    expect(Help.plain("\u001b[0;1mUSAGE\u001b[0m")).toBe("USAGE")
  })
})

describe("forml-mlflow --help", () => {
  // fail, not skip, when the command is not built: a missing build must not pass for a green run
  if (!isBuilt()) throw new Error("dist/cli/main.js is missing: run `npm run build` before these tests")
  it("through a pipe: no escape codes, no type sentences, a description under every option and argument", async () => {
    const runs = await Promise.all([
      // as a user types it
      runProgram("sh", ["-c", `"${process.execPath}" "${mainJs}" --help | cat`], { cwd: repoRoot }),
      ...COMMANDS.map((c) => cli([c, "--help"], { cwd: repoRoot }))
    ])
    for (const [i, r] of runs.entries()) {
      const name = i === 0 ? "forml-mlflow" : COMMANDS[i - 1]!
      expect(r.code, `${name}: ${r.stderr}`).toBe(0)
      expect(r.out, name).toContain("USAGE")
      expect(r.out, name).not.toContain("\u001b[")
      for (const sentence of GENERIC) expect(r.out, name).not.toContain(sentence)
      const described = [...entries(r.out, "OPTIONS"), ...entries(r.out, "ARGUMENTS")]
      expect(described.length, name).toBeGreaterThan(3)
      for (const [heading, paragraphs] of described) {
        // the first paragraph says what it is for: not a type, not only "optional"
        expect(paragraphs[0], `${name} ${heading}`).toBeDefined()
        expect(Help.typeSentences().has(paragraphs[0]!), `${name} ${heading}`).toBe(false)
        expect(paragraphs[0], `${name} ${heading}`).not.toMatch(/^This (setting|argument) /)
      }
    }
    // the subcommands' own options and arguments are among them
    const commit = runs[COMMANDS.indexOf("commit") + 1]!.out
    expect(commit).toMatch(/--score float\n\n {2}A tuning score/)
    expect(commit).toMatch(/<PROJECT>\n\n {2}A project name/)
  })

  it("the executable answers --help and COMMAND --help (or -h) with the program's own bytes, plain and in colour", async () => {
    const bundle = join(repoRoot, "dist", "cli", "forml-mlflow.cjs")
    const program = (args: ReadonlyArray<string>, env: Record<string, string | undefined>) =>
      runProgram(process.execPath, [bundle, ...args], { cwd: repoRoot, env })
    // the program for a few (each start of it costs a third of a second); the test above reads every command's help
    const lines = [["--help"], ["-h"], ["list", "-h"], ["commit", "--help"]]
    for (const env of [{ FORCE_COLOR: undefined, NO_COLOR: undefined }, { FORCE_COLOR: "1", NO_COLOR: undefined }]) {
      const [answered, ran] = await Promise.all([
        Promise.all(lines.map((args) => cli(args, { cwd: repoRoot, env }))),
        Promise.all(lines.map((args) => program(args, env)))
      ])
      for (const [i, args] of lines.entries()) {
        const name = `${args.join(" ")} ${JSON.stringify(env)}`
        expect(answered[i]!.code, name).toBe(0)
        expect(answered[i]!.stderr, name).toBe("")
        expect(answered[i]!.out, name).toContain("USAGE")
        expect(answered[i]!.out.includes("\u001b["), name).toBe(env.FORCE_COLOR === "1")
        expect(answered[i]!.stdout.equals(ran[i]!.stdout), name).toBe(true)
      }
    }
  })

  it("the stored help is used only when it is well formed: otherwise the program answers", async () => {
    const { dir, remove } = tempDir("forml-help-")
    try {
      const cliDir = join(dir, "dist", "cli")
      mkdirSync(cliDir, { recursive: true })
      copyFileSync(join(repoRoot, "package.json"), join(dir, "package.json"))
      for (const f of ["main.js", "forml-mlflow.cjs", "package.json"]) {
        copyFileSync(join(repoRoot, "dist", "cli", f), join(cliDir, f))
      }
      const run = (args: ReadonlyArray<string>) =>
        runProgram(process.execPath, [join(cliDir, "main.js"), ...args], { cwd: dir, env: { FORCE_COLOR: "0" } })
      const stored = join(cliDir, "forml-mlflow.help.json")
      // an entry the executable can use is printed as it stands (this one is not the program's)
      writeFileSync(
        stored,
        JSON.stringify({ "": { plain: "stored top\n", colour: "x" }, list: { plain: "stored list\n", colour: "y" } })
      )
      expect((await run(["--help"])).out).toBe("stored top\n")
      expect((await run(["list", "-h"])).out).toBe("stored list\n")
      // a command without an entry, a malformed entry or file, or no file: the program itself
      const real = (await runProgram(process.execPath, [join(cliDir, "forml-mlflow.cjs"), "show", "--help"], {
        cwd: dir,
        env: { FORCE_COLOR: "0" }
      })).out
      expect(real).toContain("USAGE")
      expect((await run(["show", "--help"])).out).toBe(real)
      writeFileSync(stored, JSON.stringify({ show: { plain: 3, colour: "x" } }))
      expect((await run(["show", "--help"])).out).toBe(real)
      // a name the file only inherits (Object.prototype's) is no entry
      const inherited = await runProgram(process.execPath, [join(cliDir, "forml-mlflow.cjs"), "constructor", "-h"], {
        cwd: dir,
        env: { FORCE_COLOR: "0" }
      })
      const viaExecutable = await run(["constructor", "-h"])
      expect([viaExecutable.code, viaExecutable.out, viaExecutable.stderr]).toEqual([
        inherited.code,
        inherited.out,
        inherited.stderr
      ])
      writeFileSync(stored, "{ not json")
      expect((await run(["show", "--help"])).out).toBe(real)
    } finally {
      remove()
    }
  })

  it("--help and --version to a reader that went away end quietly: exit 0, nothing on stderr", async () => {
    for (const args of [["--help"], ["--version"]]) {
      const ended = await new Promise<readonly [number | null, string]>((resolve, reject) => {
        const child = spawn(process.execPath, [mainJs, ...args], { stdio: ["ignore", "pipe", "pipe"] })
        child.stdout.destroy()
        let stderr = ""
        child.stderr.on("data", (d: Buffer) => (stderr += d.toString("utf8")))
        child.on("error", reject)
        child.on("close", (code) => resolve([code, stderr]))
      })
      expect(ended, args.join(" ")).toEqual([0, ""])
    }
  })

  it("the executable keeps a code cache only for a bundle naming its build, and runs one without", async () => {
    const { dir, remove } = tempDir("forml-cache-")
    try {
      const cliDir = join(dir, "dist", "cli")
      const cache = join(dir, "cache")
      mkdirSync(cliDir, { recursive: true })
      copyFileSync(join(repoRoot, "package.json"), join(dir, "package.json"))
      for (const f of ["main.js", "package.json"]) copyFileSync(join(repoRoot, "dist", "cli", f), join(cliDir, f))
      const bundle = readFileSync(join(repoRoot, "dist", "cli", "forml-mlflow.cjs"), "utf8")
      expect(bundle.split("\n")[1]).toMatch(/^\/\/ forml-mlflow build [0-9a-f]{16}$/)
      const run = () =>
        runProgram(process.execPath, [join(cliDir, "main.js"), "--version", "--log-level", "warning"], {
          cwd: dir,
          env: { XDG_CACHE_HOME: cache }
        })
      const cached = () => (existsSync(join(cache, "forml-mlflow")) ? readdirSync(join(cache, "forml-mlflow")) : [])
      // with its build named (and no cache beside it), a run leaves one for the next
      writeFileSync(join(cliDir, "forml-mlflow.cjs"), bundle)
      expect((await run()).out.trim()).toBe(JSON.parse(readFileSync(join(repoRoot, "package.json"), "utf8")).version)
      expect(cached()).toHaveLength(1)
      expect(cached()[0]).toMatch(new RegExp(`^${bundle.split("\n")[1]!.split(" ").at(-1)}-v\\d`))
      // without it, the program still runs, and no cache is kept
      rmSync(join(cache, "forml-mlflow"), { recursive: true })
      writeFileSync(join(cliDir, "forml-mlflow.cjs"), bundle.split("\n").filter((_, i) => i !== 1).join("\n"))
      const bare = await run()
      expect([bare.code, bare.out.trim()]).toEqual([
        0,
        JSON.parse(readFileSync(join(repoRoot, "package.json"), "utf8")).version
      ])
      expect(cached()).toEqual([])
    } finally {
      remove()
    }
  })

  it("--version and --completions print plain text", async () => {
    const [version, bash] = await Promise.all([
      cli(["--version"], { cwd: repoRoot }),
      cli(["--completions", "bash"], { cwd: repoRoot })
    ])
    expect(version.out.trim()).toMatch(/^\d+\.\d+\.\d+/)
    // `--version` alone is answered before the program loads; with another option the program answers: the same bytes
    const viaProgram = await cli(["--version", "--log-level", "warning"], { cwd: repoRoot })
    expect(version.out).toBe(viaProgram.out)
    expect(version.out.trim()).toBe(JSON.parse(readFileSync(join(repoRoot, "package.json"), "utf8")).version)
    expect(bash.code).toBe(0)
    expect(bash.out).toContain("complete -F")
    expect(bash.out + version.out).not.toContain("\u001b[")
  })

  it.skipIf(!hasScript)("on a terminal (script(1)): in colour, unless NO_COLOR is set", async () => {
    const onTerminal = (env: Record<string, string | undefined>) =>
      runProgram("script", ["-qec", `"${process.execPath}" "${mainJs}" list --help`, "/dev/null"], {
        cwd: repoRoot,
        env: { TERM: "xterm", NO_COLOR: undefined, ...env }
      })
    const [coloured, noColour] = await Promise.all([onTerminal({}), onTerminal({ NO_COLOR: "1" })])
    expect(coloured.out).toContain("\u001b[")
    expect(noColour.out).toContain("USAGE")
    expect(noColour.out).not.toContain("\u001b[")
    for (const sentence of GENERIC) expect(coloured.out).not.toContain(sentence)
  })
})
