/**
 * The package manifest `__4ml__.py`: ForML's exact writer template, and a reader for the literal subset of Python
 * that manifests are written in (ForML imports the module; this reader never runs Python).
 */
import { Data, Either, Equal, Hash } from "effect"
import { InvalidManifest } from "../errors.js"
import { ReleaseKey } from "./ReleaseKey.js"
import { floatRepr } from "./internal/pythonRepr.js"

/** The fields a manifest module must define, in the order ForML reads them. */
const FIELDS = ["NAME", "VERSION", "PACKAGE", "MODULES"] as const
type Field = (typeof FIELDS)[number]

/** Module names ForML passes next to `**MODULES`, so a module of that name is a duplicate keyword argument. */
const RESERVED_MODULES: ReadonlySet<string> = new Set(["name", "version", "package"])

/**
 * A ForML package manifest: project name, release version, the Python package holding the project's principal
 * components, and components found in non-conventional modules (`{"source": "hello.world.source"}`).
 */
export class Manifest extends Data.Class<{
  readonly name: string
  readonly version: ReleaseKey
  readonly package: string
  readonly modules: Readonly<Record<string, string>>
}> implements Equal.Equal {
  /** The manifest's file name at the root of a package. */
  static readonly FILENAME = "__4ml__.py"

  /**
   * A manifest from its parts; the version is parsed as a release key (a number is read as Python's `str()` of it).
   * Fails for a bad version and for a module named `name`, `version` or `package` (ForML cannot read those back).
   */
  static make(input: {
    readonly name: string
    readonly version: string | number | ReleaseKey
    readonly package: string
    readonly modules?: Readonly<Record<string, string>> | undefined
  }): Either.Either<Manifest, InvalidManifest> {
    const version = ReleaseKey.is(input.version)
      ? Either.right(input.version)
      : Either.mapLeft(ReleaseKey.parse(input.version), (e) =>
        new InvalidManifest({ reason: `invalid VERSION ${JSON.stringify(e.input)}: ${e.reason}` }))
    return Either.flatMap(version, (v) => build(input.name, v, input.package, Object.entries(input.modules ?? {})))
  }

  /**
   * Reads a manifest source as ForML's `Manifest.read` would, without executing it. Literal assignments of the four
   * fields are evaluated (strings with every Python quoting and escape form, implicit concatenation, int and float
   * versions, dicts, None); other statements are tokenised and ignored unless they could change a field, in which
   * case the result would depend on running Python and the manifest is rejected.
   */
  static read(text: string): Either.Either<Manifest, InvalidManifest> {
    return readManifest(text)
  }

  /**
   * The manifest text in ForML's template: four lines joined by `\n`, no trailing newline, `MODULES` as Python's
   * `json.dumps`. Where ForML writes the name or package raw (and so writes broken Python for a `"` and a different
   * string for a `\`), this writer escapes them so that the file reads back equal, in ForML and here. Text that ForML
   * writes correctly is written byte for byte the same.
   */
  static write(m: Manifest): string {
    return [
      `NAME = ${pyString(m.name)}`,
      `VERSION = ${pyString(m.version.toString())}`,
      `PACKAGE = ${pyString(m.package)}`,
      `MODULES = ${jsonDumps(m.modules)}`
    ].join("\n")
  }

  /** Equal as ForML's manifests are: same name, PEP 440-equal version, same package and modules in any order. */
  [Equal.symbol](that: Equal.Equal): boolean {
    if (!(that instanceof Manifest)) return false
    const mine = Object.entries(this.modules)
    return this.name === that.name && Equal.equals(this.version, that.version) && this.package === that.package &&
      mine.length === Object.keys(that.modules).length &&
      mine.every(([k, v]) => Object.hasOwn(that.modules, k) && that.modules[k] === v)
  }

  [Hash.symbol](): number {
    const modules = Object.entries(this.modules).map(([k, v]) => Hash.string(`${k}\u0000${v}`))
      .reduce((a, b) => a ^ b, 0) // order-insensitive, as the equality
    return Hash.cached(
      this,
      Hash.combine(modules)(Hash.combine(Hash.hash(this.version))(Hash.string(`${this.name}\u0000${this.package}`)))
    )
  }
}

