/**
 * MLflow's search filter grammar (what its sqlparse-based SearchUtils and SearchExperimentsUtils accept), with the
 * server's 400 messages, and the evaluation of the clauses MlflowMemory does not evaluate itself (LIKE, ILIKE, IN).
 * Hand-written because no JavaScript library parses MLflow's filter dialect or reproduces its error messages.
 */
import { Either, Option } from "effect"
import * as Filter from "../src/mlflow/Filter.js"
import type { Run } from "../src/mlflow/Mlflow.js"
import { type ApiError, invalid } from "./replies.js"

export type Comparator = "=" | "!=" | "LIKE" | "ILIKE" | "IN" | "NOT IN"

export interface ParsedClause {
  readonly kind: "tag" | "attribute"
  readonly key: string
  readonly comparator: Comparator
  readonly value: string | ReadonlyArray<string>
  /** How the text wrote the key and a single value (MLflow reads a value's `''` and `\'` literally). */
  readonly written: { readonly keyQuoted: boolean; readonly quote?: "'" | "\"" | undefined }
}

/** Which search a filter is for: MLflow parses the two with different classes (SearchUtils, SearchExperimentsUtils). */
export type FilterTarget = "runs" | "experiments"

const FILTER_ATTRIBUTES: Readonly<Record<FilterTarget, ReadonlySet<string>>> = {
  runs: new Set(["run_id", "run_name", "status", "user_id", "artifact_uri", "start_time", "end_time"]),
  experiments: new Set(["name", "creation_time", "last_update_time"])
}

const TAG_PREFIXES = new Set(["tags", "tag"])
const RUN_ATTRIBUTE_PREFIXES = new Set(["attributes", "attribute", "attr", "run"])
/** SearchExperimentsUtils._get_identifier's `valid_entity_types`, in the order its message prints them. */
const EXPERIMENT_PREFIXES = ["attribute", "tag", "tags"] as const

/** The kind of clause an entity prefix makes in that search, or the message of the 400 for an unknown prefix. */
export const entityKind = (target: FilterTarget, prefix: string): Either.Either<"tag" | "attribute", string> => {
  if (target === "experiments") {
    return (EXPERIMENT_PREFIXES as ReadonlyArray<string>).includes(prefix)
      ? Either.right(TAG_PREFIXES.has(prefix) ? "tag" : "attribute")
      : Either.left(
        `Invalid entity type '${prefix}'. Valid entity types are (${
          EXPERIMENT_PREFIXES.map((e) => `'${e}'`).join(", ")
        })`
      )
  }
  if (TAG_PREFIXES.has(prefix)) return Either.right("tag")
  if (RUN_ATTRIBUTE_PREFIXES.has(prefix)) return Either.right("attribute")
  return Either.left(`Invalid entity type '${prefix}'. Valid values are ['metric', 'parameter', 'tag', 'attribute']`)
}

/** MLflow's message for an attribute key outside `keys`. */
export const invalidAttributeKey = (key: string, keys: Iterable<string>): string =>
  `Invalid attribute key '${key}' specified. Valid keys are '{${[...keys].map((a) => `'${a}'`).join(", ")}}'`

