import { describe, expect, it } from "@effect/vitest"
import { Array as Arr, Either, Equal, Hash, HashSet, Option, Schema } from "effect"
import { GenerationKey } from "../../src/asset/GenerationKey.js"
import { ProjectKey } from "../../src/asset/ProjectKey.js"
import { ReleaseKey } from "../../src/asset/ReleaseKey.js"
import { StateId } from "../../src/asset/StateId.js"
import { readJson } from "../support/shared.js"

type Encoded = string | number | boolean | null | { readonly $float: string } | { readonly $int: string }

/** A vector input as TS would hold it: `$float` and `$int` become JS numbers (the difference is lost). */
const toJs = (v: Encoded): string | number | boolean | null =>
  v !== null && typeof v === "object" ? Number("$float" in v ? v.$float : v.$int) : v

const name = (v: Encoded): string => JSON.stringify(v)

const release = (s: string | number): ReleaseKey => Either.getOrThrow(ReleaseKey.parse(s))

describe("ProjectKey", () => {
  it.each(["helloworld", "forml-titanic", "my_project.v2", "Default", "a", "x".repeat(255), "1.0"])(
    "accepts %j",
    (s) => {
      expect(Either.getOrThrow(ProjectKey.parse(s))).toBe(s)
      expect(Schema.decodeUnknownSync(ProjectKey.schema)(s)).toBe(s)
    }
  )

  it.each([
    ["", "empty"],
    ["hello@repo", "@"],
    [".", "not a name"],
    ["..", "not a name"],
    ["a/b", "only letters"],
    ["a b", "only letters"],
    ["tab\there", "only letters"],
    ["nul\u0000", "only letters"],
    ["ünïcode", "only letters"],
    ["x".repeat(256), "longer than 255"]
  ])("rejects %j", (s, reason) => {
    const result = ProjectKey.parse(s)
    expect(Either.isLeft(result)).toBe(true)
    const error = Either.getLeft(result).pipe(Option.getOrThrow)
    expect(error._tag).toBe("InvalidInput")
    expect(error.kind).toBe("ProjectKey")
    expect(error.reason).toContain(reason)
    expect(Either.isLeft(Schema.decodeUnknownEither(ProjectKey.schema)(s))).toBe(true)
  })
})

interface ReleaseCase {
  readonly input: Encoded
  readonly result: string
  readonly isPrerelease?: boolean
  readonly isPostrelease?: boolean
  readonly isDevrelease?: boolean
  readonly local?: string | null
  readonly public?: string
  readonly release?: ReadonlyArray<number>
  readonly epoch?: number
  readonly error?: { readonly message: string }
}

interface Releases {
  readonly keys: ReadonlyArray<ReleaseCase>
  readonly sortInput: ReadonlyArray<string>
  readonly sorted: ReadonlyArray<string>
  readonly sortedCheck: ReadonlyArray<string>
  readonly equality: ReadonlyArray<{
    readonly left: string
    readonly right: string
    readonly equal: boolean
    readonly hashEqual: boolean
    readonly compare: number
    readonly leftStr: string
    readonly rightStr: string
  }>
  readonly listingDedupe: ReadonlyArray<{
    readonly input: ReadonlyArray<string>
    readonly listing: ReadonlyArray<string>
    readonly last: string
  }>
}

