/**
 * meta.yaml of MLflow's file store: written as PyYAML's `safe_dump` writes it and read with PyYAML's type rules.
 *
 * The writer is hand-written because `YAML.stringify` (YAML 1.1, sorted keys, unlimited width, single quotes) matches
 * the sample's files but not PyYAML's quoting of other values: it quotes `08`, `1e5` and `y`, writes `<<`, `=` and
 * `---` plain, double-quotes a quoted string holding `'` (`- it's`) and leaves a tab or U+FEFF unescaped, so such
 * names would not be written as MLflow writes them (`test/mlflow-filestore-yaml.test.ts` checks each case).
 *
 * @internal
 */
import { Either } from "effect"
import YAML from "yaml"
import { StorageError } from "../../errors.js"

/** A meta.yaml mapping as read: values typed as PyYAML's SafeLoader types them (see `resolvePlain`). */
export type Meta = Record<string, unknown>

// A small emitter for meta.yaml, following PyYAML's `safe_dump(default_flow_style=False, allow_unicode=True)`
// (MLflow's `write_yaml`): sorted keys, and for each string the style PyYAML's `analyze_scalar` picks: plain when it
// reads back as the same string, else single-quoted, else (control characters, line breaks) double-quoted with
// PyYAML's escapes. Not reproduced: PyYAML folds long values at 80 columns, writes multi-line values single-quoted
// over several lines and keys over 128 characters as `? key`; the forms written here read back the same.

/** PyYAML's implicit resolvers (bool, float, int, merge, null, timestamp, value): such plain text is not a string. */
const PYYAML_IMPLICIT: ReadonlyArray<RegExp> = [
  /^(?:yes|Yes|YES|no|No|NO|true|True|TRUE|false|False|FALSE|on|On|ON|off|Off|OFF)$/,
  new RegExp(
    "^(?:[-+]?(?:[0-9][0-9_]*)\\.[0-9_]*(?:[eE][-+][0-9]+)?|\\.[0-9][0-9_]*(?:[eE][-+][0-9]+)?" +
      "|[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+\\.[0-9_]*|[-+]?\\.(?:inf|Inf|INF)|\\.(?:nan|NaN|NAN))$"
  ),
  /^(?:[-+]?0b[0-1_]+|[-+]?0[0-7_]+|[-+]?(?:0|[1-9][0-9_]*)|[-+]?0x[0-9a-fA-F_]+|[-+]?[1-9][0-9_]*(?::[0-5]?[0-9])+)$/,
  /^(?:<<|=|~|null|Null|NULL|)$/,
  new RegExp(
    "^(?:[0-9]{4}-[0-9]{2}-[0-9]{2}|[0-9]{4}-[0-9]{1,2}-[0-9]{1,2}(?:[Tt]|[ \\t]+)[0-9]{1,2}:[0-9]{2}:[0-9]{2}" +
      "(?:\\.[0-9]*)?(?:[ \\t]*(?:Z|[-+][0-9]{1,2}(?::[0-9]{2})?))?)$"
  )
]

/** Characters that only a double-quoted scalar can hold: non-printable ones, line breaks, U+FEFF. */
const SPECIAL = /[^\x20-\x7E\xA0-\uD7FF\uE000-\uFEFE\uFF00-\uFFFD\u{10000}-\u{10FFFF}]|[\u2028\u2029]/u

const ESCAPES: Readonly<Record<string, string>> = {
  "\0": "0",
  "\x07": "a",
  "\b": "b",
  "\t": "t",
  "\n": "n",
  "\v": "v",
  "\f": "f",
  "\r": "r",
  "\x1b": "e",
  "\"": "\"",
  "\\": "\\",
  "\x85": "N",
  "\u2028": "L",
  "\u2029": "P"
}

const doubleQuoted = (s: string): string => {
  let out = "\""
  for (const ch of s) {
    const cp = ch.codePointAt(0)!
    const printable = (cp >= 0x20 && cp <= 0x7e) || (cp >= 0xa0 && cp <= 0xd7ff) ||
      (cp >= 0xe000 && cp <= 0xfffd && cp !== 0xfeff)
    const escape = ESCAPES[ch]
    if (escape !== undefined) out += `\\${escape}`
    else if (printable) out += ch
    else if (cp <= 0xff) out += `\\x${cp.toString(16).toUpperCase().padStart(2, "0")}`
    else if (cp <= 0xffff) out += `\\u${cp.toString(16).toUpperCase().padStart(4, "0")}`
    else out += `\\U${cp.toString(16).toUpperCase().padStart(8, "0")}`
  }
  return `${out}"`
}

