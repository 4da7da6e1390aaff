/** Generation tags against ForML's tags.json and tag-inputs.json, and the Tag class. */
import { describe, expect, it } from "@effect/vitest"
import { Equal, Hash, Option, Schema } from "effect"
import { Buffer } from "node:buffer"
import { StateId } from "../../src/asset/StateId.js"
import { Tag, Timestamp } from "../../src/asset/Tag.js"
import { readJson } from "../support/shared.js"
import {
  decodeErr,
  decodeOk,
  get,
  hasRepr,
  ordinalOf,
  tagFromV,
  tagToV,
  type V,
  type VTag,
  withOrdinal
} from "./vectorValues.js"

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
const wrongTimestamp = inputs.filter((c) =>
  c.ok && c.tag !== null && c.tag.training.timestamp !== null &&
  !isDateTime(c.tag.training.timestamp)
)
// ForML fails only because [training], its timestamp or [tuning] is missing
const missingMode = inputs.filter((c) =>
  !c.ok && c.error?.type === "KeyError" &&
  ["'training'", "'timestamp'", "'tuning'"].includes(c.error.message) && /^states = /m.test(c.toml ?? "")
)
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
    const tag = Tag.withStates(
      Tag.tuned(Tag.trained(at("2019-04-01T00:00:00"), Option.some(3n)), at("2019-04-05T00:00:00"), 0.5),
      [
        sid
      ]
    )
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
    expect(decodeErr(new Uint8Array([0xef, 0xbb, 0xbf, ...new TextEncoder().encode(text)]))).toContain(
      "byte order mark"
    )
  })
})
