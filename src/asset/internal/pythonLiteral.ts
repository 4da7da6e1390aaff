/**
 * The literal subset of Python that ForML's manifests are written in: module-level assignments of literal values
 * (strings, numbers, None/True/False, dicts) read from tokenised source, and strings and dicts written so that Python
 * reads them back. Hand-written because a manifest is read without ever running Python, and no JavaScript library
 * evaluates Python literals while refusing every statement that could change them at run time.
 *
 * @internal
 */
import { Either } from "effect"
import { hex } from "./pythonRepr.js"
import { type Token, tokenize } from "./pythonTokenizer.js"

// ---------------------------------------------------------------------------------------------------------------
// Writing

/** A double-quoted Python string: only what Python would misread is escaped, everything else stays raw UTF-8. */
export const pyString = (s: string): string => {
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
export const jsonDumps = (modules: Readonly<Record<string, string>>): string =>
  `{${Object.entries(modules).map(([k, v]) => `${jsonString(k)}: ${jsonString(v)}`).join(", ")}}`

// ---------------------------------------------------------------------------------------------------------------
// Reading

/** A literal value of the Python subset. */
export type Value =
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
  "if",
  "elif",
  "else",
  "for",
  "while",
  "try",
  "except",
  "finally",
  "with",
  "def",
  "class",
  "async",
  "match",
  "case"
])
/** Names through which code can set module attributes that no assignment statement shows. */
const DYNAMIC: ReadonlySet<string> = new Set([
  "exec",
  "eval",
  "globals",
  "locals",
  "vars",
  "setattr",
  "__import__",
  "__dict__",
  "__builtins__"
])

/**
 * The values that module-level literal assignments give to `fields`, reading `text` as Python would without running
 * it: other statements are tokenised and ignored unless they could change one of the fields, in which case the
 * result would depend on running Python and the source is refused (the reason is the failure).
 */
export const readAssignments = <F extends string>(
  text: string,
  fields: ReadonlyArray<F>
): Either.Either<ReadonlyMap<F, Value>, string> => {
  const isField = (s: string): s is F => (fields as ReadonlyArray<string>).includes(s)
  const encoding = /^[ \t\f]*#.*?coding[:=][ \t]*([-\w.]+)/m.exec(text.split("\n", 2).join("\n"))?.[1]
  if (encoding !== undefined && !/^utf[-_]?8(?:[-_]sig)?$/i.test(encoding) && /[^\x00-\x7f]/.test(text)) {
    return Either.left(`the source declares the encoding ${encoding}; only UTF-8 manifests are read`)
  }
  const tokenized = tokenize(text)
  if (Either.isLeft(tokenized)) {
    return Either.left(`syntax error: ${tokenized.left.reason} (line ${tokenized.left.line})`)
  }
  const values = new Map<F, Value>()
  for (const logical of tokenized.right) {
    const statements = logical.indented || isCompound(logical.tokens)
      ? [logical.tokens]
      : splitStatements(logical.tokens)
    for (const tokens of statements) {
      const first = tokens[0]
      if (first === undefined) continue
      const dynamic = tokens.find((t) => t.type === "name" && DYNAMIC.has(t.text))
      if (dynamic !== undefined) {
        return Either.left(`line ${dynamic.line} uses ${dynamic.text}, so the fields depend on running Python`)
      }
      if (isStarImport(tokens)) {
        return Either.left(`line ${first.line} imports *, which may define the fields when Python runs it`)
      }
      const assigned = !logical.indented && !isCompound(logical.tokens) ? literalAssignment(tokens, isField) : undefined
      if (assigned !== undefined) {
        if (assigned.value instanceof NotLiteral) {
          return Either.left(
            `${assigned.field} (line ${first.line}) is ${assigned.value.reason}; ` +
              "only literal values can be read without running Python"
          )
        }
        values.set(assigned.field, assigned.value)
        continue
      }
      const touched = tokens.find((t, k) => t.type === "name" && isField(t.text) && !isAttribute(tokens, k))
      if (touched !== undefined) {
        return Either.left(
          `${touched.text} is used on line ${touched.line} by a statement that is not a literal assignment; ` +
            "its value would depend on running Python"
        )
      }
    }
  }
  return Either.right(values)
}

/** A value's kind for messages: `None`, `True`, `a str`, `a dict`... */
export const describe = (v: Value): string =>
  v.type === "none" ? "None" : v.type === "bool" ? String(v.value ? "True" : "False") : `a ${v.type}`

const isCompound = (tokens: ReadonlyArray<Token>): boolean => {
  const first = tokens[0]
  return first !== undefined &&
    ((first.type === "name" && COMPOUND.has(first.text)) || (first.type === "op" && first.text === "@"))
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
  tokens.some((t, k) =>
    t.type === "op" && t.text === "*" && tokens[k - 1]?.type === "name" && tokens[k - 1]?.text === "import"
  )

const isAttribute = (tokens: ReadonlyArray<Token>, k: number): boolean => {
  const before = tokens[k - 1]
  return before !== undefined && before.type === "op" && before.text === "."
}

/**
 * `FIELD = value` or `FIELD: annotation = value` at module level: the field and its literal value (or why it is not
 * one). Undefined for every other statement.
 */
const literalAssignment = <F extends string>(
  tokens: ReadonlyArray<Token>,
  isField: (s: string) => s is F
): { field: F; value: Value | NotLiteral } | undefined => {
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
  if (!parser.done()) {
    return { field: target.text, value: new NotLiteral(`computed by an expression (${parser.rest()})`) }
  }
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
