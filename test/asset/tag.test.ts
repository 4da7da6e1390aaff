import { describe, expect, it } from "@effect/vitest"
import { Duration, Effect, Either, Equal, Hash, Option, Schema, TestClock } from "effect"
import { Buffer } from "node:buffer"
import { StateId } from "../../src/asset/StateId.js"
import { LocalDate, LocalTime, Tag, Timestamp, TomlTable, TomlValue } from "../../src/asset/Tag.js"
import { readToml } from "../../src/asset/internal/tomlRead.js"
import { floatRepr } from "../../src/asset/internal/pythonRepr.js"
import { readJson } from "../support/shared.js"

// ---- the vectors' value encoding (forml-vectors/README.md) <-> TomlValue ----

type V =
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

interface VTag {
  readonly training: { readonly timestamp: V; readonly ordinal: V }
  readonly tuning: { readonly timestamp: V; readonly score: V }
  readonly states: ReadonlyArray<string>
}

const get = <A>(e: Either.Either<A, unknown>): A => Either.getOrThrow(e)

const fromV = (v: V): Option.Option<TomlValue> => {
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

const toV = (v: TomlValue): V => {
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

const optV = (o: Option.Option<TomlValue>): V => Option.match(o, { onNone: () => null, onSome: toV })

const tagToV = (t: Tag): VTag => ({
  training: { timestamp: optV(t.training.timestamp), ordinal: optV(t.training.ordinal) },
  tuning: { timestamp: optV(t.tuning.timestamp), score: optV(t.tuning.score) },
  states: [...t.states]
})

const timestampOf = (v: V): Option.Option<Timestamp> =>
  Option.map(fromV(v), (x) => (x instanceof Timestamp ? x : (() => {
    throw new Error(`not a datetime: ${JSON.stringify(v)}`)
  })()))

const tagFromV = (t: VTag): Tag =>
  Tag.make({
    training: { timestamp: timestampOf(t.training.timestamp), ordinal: fromV(t.training.ordinal) },
    tuning: { timestamp: timestampOf(t.tuning.timestamp), score: fromV(t.tuning.score) },
    states: t.states.map((s) => get(StateId.parse(s)))
  })

const hasRepr = (v: unknown): boolean => JSON.stringify(v).includes("\"$repr\"")

const decodeOk = (input: string | Uint8Array): Tag => {
  const r = Tag.decode(input)
  if (Either.isLeft(r)) throw new Error(r.left.message)
  return r.right
}

const decodeErr = (input: string | Uint8Array): string => {
  const r = Tag.decode(input)
  expect(Either.isLeft(r)).toBe(true)
  const e = Option.getOrThrow(Either.getLeft(r))
  expect(e._tag).toBe("InvalidTag")
  return e.reason
}

// ---- tags.json: what ForML writes ----

interface TagCase {
  readonly name: string
  readonly tag: VTag
  readonly toml: string
  readonly roundtrip: boolean
  readonly roundtripEqual: boolean
  readonly loaded: VTag | null
  readonly loadError: { readonly type: string; readonly message: string } | null
  readonly note?: string
}

const tags = readJson<{ readonly cases: ReadonlyArray<TagCase> }>("forml-vectors", "tags.json").cases
// numpy/pandas values have no TS counterpart: ForML writes them as their str() (a TOML string)
const exotic = tags.filter((c) => hasRepr(c.tag))
// toml 0.10.2's _dump_str corrupts these strings; we write correct escapes instead
const corrupted = tags.filter((c) => !hasRepr(c.tag) && (c.note ?? "").includes("_dump_str"))
const faithful = tags.filter((c) => !exotic.includes(c) && !corrupted.includes(c))
const byName = (n: string) => [n, tags.find((c) => c.name === n) as TagCase] as const

describe("Tag.encode (tags.json)", () => {
  it("covers every case of the vector file", () => {
    expect(tags.length).toBe(50)
    expect(exotic.map((c) => c.name)).toEqual([
      "exotic-numpy-int64-ordinal",
      "exotic-pandas-timestamp-ordinal",
      "exotic-numpy-float64-score"
    ])
    expect(corrupted.map((c) => c.name)).toEqual([
      "ordinal-str-control-chars",
      "ordinal-str-backslash-x",
      "ordinal-str-backslash-and-control"
    ])
    expect(faithful.every((c) => c.roundtripEqual || c.loadError?.type === "KeyError" || c.name === "score-nan"))
      .toBe(true)
  })

  it.each(faithful.map((c) => [c.name, c] as const))("%s: writes ForML's exact bytes", (_, c) => {
    const tag = tagFromV(c.tag)
    expect(Tag.encode(tag)).toBe(c.toml)
    expect(Buffer.from(Tag.encodeBytes(tag)).equals(Buffer.from(c.toml, "utf-8"))).toBe(true)
    expect(tagToV(tag)).toEqual(c.tag)
  })

  it.each(faithful.map((c) => [c.name, c] as const))("%s: reads its own bytes back equal", (_, c) => {
    const tag = tagFromV(c.tag)
    const back = decodeOk(Tag.encode(tag))
    expect(Equal.equals(back, tag)).toBe(true)
    expect(Hash.hash(back)).toBe(Hash.hash(tag))
    expect(tagToV(back)).toEqual(c.tag)
  })

  it.each(corrupted.map((c) => [c.name, c] as const))(
    "%s: ForML's writer corrupts the string; ours writes valid TOML that reads back equal",
    (_, c) => {
      const tag = tagFromV(c.tag)
      const text = Tag.encode(tag)
      expect(text).not.toBe(c.toml)
      // only the ordinal line differs from ForML's layout
      const ours = text.split("\n")
      const theirs = c.toml.split("\n")
      expect(ours.length).toBe(theirs.length)
      ours.forEach((line, i) => {
        if (!line.startsWith("ordinal = ")) expect(line).toBe(theirs[i])
      })
      const back = decodeOk(text)
      expect(Equal.equals(back, tag)).toBe(true)
      expect(tagToV(back)).toEqual(c.tag)
    }
  )

  it("escapes control characters as \\u00NN where ForML loses the backslash", () => {
    const [, c] = byName("ordinal-str-control-chars")
    expect(c.toml).toContain("ordinal = \"ax01bx7fc\\r\\u200bd\"")
    expect(Tag.encode(tagFromV(c.tag))).toContain("ordinal = \"a\\u0001b\\u007fc\\r\\u200bd\"")
  })

  it.each(exotic.map((c) => [c.name, c] as const))(
    "%s: numpy/pandas value, not representable in TS; the string ForML turns it into is written the same",
    (_, c) => {
      const loaded = c.loaded as VTag
      expect(Tag.encode(tagFromV(loaded))).toBe(c.toml)
    }
  )
})

describe("Tag.decode (tags.json)", () => {
  it.each(tags.filter((c) => c.roundtrip && !hasRepr(c.tag)).map((c) => [c.name, c] as const))(
    "%s: reads what ForML reads",
    (_, c) => {
      const loaded = decodeOk(c.toml)
      // ForML's reader (toml 0.10.2) drops the sign of -0.0; we keep it (equal as floats)
      const expected = c.name === "score-negative-zero" ? c.tag : c.loaded
      expect(tagToV(loaded)).toEqual(expected)
    }
  )

  it.each(tags.filter((c) => c.loadError?.type === "KeyError").map((c) => [c.name, c] as const))(
    "%s: we read what ForML cannot (it fails with KeyError 'timestamp')",
    (_, c) => {
      expect(c.loadError?.message).toBe("'timestamp'")
      const loaded = decodeOk(c.toml)
      expect(Equal.equals(loaded, tagFromV(c.tag))).toBe(true)
      expect(Tag.isTrained(loaded)).toBe(false)
    }
  )

  it("refuses the invalid escape ForML writes for a backslash before x, as ForML does", () => {
    const [, c] = byName("ordinal-str-backslash-x")
    expect(c.loadError?.type).toBe("TomlDecodeError")
    expect(decodeErr(c.toml)).toMatch(/^not TOML: /)
  })

  it("keeps a NaN score, and a tag with one equals itself (Python's nan != nan makes ForML's tags unequal)", () => {
    const [, c] = byName("score-nan")
    const loaded = decodeOk(c.toml)
    expect(Number.isNaN(Option.getOrThrow(loaded.tuning.score))).toBe(true)
    expect(Equal.equals(loaded, tagFromV(c.tag))).toBe(true)
  })
})

// ---- tag-inputs.json: what ForML reads ----

interface InputCase {
  readonly name: string
  readonly toml: string | null
  readonly tomlBase64?: string
  readonly ok: boolean
  readonly tag: VTag | null
  readonly error: { readonly type: string; readonly message: string } | null
  readonly bool?: boolean
  readonly redump?: string
}

const inputs = readJson<{ readonly cases: ReadonlyArray<InputCase> }>("forml-vectors", "tag-inputs.json").cases
const inputOf = (c: InputCase): string | Uint8Array =>
  c.toml ?? new Uint8Array(Buffer.from(c.tomlBase64 ?? "", "base64"))
const isDateTime = (v: V): boolean => v !== null && typeof v === "object" && ("$datetime" in v || "$datetimeZ" in v)
// ForML keeps a timestamp of the wrong type (a string, a local date or time, an int) without complaint
const wrongTimestamp = inputs.filter((c) => c.ok && c.tag !== null && c.tag.training.timestamp !== null &&
  !isDateTime(c.tag.training.timestamp))
// ForML fails only because [training], its timestamp or [tuning] is missing
const missingMode = inputs.filter((c) => !c.ok && c.error?.type === "KeyError" &&
  ["'training'", "'timestamp'", "'tuning'"].includes(c.error.message) && /^states = /m.test(c.toml ?? ""))
const accepted = inputs.filter((c) => c.ok && !wrongTimestamp.includes(c))
const rejected = inputs.filter((c) => !c.ok && !missingMode.includes(c))

describe("Tag.decode (tag-inputs.json)", () => {
  it("sorts every case into one group", () => {
    expect(inputs.length).toBe(48)
    expect(accepted.length + rejected.length + wrongTimestamp.length + missingMode.length).toBe(48)
    expect(wrongTimestamp.map((c) => c.name)).toEqual([
      "timestamp-as-string",
      "timestamp-as-date",
      "timestamp-as-time",
      "timestamp-as-int-nonzero"
    ])
    expect(missingMode.map((c) => c.name)).toEqual(["missing-tuning", "missing-training", "missing-training-timestamp"])
  })

  it.each(accepted.map((c) => [c.name, c] as const))("%s: reads ForML's value", (_, c) => {
    const tag = decodeOk(inputOf(c))
    expect(tagToV(tag)).toEqual(c.tag)
    expect(Tag.isEmpty(tag)).toBe(!c.bool)
    expect(Tag.encode(tag)).toBe(c.redump)
    // the same from bytes
    expect(Equal.equals(decodeOk(new TextEncoder().encode(c.toml ?? "")), tag)).toBe(true)
  })

  it.each(rejected.map((c) => [`${c.name} (${c.error?.type})`, c] as const))("%s: refused", (_, c) => {
    decodeErr(inputOf(c))
  })

  it.each(wrongTimestamp.map((c) => [c.name, c] as const))(
    "%s: refused, where ForML keeps a timestamp that is no date-time",
    (_, c) => {
      expect(decodeErr(inputOf(c))).toMatch(/^training timestamp is an? .*, not a date-time$/)
    }
  )

  it("missing-tuning: we read what ForML cannot; the tag is trained, tuning empty", () => {
    const c = missingMode[0] as InputCase
    const tag = decodeOk(inputOf(c))
    expect(tagToV(tag)).toEqual({
      training: { timestamp: { $datetime: "2019-04-01T00:00:00" }, ordinal: null },
      tuning: { timestamp: null, score: null },
      states: ["00000000-0000-0000-0000-000000000000"]
    })
    expect(Equal.equals(decodeOk(Tag.encode(tag)), tag)).toBe(true)
  })

  it.each(missingMode.slice(1).map((c) => [c.name, c] as const))(
    "%s: we read what ForML cannot; without a training timestamp the mode is empty and its values dropped",
    (_, c) => {
      const tag = decodeOk(inputOf(c))
      expect(tagToV(tag)).toEqual({
        training: { timestamp: null, ordinal: null },
        tuning: { timestamp: null, score: null },
        states: ["00000000-0000-0000-0000-000000000000"]
      })
      expect(Tag.isEmpty(tag)).toBe(true)
      expect(Equal.equals(decodeOk(Tag.encode(tag)), tag)).toBe(true)
    }
  )

  it("reads a lower-case z as ForML does: a naive date-time", () => {
    const tag = decodeOk(inputs.find((c) => c.name === "lowercase-t-and-z")?.toml ?? "")
    expect(Timestamp.isNaive(Option.getOrThrow(tag.training.timestamp))).toBe(true)
    // Timestamp.parse follows RFC 3339 instead
    expect(Option.getOrThrow(get(Timestamp.parse("2019-04-01t00:00:00z")).offset)).toBe(0)
  })
})

// ---- the reader and writer beyond the vectors ----

const trained = "states = []\n\n[training]\ntimestamp = 2019-04-01T00:00:00\n"
const withOrdinal = (ordinal: string) => `${trained}ordinal = ${ordinal}\n\n[tuning]\n`
const ordinalOf = (text: string): TomlValue => Option.getOrThrow(decodeOk(text).training.ordinal)

describe("TOML reading", () => {
  it.each([
    ["2019-02-30", "day out of range"],
    ["2019-02-29T00:00:00", "day out of range"],
    ["0000-01-01", "year out of range"],
    ["2019-13-01T00:00:00", "month out of range"],
    ["2019-04-01T24:00:00", "time out of range"],
    ["2019-04-01T00:00:60", "time out of range"],
    ["2019-04-01T00:00:00+24:00", "offset out of range"],
    ["12:30", "seconds are required"],
    ["25:00:00", "time out of range"]
  ])("refuses the date/time %s", (literal, reason) => {
    expect(decodeErr(withOrdinal(literal))).toContain(reason)
  })

  it("keeps microseconds and offsets of date-times wherever they are", () => {
    const v = ordinalOf(withOrdinal("[2020-02-29T23:59:59.999999-07:00, { at = 1979-05-27 07:32:00.000001Z }]"))
    expect(toV(v)).toEqual([
      { $datetimeZ: "2020-02-29T23:59:59.999999-07:00" },
      { $table: { at: { $datetimeZ: "1979-05-27T07:32:00.000001+00:00" } } }
    ])
  })

  it("reads local dates and times, truncating fractions to microseconds", () => {
    expect(toV(ordinalOf(withOrdinal("[2020-02-29, 00:00:00.1234567, 23:59:59]")))).toEqual([
      { $date: "2020-02-29" },
      { $time: "00:00:00.123456" },
      { $time: "23:59:59" }
    ])
  })

  it("leaves date-like text alone in strings, comments and keys", () => {
    const text = `${
      withOrdinal(
        "\"\"\"2019-04-01T00:00:00.5\n12:00:00\"\"\" # 2019-02-30T00:00:00"
      )
    }\n[extra]\n2019-02-30 = '2019-04-01T00:00:00'\n"12:00:00" = 1\n[2019-04-01]\nx = 12:00:00.5\n`
    expect(ordinalOf(text)).toBe("2019-04-01T00:00:00.5\n12:00:00")
    const doc = get(readToml(text))
    expect(toV(doc)).toMatchObject({
      $table: {
        extra: { $table: { "2019-02-30": "2019-04-01T00:00:00", "12:00:00": 1 } },
        "2019-04-01": { $table: { x: { $time: "12:00:00.500000" } } }
      }
    })
  })

  it("reads integers past 2^53 exactly and tells floats from integers", () => {
    expect(ordinalOf(withOrdinal("-9223372036854775808"))).toBe(-9223372036854775808n)
    expect(ordinalOf(withOrdinal("3.0"))).toBe(3)
    expect(ordinalOf(withOrdinal("3"))).toBe(3n)
    expect(ordinalOf(withOrdinal("0o17"))).toBe(15n)
    expect(ordinalOf(withOrdinal("-inf"))).toBe(-Infinity)
  })

  it("refuses a date-time used as a key", () => {
    decodeErr(`${trained}2019-04-01T00:00:00 = 1\n[tuning]\n`)
  })
})

describe("TOML writing", () => {
  const now = get(Timestamp.parse("2019-04-01T00:00:00"))
  const roundtrip = (ordinal: TomlValue): Tag => {
    const tag = Tag.trained(now, ordinal)
    const back = decodeOk(Tag.encode(tag))
    expect(Equal.equals(back, tag)).toBe(true)
    return back
  }

  it.each([
    ["every ASCII control character", Array.from({ length: 32 }, (_, i) => String.fromCharCode(i)).join("") + "\x7f"],
    ["separators and format characters", "a\u2028b\u2029c\u00a0d\u200be\ufeff\u00ad"],
    ["astral characters", "\u{1f680}\u{e0001}\u{10ffff}"],
    ["backslashes and quotes", "C:\\xdir\\\\\"'\\u0041"]
  ])("writes strings with %s that read back equal", (_, s) => {
    roundtrip(s)
    roundtrip(TomlTable.make({ [s]: s }))
  })

  it("writes a lone surrogate as U+FFFD", () => {
    const back = decodeOk(Tag.encode(Tag.trained(now, "a\ud800b")))
    expect(Option.getOrThrow(back.training.ordinal)).toBe("a\ufffdb")
  })

  it("writes nested tables and arrays of tables the way toml 0.10.2 lays them out", () => {
    const ordinal = TomlTable.make([
      ["a", 1n],
      ["nested", TomlTable.make({ deep: TomlTable.make({ x: "y" }), z: [1n, 2n] })],
      ["rows", [TomlTable.make({ n: 1n, sub: TomlTable.make({ k: true }) }), TomlTable.make({ n: 2n })]],
      ["mixed", [1n, TomlTable.make({ inline: 0.5 })]]
    ])
    roundtrip(ordinal)
    expect(Tag.encode(Tag.trained(now, ordinal))).toBe(
      "states = []\n\n[training]\ntimestamp = 2019-04-01T00:00:00\n\n[tuning]\n\n" +
        "[training.ordinal]\na = 1\nmixed = [ 1, { inline = 0.5 },]\n" +
        "[[training.ordinal.rows]]\nn = 1\n\n[training.ordinal.rows.sub]\nk = true\n" +
        "[[training.ordinal.rows]]\nn = 2\n\n" +
        "[training.ordinal.nested]\nz = [ 1, 2,]\n\n[training.ordinal.nested.deep]\nx = \"y\"\n"
    )
  })

  it("writes floats as Python's repr, exponents trimmed as toml 0.10.2 does", () => {
    const score = (x: number) => Tag.encode(Tag.tuned(Tag.trained(now), now, x)).split("\n").at(-2)
    expect(score(1e15)).toBe("score = 1000000000000000.0")
    expect(score(1e-5)).toBe("score = 1e-5")
    expect(score(0.0001)).toBe("score = 0.0001")
    expect(score(-1.5e-300)).toBe("score = -1.5e-300")
    expect(score(-Infinity)).toBe("score = -inf")
    expect(score(123456789.125)).toBe("score = 123456789.125")
  })

  it("writes empty arrays and tables and quoted keys", () => {
    roundtrip([])
    roundtrip(TomlTable.empty)
    roundtrip(TomlTable.make({ "a.b": 1n, "": 2n, "ünï": [[]] }))
  })
})

describe("Tag", () => {
  const at = (s: string) => get(Timestamp.parse(s))
  const sid = get(StateId.parse("01010101-0101-0101-0101-010101010101"))

  it("drops a mode without a timestamp, as ForML's Tag does", () => {
    const tag = Tag.make({ training: { ordinal: 5n }, tuning: { score: 0.9 }, states: [sid] })
    expect(Option.isNone(tag.training.ordinal)).toBe(true)
    expect(Option.isNone(tag.tuning.score)).toBe(true)
    expect(Tag.isEmpty(tag)).toBe(true)
    expect(Equal.equals(tag, Tag.withStates(Tag.empty, [sid]))).toBe(true)
    expect(Tag.encode(tag)).toBe(Tag.encode(new Tag({ states: [sid] })))
  })

  it("builds a trained, tuned tag with states", () => {
    const tag = Tag.withStates(Tag.tuned(Tag.trained(at("2019-04-01T00:00:00"), Option.some(3n)), at("2019-04-05T00:00:00"), 0.5), [
      sid
    ])
    expect(Tag.isTrained(tag)).toBe(true)
    expect(Tag.isEmpty(tag)).toBe(false)
    expect(tag.states).toEqual([sid])
    expect(Tag.encode(tag)).toBe(
      "states = [ \"01010101-0101-0101-0101-010101010101\",]\n\n[training]\ntimestamp = 2019-04-01T00:00:00\n" +
        "ordinal = 3\n\n[tuning]\ntimestamp = 2019-04-05T00:00:00\nscore = 0.5\n"
    )
    expect(Schema.decodeSync(Tag.schema)(Schema.encodeSync(Tag.schema)(tag))).toEqual(tag)
  })

  it("tells tags apart by every field, the kind of number included", () => {
    const base = Tag.trained(at("2019-04-01T00:00:00"), 3n)
    expect(Equal.equals(base, Tag.trained(at("2019-04-01T00:00:00"), 3n))).toBe(true)
    expect(Equal.equals(base, Tag.trained(at("2019-04-01T00:00:00"), 3))).toBe(false)
    expect(Equal.equals(base, Tag.trained(at("2019-04-01T00:00:00Z"), 3n))).toBe(false)
    expect(Equal.equals(base, Tag.trained(at("2019-04-01T00:00:00.000001"), 3n))).toBe(false)
    expect(Equal.equals(base, Tag.withStates(base, [sid]))).toBe(false)
    expect(Equal.equals(Tag.trained(at("2019-04-01T00:00:00"), -0), Tag.trained(at("2019-04-01T00:00:00"), 0))).toBe(
      true
    )
  })

  it("reads bytes as UTF-8 and refuses a BOM", () => {
    const text = withOrdinal("\"日本語\"")
    expect(ordinalOf(text)).toBe("日本語")
    expect(Equal.equals(decodeOk(new TextEncoder().encode(text)), decodeOk(text))).toBe(true)
    expect(decodeErr(new Uint8Array([0xef, 0xbb, 0xbf, ...new TextEncoder().encode(text)]))).toContain("byte order mark")
  })
})

describe("Timestamp", () => {
  it("keeps microseconds and the offset, and formats as Python's isoformat", () => {
    const t = get(Timestamp.parse("2023-05-28T21:53:47.000500+00:00"))
    expect(t.microsecond).toBe(500)
    expect(Timestamp.toIsoString(t)).toBe("2023-05-28T21:53:47.000500+00:00")
    expect(t.toString()).toBe("2023-05-28T21:53:47.000500Z")
    expect(Timestamp.toIsoString(get(Timestamp.parse("0001-01-01 00:00:00")))).toBe("0001-01-01T00:00:00")
    expect(Timestamp.toIsoString(get(Timestamp.parse("1979-05-27T00:32:00-07:00")))).toBe("1979-05-27T00:32:00-07:00")
  })

  it("converts to and from Date and epoch microseconds, naive as UTC", () => {
    const d = new Date("2023-05-28T21:53:47.123Z")
    const t = get(Timestamp.fromDate(d))
    expect(Timestamp.isNaive(t)).toBe(true)
    expect(t.toString()).toBe("2023-05-28T21:53:47.123000")
    expect(Timestamp.toDate(t).toISOString()).toBe(d.toISOString())
    expect(Timestamp.toDate(get(Timestamp.parse("2023-05-28T23:53:47.123999+02:00"))).toISOString()).toBe(
      d.toISOString()
    )
    const min = get(Timestamp.parse("0001-01-01T00:00:00"))
    expect(get(Timestamp.fromEpochMicros(Timestamp.epochMicros(min))).toString()).toBe("0001-01-01T00:00:00")
    const max = get(Timestamp.parse("9999-12-31T23:59:59.999999"))
    expect(get(Timestamp.fromEpochMicros(Timestamp.epochMicros(max))).toString()).toBe("9999-12-31T23:59:59.999999")
    expect(Either.isLeft(Timestamp.fromEpochMicros(Timestamp.epochMicros(max) + 1n))).toBe(true)
    expect(Either.isLeft(Timestamp.fromDate(new Date(Number.NaN)))).toBe(true)
  })

  it("orders by instant", () => {
    const a = get(Timestamp.parse("2019-04-01T02:00:00+02:00"))
    const b = get(Timestamp.parse("2019-04-01T00:00:00.000001"))
    expect(Timestamp.Order(a, b)).toBe(-1)
    expect(Timestamp.Order(b, a)).toBe(1)
    expect(Equal.equals(a, get(Timestamp.parse("2019-04-01T00:00:00Z")))).toBe(false)
    expect(Equal.equals(get(Timestamp.parse("2019-04-01T00:00:00Z")), get(Timestamp.parse("2019-04-01T00:00:00+00:00"))))
      .toBe(true)
  })

  it.effect("now reads Effect's clock to the microsecond, naive UTC like ForML's utcnow()", () =>
    Effect.gen(function*() {
      yield* TestClock.adjust(Duration.micros(1_700_000_000_123_456n))
      const t = yield* Timestamp.now
      expect(t.toString()).toBe("2023-11-14T22:13:20.123456")
      const s = Timestamp.nowSync()
      expect(Timestamp.isNaive(s)).toBe(true)
      expect(Math.abs(Timestamp.toDate(s).getTime() - Date.now())).toBeLessThan(5_000)
    }))
})