const build = (
  name: string,
  version: ReleaseKey,
  pkg: string,
  modules: ReadonlyArray<readonly [string, string]>
): Either.Either<Manifest, InvalidManifest> => {
  for (const [key] of modules) {
    if (RESERVED_MODULES.has(key)) {
      return Either.left(
        new InvalidManifest({ reason: `MODULES must not name a module ${JSON.stringify(key)} (clashes with ${key})` })
      )
    }
  }
  // fromEntries defines own properties, so even a "__proto__" module stays plain data.
  const record: Readonly<Record<string, string>> = Object.freeze(Object.fromEntries(modules))
  return Either.right(new Manifest({ name, version, package: pkg, modules: record }))
}

// ---------------------------------------------------------------------------------------------------------------
// Writing

/** A double-quoted Python string: only what Python would misread is escaped, everything else stays raw UTF-8. */
const pyString = (s: string): string => {
  let out = "\""
  for (const ch of s) {
    const cp = ch.codePointAt(0) ?? 0
    if (ch === "\\") out += "\\\\"
    else if (ch === "\"") out += "\\\""
    else if (ch === "\n") out += "\\n"
    else if (ch === "\r") out += "\\r"
    else if (cp === 0) out += "\\x00"
    else if (cp >= 0xd800 && cp <= 0xdfff) out += `\\u${hex(cp, 4)}` // a lone surrogate cannot be encoded as UTF-8
    else out += ch
  }
  return out + "\""
}

const JSON_ESCAPES: Readonly<Record<string, string>> = {
  "\\": "\\\\",
  "\"": "\\\"",
  "\b": "\\b",
  "\f": "\\f",
  "\n": "\\n",
  "\r": "\\r",
  "\t": "\\t"
}

/**
 * A string as Python's `json.dumps` (ensure_ascii) writes it: ASCII only, `\uXXXX` in lower-case hex. One
 * difference: json.dumps writes a character above U+FFFF as a surrogate pair, which Python source reads back as two
 * lone surrogates, so it is written as `\UXXXXXXXX` here, which reads back as the character itself.
 */
const jsonString = (s: string): string => {
  let out = "\""
  for (const ch of s) {
    const cp = ch.codePointAt(0) ?? 0
    const short = JSON_ESCAPES[ch]
    if (short !== undefined) out += short
    else if (cp >= 0x20 && cp <= 0x7e) out += ch
    else if (cp > 0xffff) out += `\\U${hex(cp, 8)}`
    else out += `\\u${hex(cp, 4)}`
  }
  return out + "\""
}

/** `json.dumps(dict)` with its default separators `", "` and `": "`. */
const jsonDumps = (modules: Readonly<Record<string, string>>): string =>
  `{${Object.entries(modules).map(([k, v]) => `${jsonString(k)}: ${jsonString(v)}`).join(", ")}}`

const hex = (n: number, width: number): string => n.toString(16).padStart(width, "0")

// ---------------------------------------------------------------------------------------------------------------
// Reading: a tokenizer for Python source (3.11 rules) and an evaluator for literal values

class SyntaxFailure {
  constructor(readonly reason: string, readonly line: number) {}
}

/** A string literal's value, or why it has none without running Python. */
type StringValue =
  | { readonly kind: "str"; readonly value: string }
  | { readonly kind: "bytes" }
  | { readonly kind: "unsupported"; readonly reason: string }

type Token =
  | { readonly type: "name"; readonly text: string; readonly line: number }
  | { readonly type: "number"; readonly text: string; readonly line: number }
  | { readonly type: "op"; readonly text: string; readonly line: number }
  | { readonly type: "string"; readonly text: string; readonly line: number; readonly value: StringValue }

/** A logical line; `indented` lines are the bodies of compound statements. */
interface Line {
  readonly tokens: ReadonlyArray<Token>
  readonly indented: boolean
}

