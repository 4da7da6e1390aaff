/**
 * The generation level key: a natural number 1, 2, 3 ..., read with ForML's `int(str(value))` leniency
 * (`' 2 '`, `'+3'`, `'01'`, `'1_0'` and other Unicode decimal digits are accepted).
 */
import type { Brand } from "effect"
import { Either, Order, ParseResult, Schema } from "effect"
import { InvalidInput } from "../errors.js"
import { numberStr } from "./internal/pythonRepr.js"

export type GenerationKey = number & Brand.Brand<"GenerationKey">

// Python's str.isspace() set (differs from JS \s: it has \x1c-\x1f and \x85, lacks \ufeff).
const PY_SPACE = "\t\n\v\f\r\x1c\x1d\x1e\x1f \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008" +
  "\u2009\u200a\u2028\u2029\u202f\u205f\u3000"
const DECIMAL = /^\p{Nd}$/u

const strip = (s: string): string => {
  let start = 0
  let end = s.length
  while (start < end && PY_SPACE.includes(s[start] as string)) start++
  while (end > start && PY_SPACE.includes(s[end - 1] as string)) end--
  return s.slice(start, end)
}

/** The value 0-9 of a Unicode decimal digit: Nd characters come in runs of ten, starting at zero. */
const digitValue = (ch: string): number | undefined => {
  if (!DECIMAL.test(ch)) return undefined
  const cp = ch.codePointAt(0) as number
  let start = cp
  while (start > 0 && DECIMAL.test(String.fromCodePoint(start - 1))) start--
  return (cp - start) % 10
}

/** Python's `int(s)` in base 10, or undefined where it raises `ValueError`. */
const pythonInt = (s: string): bigint | undefined => {
  const text = strip(s)
  let i = 0
  let negative = false
  if (text[0] === "+" || text[0] === "-") {
    negative = text[0] === "-"
    i = 1
  }
  let digits = ""
  let previousUnderscore = true // no underscore right after the sign or at the start
  for (const ch of text.slice(i)) {
    if (ch === "_") {
      if (previousUnderscore) return undefined
      previousUnderscore = true
      continue
    }
    const value = digitValue(ch)
    if (value === undefined) return undefined
    digits += value
    previousUnderscore = false
  }
  if (digits === "" || previousUnderscore) return undefined
  const n = BigInt(digits)
  return negative ? -n : n
}

const invalid = (input: string, reason: string) =>
  Either.left(new InvalidInput({ kind: "GenerationKey", input, reason }))

/**
 * A generation key from a tag value, a CLI argument or a number. Like ForML, the input is read as `int(str(value))`:
 * booleans (`True`), `null` (`None`), non-integral numbers, `'1.5'`, `'1e3'` and `'0x10'` are not integers; 0 and
 * negative numbers are not natural. A JS number cannot tell `1.0` from `1`, so an integral number is taken as an
 * int (ForML rejects the float `1.0`); the string `'1.0'` is rejected as ForML does. Keys past 2^53 - 1 are rejected
 * because a JS number cannot hold them exactly.
 */
const parse = (input: string | number | boolean | null): Either.Either<GenerationKey, InvalidInput> => {
  const text = input === null
    ? "None"
    : typeof input === "boolean"
    ? (input ? "True" : "False")
    : typeof input === "number"
    ? numberStr(input)
    : input
  const n = typeof input === "string" || typeof input === "number" ? pythonInt(text) : undefined
  if (n === undefined) return invalid(text, "not an integer")
  if (n < 1n) return invalid(text, "not natural")
  if (n > BigInt(Number.MAX_SAFE_INTEGER)) return invalid(text, "too large")
  return Either.right(Number(n) as GenerationKey)
}

const schema: Schema.Schema<GenerationKey, string> = Schema.transformOrFail(
  Schema.String,
  Schema.Number.pipe(Schema.int(), Schema.positive(), Schema.brand("GenerationKey")),
  {
    strict: true,
    decode: (s, _, ast) => Either.mapLeft(parse(s), (e) => new ParseResult.Type(ast, s, e.message)),
    encode: (k) => ParseResult.succeed(String(k))
  }
)

export const GenerationKey = {
  parse,
  /** The first generation of a release. */
  first: 1 as GenerationKey,
  /** The key after `k` (a release's next generation is its latest + 1). */
  next: (k: GenerationKey): GenerationKey => (k + 1) as GenerationKey,
  Order: Order.number as Order.Order<GenerationKey>,
  /** A generation key as its decimal text (the value of the `mlflow.source.git.commit` tag). */
  schema
} as const
