import { describe, expect, it } from "@effect/vitest"
import { Array as Arr, Either, Equal, Hash, HashSet, Option, Schema } from "effect"
import { ProjectKey } from "../../src/asset/ProjectKey.js"
import { ReleaseKey } from "../../src/asset/ReleaseKey.js"
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