const OPERATORS: ReadonlyArray<string> = [
  "**=", "//=", ">>=", "<<=", "...",
  "->", ":=", "==", "!=", "<=", ">=", "**", "//", "<<", ">>", "+=", "-=", "*=", "/=", "%=", "&=", "|=", "^=", "@=",
  "(", ")", "[", "]", "{", "}", ",", ":", ";", ".", "=", "+", "-", "*", "/", "%", "@", "<", ">", "&", "|", "^", "~"
]
const CLOSING: Readonly<Record<string, string>> = { ")": "(", "]": "[", "}": "{" }
const IDENTIFIER = /[\p{XID_Start}_][\p{XID_Continue}]*/uy
const NUMBER =
  /(?:0[xX](?:_?[0-9a-fA-F])+|0[oO](?:_?[0-7])+|0[bB](?:_?[01])+|(?:(?:\d(?:_?\d)*)?\.\d(?:_?\d)*|\d(?:_?\d)*\.?)(?:[eE][+-]?\d(?:_?\d)*)?)[jJ]?/y
const STRING_PREFIX = /^(?:[rRuUbBfF]|[bB][rR]|[rR][bB]|[fF][rR]|[rR][fF])$/
const IDENTIFIER_CHAR = /[\p{XID_Continue}]/u

const tokenize = (source: string): Either.Either<ReadonlyArray<Line>, SyntaxFailure> => {
  // Python reads source with universal newlines and ignores a UTF-8 byte order mark.
  const src = source.replace(/^\uFEFF/, "").replace(/\r\n?/g, "\n")
  const lines: Array<Line> = []
  const brackets: Array<string> = []
  let current: Array<Token> = []
  let indented = false
  let atLineStart = true
  let line = 1
  let i = 0
  const fail = (reason: string, at: number = line) => Either.left(new SyntaxFailure(reason, at))
  const endLine = () => {
    if (current.length > 0) lines.push({ tokens: current, indented })
    current = []
    atLineStart = true
  }
  // Scans the string literal whose quote is at `quoteAt` (the token, prefix included, starts at `i`) and moves past it.
  const pushString = (quoteAt: number, prefix: string): SyntaxFailure | undefined => {
    const scanned = scanString(src, quoteAt, prefix, line)
    if (Either.isLeft(scanned)) return scanned.left
    const { end, value, newlines } = scanned.right
    current.push({ type: "string", text: src.slice(i, end), line, value })
    line += newlines
    i = end
    return undefined
  }

  while (i < src.length) {
    const c = src[i] as string
    if (atLineStart) {
      // Indentation of a new logical line; blank and comment-only lines are not statements.
      let j = i
      while (j < src.length && (src[j] === " " || src[j] === "\t" || src[j] === "\f")) j++
      if (j >= src.length) break
      if (src[j] === "\n") {
        i = j + 1
        line++
        continue
      }
      if (src[j] === "#") {
        i = j
        while (i < src.length && src[i] !== "\n") i++
        continue
      }
      indented = j > i
      atLineStart = false
      i = j
      continue
    }
    if (c === " " || c === "\t" || c === "\f") {
      i++
      continue
    }
    if (c === "#") {
      while (i < src.length && src[i] !== "\n") i++
      continue
    }
    if (c === "\\") {
      if (src[i + 1] !== "\n") return fail("unexpected character after line continuation character")
      i += 2
      line++
      continue
    }
    if (c === "\n") {
      i++
      line++
      if (brackets.length === 0) endLine()
      continue
    }
    IDENTIFIER.lastIndex = i
    const ident = IDENTIFIER.exec(src)
    if (ident !== null) {
      const word = ident[0]
      const after = i + word.length
      if (STRING_PREFIX.test(word) && (src[after] === "'" || src[after] === "\"")) {
        const failed = pushString(after, word.toLowerCase())
        if (failed !== undefined) return Either.left(failed)
        continue
      }
      // Python compares identifiers after NFKC normalisation (a full-width NAME is NAME).
      current.push({ type: "name", text: word.normalize("NFKC"), line })
      i = after
      continue
    }
    if (c === "'" || c === "\"") {
      const failed = pushString(i, "")
      if (failed !== undefined) return Either.left(failed)
      continue
    }
    NUMBER.lastIndex = i
    const num = /[0-9]/.test(c) || (c === "." && /[0-9]/.test(src[i + 1] ?? "")) ? NUMBER.exec(src) : null
    if (num !== null) {
      const end = i + num[0].length
      if (end < src.length && IDENTIFIER_CHAR.test(src[end] as string)) return fail("invalid decimal literal")
      current.push({ type: "number", text: num[0], line })
      i = end
      continue
    }
    const op = OPERATORS.find((o) => src.startsWith(o, i))
    if (op !== undefined) {
      if (op === "(" || op === "[" || op === "{") brackets.push(op)
      const opening = CLOSING[op]
      if (opening !== undefined) {
        if (brackets.pop() !== opening) return fail(`unmatched '${op}'`)
      }
      current.push({ type: "op", text: op, line })
      i += op.length
      continue
    }
    if (c === "!" || c === "$" || c === "?" || c === "`") return fail(`invalid syntax '${c}'`)
    return fail(`invalid character '${c}' (U+${hex(c.codePointAt(0) ?? 0, 4).toUpperCase()})`)
  }
  if (brackets.length > 0) return fail(`'${brackets[brackets.length - 1]}' was never closed`)
  endLine()
  return Either.right(lines)
}

