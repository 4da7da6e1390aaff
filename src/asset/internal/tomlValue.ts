/**
 * The values a TOML document holds, kept as exactly as ForML's Python side sees them: integers as `bigint` (int64
 * and beyond survive), floats as `number` (so `3.0` stays a float and `3n` an integer), date-times to the microsecond
 * with their offset, local dates and times, arrays and ordered tables. The classes are public, re-exported by
 * `Tag.ts`; the calendar arithmetic is hand-written because a JS `Date` keeps milliseconds and no offset.
 */
import { Clock, Effect, Either, Equal, Hash, Option, Order } from "effect"
import { InvalidInput } from "../../errors.js"

const pad = (n: number, width: number): string => String(n).padStart(width, "0")

const isLeap = (y: number): boolean => (y % 4 === 0 && y % 100 !== 0) || y % 400 === 0
const daysIn = (y: number, m: number): number =>
  m === 2 ? (isLeap(y) ? 29 : 28) : m === 4 || m === 6 || m === 9 || m === 11 ? 30 : 31

const US_PER_DAY = 86_400_000_000n
const US_PER_MINUTE = 60_000_000n

/** Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's days_from_civil). */
const daysFromCivil = (year: number, month: number, day: number): number => {
  const y = month <= 2 ? year - 1 : year
  const era = Math.floor(y / 400)
  const yoe = y - era * 400
  const doy = Math.floor((153 * (month + (month > 2 ? -3 : 9)) + 2) / 5) + day - 1
  const doe = yoe * 365 + Math.floor(yoe / 4) - Math.floor(yoe / 100) + doy
  return era * 146097 + doe - 719468
}

const civilFromDays = (days: number): readonly [number, number, number] => {
  const z = days + 719468
  const era = Math.floor(z / 146097)
  const doe = z - era * 146097
  const yoe = Math.floor((doe - Math.floor(doe / 1460) + Math.floor(doe / 36524) - Math.floor(doe / 146096)) / 365)
  const doy = doe - (365 * yoe + Math.floor(yoe / 4) - Math.floor(yoe / 100))
  const mp = Math.floor((5 * doy + 2) / 153)
  const day = doy - Math.floor((153 * mp + 2) / 5) + 1
  const month = mp < 10 ? mp + 3 : mp - 9
  return [month <= 2 ? era * 400 + yoe + 1 : era * 400 + yoe, month, day]
}

const dateProblem = (year: number, month: number, day: number): string | undefined =>
  !Number.isInteger(year) || !Number.isInteger(month) || !Number.isInteger(day)
    ? "not a date"
    : year < 1 || year > 9999
    ? "year out of range 1-9999"
    : month < 1 || month > 12
    ? "month out of range"
    : day < 1 || day > daysIn(year, month)
    ? "day out of range for month"
    : undefined

const timeProblem = (hour: number, minute: number, second: number, microsecond: number): string | undefined =>
  [hour, minute, second, microsecond].every(Number.isInteger) && hour >= 0 && hour <= 23 && minute >= 0 &&
    minute <= 59 && second >= 0 && second <= 59 && microsecond >= 0 && microsecond <= 999_999
    ? undefined
    : "time out of range"

/** Fraction digits to microseconds: shorter ones are padded (`.123` is 123000 µs), longer ones truncated. */
const micros = (fraction: string | undefined): number =>
  fraction === undefined ? 0 : Number(fraction.slice(0, 6).padEnd(6, "0"))

const isoFraction = (microsecond: number): string => (microsecond === 0 ? "" : `.${pad(microsecond, 6)}`)

const invalid = (kind: string, input: string, reason: string) => Either.left(new InvalidInput({ kind, input, reason }))

export interface TimestampFields {
  readonly year: number
  readonly month: number
  readonly day: number
  readonly hour?: number
  readonly minute?: number
  readonly second?: number
  readonly microsecond?: number
  /** Minutes east of UTC; absent for a naive date-time (which ForML means as UTC). */
  readonly offset?: number
}

