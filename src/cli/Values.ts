/**
 * How registry values read on the command line: keys parsed from arguments (a bad one is a usage error), TOML
 * values shown as text or JSON, and tags as JSON documents.
 */
import { HelpDoc } from "@effect/cli"
import { Effect, Either, Option } from "effect"
import { GenerationKey } from "../asset/GenerationKey.js"
import { ProjectKey } from "../asset/ProjectKey.js"
import { ReleaseKey } from "../asset/ReleaseKey.js"
import { StateId } from "../asset/StateId.js"
import { LocalDate, LocalTime, Tag, Timestamp, TomlTable } from "../asset/Tag.js"
import type { TomlValue } from "../asset/Tag.js"
import { InvalidInput } from "../errors.js"

/**
 * A key parser as an argument mapper: the parse error becomes @effect/cli's usage error. An argument that looks like
 * an option (`--bogus`, `-x`; a negative number is an argument) is an option @effect/cli did not know, which it hands
 * over as an argument: it is reported as unknown, not looked up as a name.
 */
export const parseArg = <A>(parse: (s: string) => Either.Either<A, InvalidInput>) => (s: string) =>
  /^-(?!\d+$)./.test(s) ? Effect.fail(HelpDoc.p(`unknown option ${JSON.stringify(s)}`)) : Either.match(parse(s), {
    onLeft: (e) =>
      Effect.fail(
        HelpDoc.p(new InvalidInput({ kind: KINDS[e.kind] ?? e.kind, input: e.input, reason: e.reason }).message)
      ),
    onRight: (a) => Effect.succeed(a)
  })

/** Key kinds as a user names them. */
const KINDS: Readonly<Record<string, string>> = {
  ProjectKey: "project name",
  ReleaseKey: "release version",
  GenerationKey: "generation number"
}

export const parseProject = (s: string) => ProjectKey.parse(s)
export const parseRelease = (s: string) => ReleaseKey.parse(s)
export const parseGeneration = (s: string) => GenerationKey.parse(s)

/** A state reference: a state id (any of Python's UUID forms), or an index into the tag's list (negative from the end). */
export type StateRef = { readonly _tag: "Id"; readonly id: StateId } | {
  readonly _tag: "Index"
  readonly index: number
}

export const parseStateRef = (s: string): Either.Either<StateRef, InvalidInput> => {
  if (/^-?[0-9]{1,9}$/.test(s.trim())) return Either.right({ _tag: "Index", index: Number(s.trim()) })
  return Either.match(StateId.parse(s), {
    onLeft: () =>
      Either.left(new InvalidInput({ kind: "state", input: s, reason: "neither a state id (a UUID) nor an index" })),
    onRight: (id) => Either.right<StateRef>({ _tag: "Id", id })
  })
}

/** The state id a reference names in a tag's state list, if it names one. */
export const pickState = (states: ReadonlyArray<StateId>, ref: StateRef): Option.Option<readonly [number, StateId]> => {
  if (ref._tag === "Id") {
    const i = states.indexOf(ref.id)
    return i < 0 ? Option.none() : Option.some([i, ref.id] as const)
  }
  const i = ref.index < 0 ? states.length + ref.index : ref.index
  const sid = states[i]
  return i >= 0 && sid !== undefined ? Option.some([i, sid] as const) : Option.none()
}

/**
 * An ordinal given on the command line as the TOML value it most likely means: an integer, a float, a date-time
 * (RFC 3339, with or without offset), a boolean, else the text itself.
 */
export const parseOrdinal = (s: string): TomlValue => {
  const t = s.trim()
  if (/^[+-]?[0-9]+$/.test(t)) return BigInt(t)
  if (/^[+-]?([0-9]+\.[0-9]*|\.[0-9]+|[0-9]+)([eE][+-]?[0-9]+)?$/.test(t)) return Number(t)
  if (t === "true" || t === "false") return t === "true"
  if (/^[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}/.test(t)) {
    const ts = Timestamp.parse(t)
    if (Either.isRight(ts)) return ts.right
  }
  return s
}

/** A TOML value as plain JSON: integers as numbers (as strings beyond 2^53), non-finite floats as strings. */
export const tomlJson = (v: TomlValue): unknown => {
  if (typeof v === "bigint") {
    return v <= BigInt(Number.MAX_SAFE_INTEGER) && v >= BigInt(Number.MIN_SAFE_INTEGER) ? Number(v) : v.toString()
  }
  if (typeof v === "number") return Number.isFinite(v) ? v : String(v)
  if (typeof v === "string" || typeof v === "boolean") return v
  if (v instanceof Timestamp) return Timestamp.toIsoString(v)
  if (v instanceof LocalDate || v instanceof LocalTime) return v.toString()
  if (v instanceof TomlTable) {
    const out: Record<string, unknown> = {}
    for (const [k, x] of v.entries) out[k] = tomlJson(x)
    return out
  }
  return v.map(tomlJson)
}

/** A TOML value as text for people. */
export const tomlText = (v: TomlValue): string => {
  if (typeof v === "string") return v
  if (typeof v === "bigint" || typeof v === "number" || typeof v === "boolean") return String(v)
  if (v instanceof Timestamp) return Timestamp.toIsoString(v)
  if (v instanceof LocalDate || v instanceof LocalTime) return v.toString()
  return JSON.stringify(tomlJson(v))
}

const optionJson = (o: Option.Option<TomlValue>): unknown => Option.match(o, { onNone: () => null, onSome: tomlJson })

/** A tag as a JSON object: both modes (absent parts null) and the state ids in order. */
export const tagJson = (tag: Tag) => ({
  training: {
    timestamp: Option.match(tag.training.timestamp, { onNone: () => null, onSome: Timestamp.toIsoString }),
    ordinal: optionJson(tag.training.ordinal)
  },
  tuning: {
    timestamp: Option.match(tag.tuning.timestamp, { onNone: () => null, onSome: Timestamp.toIsoString }),
    score: optionJson(tag.tuning.score)
  },
  states: [...tag.states]
})

/** `-` for nothing, else the value as text. */
export const orDash = (o: Option.Option<TomlValue>): string => Option.match(o, { onNone: () => "-", onSome: tomlText })

export const timestampText = (o: Option.Option<Timestamp>): string =>
  Option.match(o, { onNone: () => "-", onSome: Timestamp.toIsoString })

export { Tag }
