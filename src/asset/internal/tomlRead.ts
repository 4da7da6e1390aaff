/**
 * Reads TOML text into `TomlValue`s with `smol-toml`, keeping what a JS `Date` would lose: date-times and times are
 * lifted out before parsing (by a scan that knows strings, comments, keys and values) and read here to the
 * microsecond, with ForML's reading of a lower-case `z` as "no offset"; integers come back as `bigint`.
 * The scan is hand-written because `smol-toml` hands date-times over as a JS `Date`, which keeps only milliseconds.
 *
 * @internal
 */
import { Either, Option } from "effect"
import { parse, TomlDate } from "smol-toml"
import { LocalDate, LocalTime, Timestamp, TomlTable, type TomlValue } from "./tomlValue.js"

type Literal = Timestamp | LocalDate | LocalTime

const DATE_TIME = /(\d{4})-(\d{2})-(\d{2})(?:[Tt ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:[Zz]|[+-]\d{2}:\d{2})?)?/y
const TIME = /\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?/y
const HAS_SECONDS_DT = /^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}/
const HAS_SECONDS_T = /^\d{2}:\d{2}:\d{2}/

const isDigit = (c: string | undefined): boolean => c !== undefined && c >= "0" && c <= "9"
const isBare = (c: string | undefined): boolean => c !== undefined && /[A-Za-z0-9_\-+.:]/.test(c)
const ends = (c: string | undefined): boolean => c === undefined || " \t\r\n,]}#".includes(c)

/** Index just past the string starting at `i` (basic, literal, or either multi-line form). */
const skipString = (text: string, i: number): number => {
  const q = text[i] as string
  const escapes = q === "\""
  if (text.startsWith(q.repeat(3), i)) {
    let j = i + 3
    while (j < text.length) {
      if (escapes && text[j] === "\\") j += 2
      else if (text.startsWith(q.repeat(3), j)) {
        let end = j + 3
        // up to two quotes right before the closing delimiter belong to the content
        for (let extra = 0; extra < 2 && text[end] === q; extra++) end++
        return end
      } else j++
    }
    return j
  }
  let j = i + 1
  while (j < text.length && text[j] !== q && text[j] !== "\n") j += escapes && text[j] === "\\" ? 2 : 1
  return j + 1
}

interface Scan {
  readonly text: string
  readonly literals: ReadonlyArray<Literal>
}

/**
 * Replaces every date-time, date and time literal in a value position with a marker string, and reads the literal
 * itself. Keys are left alone (a bare key may look like a date). Malformed TOML is left for the parser to report.
 */
const scan = (text: string, marker: string): Either.Either<Scan, string> => {
  const literals: Array<Literal> = []
  const context: Array<{ kind: "array" | "table"; key: boolean }> = []
  let expectKey = true // at the start of a top-level line
  let header = false
  let lineStart = true
  let out = ""
  let copied = 0
  let i = 0
  while (i < text.length) {
    const c = text[i] as string
    const top = context[context.length - 1]
    if (c === "\"" || c === "'") {
      i = skipString(text, i)
      lineStart = false
      continue
    }
    if (c === "#") {
      while (i < text.length && text[i] !== "\n") i++
      continue
    }
    if (c === "\n") {
      if (top === undefined) {
        expectKey = true
        header = false
      }
      lineStart = true
      i++
      continue
    }
    if (c === " " || c === "\t" || c === "\r") {
      i++
      continue
    }
    if (header) {
      i++
      continue
    }
    if (c === "[" && lineStart && top === undefined && expectKey) {
      header = true
      i++
      continue
    }
    lineStart = false
    if (c === "=") {
      if (top === undefined) expectKey = false
      else top.key = false
      i++
      continue
    }
    if (c === "[" || c === "{") {
      context.push({ kind: c === "[" ? "array" : "table", key: c === "{" })
      i++
      continue
    }
    if (c === "]" || c === "}") {
      context.pop()
      i++
      continue
    }
    if (c === "," && top !== undefined) {
      top.key = top.kind === "table"
      i++
      continue
    }
    const inValue = top === undefined ? !expectKey : top.kind === "array" || !top.key
    if (inValue && isDigit(c) && !isBare(text[i - 1])) {
      DATE_TIME.lastIndex = i
      TIME.lastIndex = i
      const m = DATE_TIME.exec(text) ?? TIME.exec(text)
      if (m !== null && ends(text[i + m[0].length])) {
        const token = m[0]
        const isTime = m[1] === undefined
        if (isTime ? !HAS_SECONDS_T.test(token) : token.length > 10 && !HAS_SECONDS_DT.test(token)) {
          return Either.left(`invalid date-time ${token}: seconds are required`)
        }
        const literal: Either.Either<Literal, { readonly reason: string }> = isTime
          ? LocalTime.parse(token)
          : token.length === 10
          ? LocalDate.parse(token)
          : Timestamp.parseWith(token, true)
        if (Either.isLeft(literal)) return Either.left(`invalid date-time ${token}: ${literal.left.reason}`)
        out += `${text.slice(copied, i)}"\\u0000${marker}${literals.length}"`
        literals.push(literal.right)
        i += token.length
        copied = i
        continue
      }
    }
    // skip the rest of a bare word or number
    while (i < text.length && isBare(text[i])) i++
    if (i < text.length && !isBare(c)) i++
  }
  return Either.right({ text: out + text.slice(copied), literals })
}