const QUOTED = /^(?:'((?:''|\\'|[^'])*)'|"((?:""|\\"|[^"])*)")/

/** The first word of the rest of a filter, as the server quotes it in a message. */
const firstWord = (rest: string): string => rest.split(/\s/)[0] ?? ""

interface Step<A> {
  readonly value: A
  readonly rest: string
}

interface Identifier {
  readonly kind: "tag" | "attribute"
  readonly key: string
  readonly keyQuoted: boolean
}

/**
 * An identifier, `[prefix.]key` with the key bare, in backticks or in double quotes, checked entity first, then
 * (unless `attributes` is undefined) the attribute key.
 */
const identifier = (
  text: string,
  target: FilterTarget,
  attributes: ReadonlySet<string> | undefined
): Either.Either<Step<Identifier>, string> => {
  const ident = /^(?:([A-Za-z_]+)\.)?(`[^`]*`|"[^"]*"|[A-Za-z0-9_.]+)/.exec(text)
  if (ident === null) return Either.left(`Invalid clause(s) in filter string: '${text}'`)
  const prefix = ident[1]
  const rawKey = ident[2] ?? ""
  const rest = text.slice(ident[0].length)
  if (rest !== "" && !/^\s|^[=!<>]/.test(rest)) {
    return Either.left(`Invalid comparison clause. Expected 'Identifier' found '${ident[0]}${firstWord(rest)}'`)
  }
  const keyQuoted = /^[`"]/.test(rawKey)
  const key = keyQuoted ? rawKey.slice(1, -1) : rawKey
  // the entity is checked before the key (both classes' _get_identifier)
  const entity = prefix === undefined ? Either.right("attribute" as const) : entityKind(target, prefix)
  if (Either.isLeft(entity)) return Either.left(entity.left)
  if (entity.right === "attribute" && attributes !== undefined && !attributes.has(key)) {
    return Either.left(invalidAttributeKey(key, attributes))
  }
  return Either.right({ value: { kind: entity.right, key, keyQuoted }, rest: rest.trimStart() })
}

const comparatorOf = (text: string): Either.Either<Step<Comparator>, string> => {
  const op = /^(==|!=|=|NOT\s+IN\b|ILIKE\b|LIKE\b|IN\b|IS\b|<=|>=|<|>)/i.exec(text)
  if (op === null) return Either.left(`Invalid clause(s) in filter string: '${text}'`)
  const written = op[1] ?? ""
  const comparator = written.toUpperCase().replace(/\s+/, " ")
  if (comparator === "==" || comparator === "IS" || comparator.startsWith("<") || comparator.startsWith(">")) {
    return Either.left(`Invalid comparator '${written}' not one of '{'=', 'LIKE', 'ILIKE', '!='}`)
  }
  return Either.right({ value: comparator as Comparator, rest: text.slice(op[0].length).trimStart() })
}

/** A quoted value, or for IN and NOT IN a parenthesised list of them (only run_id takes a list). */
const valueOf = (
  text: string,
  clause: { readonly kind: "tag" | "attribute"; readonly key: string; readonly comparator: Comparator }
): Either.Either<Step<{ readonly value: string | ReadonlyArray<string>; readonly quote?: "'" | "\"" }>, string> => {
  if (clause.comparator === "IN" || clause.comparator === "NOT IN") {
    const list = /^\(([^)]*)\)/.exec(text)
    if (list === null || clause.kind === "tag" || clause.key !== "run_id") {
      return Either.left(`Expected a quoted string value for ${clause.kind} (e.g. 'my-value'). Got value ${text}`)
    }
    const items: Array<string> = []
    for (const part of (list[1] ?? "").split(",")) {
      const q = QUOTED.exec(part.trim())
      if (q === null) return Either.left(`Invalid value in list: ${part}`)
      items.push(q[1] ?? q[2] ?? "")
    }
    return Either.right({ value: { value: items }, rest: text.slice(list[0].length) })
  }
  const q = QUOTED.exec(text)
  if (q === null) {
    return Either.left(
      /^[\d.]+/.test(text)
        ? `Expected a quoted string value for ${clause.kind} (e.g. 'my-value'). Got value ${firstWord(text)}`
        : `Parameter value is either not quoted or unidentified quote types used for string value ${
          firstWord(text)
        }. Use either single or double quotes.`
    )
  }
  return Either.right({
    value: q[1] === undefined ? { value: q[2] ?? "", quote: "\"" } : { value: q[1], quote: "'" },
    rest: text.slice(q[0].length)
  })
}

/** The clauses of a filter, or the message of the 400 the server gives; `attributes` as in `identifier`. */
const parseClauses = (
  text: string,
  target: FilterTarget,
  attributes: ReadonlySet<string> | undefined
): Either.Either<ReadonlyArray<ParsedClause>, string> =>
  Either.gen(function*() {
    const clauses: Array<ParsedClause> = []
    let rest = text.trim()
    while (rest !== "") {
      const ident = yield* identifier(rest, target, attributes)
      const op = yield* comparatorOf(ident.rest)
      const { keyQuoted, ...clause } = { ...ident.value, comparator: op.value }
      const value = yield* valueOf(op.rest, clause)
      clauses.push({ ...clause, value: value.value.value, written: { keyQuoted, quote: value.value.quote } })
      rest = value.rest.trimStart()
      if (rest === "") break
      const and = /^AND(\s+|$)/i.exec(rest)
      if (and === null) return yield* Either.left(`Invalid clause(s) in filter string: '${firstWord(rest)}'`)
      rest = rest.slice(and[0].length)
    }
    return clauses
  })

/** Parses the filter of a run or an experiment search into clauses, or the 400 the server gives; `""` is no clause. */
export const parseFilter = (text: string, target: FilterTarget): Either.Either<ReadonlyArray<ParsedClause>, ApiError> =>
  Either.mapLeft(parseClauses(text, target, FILTER_ATTRIBUTES[target]), invalid)

/**
 * The `Filter.Filter` a runs/search filter text means, when the builder could have written it: `=` and `!=` clauses
 * joined by AND, a key (not empty) in backticks only for a tag, no value holding its own quote (MLflow reads `''`
 * and `\'` literally; the builder never writes them) and no trailing AND. Attribute keys are not checked, so that a key the
 * server refuses stays a case for each layer's own check. `undefined` otherwise.
 */
export const filterOfText = (text: string): Filter.Filter | undefined => {
  const parsed = parseClauses(text, "runs", undefined)
  if (Either.isLeft(parsed) || /\sAND$/i.test(text.trim())) return undefined
  const written = parsed.right.every((c) =>
    c.key !== "" && (c.kind === "tag" || !c.written.keyQuoted) &&
    (c.written.quote === undefined || typeof c.value !== "string" || !c.value.includes(c.written.quote))
  )
  return written ? Option.getOrUndefined(toFilter(parsed.right)) : undefined
}

/** A single-quoted string as sqlparse lexes it: `''` and `\'` do not close it. */
const SQL_STRING = /^'(?:''|\\'|[^'])*'/

/**
 * The 400 message of a file store's get-by-name for `name`, if any. That store looks the name up with the filter
 * `name = '<name>'`, unescaped (file_store.get_experiment_by_name), so a name that is not one string literal between
 * those quotes fails in SearchExperimentsUtils._process_statement, which lists sqlparse's tokens that are no
 * comparison: `x@it's` gives `name = 'x@it's, '` (the comparison with `s` read as its alias, then the quote left
 * open). Checked against sqlparse, the list is exact when each lone quote is followed by a word of letters, digits
 * and `_` that is no SQL keyword; sqlparse's grouping of other tokens is not modelled, so there the list is close.
 * A name that sqlparse happens to read as several clauses (`a' AND name = 'b`) is refused here, not searched.
 */
export const fileStoreNameRefusal = (name: string): Option.Option<string> => {
  const quoted = `'${name}'`
  const literal = SQL_STRING.exec(quoted)?.[0] ?? quoted
  if (literal.length === quoted.length) return Option.none()
  const tokens: ReadonlyArray<string> =
    quoted.slice(literal.length).match(/\s+|[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*|'(?:''|\\'|[^'])*'|'|[^\s\w']+|\w+/g) ?? []
  const invalid: Array<string> = []
  const lead = tokens[0] !== undefined && /^\s/.test(tokens[0]) ? tokens[0] : ""
  const alias = tokens[lead === "" ? 0 : 1]
  let rest = tokens
  if (alias !== undefined && /^[A-Za-z_]/.test(alias)) {
    // a word after the literal is taken for the comparison's alias, which makes the whole no comparison
    invalid.push(`name = ${literal}${lead}${alias}`)
    rest = tokens.slice(lead === "" ? 1 : 2)
  }
  invalid.push(...rest.filter((t) => !/^\s/.test(t)))
  return Option.some(`Invalid clause(s) in filter string: ${invalid.join(", ")}`)
}

const likeToRegExp = (pattern: string, flags: string): RegExp =>
  new RegExp(
    `^${pattern.replace(/[.*+?^${}()|[\]\\]/g, "\\$&").replace(/%/g, "[\\s\\S]*").replace(/_/g, "[\\s\\S]")}$`,
    flags
  )

/** Whether a clause holds for an entity's value (none when the entity lacks the tag or attribute). */
export const clauseMatches = (clause: ParsedClause, actual: string | undefined): boolean => {
  if (actual === undefined) return false
  const list = typeof clause.value === "string" ? [clause.value] : clause.value
  switch (clause.comparator) {
    case "=":
      return actual === clause.value
    case "!=":
      return actual !== clause.value
    case "LIKE":
      return likeToRegExp(String(clause.value), "").test(actual)
    case "ILIKE":
      return likeToRegExp(String(clause.value), "i").test(actual)
    case "IN":
      return list.includes(actual)
    case "NOT IN":
      return !list.includes(actual)
  }
}

/** The clauses as a `Filter.Filter` when they only use `=` and `!=` on single values (what `Filter` can say). */
export const toFilter = (clauses: ReadonlyArray<ParsedClause>): Option.Option<Filter.Filter> => {
  const simple: Array<Filter.Clause> = []
  for (const c of clauses) {
    if ((c.comparator !== "=" && c.comparator !== "!=") || typeof c.value !== "string") return Option.none()
    const clause = c.kind === "tag" ? Filter.tag : Filter.attribute
    simple.push(clause(c.key, c.value, c.comparator))
  }
  return Option.some(Filter.and(...simple))
}

/** `toFilter`, when the filter is also one the store takes (MlflowMemory evaluates those itself). */
export const asSimpleFilter = (clauses: ReadonlyArray<ParsedClause>): Option.Option<Filter.Filter> =>
  Option.filter(toFilter(clauses), (f) => Either.isRight(Filter.validate(f)))

/** A run's value of a filter attribute (the times are not compared as strings, so they read as absent). */
export const runAttribute = (run: Run, key: string): string | undefined => {
  switch (key) {
    case "run_id":
      return run.info.runId
    case "run_name":
      return run.info.runName
    case "status":
      return run.info.status
    case "user_id":
      return run.info.userId
    case "artifact_uri":
      return run.info.artifactUri
    default:
      return undefined
  }
}