/** Scans a string literal whose quote starts at `start`; `prefix` is its lower-case prefix (`r`, `b`, `rb`, `f`...). */
const scanString = (
  src: string,
  start: number,
  prefix: string,
  line: number
): Either.Either<{ end: number; value: StringValue; newlines: number }, SyntaxFailure> => {
  const quote = src[start] as string
  const triple = src.startsWith(quote.repeat(3), start)
  const raw = prefix.includes("r")
  const bytes = prefix.includes("b")
  const format = prefix.includes("f")
  let i = start + (triple ? 3 : 1)
  let out = ""
  let newlines = 0
  let unsupported: string | undefined
  const fail = (reason: string) => Either.left(new SyntaxFailure(reason, line + newlines))
  for (;;) {
    if (i >= src.length) {
      return fail(
        triple
          ? `unterminated triple-quoted string literal (detected at line ${line + newlines})`
          : `unterminated string literal (detected at line ${line + newlines})`
      )
    }
    const c = src[i] as string
    if (c === quote && (!triple || src.startsWith(quote.repeat(3), i))) {
      i += triple ? 3 : 1
      break
    }
    if (c === "\n") {
      if (!triple) return fail(`unterminated string literal (detected at line ${line + newlines})`)
      newlines++
      out += c
      i++
      continue
    }
    if (bytes && c.charCodeAt(0) > 0x7f) return fail("bytes can only contain ASCII literal characters")
    if (format && (c === "{" || c === "}")) {
      if (src[i + 1] === c) {
        out += c
        i += 2
      } else {
        unsupported ??= "an f-string with a replacement field is computed by Python"
        i++
      }
      continue
    }
    if (c !== "\\") {
      out += c
      i++
      continue
    }
    const next = src[i + 1]
    if (next === undefined) {
      return fail(triple ? "unterminated triple-quoted string literal" : "unterminated string literal")
    }
    if (raw) {
      // A raw string keeps the backslash; the escaped character (even a quote) does not end the string.
      if (next === "\n") newlines++
      out += c + next
      i += 2
      continue
    }
    const escape = readEscape(src, i + 1, bytes)
    if (Either.isLeft(escape)) return fail(escape.left)
    if (next === "\n") newlines++
    if (escape.right.unsupported !== undefined) unsupported ??= escape.right.unsupported
    out += escape.right.text
    i = escape.right.end
  }
  const value: StringValue = bytes
    ? { kind: "bytes" }
    : unsupported !== undefined
    ? { kind: "unsupported", reason: unsupported }
    : { kind: "str", value: out }
  return Either.right({ end: i, value, newlines })
}

const SIMPLE_ESCAPES: Readonly<Record<string, string>> = {
  "\n": "",
  "\\": "\\",
  "'": "'",
  "\"": "\"",
  a: "\x07",
  b: "\b",
  f: "\f",
  n: "\n",
  r: "\r",
  t: "\t",
  v: "\v"
}

