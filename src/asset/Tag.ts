/**
 * A ForML generation tag (`tag.toml`): the training and tuning modes and the ordered state ids of a generation,
 * with the TOML codec that writes exactly ForML's bytes and reads what ForML reads.
 */
import { Data, Either, Equal, Hash, Option, ParseResult, Schema } from "effect"
import { InvalidTag } from "../errors.js"
import { lookup, readToml } from "./internal/tomlRead.js"
import { Timestamp, TomlTable, TomlValue } from "./internal/tomlValue.js"
import { dumps } from "./internal/tomlWrite.js"
import { StateId } from "./StateId.js"

export { LocalDate, LocalTime, Timestamp, TomlTable, TomlValue } from "./internal/tomlValue.js"

export declare namespace Tag {
  /** The training mode: when it ran and, optionally, the ordinal (the data point it trained up to). */
  export interface Training {
    readonly timestamp: Option.Option<Timestamp>
    readonly ordinal: Option.Option<TomlValue>
  }
  /** The tuning mode: when it ran and, optionally, the score it reached. */
  export interface Tuning {
    readonly timestamp: Option.Option<Timestamp>
    readonly score: Option.Option<TomlValue>
  }
  /** A training mode as `Tag.make` takes it: plain values or Options, any of them left out. */
  export interface TrainingInput {
    readonly timestamp?: Timestamp | Option.Option<Timestamp> | undefined
    readonly ordinal?: TomlValue | Option.Option<TomlValue> | undefined
  }
  export interface TuningInput {
    readonly timestamp?: Timestamp | Option.Option<Timestamp> | undefined
    readonly score?: TomlValue | Option.Option<TomlValue> | undefined
  }
  export interface Input {
    readonly training?: TrainingInput | undefined
    readonly tuning?: TuningInput | undefined
    readonly states?: ReadonlyArray<StateId> | undefined
  }
}

const option = <A>(v: A | Option.Option<A> | undefined): Option.Option<A> =>
  v === undefined ? Option.none() : Option.isOption(v) ? v : Option.some(v)

// ForML's Tag.__new__: a mode without a timestamp is replaced by an empty one (its ordinal or score is dropped).
const training = (input: Tag.TrainingInput | undefined): Tag.Training => {
  const timestamp = option(input?.timestamp)
  return { timestamp, ordinal: Option.isSome(timestamp) ? option(input?.ordinal) : Option.none() }
}
const tuning = (input: Tag.TuningInput | undefined): Tag.Tuning => {
  const timestamp = option(input?.timestamp)
  return { timestamp, score: Option.isSome(timestamp) ? option(input?.score) : Option.none() }
}

const optionEquals = (a: Option.Option<TomlValue>, b: Option.Option<TomlValue>): boolean =>
  Option.isNone(a) ? Option.isNone(b) : Option.isSome(b) && TomlValue.equals(a.value, b.value)

const optionHash = (a: Option.Option<TomlValue>): number =>
  Option.match(a, { onNone: () => 0x0dd, onSome: TomlValue.hash })

const modeTable = (
  timestamp: Option.Option<Timestamp>,
  name: string,
  value: Option.Option<TomlValue>
): TomlTable =>
  TomlTable.make([
    ...Option.match(timestamp, { onNone: () => [], onSome: (t) => [["timestamp", t] as const] }),
    ...Option.match(value, { onNone: () => [], onSome: (v) => [[name, v] as const] })
  ])

const fail = (reason: string) => Either.left(new InvalidTag({ reason }))

/** "an integer", "a string", ... */
const aKind = (v: TomlValue): string => {
  const kind = TomlValue.kind(v)
  return `${/^[aeiou]/.test(kind) ? "an" : "a"} ${kind}`
}

const utf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true })

/**
 * Reads one mode table. Unlike ForML, a missing table or timestamp reads as an empty mode (ForML raises KeyError
 * there, so it cannot open a tuning-only tag it wrote itself). Like ForML, a false-y timestamp (`0`, `""`) empties
 * the mode. Unlike ForML, a timestamp that is not a date-time (a string, a local date or time, a number) is refused
 * rather than kept with the wrong type.
 */
const readMode = (
  doc: TomlTable,
  name: "training" | "tuning",
  extra: "ordinal" | "score"
): Either.Either<readonly [Option.Option<Timestamp>, Option.Option<TomlValue>], InvalidTag> => {
  const empty = Either.right([Option.none(), Option.none()] as const)
  const section = doc.get(name)
  if (Option.isNone(section)) return empty
  if (!(section.value instanceof TomlTable)) return fail(`[${name}] is ${aKind(section.value)}, not a table`)
  const timestamp = lookup(section.value, "timestamp")
  if (Option.isNone(timestamp) || !TomlValue.isTruthy(timestamp.value)) return empty
  if (!(timestamp.value instanceof Timestamp)) {
    return fail(`${name} timestamp is ${aKind(timestamp.value)}, not a date-time`)
  }
  return Either.right([Option.some(timestamp.value), lookup(section.value, extra)] as const)
}

const readStates = (doc: TomlTable): Either.Either<ReadonlyArray<StateId>, InvalidTag> => {
  const states = doc.get("states")
  if (Option.isNone(states)) return fail("no states list")
  if (!Array.isArray(states.value)) return fail(`states is ${aKind(states.value)}, not a list`)
  const out: Array<StateId> = []
  for (const [i, s] of (states.value as ReadonlyArray<TomlValue>).entries()) {
    if (typeof s !== "string") return fail(`state ${i} is ${aKind(s)}, not a UUID string`)
    const id = StateId.parse(s)
    if (Either.isLeft(id)) return fail(`state ${i} ${JSON.stringify(s)}: ${id.left.reason}`)
    out.push(id.right)
  }
  return Either.right(out)
}