const DATE_TIME = /^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?([Zz]|[+-]\d{2}:\d{2})?$/

/**
 * A value known by its text form: equal to a value of the same class with the same text, hashed by it, and written
 * to JSON as it.
 */
abstract class TextForm implements Equal.Equal {
  /** The class's name in hashes, so that a date and a string of the same text hash apart. */
  protected abstract get kindName(): string

  abstract toString(): string

  toJSON(): string {
    return this.toString()
  }

  [Equal.symbol](that: Equal.Equal): boolean {
    return that instanceof TextForm && that.constructor === this.constructor && this.toString() === that.toString()
  }

  [Hash.symbol](): number {
    return Hash.cached(this, Hash.string(`${this.kindName}:${this.toString()}`))
  }
}

/**
 * A date-time to the microsecond, naive (no offset: ForML writes `datetime.utcnow()`, so naive means UTC) or with a
 * UTC offset. Equal when every field and the offset are equal; `Timestamp.Order` orders by instant.
 */
export class Timestamp extends TextForm {
  private constructor(
    readonly year: number,
    readonly month: number,
    readonly day: number,
    readonly hour: number,
    readonly minute: number,
    readonly second: number,
    readonly microsecond: number,
    /** Minutes east of UTC; none for a naive date-time. `Z` and `+00:00` are both `some(0)`. */
    readonly offset: Option.Option<number>
  ) {
    super()
  }

  protected get kindName(): string {
    return "Timestamp"
  }

  /** A timestamp from its fields, checked (years 1-9999 as in Python, offsets within ±23:59). */
  static make(fields: TimestampFields): Either.Either<Timestamp, InvalidInput> {
    const { day, hour = 0, microsecond = 0, minute = 0, month, offset, second = 0, year } = fields
    const problem = dateProblem(year, month, day) ?? timeProblem(hour, minute, second, microsecond) ??
      (offset !== undefined && (!Number.isInteger(offset) || Math.abs(offset) >= 24 * 60)
        ? "offset out of range"
        : undefined)
    return problem === undefined
      ? Either.right(
        new Timestamp(year, month, day, hour, minute, second, microsecond, Option.fromNullable(offset))
      )
      : invalid("Timestamp", JSON.stringify(fields), problem)
  }

  /**
   * A timestamp from RFC 3339 / TOML / Python `isoformat` text: `2019-04-01T00:00:00`, `... 00:00:00.123456Z`,
   * `...+05:30`. More than six fraction digits are truncated to microseconds.
   */
  static parse(s: string): Either.Either<Timestamp, InvalidInput> {
    return Timestamp.parseWith(s, false)
  }

  /** @internal `lowerZNaive`: read a lower-case `z` as no offset, as ForML's TOML reader (toml 0.10.2) does. */
  static parseWith(s: string, lowerZNaive: boolean): Either.Either<Timestamp, InvalidInput> {
    const m = DATE_TIME.exec(s)
    if (m === null) return invalid("Timestamp", s, "not a date-time (YYYY-MM-DDTHH:MM:SS[.ffffff][Z|+HH:MM])")
    const zone = m[8]
    const offset = zone === undefined || (zone === "z" && lowerZNaive)
      ? undefined
      : zone === "Z" || zone === "z"
      ? 0
      : (zone[0] === "-" ? -1 : 1) * (Number(zone.slice(1, 3)) * 60 + Number(zone.slice(4, 6)))
    if (zone !== undefined && zone.length === 6 && (Number(zone.slice(1, 3)) > 23 || Number(zone.slice(4, 6)) > 59)) {
      return invalid("Timestamp", s, "offset out of range")
    }
    return Either.mapLeft(
      Timestamp.make({
        year: Number(m[1]),
        month: Number(m[2]),
        day: Number(m[3]),
        hour: Number(m[4]),
        minute: Number(m[5]),
        second: Number(m[6]),
        microsecond: micros(m[7]),
        ...(offset === undefined ? {} : { offset })
      }),
      (e) => new InvalidInput({ kind: "Timestamp", input: s, reason: e.reason })
    )
  }