/** The escape sequence after the backslash at `at - 1`, with Python's rules for `str` (or `bytes`) literals. */
const readEscape = (
  src: string,
  at: number,
  bytes: boolean
): Either.Either<{ text: string; end: number; unsupported?: string }, string> => {
  const c = src[at] as string
  const simple = SIMPLE_ESCAPES[c]
  if (simple !== undefined) return Either.right({ text: simple, end: at + 1 })
  if (/[0-7]/.test(c)) {
    const digits = /^[0-7]{1,3}/.exec(src.slice(at, at + 3))?.[0] ?? c
    return Either.right({ text: String.fromCodePoint(parseInt(digits, 8)), end: at + digits.length })
  }
  const hexEscape = (width: number, name: string) => {
    const digits = src.slice(at + 1, at + 1 + width)
    if (!new RegExp(`^[0-9a-fA-F]{${width}}$`).test(digits)) {
      return Either.left(`(unicode error) truncated ${name} escape`)
    }
    const cp = parseInt(digits, 16)
    if (cp > 0x10ffff) return Either.left("(unicode error) illegal Unicode character")
    return Either.right({ text: String.fromCodePoint(cp), end: at + 1 + width })
  }
  if (c === "x") return hexEscape(2, "\\xXX")
  if (!bytes && c === "u") return hexEscape(4, "\\uXXXX")
  if (!bytes && c === "U") return hexEscape(8, "\\UXXXXXXXX")
  if (!bytes && c === "N") {
    const close = src.indexOf("}", at)
    if (src[at + 1] !== "{" || close < 0 || src.slice(at, close).includes("\n")) {
      return Either.left("(unicode error) malformed \\N character escape")
    }
    return Either.right({
      text: "",
      end: close + 1,
      unsupported: "a \\N{...} escape needs Python's Unicode name table"
    })
  }
  // Python keeps an unknown escape as it is (with a warning).
  return Either.right({ text: "\\" + c, end: at + 1 })
}

// A literal value of the Python subset.
type Value =
  | { readonly type: "str"; readonly value: string }
  | { readonly type: "int"; readonly value: bigint }
  | { readonly type: "float"; readonly value: number }
  | { readonly type: "bool"; readonly value: boolean }
  | { readonly type: "none" }
  | { readonly type: "bytes" }
  | { readonly type: "dict"; readonly entries: ReadonlyArray<readonly [Value, Value]> }

/** Why a value cannot be had without running Python. */
class NotLiteral {
  constructor(readonly reason: string) {}
}

const COMPOUND: ReadonlySet<string> = new Set([
  "if", "elif", "else", "for", "while", "try", "except", "finally", "with", "def", "class", "async", "match", "case"
])
/** Names through which code can set module attributes that no assignment statement shows. */
const DYNAMIC: ReadonlySet<string> = new Set([
  "exec", "eval", "globals", "locals", "vars", "setattr", "__import__", "__dict__", "__builtins__"
])
const isField = (s: string): s is Field => (FIELDS as ReadonlyArray<string>).includes(s)

const readManifest = (text: string): Either.Either<Manifest, InvalidManifest> => {
  const invalid = (reason: string) => Either.left(new InvalidManifest({ reason }))
  const encoding = /^[ \t\f]*#.*?coding[:=][ \t]*([-\w.]+)/m.exec(text.split("\n", 2).join("\n"))?.[1]
  if (encoding !== undefined && !/^utf[-_]?8(?:[-_]sig)?$/i.test(encoding) && /[^\x00-\x7f]/.test(text)) {
    return invalid(`the source declares the encoding ${encoding}; only UTF-8 manifests are read`)
  }
  const tokenized = tokenize(text)
  if (Either.isLeft(tokenized)) return invalid(`syntax error: ${tokenized.left.reason} (line ${tokenized.left.line})`)

  const values = new Map<Field, Value>()
  for (const logical of tokenized.right) {
    const statements = logical.indented || isCompound(logical.tokens) ? [logical.tokens] : splitStatements(logical.tokens)
    for (const tokens of statements) {
      const first = tokens[0]
      if (first === undefined) continue
      const dynamic = tokens.find((t) => t.type === "name" && DYNAMIC.has(t.text))
      if (dynamic !== undefined) {
        return invalid(`line ${dynamic.line} uses ${dynamic.text}, so the fields depend on running Python`)
      }
      if (isStarImport(tokens)) {
        return invalid(`line ${first.line} imports *, which may define the fields when Python runs it`)
      }
      const assigned = !logical.indented && !isCompound(logical.tokens) ? literalAssignment(tokens) : undefined
      if (assigned !== undefined) {
        if (assigned.value instanceof NotLiteral) {
          return invalid(
            `${assigned.field} (line ${first.line}) is ${assigned.value.reason}; ` +
              "only literal values can be read without running Python"
          )
        }
        values.set(assigned.field, assigned.value)
        continue
      }
      const touched = tokens.find((t, k) => t.type === "name" && isField(t.text) && !isAttribute(tokens, k))
      if (touched !== undefined) {
        return invalid(
          `${touched.text} is used on line ${touched.line} by a statement that is not a literal assignment; ` +
            "its value would depend on running Python"
        )
      }
    }
  }

  for (const field of FIELDS) {
    if (!values.has(field)) return invalid(`${field} is not defined`)
  }
  const name = values.get("NAME") as Value
  const version = values.get("VERSION") as Value
  const pkg = values.get("PACKAGE") as Value
  const modules = values.get("MODULES") as Value
  if (name.type !== "str") return invalid(`NAME must be a string, not ${describe(name)}`)
  if (pkg.type !== "str") return invalid(`PACKAGE must be a string, not ${describe(pkg)}`)
  if (modules.type !== "dict") return invalid(`MODULES must be a dict, not ${describe(modules)}`)
  const entries: Array<readonly [string, string]> = []
  for (const [k, v] of modules.entries) {
    if (k.type !== "str") return invalid(`MODULES keys must be strings, not ${describe(k)}`)
    if (v.type !== "str") return invalid(`MODULES[${JSON.stringify(k.value)}] must be a module name string, not ${describe(v)}`)
    entries.push([k.value, v.value])
  }
  // A repeated key keeps its first position and its last value, as in a Python dict.
  const deduplicated = [...new Map(entries)]
  const versionText = version.type === "str"
    ? version.value
    : version.type === "int"
    ? version.value.toString()
    : version.type === "float"
    ? floatRepr(version.value)
    : undefined
  if (versionText === undefined) return invalid(`VERSION must be a string or a number, not ${describe(version)}`)
  return Either.flatMap(
    Either.mapLeft(ReleaseKey.parse(versionText), (e) =>
      new InvalidManifest({ reason: `invalid VERSION ${JSON.stringify(versionText)}: ${e.reason}` })),
    (key) => build(name.value, key, pkg.value, deduplicated)
  )
}