describe("ReleaseKey (releases.json)", () => {
  const vectors = readJson<Releases>("forml-vectors", "releases.json")

  it.each(vectors.keys.filter((k) => k.result !== "invalid").map((k) => [name(k.input), k] as const))(
    "key %s",
    (_, k) => {
      const key = release(toJs(k.input) as string | number)
      expect(key.toString()).toBe(k.result)
      expect(key.isPrerelease).toBe(k.isPrerelease)
      expect(key.isPostrelease).toBe(k.isPostrelease)
      expect(key.isDevrelease).toBe(k.isDevrelease)
      expect(Option.getOrNull(key.localLabel)).toBe(k.local)
      expect(key.public).toBe(k.public)
      expect(key.release.map(Number)).toEqual(k.release)
      expect(Number(key.epoch)).toBe(k.epoch)
      // the normalised text parses back to itself
      expect(release(key.toString()).toString()).toBe(k.result)
      expect(Schema.encodeSync(ReleaseKey.schema)(Schema.decodeSync(ReleaseKey.schema)(key.toString()))).toBe(k.result)
    }
  )

  it.each(vectors.keys.filter((k) => k.result === "invalid").map((k) => [name(k.input), k] as const))(
    "invalid %s",
    (_, k) => {
      const input = toJs(k.input) as string | number
      const result = ReleaseKey.parse(input)
      const error = Either.getLeft(result).pipe(Option.getOrThrow)
      expect(error._tag).toBe("InvalidInput")
      expect(error.kind).toBe("ReleaseKey")
      expect(error.input).toBe(input)
      expect(k.error?.message).toContain("not PEP 440 compliant")
      expect(error.reason).toBe("not PEP 440 compliant")
      expect(Either.isLeft(Schema.decodeUnknownEither(ReleaseKey.schema)(input))).toBe(true)
    }
  )

  it("sorts sortInput into ForML's listing order", () => {
    const sorted = Arr.sort(vectors.sortInput.map((s) => release(s)), ReleaseKey.Order).map(String)
    expect(sorted).toEqual(vectors.sorted)
    expect(sorted).toEqual(vectors.sortedCheck)
  })

  it("sorts the reversed input the same way", () => {
    const sorted = Arr.sort(vectors.sortInput.map((s) => release(s)).reverse(), ReleaseKey.Order).map(String)
    expect(sorted).toEqual(vectors.sorted)
  })

  it.each(vectors.equality.map((e) => [`${e.left} vs ${e.right}`, e] as const))("equality %s", (_, e) => {
    const left = release(e.left)
    const right = release(e.right)
    expect(Equal.equals(left, right)).toBe(e.equal)
    expect(ReleaseKey.equals(left, right)).toBe(e.equal)
    expect(Hash.hash(left) === Hash.hash(right)).toBe(e.hashEqual)
    expect(ReleaseKey.Order(left, right)).toBe(e.compare)
    expect(ReleaseKey.Order(right, left)).toBe(0 - e.compare || 0)
    expect(left.toString()).toBe(e.leftStr)
    expect(right.toString()).toBe(e.rightStr)
  })

  it.each(vectors.listingDedupe.map((l) => [l.input.join(","), l] as const))("listing dedupe %s", (_, l) => {
    // ForML's Listing is sorted(set(keys)): of equal keys, the one met first stays.
    const listing = Arr.sort(Arr.dedupeWith(l.input.map((s) => release(s)), ReleaseKey.equals), ReleaseKey.Order)
    expect(listing.map(String)).toEqual(l.listing)
    expect(String(listing[listing.length - 1])).toBe(l.last)
    expect(HashSet.size(HashSet.fromIterable(l.input.map((s) => release(s))))).toBe(l.listing.length)
  })

  it("keeps numbers beyond 2^53 exact", () => {
    expect(release("1.99999999999999999999").toString()).toBe("1.99999999999999999999")
    expect(ReleaseKey.Order(release("1.99999999999999999999"), release("1.99999999999999999998"))).toBe(1)
  })

  it("reads local parts that look like numbers to JS as text, like packaging", () => {
    expect(release("1.0+1e3").toString()).toBe("1.0+1e3")
    expect(release("1.0+0x10").toString()).toBe("1.0+0x10")
    // alphanumeric local parts sort before numeric ones
    expect(ReleaseKey.Order(release("1.0+1e3"), release("1.0+5"))).toBe(-1)
  })
})

interface GenerationCase {
  readonly input: Encoded
  readonly result: number | { readonly $int: string } | "invalid"
  readonly str?: string
  readonly next?: number | { readonly $int: string }
  readonly error?: { readonly message: string }
}

interface Generations {
  readonly default: number
  readonly cases: ReadonlyArray<GenerationCase>
  readonly listingExample: {
    readonly input: ReadonlyArray<string | number>
    readonly listing: ReadonlyArray<number>
    readonly last: number
    readonly nextOfLast: number
  }
}

