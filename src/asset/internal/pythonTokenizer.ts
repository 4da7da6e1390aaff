/**
 * A tokenizer for Python source (3.11 rules): logical lines of names, numbers, operators and string literals, each
 * string with its value where Python's own reading of it needs no more than its text. Hand-written because a manifest
 * is read without running Python, and no JavaScript library tokenises Python with its string and escape rules.
 *
 * @internal
 */
import { Either } from "effect"
import { hex } from "./pythonRepr.js"

export class SyntaxFailure {
  constructor(readonly reason: string, readonly line: number) {}
}

/** A string literal's value, or why it has none without running Python. */
export type StringValue =
  | { readonly kind: "str"; readonly value: string }
  | { readonly kind: "bytes" }
  | { readonly kind: "unsupported"; readonly reason: string }

export type Token =
  | { readonly type: "name"; readonly text: string; readonly line: number }
  | { readonly type: "number"; readonly text: string; readonly line: number }
  | { readonly type: "op"; readonly text: string; readonly line: number }
  | { readonly type: "string"; readonly text: string; readonly line: number; readonly value: StringValue }

/** A logical line; `indented` lines are the bodies of compound statements. */
export interface Line {
  readonly tokens: ReadonlyArray<Token>
  readonly indented: boolean
}

const OPERATORS: ReadonlyArray<string> = [
  "**=",
  "//=",
  ">>=",
  "<<=",
  "...",
  "->",
  ":=",
  "==",
  "!=",
  "<=",
  ">=",
  "**",
  "//",
  "<<",
  ">>",
  "+=",
  "-=",
  "*=",
  "/=",
  "%=",
  "&=",
  "|=",
  "^=",
  "@=",
  "(",
  ")",
  "[",
  "]",
  "{",
  "}",
  ",",
  ":",
  ";",
  ".",
  "=",
  "+",
  "-",
  "*",
  "/",
  "%",
  "@",
  "<",
  ">",
  "&",
  "|",
  "^",
  "~"
]
const CLOSING: Readonly<Record<string, string>> = { ")": "(", "]": "[", "}": "{" }
const IDENTIFIER = /[\p{XID_Start}_][\p{XID_Continue}]*/uy
const NUMBER =
  /(?:0[xX](?:_?[0-9a-fA-F])+|0[oO](?:_?[0-7])+|0[bB](?:_?[01])+|(?:(?:\d(?:_?\d)*)?\.\d(?:_?\d)*|\d(?:_?\d)*\.?)(?:[eE][+-]?\d(?:_?\d)*)?)[jJ]?/y
const STRING_PREFIX = /^(?:[rRuUbBfF]|[bB][rR]|[rR][bB]|[fF][rR]|[rR][fF])$/
const IDENTIFIER_CHAR = /[\p{XID_Continue}]/u

export const tokenize = (source: string): Either.Either<ReadonlyArray<Line>, SyntaxFailure> => {
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