/** Whether PyYAML writes `s` plain in a block mapping (and reads it back as the same string). */
const plainAllowed = (s: string): boolean =>
  !PYYAML_IMPLICIT.some((re) => re.test(s)) &&
  !s.startsWith(" ") && !s.endsWith(" ") &&
  !/^[#,[\]{}&*!|>'"%@`]/.test(s) &&
  !/^[-?:]( |$)/.test(s) &&
  !s.startsWith("---") && !s.startsWith("...") &&
  !/:( |$)/.test(s) &&
  !s.includes(" #")

const yamlString = (s: string): string =>
  SPECIAL.test(s) ? doubleQuoted(s) : plainAllowed(s) ? s : `'${s.replace(/'/g, "''")}'`

const yamlScalar = (v: unknown): string => {
  if (v === null || v === undefined) return "null"
  if (typeof v === "string") return yamlString(v)
  if (typeof v === "number" || typeof v === "bigint") return String(v)
  if (typeof v === "boolean") return v ? "true" : "false"
  if (v instanceof PlainText) return v.text
  return yamlString(JSON.stringify(v) ?? "")
}

const isMapping = (v: unknown): v is Meta =>
  typeof v === "object" && v !== null && !Array.isArray(v) && !(v instanceof PlainText)

const sortedKeys = (m: Meta): ReadonlyArray<string> => Object.keys(m).sort((a, b) => (a < b ? -1 : a > b ? 1 : 0))

/** `meta.yaml` text as MLflow writes it (see above). */
export const renderYaml = (data: Meta): string => {
  const lines: Array<string> = []
  const block = (m: Meta, indent: string) => {
    for (const key of sortedKeys(m)) {
      const v = m[key]
      const head = `${indent}${yamlString(key)}:`
      if (isMapping(v)) {
        if (Object.keys(v).length === 0) lines.push(`${head} {}`)
        else {
          lines.push(head)
          block(v, `${indent}  `)
        }
      } else if (Array.isArray(v)) {
        if (v.length === 0) lines.push(`${head} []`)
        else {
          lines.push(head)
          for (const item of v) lines.push(`${indent}- ${yamlScalar(item)}`)
        }
      } else lines.push(`${head} ${yamlScalar(v)}`)
    }
  }
  block(data, "")
  return lines.map((l) => `${l}\n`).join("")
}

/**
 * A plain scalar that PyYAML resolves to a type kept here only as text (a float, a timestamp, a non-decimal int):
 * written back verbatim, so a read-modify-write of meta.yaml leaves it as it was.
 */
class PlainText {
  constructor(readonly text: string) {}
}

const [PY_BOOL, PY_FLOAT, PY_INT, PY_NULL_MERGE_VALUE, PY_TIMESTAMP] = PYYAML_IMPLICIT

/** A plain scalar as PyYAML's SafeLoader resolves it; only what meta.yaml holds gets a JS type. */
const resolvePlain = (text: string): unknown => {
  if (/^(?:~|null|Null|NULL|)$/.test(text)) return null
  if (PY_BOOL!.test(text)) return /^(?:yes|Yes|YES|true|True|TRUE|on|On|ON)$/.test(text)
  if (/^[-+]?(?:0|[1-9][0-9_]*)$/.test(text)) {
    const n = Number(text.replace(/_/g, ""))
    if (Number.isSafeInteger(n)) return n
  }
  if (PY_INT!.test(text) || PY_FLOAT!.test(text) || PY_TIMESTAMP!.test(text) || PY_NULL_MERGE_VALUE!.test(text)) {
    return new PlainText(text)
  }
  return text
}

/** Converts a node read with the failsafe schema (every scalar a string) the way PyYAML's SafeLoader types it. */
const fromNode = (node: unknown): unknown => {
  if (YAML.isMap(node)) {
    const out: Meta = {}
    for (const pair of node.items) {
      const key = fromNode(pair.key)
      out[key instanceof PlainText ? key.text : String(key)] = fromNode(pair.value)
    }
    return out
  }
  if (YAML.isSeq(node)) return node.items.map(fromNode)
  if (YAML.isScalar(node)) {
    const text = String(node.value)
    return node.type === "PLAIN" ? resolvePlain(text) : text
  }
  return null
}

/** meta.yaml as the `yaml` package's full parser reads it, typed as PyYAML's SafeLoader types it. */
export const parseYamlDocument = (file: string, text: string): Either.Either<Meta, StorageError> => {
  const bad = (reason: string) => Either.left(new StorageError({ path: file, reason }))
  const doc = YAML.parseDocument(text, { schema: "failsafe", logLevel: "silent", uniqueKeys: false })
  if (doc.errors.length > 0) return bad(`malformed YAML: ${doc.errors[0]!.message}`)
  const value = fromNode(doc.contents)
  return isMapping(value) ? Either.right(value) : bad("meta.yaml is not a mapping")
}

// A reader for the one-line-per-value layout PyYAML writes for meta.yaml (and `renderYaml` writes): a block mapping
// of scalars, one nested mapping level, sequences of scalars, `[]` and `{}`, plain and single-quoted scalars on one
// line. It reads a meta.yaml in a fraction of the full parser's time; anything else (double quotes, folded or
// multi-line values, comments, anchors, flow collections, blank lines, CR, deeper nesting) is left to the full
// parser, so what is read and what is refused stay the same.

/** A plain scalar taken here: no indicator first (a `-` only before a non-space), no `: `, ` #`, tab, `:` last. */
const SIMPLE_PLAIN = /^(?!.*(?::\s| #))(?:[^\s\-?:,[\]{}#&*!|>'"%@`]|-[^\s-])[^\t]*(?<![\s:])$/
/** Characters left to the full parser: those PyYAML double-quotes, and BOM, NEL, line and paragraph separators. */
const SIMPLE_REFUSED = /[^\x20-\x7E\xA0-\uD7FF\uE000-\uFEFE\uFF00-\uFFFD\u{10000}-\u{10FFFF}]|[\u2028\u2029]/u

/** One scalar at the start of `s`: its value, as the node it would be, and the rest of `s` after it. */
const simpleScalar = (
  s: string,
  asKey: boolean
): { readonly quoted: boolean; readonly text: string; readonly rest: string } | undefined => {
  if (s.startsWith("'")) {
    let text = ""
    let i = 1
    for (;;) {
      const close = s.indexOf("'", i)
      if (close < 0) return undefined
      text += s.slice(i, close)
      if (s[close + 1] === "'") {
        text += "'"
        i = close + 2
      } else return { quoted: true, text, rest: s.slice(close + 1) }
    }
  }
  const end = asKey ? s.search(/:(?: |$)/) : s.length
  if (end <= 0) return undefined
  const text = s.slice(0, end)
  return SIMPLE_PLAIN.test(text) && !text.startsWith("---") && !text.startsWith("...")
    ? { quoted: false, text, rest: s.slice(end) }
    : undefined
}

const simpleValue = (s: string): unknown => {
  const scalar = simpleScalar(s, false)
  if (scalar === undefined || scalar.rest !== "") return NOT_SIMPLE
  return scalar.quoted ? scalar.text : resolvePlain(scalar.text)
}

/** `key:` at the start of a line: the key as `fromNode` names it, and what follows the colon (trimmed of one space). */
const simpleKey = (line: string): { readonly key: string; readonly rest: string } | undefined => {
  const scalar = simpleScalar(line, true)
  if (scalar === undefined || !scalar.rest.startsWith(":")) return undefined
  const after = scalar.rest.slice(1)
  if (after !== "" && !after.startsWith(" ")) return undefined
  const resolved = scalar.quoted ? scalar.text : resolvePlain(scalar.text)
  return { key: resolved instanceof PlainText ? resolved.text : String(resolved), rest: after.slice(1) }
}

const NOT_SIMPLE = Symbol("not simple")

/** meta.yaml in PyYAML's one-line layout; undefined when it is not (the full parser reads it then). */
export const parseSimpleYaml = (text: string): Meta | undefined => {
  if (!text.endsWith("\n") || text.includes("\r") || SIMPLE_REFUSED.test(text.replace(/\n/g, ""))) return undefined
  const lines = text.slice(0, -1).split("\n")
  const out: Meta = {}
  let i = 0
  while (i < lines.length) {
    const head = simpleKey(lines[i]!)
    if (head === undefined) return undefined
    i++
    let value: unknown
    if (head.rest === "[]") value = []
    else if (head.rest === "{}") value = {}
    else if (head.rest !== "") value = simpleValue(head.rest)
    else if (lines[i]?.startsWith("- ") || lines[i]?.startsWith("  - ")) {
      // a sequence of scalars, at the key's indentation (PyYAML's) or two spaces in
      const prefix = lines[i]!.startsWith("- ") ? "- " : "  - "
      const items: Array<unknown> = []
      for (; i < lines.length && lines[i]!.startsWith(prefix); i++) {
        const item = simpleValue(lines[i]!.slice(prefix.length))
        if (item === NOT_SIMPLE) return undefined
        items.push(item)
      }
      value = items
    } else if (lines[i]?.startsWith("  ")) {
      const nested: Meta = {}
      for (; i < lines.length && lines[i]!.startsWith("  "); i++) {
        const pair = simpleKey(lines[i]!.slice(2))
        if (pair === undefined || pair.rest === "") return undefined
        const v = pair.rest === "[]" ? [] : pair.rest === "{}" ? {} : simpleValue(pair.rest)
        if (v === NOT_SIMPLE) return undefined
        nested[pair.key] = v
      }
      value = nested
    } else value = null
    if (value === NOT_SIMPLE) return undefined
    out[head.key] = value
  }
  return i === 0 ? undefined : out
}

/** meta.yaml as MLflow's `read_yaml` (PyYAML, YAML 1.1) reads it. */
export const parseYaml = (file: string, text: string): Either.Either<Meta, StorageError> => {
  const simple = parseSimpleYaml(text)
  return simple === undefined ? parseYamlDocument(file, text) : Either.right(simple)
}

/** A meta.yaml value as text (a plain scalar kept as text included); none for null or a collection. */
export const str = (v: unknown): string | undefined => {
  if (v === null || v === undefined) return undefined
  if (typeof v === "string") return v
  if (v instanceof PlainText) return v.text
  if (typeof v === "number" || typeof v === "bigint" || typeof v === "boolean") return String(v)
  return undefined
}

/** A meta.yaml value as a number (an int, or a decimal string as some writers leave ids and times). */
export const num = (v: unknown): number | undefined => {
  if (typeof v === "number") return v
  if (typeof v === "bigint") return Number(v)
  if (typeof v === "string" && /^-?\d+$/.test(v)) return Number(v)
  return undefined
}