/** Turns what smol-toml returns into a `TomlValue`, putting the scanned literals back in place of their markers. */
const convert = (v: unknown, marker: string, literals: ReadonlyArray<Literal>): Either.Either<TomlValue, string> => {
  if (typeof v === "string") {
    if (v.startsWith(`\u0000${marker}`)) {
      const literal = literals[Number(v.slice(marker.length + 1))]
      return literal === undefined ? Either.left("unreadable date-time") : Either.right(literal)
    }
    return Either.right(v)
  }
  if (typeof v === "bigint" || typeof v === "number" || typeof v === "boolean") return Either.right(v)
  if (v instanceof TomlDate) {
    // every date and time is scanned; one that got through is read as exactly as a Date allows
    return v.isDate()
      ? Either.mapLeft(LocalDate.parse(v.toISOString()), (e) => e.reason)
      : Either.left(`unexpected date-time ${v.toISOString()}`)
  }
  if (Array.isArray(v)) {
    const out: Array<TomlValue> = []
    for (const x of v) {
      const r = convert(x, marker, literals)
      if (Either.isLeft(r)) return r
      out.push(r.right)
    }
    return Either.right(out)
  }
  if (typeof v === "object" && v !== null) {
    const entries: Array<readonly [string, TomlValue]> = []
    for (const [k, x] of Object.entries(v)) {
      if (k.includes(marker)) return Either.left(`invalid key ${JSON.stringify(k)}`)
      const r = convert(x, marker, literals)
      if (Either.isLeft(r)) return r
      entries.push([k, r.right])
    }
    return Either.right(TomlTable.make(entries))
  }
  return Either.left(`unexpected value ${String(v)}`)
}

/** A TOML document as a table, or why it is not valid TOML. */
export const readToml = (text: string): Either.Either<TomlTable, string> => {
  const marker = `fmtag${Math.random().toString(36).slice(2)}${Date.now().toString(36)}:`
  return Either.flatMap(scan(text, marker), ({ literals, text: marked }) =>
    Either.flatMap(
      Either.try({
        try: () => parse(marked, { integersAsBigInt: true }),
        catch: (e) => (e instanceof Error ? e.message : String(e)).split("\n")[0] ?? "invalid TOML"
      }),
      (doc) =>
        Either.flatMap(
          convert(doc, marker, literals),
          (t) => (t instanceof TomlTable ? Either.right(t) : Either.left("not a TOML table"))
        )
    ))
}

/** The value at `key` of `table`, if `table` is a table and has it. */
export const lookup = (table: TomlValue, key: string): Option.Option<TomlValue> =>
  table instanceof TomlTable ? table.get(key) : Option.none()