  /** Microseconds since 1970-01-01T00:00:00Z (a naive timestamp taken as UTC) and the offset, if any. */
  static fromEpochMicros(us: bigint, offset?: number): Either.Either<Timestamp, InvalidInput> {
    const local = us + BigInt(offset ?? 0) * US_PER_MINUTE
    const days = local >= 0n ? local / US_PER_DAY : -((-local + US_PER_DAY - 1n) / US_PER_DAY)
    const rest = Number(local - days * US_PER_DAY)
    const [year, month, day] = civilFromDays(Number(days))
    return Timestamp.make({
      year,
      month,
      day,
      hour: Math.floor(rest / 3_600_000_000),
      minute: Math.floor(rest / 60_000_000) % 60,
      second: Math.floor(rest / 1_000_000) % 60,
      microsecond: rest % 1_000_000,
      ...(offset === undefined ? {} : { offset })
    })
  }

  /**
   * The current time as a naive UTC timestamp (ForML's `datetime.utcnow()`), to the microsecond, from Effect's
   * `Clock` (so tests can fix it with `TestClock`).
   */
  static readonly now: Effect.Effect<Timestamp> = Effect.map(
    Clock.currentTimeNanos,
    (ns) => Either.getOrElse(Timestamp.fromEpochMicros(ns / 1000n), () => EPOCH)
  )

  /** The current time as a naive UTC timestamp, outside Effect (to the millisecond of `Date.now()`). */
  static nowSync(): Timestamp {
    return Either.getOrElse(Timestamp.fromEpochMicros(BigInt(Date.now()) * 1000n), () => EPOCH)
  }

  /** A `Date` as a naive UTC timestamp; an invalid date or one outside years 1-9999 is `InvalidInput`. */
  static fromDate(d: Date): Either.Either<Timestamp, InvalidInput> {
    const ms = d.getTime()
    return Number.isNaN(ms)
      ? invalid("Timestamp", "Invalid Date", "not a date")
      : Timestamp.fromEpochMicros(BigInt(ms) * 1000n)
  }

  /** The instant as a `Date` (a naive timestamp read as UTC), truncated to the millisecond. */
  static toDate(t: Timestamp): Date {
    return new Date(Number(Timestamp.epochMicros(t) / 1000n))
  }

  /** Microseconds since the epoch; a naive timestamp counts as UTC. */
  static epochMicros(t: Timestamp): bigint {
    const days = BigInt(daysFromCivil(t.year, t.month, t.day))
    const time = BigInt(((t.hour * 60 + t.minute) * 60 + t.second) * 1_000_000 + t.microsecond)
    return days * US_PER_DAY + time - BigInt(Option.getOrElse(t.offset, () => 0)) * US_PER_MINUTE
  }

  /** Python's `datetime.isoformat()`: `2023-05-28T21:53:47.123456`, `...+00:00`, `...+05:30`. */
  static toIsoString(t: Timestamp): string {
    const base = `${pad(t.year, 4)}-${pad(t.month, 2)}-${pad(t.day, 2)}T${pad(t.hour, 2)}:${pad(t.minute, 2)}:` +
      `${pad(t.second, 2)}${isoFraction(t.microsecond)}`
    return Option.match(t.offset, {
      onNone: () => base,
      onSome: (o) => `${base}${o < 0 ? "-" : "+"}${pad(Math.floor(Math.abs(o) / 60), 2)}:${pad(Math.abs(o) % 60, 2)}`
    })
  }

  /** Whether the timestamp has no offset (naive; ForML's own timestamps are naive UTC). */
  static isNaive(t: Timestamp): boolean {
    return Option.isNone(t.offset)
  }

