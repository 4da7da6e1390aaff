/**
 * The meta.yaml writer against PyYAML, the writer MLflow uses: every meta.yaml of the sample written back byte for
 * byte, and awkward values written as PyYAML 6 writes them; and why the writer is not `YAML.stringify`.
 */
import { describe, expect, it } from "@effect/vitest"
import { Either } from "effect"
import { readdirSync, readFileSync } from "node:fs"
import { join } from "node:path"
import YAML from "yaml"
import { parseYaml, renderYaml } from "../src/mlflow/internal/metaYaml.js"
import { sharedPath } from "./support/shared.js"

const sampleDir = sharedPath("mlflow-filestore-sample", "mlruns")
const sampleMetas = readdirSync(sampleDir, { recursive: true, encoding: "utf-8" })
  .filter((f) => f.endsWith("meta.yaml"))

/** The options under which `YAML.stringify` is said to write as PyYAML does. */
const stringifyOptions = { version: "1.1", sortMapEntries: true, lineWidth: 0, singleQuote: true } as const

/**
 * A value, and the scalar PyYAML 6.0.3 writes for it in
 * `yaml.safe_dump({"name": value, "tags": {"k": value}}, default_flow_style=False, allow_unicode=True)`
 * (MLflow's `write_yaml`), which is then `name: <scalar>\ntags:\n  k: <scalar>\n`.
 */
const pyyamlScalars: ReadonlyArray<readonly [string, string]> = [
  ["1", "'1'"],
  ["007", "'007'"],
  ["08", "08"],
  ["-08", "-08"],
  ["1.5", "'1.5'"],
  ["1e5", "1e5"],
  ["0x1F", "'0x1F'"],
  ["0b101", "'0b101'"],
  ["1_000", "'1_000'"],
  ["12:30:45", "'12:30:45'"],
  [".inf", "'.inf'"],
  [".NaN", "'.NaN'"],
  ["yes", "'yes'"],
  ["No", "'No'"],
  ["on", "'on'"],
  ["OFF", "'OFF'"],
  ["y", "y"],
  ["n", "n"],
  ["true", "'true'"],
  ["False", "'False'"],
  ["null", "'null'"],
  ["~", "'~'"],
  ["", "''"],
  ["2024-01-01", "'2024-01-01'"],
  ["2024-01-01 12:00:00", "'2024-01-01 12:00:00'"],
  ["2001-12-14t21:59:43.10-05:00", "'2001-12-14t21:59:43.10-05:00'"],
  [" a", "' a'"],
  ["a ", "'a '"],
  [" ", "' '"],
  ["  two leading", "'  two leading'"],
  ["a:b", "a:b"],
  ["a: b", "'a: b'"],
  ["a:", "'a:'"],
  [":a", ":a"],
  ["http://host:80/x", "http://host:80/x"],
  ["#x", "'#x'"],
  ["a #b", "'a #b'"],
  ["a#b", "a#b"],
  ["it's", "it's"],
  ["'q'", "'''q'''"],
  ["\"q\"", "'\"q\"'"],
  ["- it's", "'- it''s'"],
  ["-", "'-'"],
  ["- x", "'- x'"],
  ["-x", "-x"],
  ["?", "'?'"],
  ["? x", "'? x'"],
  ["[x]", "'[x]'"],
  ["{x}", "'{x}'"],
  ["&a", "'&a'"],
  ["*a", "'*a'"],
  ["!x", "'!x'"],
  ["|", "'|'"],
  [">", "'>'"],
  ["%", "'%'"],
  ["@", "'@'"],
  ["`", "'`'"],
  [",x", "',x'"],
  ["<<", "'<<'"],
  ["=", "'='"],
  ["---", "'---'"],
  ["...", "'...'"],
  ["---x", "'---x'"],
  ["tab\there", "\"tab\\there\""],
  ["\t", "\"\\t\""],
  ["a\u0007b", "\"a\\ab\""],
  ["\uFEFF", "\"\\uFEFF\""],
  ["\u00A0x", "\u00A0x"],
  ["é", "é"],
  ["日本語", "日本語"],
  ["😀", "😀"],
  ["café: au lait", "'café: au lait'"],
  ["x".repeat(100), "x".repeat(100)],
  ["helloworld@test1", "helloworld@test1"],
  ["file:///srv/forml-sample/mlruns/0", "file:///srv/forml-sample/mlruns/0"]
]

/** Values PyYAML folds over lines (over 80 columns with spaces, line breaks): the whole text it writes. */
const pyyamlFolded: ReadonlyArray<readonly [string, string]> = [
  [
    "word ".repeat(30),
    `name: '${"word ".repeat(15).trimEnd()}\n  ${"word ".repeat(15)}'\ntags:\n  k: '${"word ".repeat(16).trimEnd()}\n` +
    `    ${"word ".repeat(14)}'\n`
  ],
  ["multi\nline", "name: 'multi\n\n  line'\ntags:\n  k: 'multi\n\n    line'\n"]
]

const pyyamlText = (scalar: string) => `name: ${scalar}\ntags:\n  k: ${scalar}\n`
const data = (value: string) => ({ name: value, tags: { k: value } })

describe("meta.yaml writer", () => {
  it("writes every meta.yaml of the sample back byte for byte (read, write, same bytes)", () => {
    expect(sampleMetas.length).toBe(15)
    for (const rel of sampleMetas) {
      const text = readFileSync(join(sampleDir, rel), "utf-8")
      expect(renderYaml(Either.getOrThrow(parseYaml(rel, text))), rel).toBe(text)
    }
  })

  it("writes awkward values as PyYAML does: numbers, booleans, null, dates, spaces, colons, #, quotes, unicode", () => {
    for (const [value, scalar] of pyyamlScalars) {
      expect(renderYaml(data(value)), JSON.stringify(value)).toBe(pyyamlText(scalar))
      expect(parseYaml("meta.yaml", pyyamlText(scalar)), JSON.stringify(value)).toEqual(Either.right(data(value)))
    }
  })

  it("writes values PyYAML folds on one line, which reads back as PyYAML's folded text does", () => {
    for (const [value, text] of pyyamlFolded) {
      expect(parseYaml("meta.yaml", text), JSON.stringify(value)).toEqual(Either.right(data(value)))
      expect(parseYaml("meta.yaml", renderYaml(data(value))), JSON.stringify(value)).toEqual(Either.right(data(value)))
    }
  })
})

describe("YAML.stringify as the meta.yaml writer (why it is not used)", () => {
  it("matches the sample's meta.yaml files", () => {
    for (const rel of sampleMetas) {
      const text = readFileSync(join(sampleDir, rel), "utf-8")
      expect(YAML.stringify(YAML.parse(text, { version: "1.1" }), stringifyOptions), rel).toBe(text)
    }
  })

  it("does not write awkward values as PyYAML does", () => {
    const differing = pyyamlScalars
      .filter(([value, scalar]) => YAML.stringify(data(value), stringifyOptions) !== pyyamlText(scalar))
      .map(([value]) => value)
    // each of these would be written otherwise than MLflow writes it (see the header of internal/metaYaml.ts)
    expect(differing).toEqual(
      expect.arrayContaining(["08", "1e5", "y", "<<", "=", "---", "- it's", "tab\there", "\uFEFF"])
    )
  })
})