/**
 * A generation tag. Built with `Tag.make` (or `new Tag`), which applies ForML's rule that a mode without a timestamp
 * is empty. Equal when the modes and the state list are equal (see `TomlValue.equals`, `Timestamp`).
 */
export class Tag extends Data.Class<{
  readonly training: Tag.Training
  readonly tuning: Tag.Tuning
  readonly states: ReadonlyArray<StateId>
}> {
  constructor(input: Tag.Input = {}) {
    super({ training: training(input.training), tuning: tuning(input.tuning), states: [...(input.states ?? [])] })
  }

  [Equal.symbol](that: Equal.Equal): boolean {
    return that instanceof Tag &&
      Equal.equals(this.training.timestamp, that.training.timestamp) &&
      optionEquals(this.training.ordinal, that.training.ordinal) &&
      Equal.equals(this.tuning.timestamp, that.tuning.timestamp) &&
      optionEquals(this.tuning.score, that.tuning.score) &&
      this.states.length === that.states.length &&
      this.states.every((s, i) => s === that.states[i])
  }

  [Hash.symbol](): number {
    return Hash.cached(
      this,
      [
        Hash.hash(this.training.timestamp),
        optionHash(this.training.ordinal),
        Hash.hash(this.tuning.timestamp),
        optionHash(this.tuning.score),
        Hash.array(this.states)
      ].reduce((h, x) => Hash.combine(x)(h), 0x7a9)
    )
  }

  /** ForML's `NOTAG`: no training, no tuning, no states. */
  static readonly empty: Tag = new Tag()

  /** A tag from its parts, plain values or Options; a mode without a timestamp is empty. */
  static make(input: Tag.Input = {}): Tag {
    return new Tag(input)
  }

  /** A freshly trained tag (ForML's `Tag().training.trigger(now)`), with an optional ordinal and no states yet. */
  static trained(now: Timestamp, ordinal?: TomlValue | Option.Option<TomlValue>): Tag {
    return new Tag({ training: { timestamp: now, ordinal } })
  }

  /** The tag with its tuning mode set to `now` and an optional score. */
  static tuned(tag: Tag, now: Timestamp, score?: TomlValue | Option.Option<TomlValue>): Tag {
    return new Tag({ training: tag.training, tuning: { timestamp: now, score }, states: tag.states })
  }

  /** The tag with its state list replaced (ForML's `tag.replace(states=...)`). */
  static withStates(tag: Tag, states: ReadonlyArray<StateId>): Tag {
    return new Tag({ training: tag.training, tuning: tag.tuning, states })
  }

  /** ForML's `not bool(tag)`: neither mode has a timestamp (states do not count). */
  static isEmpty(tag: Tag): boolean {
    return Option.isNone(tag.training.timestamp) && Option.isNone(tag.tuning.timestamp)
  }

  /** Whether the tag has a training timestamp (ForML reads the states of an untrained generation as empty). */
  static isTrained(tag: Tag): boolean {
    return Option.isSome(tag.training.timestamp)
  }

  static equals(a: Tag, b: Tag): boolean {
    return Equal.equals(a, b)
  }

  /**
   * The TOML text ForML writes for this tag (`Tag.dumps()`), byte for byte, except that strings ForML's writer would
   * corrupt (control characters, a backslash before `x`) are written with correct escapes.
   */
  static encode(tag: Tag): string {
    return dumps(
      TomlTable.make([
        ["training", modeTable(tag.training.timestamp, "ordinal", tag.training.ordinal)],
        ["tuning", modeTable(tag.tuning.timestamp, "score", tag.tuning.score)],
        ["states", [...tag.states]]
      ])
    )
  }

  /** `Tag.encode` as UTF-8 bytes, as stored in `tag.toml`. */
  static encodeBytes(tag: Tag): Uint8Array {
    return new TextEncoder().encode(Tag.encode(tag))
  }

  /**
   * Reads a tag as ForML's `Tag.loads` does, or says why it cannot: text that is not UTF-8 or not TOML, no `states`
   * list, a state that is not a UUID, a mode that is not a table. Where ForML fails only because `[training]`, its
   * timestamp or `[tuning]` is missing, the tag is read with that mode empty. A BOM is refused, as in ForML.
   */
  static decode(input: string | Uint8Array): Either.Either<Tag, InvalidTag> {
    const text = typeof input === "string"
      ? Either.right(input)
      : Either.try({ try: () => utf8.decode(input), catch: () => new InvalidTag({ reason: "not UTF-8 text" }) })
    return Either.gen(function*() {
      const doc = yield* Either.flatMap(
        Either.filterOrLeft(
          text,
          (t) => !t.startsWith("\ufeff"),
          () => new InvalidTag({ reason: "starts with a byte order mark (ForML reads it as part of the first key)" })
        ),
        (t) => Either.mapLeft(readToml(t), (reason) => new InvalidTag({ reason: `not TOML: ${reason}` }))
      )
      const [trainedAt, ordinal] = yield* readMode(doc, "training", "ordinal")
      const [tunedAt, score] = yield* readMode(doc, "tuning", "score")
      const states = yield* readStates(doc)
      return new Tag({ training: { timestamp: trainedAt, ordinal }, tuning: { timestamp: tunedAt, score }, states })
    })
  }

  /** A tag as its TOML text. */
  static readonly schema: Schema.Schema<Tag, string> = Schema.transformOrFail(
    Schema.String,
    Schema.declare((u: unknown): u is Tag => u instanceof Tag, { identifier: "Tag" }),
    {
      strict: true,
      decode: (s, _, ast) => Either.mapLeft(Tag.decode(s), (e) => new ParseResult.Type(ast, s, e.message)),
      encode: (t) => ParseResult.succeed(Tag.encode(t))
    }
  )
}