  /** Order by instant (naive as UTC); ties between equal instants with different offsets are broken by offset. */
  static readonly Order: Order.Order<Timestamp> = Order.make((a, b) => {
    const x = Timestamp.epochMicros(a)
    const y = Timestamp.epochMicros(b)
    if (x !== y) return x < y ? -1 : 1
    const p = Option.getOrElse(a.offset, () => -Infinity)
    const q = Option.getOrElse(b.offset, () => -Infinity)
    return p < q ? -1 : p > q ? 1 : 0
  })

  /** The TOML form ForML writes: `isoformat()` with `+00:00` as `Z`. */
  toString(): string {
    return Timestamp.toIsoString(this).replace("+00:00", "Z")
  }

  /** Python's `isoformat()` (an offset of zero as `+00:00`). */
  override toJSON(): string {
    return Timestamp.toIsoString(this)
  }
}

const EPOCH = Either.getOrThrow(Timestamp.make({ year: 1970, month: 1, day: 1 }))

const DATE = /^(\d{4})-(\d{2})-(\d{2})$/
const TIME = /^(\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?$/

/** A TOML local date (Python `datetime.date`). */
export class LocalDate extends TextForm {
  private constructor(readonly year: number, readonly month: number, readonly day: number) {
    super()
  }

  protected get kindName(): string {
    return "LocalDate"
  }

  static make(year: number, month: number, day: number): Either.Either<LocalDate, InvalidInput> {
    const problem = dateProblem(year, month, day)
    return problem === undefined
      ? Either.right(new LocalDate(year, month, day))
      : invalid("LocalDate", `${year}-${month}-${day}`, problem)
  }

  /** `YYYY-MM-DD`. */
  static parse(s: string): Either.Either<LocalDate, InvalidInput> {
    const m = DATE.exec(s)
    return m === null
      ? invalid("LocalDate", s, "not a date (YYYY-MM-DD)")
      : Either.mapLeft(
        LocalDate.make(Number(m[1]), Number(m[2]), Number(m[3])),
        (e) => new InvalidInput({ kind: "LocalDate", input: s, reason: e.reason })
      )
  }

  toString(): string {
    return `${pad(this.year, 4)}-${pad(this.month, 2)}-${pad(this.day, 2)}`
  }
}

/** A TOML local time (Python `datetime.time`), to the microsecond. */
export class LocalTime extends TextForm {
  private constructor(
    readonly hour: number,
    readonly minute: number,
    readonly second: number,
    readonly microsecond: number
  ) {
    super()
  }

  protected get kindName(): string {
    return "LocalTime"
  }

  static make(hour: number, minute: number, second = 0, microsecond = 0): Either.Either<LocalTime, InvalidInput> {
    const problem = timeProblem(hour, minute, second, microsecond)
    return problem === undefined
      ? Either.right(new LocalTime(hour, minute, second, microsecond))
      : invalid("LocalTime", `${hour}:${minute}:${second}.${microsecond}`, problem)
  }

  /** `HH:MM:SS[.ffffff]`; more than six fraction digits are truncated. */
  static parse(s: string): Either.Either<LocalTime, InvalidInput> {
    const m = TIME.exec(s)
    return m === null
      ? invalid("LocalTime", s, "not a time (HH:MM:SS[.ffffff])")
      : Either.mapLeft(
        LocalTime.make(Number(m[1]), Number(m[2]), Number(m[3]), micros(m[4])),
        (e) => new InvalidInput({ kind: "LocalTime", input: s, reason: e.reason })
      )
  }

  /** Python's `time.isoformat()`. */
  toString(): string {
    return `${pad(this.hour, 2)}:${pad(this.minute, 2)}:${pad(this.second, 2)}${isoFraction(this.microsecond)}`
  }
}

/** A TOML table: keys in their written order. Equal to another table with the same keys and values in any order. */
export class TomlTable implements Equal.Equal {
  private constructor(readonly entries: ReadonlyArray<readonly [string, TomlValue]>) {}

  /** A table from entries or a record; of repeated keys the last one wins (as in a Python dict). */
  static make(
    input: Iterable<readonly [string, TomlValue]> | { readonly [key: string]: TomlValue }
  ): TomlTable {
    const source: Iterable<readonly [string, TomlValue]> = Symbol.iterator in input
      ? input as Iterable<readonly [string, TomlValue]>
      : Object.entries(input as { readonly [key: string]: TomlValue })
    const map = new Map<string, TomlValue>()
    for (const [k, v] of source) map.set(k, v)
    return new TomlTable([...map.entries()])
  }

  static readonly empty: TomlTable = new TomlTable([])

  get size(): number {
    return this.entries.length
  }

  get(key: string): Option.Option<TomlValue> {
    const entry = this.entries.find(([k]) => k === key)
    return entry === undefined ? Option.none() : Option.some(entry[1])
  }

  has(key: string): boolean {
    return this.entries.some(([k]) => k === key)
  }

  toJSON(): unknown {
    return Object.fromEntries(this.entries)
  }

  [Equal.symbol](that: Equal.Equal): boolean {
    return that instanceof TomlTable && that.size === this.size &&
      this.entries.every(([k, v]) => Option.exists(that.get(k), (w) => TomlValue.equals(v, w)))
  }

  [Hash.symbol](): number {
    // order-independent, like the equality
    return this.entries.reduce((h, [k, v]) => h + Hash.combine(TomlValue.hash(v))(Hash.string(k)), 0x7a11) | 0
  }
}

/** Any TOML value. Integers are `bigint`, floats `number`. */
export type TomlValue =
  | string
  | boolean
  | bigint
  | number
  | Timestamp
  | LocalDate
  | LocalTime
  | TomlTable
  | ReadonlyArray<TomlValue>

const isArray = (v: TomlValue): v is ReadonlyArray<TomlValue> => Array.isArray(v)

export const TomlValue = {
  /**
   * Structural equality: same kind and value (`3n` is not `3.0`); floats by value, so `-0.0` equals `0.0`, and a NaN
   * equals a NaN (Python would say no, but equality must be reflexive here).
   */
  equals(a: TomlValue, b: TomlValue): boolean {
    if (typeof a !== typeof b) return false
    if (typeof a === "number") return a === b || (Number.isNaN(a) && Number.isNaN(b))
    if (typeof a !== "object") return a === b
    if (isArray(a)) {
      return isArray(b as TomlValue) && (b as ReadonlyArray<TomlValue>).length === a.length &&
        a.every((x, i) => TomlValue.equals(x, (b as ReadonlyArray<TomlValue>)[i] as TomlValue))
    }
    return Equal.equals(a, b)
  },

  hash(v: TomlValue): number {
    switch (typeof v) {
      case "number":
        return Number.isNaN(v) ? Hash.string("NaN") : Hash.number(v === 0 ? 0 : v)
      case "bigint":
        return Hash.string(`int:${v}`)
      case "string":
        return Hash.string(v)
      case "boolean":
        return Hash.hash(v)
      default:
        return isArray(v) ? v.reduce<number>((h, x) => Hash.combine(TomlValue.hash(x))(h), 0x5eed) : Hash.hash(v)
    }
  },

  /** Python's truth value, which ForML uses to decide if a mode is set: 0, 0.0, '', [], {} and false are false. */
  isTruthy(v: TomlValue): boolean {
    switch (typeof v) {
      case "number":
        return v !== 0 // NaN is true in Python too
      case "bigint":
        return v !== 0n
      case "string":
        return v.length > 0
      case "boolean":
        return v
      default:
        return isArray(v) ? v.length > 0 : v instanceof TomlTable ? v.size > 0 : true
    }
  },

  /** What kind of TOML value `v` is, for messages. */
  kind(v: TomlValue): string {
    switch (typeof v) {
      case "number":
        return "float"
      case "bigint":
        return "integer"
      case "string":
        return "string"
      case "boolean":
        return "boolean"
      default:
        return isArray(v)
          ? "array"
          : v instanceof TomlTable
          ? "table"
          : v instanceof Timestamp
          ? "date-time"
          : v instanceof LocalDate
          ? "local date"
          : "local time"
    }
  }
} as const
