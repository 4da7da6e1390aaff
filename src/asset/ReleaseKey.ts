/**
 * The release level key: a PEP 440 version, normalised as Python's `packaging` 23 prints it (`v1.0` -> `1.0`,
 * `1.0c1` -> `1.0rc1`), equal and ordered by PEP 440 rules (`1.0` equals `1.0.0`, yet each keeps its own text).
 */
import { VERSION_PATTERN } from "@renovatebot/pep440/lib/version.js"
import { Either, Equal, Hash, Option, Order, ParseResult, Schema } from "effect"
import { InvalidInput } from "../errors.js"
import { numberStr } from "./internal/pythonRepr.js"

// The grammar is the library's (identical to packaging's); the pieces are read here with bigints, because the
// library turns numbers into JS numbers (lossy past 2^53) and reads local parts like `1e3` as numbers.
const GRAMMAR = new RegExp(`^\\s*${VERSION_PATTERN}\\s*$`, "i")

type PreLabel = "a" | "b" | "rc"
type LocalPart = string | bigint

const preLabel = (l: string): PreLabel => {
  const lower = l.toLowerCase()
  return lower === "alpha" || lower === "a" ? "a" : lower === "beta" || lower === "b" ? "b" : "rc"
}
const number = (n: string | undefined): bigint => (n === undefined || n === "" ? 0n : BigInt(n))

const cmp = (a: bigint | string, b: bigint | string): -1 | 0 | 1 => (a < b ? -1 : a > b ? 1 : 0)

/** A release key: an immutable PEP 440 version. Build it with `ReleaseKey.parse`. */
export class ReleaseKey implements Equal.Equal {
  readonly #text: string
  readonly #canonical: string