const describe = (v: Value): string =>
  v.type === "none" ? "None" : v.type === "bool" ? String(v.value ? "True" : "False") : `a ${v.type}`

const isCompound = (tokens: ReadonlyArray<Token>): boolean => {
  const first = tokens[0]
  return first !== undefined && ((first.type === "name" && COMPOUND.has(first.text)) || (first.type === "op" && first.text === "@"))
}

/** Splits a logical line at top-level semicolons. */
const splitStatements = (tokens: ReadonlyArray<Token>): ReadonlyArray<ReadonlyArray<Token>> => {
  const out: Array<Array<Token>> = [[]]
  let depth = 0
  for (const t of tokens) {
    if (t.type === "op") {
      if (t.text === "(" || t.text === "[" || t.text === "{") depth++
      else if (t.text === ")" || t.text === "]" || t.text === "}") depth--
      else if (t.text === ";" && depth === 0) {
        out.push([])
        continue
      }
    }
    ;(out[out.length - 1] as Array<Token>).push(t)
  }
  return out
}

const isStarImport = (tokens: ReadonlyArray<Token>): boolean =>
  tokens[0]?.type === "name" && tokens[0].text === "from" &&
  tokens.some((t, k) => t.type === "op" && t.text === "*" && tokens[k - 1]?.type === "name" && tokens[k - 1]?.text === "import")

const isAttribute = (tokens: ReadonlyArray<Token>, k: number): boolean => {
  const before = tokens[k - 1]
  return before !== undefined && before.type === "op" && before.text === "."
}

/**
 * `FIELD = value` or `FIELD: annotation = value` at module level: the field and its literal value (or why it is not
 * one). Undefined for every other statement.
 */
const literalAssignment = (
  tokens: ReadonlyArray<Token>
): { field: Field; value: Value | NotLiteral } | undefined => {
  const [target, next] = tokens
  if (target?.type !== "name" || !isField(target.text) || next?.type !== "op") return undefined
  let k = 1
  if (next.text === ":") {
    // An annotation runs to the `=` at bracket depth 0; without one, the statement assigns nothing.
    let depth = 0
    k = 2
    while (k < tokens.length) {
      const t = tokens[k] as Token
      if (t.type === "op") {
        if (t.text === "(" || t.text === "[" || t.text === "{") depth++
        else if (t.text === ")" || t.text === "]" || t.text === "}") depth--
        else if (t.text === "=" && depth === 0) break
      }
      k++
    }
    if (k >= tokens.length) return undefined
  } else if (next.text !== "=") {
    return undefined
  }
  const parser = new ValueParser(tokens, k + 1)
  const value = parser.value()
  if (value instanceof NotLiteral) return { field: target.text, value }
  if (!parser.done()) return { field: target.text, value: new NotLiteral(`computed by an expression (${parser.rest()})`) }
  return { field: target.text, value }
}

