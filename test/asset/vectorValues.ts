/**
 * The forml-vectors value encoding (forml-vectors/README.md) to and from `TomlValue`, and reading tags in tests.
 */
import { expect } from "@effect/vitest"
import { Either, Option } from "effect"
import { floatRepr } from "../../src/asset/internal/pythonRepr.js"
import { StateId } from "../../src/asset/StateId.js"
import { LocalDate, LocalTime, Tag, Timestamp, TomlTable, type TomlValue } from "../../src/asset/Tag.js"

export type V =
  | null
  | boolean
  | string
  | number
  | ReadonlyArray<V>
  | { readonly $int: string }
  | { readonly $float: string }
  | { readonly $datetime: string }
  | { readonly $datetimeZ: string }
  | { readonly $date: string }
  | { readonly $time: string }
  | { readonly $table: { readonly [k: string]: V } }
  | { readonly $repr: string; readonly $type: string }

export interface VTag {
  readonly training: { readonly timestamp: V; readonly ordinal: V }
  readonly tuning: { readonly timestamp: V; readonly score: V }
  readonly states: ReadonlyArray<string>
}

export const get = <A>(e: Either.Either<A, unknown>): A => Either.getOrThrow(e)

export const fromV = (v: V): Option.Option<TomlValue> => {
  if (v === null) return Option.none()
  if (typeof v === "boolean" || typeof v === "string") return Option.some(v)
  if (typeof v === "number") return Option.some(BigInt(v)) // plain JSON numbers are Python ints
  if (Array.isArray(v)) return Option.some(v.map((x: V) => Option.getOrThrow(fromV(x))))
  const o = v as Exclude<V, null | boolean | string | number | ReadonlyArray<V>>
  if ("$int" in o) return Option.some(BigInt(o.$int))
  if ("$float" in o) {
    const f = o.$float
    return Option.some(f === "inf" ? Infinity : f === "-inf" ? -Infinity : f === "nan" ? NaN : Number(f))
  }
  if ("$datetime" in o) return Option.some(get(Timestamp.parse(o.$datetime)))
  if ("$datetimeZ" in o) return Option.some(get(Timestamp.parse(o.$datetimeZ)))
  if ("$date" in o) return Option.some(get(LocalDate.parse(o.$date)))
  if ("$time" in o) return Option.some(get(LocalTime.parse(o.$time)))
  if ("$table" in o) {
    return Option.some(
      TomlTable.make(Object.entries(o.$table).map(([k, x]) => [k, Option.getOrThrow(fromV(x))] as const))
    )
  }
  throw new Error(`no TS counterpart for ${JSON.stringify(o)}`)
}

export const toV = (v: TomlValue): V => {
  switch (typeof v) {
    case "string":
    case "boolean":
      return v
    case "bigint":
      return v >= -BigInt(Number.MAX_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER)
        ? Number(v)
        : { $int: v.toString() }
    case "number":
      return { $float: floatRepr(v) }
    default:
      if (Array.isArray(v)) return (v as ReadonlyArray<TomlValue>).map(toV)
      if (v instanceof Timestamp) {
        return Timestamp.isNaive(v) ? { $datetime: Timestamp.toIsoString(v) } : { $datetimeZ: Timestamp.toIsoString(v) }
      }
      if (v instanceof LocalDate) return { $date: v.toString() }
      if (v instanceof LocalTime) return { $time: v.toString() }
      return { $table: Object.fromEntries((v as TomlTable).entries.map(([k, x]) => [k, toV(x)])) }
  }
}

export const optV = (o: Option.Option<TomlValue>): V => Option.match(o, { onNone: () => null, onSome: toV })

export const tagToV = (t: Tag): VTag => ({
  training: { timestamp: optV(t.training.timestamp), ordinal: optV(t.training.ordinal) },
  tuning: { timestamp: optV(t.tuning.timestamp), score: optV(t.tuning.score) },
  states: [...t.states]
})

export const timestampOf = (v: V): Option.Option<Timestamp> =>
  Option.map(fromV(v), (x) => (x instanceof Timestamp ? x : (() => {
    throw new Error(`not a datetime: ${JSON.stringify(v)}`)
  })()))

export const tagFromV = (t: VTag): Tag =>
  Tag.make({
    training: { timestamp: timestampOf(t.training.timestamp), ordinal: fromV(t.training.ordinal) },
    tuning: { timestamp: timestampOf(t.tuning.timestamp), score: fromV(t.tuning.score) },
    states: t.states.map((s) => get(StateId.parse(s)))
  })

export const hasRepr = (v: unknown): boolean => JSON.stringify(v).includes("\"$repr\"")

export const decodeOk = (input: string | Uint8Array): Tag => {
  const r = Tag.decode(input)
  if (Either.isLeft(r)) throw new Error(r.left.message)
  return r.right
}

export const decodeErr = (input: string | Uint8Array): string => {
  const r = Tag.decode(input)
  expect(Either.isLeft(r)).toBe(true)
  const e = Option.getOrThrow(Either.getLeft(r))
  expect(e._tag).toBe("InvalidTag")
  return e.reason
}

// ---- tags.json: what ForML writes ----

/** A trained tag's text, and the same with an ordinal literal and an empty tuning table. */
export const trained = "states = []\n\n[training]\ntimestamp = 2019-04-01T00:00:00\n"
export const withOrdinal = (ordinal: string) => `${trained}ordinal = ${ordinal}\n\n[tuning]\n`
export const ordinalOf = (text: string): TomlValue => Option.getOrThrow(decodeOk(text).training.ordinal)
