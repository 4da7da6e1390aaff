/**
 * The built command's help: every option and argument says what it is for, without @effect/cli's generic type
 * sentences, and in colour only on a terminal (never with NO_COLOR).
 */
import { execFileSync } from "node:child_process"
import { readFileSync } from "node:fs"
import { join } from "node:path"
import { describe, expect, it } from "vitest"
import * as Help from "../src/cli/Help.js"
import { cli, isBuilt, mainJs, repoRoot, runProgram } from "./support/cli.js"

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