/** Recursive descent over the literal subset: strings, numbers, None/True/False, dicts and parentheses. */
class ValueParser {
  constructor(private readonly tokens: ReadonlyArray<Token>, private k: number) {}

  done(): boolean {
    return this.k >= this.tokens.length
  }

  rest(): string {
    const text = this.tokens.slice(this.k).map((t) => t.text).join(" ")
    return text.length > 40 ? `${text.slice(0, 37)}...` : text
  }

  private peek(): Token | undefined {
    return this.tokens[this.k]
  }

  private isOp(text: string): boolean {
    const t = this.peek()
    return t !== undefined && t.type === "op" && t.text === text
  }

  value(): Value | NotLiteral {
    const t = this.peek()
    if (t === undefined) return new NotLiteral("missing")
    if (t.type === "string") return this.strings()
    if (t.type === "number") {
      this.k++
      return numberValue(t.text, false)
    }
    if (t.type === "name") {
      this.k++
      if (t.text === "None") return { type: "none" }
      if (t.text === "True" || t.text === "False") return { type: "bool", value: t.text === "True" }
      return new NotLiteral(`computed from the name ${t.text}`)
    }
    if (t.text === "-" || t.text === "+") {
      const n = this.tokens[this.k + 1]
      if (n?.type !== "number") return new NotLiteral(`computed by an expression (${this.rest()})`)
      this.k += 2
      return numberValue(n.text, t.text === "-")
    }
    if (t.text === "(") {
      this.k++
      const inner = this.value()
      if (inner instanceof NotLiteral) return inner
      if (!this.isOp(")")) return new NotLiteral(`computed by an expression (${this.rest()})`)
      this.k++
      return inner
    }
    if (t.text === "{") return this.dict()
    return new NotLiteral(`computed by an expression (${this.rest()})`)
  }

  /** Adjacent string literals are one string (implicit concatenation). */
  private strings(): Value | NotLiteral {
    let out = ""
    let kind: "str" | "bytes" | undefined
    for (let t = this.peek(); t !== undefined && t.type === "string"; t = this.peek()) {
      this.k++
      const v = t.value
      if (v.kind === "unsupported") return new NotLiteral(v.reason)
      const k = v.kind === "bytes" ? "bytes" : "str"
      if (kind !== undefined && kind !== k) return new NotLiteral("a mix of bytes and str literals (a SyntaxError)")
      kind = k
      if (v.kind === "str") out += v.value
    }
    return kind === "bytes" ? { type: "bytes" } : { type: "str", value: out }
  }

  private dict(): Value | NotLiteral {
    this.k++ // {
    const entries: Array<readonly [Value, Value]> = []
    while (!this.isOp("}")) {
      const key = this.value()
      if (key instanceof NotLiteral) return key
      if (!this.isOp(":")) return new NotLiteral(`computed by an expression (${this.rest()})`)
      this.k++
      const value = this.value()
      if (value instanceof NotLiteral) return value
      entries.push([key, value])
      if (this.isOp(",")) this.k++
      else if (!this.isOp("}")) return new NotLiteral(`computed by an expression (${this.rest()})`)
    }
    this.k++ // }
    return { type: "dict", entries }
  }
}

const numberValue = (text: string, negative: boolean): Value | NotLiteral => {
  const digits = text.replace(/_/g, "")
  if (/[jJ]$/.test(digits)) return new NotLiteral("a complex number")
  if (/^0[xXoObB]/.test(digits) || /^\d+$/.test(digits)) {
    if (/^0+[1-9]/.test(digits)) return new NotLiteral("a decimal integer with leading zeros (a SyntaxError)")
    const n = BigInt(digits)
    return { type: "int", value: negative ? -n : n }
  }
  const x = Number(digits)
  return { type: "float", value: negative ? -x : x }
}
