/** The TOML codec under Tag (reading, writing) and the date-time values it keeps to the microsecond. */
import { describe, expect, it } from "@effect/vitest"
import { Duration, Effect, Either, Equal, Option, TestClock } from "effect"
import { readToml } from "../../src/asset/internal/tomlRead.js"
import { Tag, Timestamp, TomlTable, type TomlValue } from "../../src/asset/Tag.js"
import { decodeErr, decodeOk, get, ordinalOf, toV, trained, withOrdinal } from "./vectorValues.js"

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
    expect(
      Equal.equals(get(Timestamp.parse("2019-04-01T00:00:00Z")), get(Timestamp.parse("2019-04-01T00:00:00+00:00")))
    )
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