describe("GenerationKey (generations.json)", () => {
  const vectors = readJson<Generations>("forml-vectors", "generations.json")
  // Two rows a JS number cannot express as ForML sees them; both are tested on their own below.
  const isFloatOne = (c: GenerationCase) =>
    typeof c.input === "object" && c.input !== null && "$float" in c.input &&
    c.input.$float === "1.0"
  const isHuge = (c: GenerationCase) => typeof c.result === "object"
  const plain = vectors.cases.filter((c) => !isFloatOne(c) && !isHuge(c))

  it.each(plain.filter((c) => c.result !== "invalid").map((c) => [name(c.input), c] as const))("key %s", (_, c) => {
    const key = Either.getOrThrow(GenerationKey.parse(toJs(c.input)))
    expect(key).toBe(c.result)
    expect(String(key)).toBe(c.str)
    expect(GenerationKey.next(key)).toBe(c.next)
    expect(Schema.decodeSync(GenerationKey.schema)(String(key))).toBe(key)
    expect(Schema.encodeSync(GenerationKey.schema)(key)).toBe(c.str)
  })

  it.each(plain.filter((c) => c.result === "invalid").map((c) => [name(c.input), c] as const))(
    "invalid %s",
    (_, c) => {
      const error = Either.getLeft(GenerationKey.parse(toJs(c.input))).pipe(Option.getOrThrow)
      expect(error._tag).toBe("InvalidInput")
      expect(error.kind).toBe("GenerationKey")
      // ForML: "Invalid key <str(value)> (<reason>)"
      expect(c.error?.message).toBe(`Invalid key ${error.input} (${error.reason})`)
    }
  )

  it("takes an integral JS number as an int: ForML rejects the float 1.0, which a JS number cannot be", () => {
    const floatOne = vectors.cases.find(isFloatOne)
    expect(floatOne?.error?.message).toBe("Invalid key 1.0 (not an integer)")
    expect(Either.getOrThrow(GenerationKey.parse(1.0))).toBe(1)
    // the text "1.0" is not an integer, as in ForML
    const error = Either.getLeft(GenerationKey.parse("1.0")).pipe(Option.getOrThrow)
    expect(error.reason).toBe("not an integer")
  })

  it("rejects keys past 2^53 - 1, which ForML (Python int) still takes", () => {
    const huge = vectors.cases.find(isHuge)
    expect(huge?.str).toBe("100000000000000000000")
    const error = Either.getLeft(GenerationKey.parse(huge?.str ?? "")).pipe(Option.getOrThrow)
    expect(error.reason).toBe("too large")
    expect(Either.getOrThrow(GenerationKey.parse(String(Number.MAX_SAFE_INTEGER)))).toBe(Number.MAX_SAFE_INTEGER)
  })

  it("starts at ForML's default key", () => {
    expect(GenerationKey.first).toBe(vectors.default)
  })

  it("lists keys numerically without duplicates", () => {
    const ex = vectors.listingExample
    const keys = Arr.sort(
      Arr.dedupe(ex.input.map((v) => Either.getOrThrow(GenerationKey.parse(v)))),
      GenerationKey.Order
    )
    expect(keys).toEqual(ex.listing)
    expect(keys[keys.length - 1]).toBe(ex.last)
    expect(GenerationKey.next(keys[keys.length - 1] as GenerationKey)).toBe(ex.nextOfLast)
  })

  it.each([
    ["\u0669\u0660", 90], // Arabic-Indic 9, 0
    ["\uff11\uff12", 12], // full-width digits are Unicode decimals to Python's int()
    ["\u{1d7d9}", 1], // mathematical double-struck 1 (in a run of five digit sets)
    ["\u00a0 5\u3000", 5],
    ["1_000_000", 1000000]
  ])("reads %j like Python's int()", (s, n) => {
    expect(Either.getOrThrow(GenerationKey.parse(s))).toBe(n)
  })

  it.each(["_1", "1_", "+_1", "--1", "+", "1 2", "\ufeff1", "\u00bd", "NaN", "Infinity"])("rejects %j", (s) => {
    expect(Either.isLeft(GenerationKey.parse(s))).toBe(true)
  })

  it.each([Number.NaN, Infinity, -Infinity, 0.5, -0])("rejects the number %d", (n) => {
    expect(Either.isLeft(GenerationKey.parse(n))).toBe(true)
  })
})

describe("StateId", () => {
  const canonical = "cbc9b2ae-152f-42a0-8055-b8271fcf6008"

  it.each([
    canonical,
    "CBC9B2AE-152F-42A0-8055-B8271FCF6008",
    "cbc9b2ae152f42a08055b8271fcf6008",
    "{cbc9b2ae-152f-42a0-8055-b8271fcf6008}",
    "urn:uuid:cbc9b2ae-152f-42a0-8055-b8271fcf6008",
    "URN:UUID:CBC9B2AE-152F-42A0-8055-B8271FCF6008".replace("URN:UUID:", "urn:uuid:"),
    "cbc9-b2ae-152f-42a0-8055-b827-1fcf-6008"
  ])("normalises %j", (s) => {
    expect(Either.getOrThrow(StateId.parse(s))).toBe(canonical)
    expect(Schema.decodeSync(StateId.schema)(s)).toBe(canonical)
  })

  it.each([
    "not-a-uuid",
    "",
    "cbc9b2ae-152f-42a0-8055-b8271fcf600",
    "cbc9b2ae-152f-42a0-8055-b8271fcf60088",
    "gbc9b2ae-152f-42a0-8055-b8271fcf6008",
    " cbc9b2ae-152f-42a0-8055-b8271fcf6008",
    "URN:UUID:cbc9b2ae-152f-42a0-8055-b8271fcf6008"
  ])("rejects %j", (s) => {
    const error = Either.getLeft(StateId.parse(s)).pipe(Option.getOrThrow)
    expect(error.kind).toBe("StateId")
    expect(error.reason).toBe("badly formed hexadecimal UUID string")
  })

  it("makes fresh version 4 ids in canonical form", () => {
    const a = StateId.random()
    const b = StateId.random()
    expect(a).not.toBe(b)
    expect(a).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/)
    expect(Either.getOrThrow(StateId.parse(a))).toBe(a)
  })
})