  private constructor(
    /** The epoch (`1` in `1!2.0`), 0 when absent. */
    readonly epoch: bigint,
    /** The release numbers as written (`[1, 0, 0]` for `1.0.0`). */
    readonly release: ReadonlyArray<bigint>,
    readonly pre: Option.Option<readonly [PreLabel, bigint]>,
    readonly post: Option.Option<bigint>,
    readonly dev: Option.Option<bigint>,
    /** The local segment parts (`["local", 7n]` for `+local.7`), lower case, numbers as numbers. */
    readonly local: Option.Option<ReadonlyArray<LocalPart>>
  ) {
    const localText = Option.map(local, (parts) => parts.join("."))
    this.#text = [
      epoch !== 0n ? `${epoch}!` : "",
      release.join("."),
      Option.match(pre, { onNone: () => "", onSome: ([l, n]) => `${l}${n}` }),
      Option.match(post, { onNone: () => "", onSome: (n) => `.post${n}` }),
      Option.match(dev, { onNone: () => "", onSome: (n) => `.dev${n}` }),
      Option.match(localText, { onNone: () => "", onSome: (l) => `+${l}` })
    ].join("")
    // Equality ignores trailing zeros of the release (packaging's comparison key does the same).
    const trimmed = trimZeros(release)
    this.#canonical = [
      epoch,
      trimmed.join("."),
      Option.match(pre, { onNone: () => "", onSome: ([l, n]) => `${l}${n}` }),
      Option.match(post, { onNone: () => "", onSome: String }),
      Option.match(dev, { onNone: () => "", onSome: String }),
      Option.getOrElse(localText, () => "")
    ].join("|")
  }

  /** A release key from a version string, or from a number read as Python's `str()` prints it (`1`, `1.5`). */
  static parse(input: string | number): Either.Either<ReleaseKey, InvalidInput> {
    const text = typeof input === "number" ? numberStr(input) : input
    const groups = GRAMMAR.exec(text)?.groups
    if (groups === undefined || groups.release === undefined) {
      return Either.left(
        new InvalidInput({ kind: "ReleaseKey", input: text, reason: "not PEP 440 compliant" })
      )
    }
    const pre: Option.Option<readonly [PreLabel, bigint]> = groups.pre_l !== undefined
      ? Option.some([preLabel(groups.pre_l), number(groups.pre_n)] as const)
      : Option.none()
    const postNumber = groups.post_n1 ?? groups.post_n2
    const post: Option.Option<bigint> = groups.post_l !== undefined || groups.post_n1 !== undefined
      ? Option.some(number(postNumber))
      : Option.none()
    const dev: Option.Option<bigint> = groups.dev_l !== undefined ? Option.some(number(groups.dev_n)) : Option.none()
    const local = Option.map(
      Option.fromNullable(groups.local),
      (l) => l.split(/[-_.]/).map((part): LocalPart => (/^[0-9]+$/.test(part) ? BigInt(part) : part.toLowerCase()))
    )
    return Either.right(
      new ReleaseKey(number(groups.epoch), groups.release.split(".").map((n) => BigInt(n)), pre, post, dev, local)
    )
  }

  /** PEP 440 order (packaging's): epochs last, dev < pre < final < post, local versions after their public one. */
  static readonly Order: Order.Order<ReleaseKey> = Order.make((a, b) => compare(a, b))

  /** PEP 440 equality: `1.0` equals `1.0.0` and `0!1.0`. */
  static equals(a: ReleaseKey, b: ReleaseKey): boolean {
    return a.#canonical === b.#canonical
  }

  /** Whether `u` is a release key. */
  static is(u: unknown): u is ReleaseKey {
    return u instanceof ReleaseKey
  }

  /** A release key as its normalised text (for manifests, CLI arguments and MLflow tags). */
  static readonly schema: Schema.Schema<ReleaseKey, string> = Schema.transformOrFail(
    Schema.String,
    Schema.declare((u: unknown): u is ReleaseKey => u instanceof ReleaseKey, { identifier: "ReleaseKey" }),
    {
      strict: true,
      decode: (s, _, ast) => Either.mapLeft(ReleaseKey.parse(s), (e) => new ParseResult.Type(ast, s, e.message)),
      encode: (k) => ParseResult.succeed(k.toString())
    }
  )

  /** The version without its local segment (`1.0` for `1.0+local.7`). */
  get public(): string {
    const plus = this.#text.indexOf("+")
    return plus < 0 ? this.#text : this.#text.slice(0, plus)
  }

  /** The local segment as normalised text (`local.7`), if any. */
  get localLabel(): Option.Option<string> {
    return Option.map(this.local, (parts) => parts.join("."))
  }

  get isPrerelease(): boolean {
    return Option.isSome(this.pre) || Option.isSome(this.dev)
  }

  get isPostrelease(): boolean {
    return Option.isSome(this.post)
  }

  get isDevrelease(): boolean {
    return Option.isSome(this.dev)
  }

  /** The normalised version text, as `str(packaging.version.Version(...))`. */
  toString(): string {
    return this.#text
  }

  toJSON(): string {
    return this.#text
  }

  [Equal.symbol](that: Equal.Equal): boolean {
    return that instanceof ReleaseKey && this.#canonical === that.#canonical
  }

  [Hash.symbol](): number {
    return Hash.cached(this, Hash.string(this.#canonical))
  }
}

const trimZeros = (release: ReadonlyArray<bigint>): ReadonlyArray<bigint> => {
  let end = release.length
  while (end > 0 && release[end - 1] === 0n) end--
  return release.slice(0, end)
}

/** Compares bigint sequences element by element, a shorter prefix first (Python tuple order). */
const compareSeq = <A>(a: ReadonlyArray<A>, b: ReadonlyArray<A>, item: (x: A, y: A) => -1 | 0 | 1): -1 | 0 | 1 => {
  const n = Math.min(a.length, b.length)
  for (let i = 0; i < n; i++) {
    const c = item(a[i] as A, b[i] as A)
    if (c !== 0) return c
  }
  return a.length < b.length ? -1 : a.length > b.length ? 1 : 0
}

// The pieces of packaging's `_cmpkey`, with -inf / +inf as sentinels.
type Bound = "-inf" | "+inf"
const compareBounded = <A>(a: A | Bound, b: A | Bound, inner: (x: A, y: A) => -1 | 0 | 1): -1 | 0 | 1 => {
  if (a === b) return 0
  if (a === "-inf" || b === "+inf") return -1
  if (a === "+inf" || b === "-inf") return 1
  return inner(a, b)
}

const preKey = (k: ReleaseKey): readonly [PreLabel, bigint] | Bound =>
  Option.isNone(k.pre) && Option.isNone(k.post) && Option.isSome(k.dev)
    ? "-inf" // 1.0.dev0 sorts before 1.0a0
    : Option.getOrElse(k.pre as Option.Option<readonly [PreLabel, bigint] | Bound>, () => "+inf" as const)

const localPartCompare = (x: LocalPart, y: LocalPart): -1 | 0 | 1 =>
  typeof x === "bigint"
    ? typeof y === "bigint" ? cmp(x, y) : 1 // numeric parts sort after alphanumeric ones
    : typeof y === "bigint"
    ? -1
    : cmp(x, y)

const compare = (a: ReleaseKey, b: ReleaseKey): -1 | 0 | 1 => {
  const order: ReadonlyArray<() => -1 | 0 | 1> = [
    () => cmp(a.epoch, b.epoch),
    () => compareSeq(trimZeros(a.release), trimZeros(b.release), cmp),
    () => compareBounded(preKey(a), preKey(b), (x, y) => cmp(x[0], y[0]) || cmp(x[1], y[1])),
    () =>
      compareBounded(
        Option.getOrElse(a.post as Option.Option<bigint | Bound>, () => "-inf" as const),
        Option.getOrElse(b.post as Option.Option<bigint | Bound>, () => "-inf" as const),
        cmp
      ),
    () =>
      compareBounded(
        Option.getOrElse(a.dev as Option.Option<bigint | Bound>, () => "+inf" as const),
        Option.getOrElse(b.dev as Option.Option<bigint | Bound>, () => "+inf" as const),
        cmp
      ),
    () =>
      compareBounded(
        Option.getOrElse(a.local as Option.Option<ReadonlyArray<LocalPart> | Bound>, () => "-inf" as const),
        Option.getOrElse(b.local as Option.Option<ReadonlyArray<LocalPart> | Bound>, () => "-inf" as const),
        (x, y) => compareSeq(x, y, localPartCompare)
      )
  ]
  for (const step of order) {
    const c = step()
    if (c !== 0) return c
  }
  return 0
}
