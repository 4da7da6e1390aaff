/**
 * Search filters for MLflow runs and experiments, built from clauses instead of concatenated strings.
 * `render` is the one place a filter string is made: keys in backticks, the value in the quote kind it lacks.
 */
import { Either } from "effect"
import { InvalidInput } from "../errors.js"

export type Comparator = "=" | "!="

/** One equality clause on a tag or an attribute (`run_name`, `status`, `name`, ...). */
export interface Clause {
  readonly kind: "tag" | "attribute"
  readonly key: string
  readonly comparator: Comparator
  readonly value: string
}

/** Clauses joined by AND. No clause means no filter. */
export interface Filter {
  readonly clauses: ReadonlyArray<Clause>
}

export const tag = (key: string, value: string, comparator: Comparator = "="): Clause => ({
  kind: "tag",
  key,
  comparator,
  value
})

export const attribute = (key: string, value: string, comparator: Comparator = "="): Clause => ({
  kind: "attribute",
  key,
  comparator,
  value
})

export const and = (...clauses: ReadonlyArray<Clause>): Filter => ({ clauses })

export const none: Filter = { clauses: [] }

const ATTRIBUTE_KEY = /^[A-Za-z_][A-Za-z0-9_]*$/

const quoteValue = (clause: Clause): Either.Either<string, InvalidInput> => {
  const { value } = clause
  if (!value.includes("'")) return Either.right(`'${value}'`)
  if (!value.includes("\"")) return Either.right(`"${value}"`)
  return Either.left(
    new InvalidInput({
      kind: "Filter",
      input: value,
      reason: `a filter value for ${clause.key} cannot hold both ' and " (MLflow filters have no escapes)`
    })
  )
}

const quoteKey = (clause: Clause): Either.Either<string, InvalidInput> => {
  if (clause.kind === "attribute") {
    return ATTRIBUTE_KEY.test(clause.key)
      ? Either.right(`attribute.${clause.key}`)
      : Either.left(new InvalidInput({ kind: "Filter", input: clause.key, reason: "not an attribute name" }))
  }
  if (clause.key === "" || clause.key.includes("`")) {
    return Either.left(
      new InvalidInput({
        kind: "Filter",
        input: clause.key,
        reason: "a tag key must be non-empty and hold no backtick"
      })
    )
  }
  return Either.right(`tags.\`${clause.key}\``)
}

/** Check a filter without rendering it: every layer calls this, so all reject the same input. */
export const validate = (filter: Filter): Either.Either<Filter, InvalidInput> =>
  Either.map(render(filter), () => filter)

/** The filter string MLflow's `filter` parameter expects; `""` for no clause. */
export const render = (filter: Filter): Either.Either<string, InvalidInput> =>
  Either.gen(function*() {
    const parts: Array<string> = []
    for (const clause of filter.clauses) {
      const key = yield* quoteKey(clause)
      const value = yield* quoteValue(clause)
      parts.push(`${key} ${clause.comparator} ${value}`)
    }
    return parts.join(" AND ")
  })

/** A value lookup for evaluating a filter in-process: the tag map and the attributes of one entity. */
export interface Subject {
  readonly tag: (key: string) => string | undefined
  readonly attribute: (key: string) => string | undefined
}

/** In-process evaluation with MLflow's semantics: `!=` does not match an entity that lacks the tag. */
export const matches = (filter: Filter, subject: Subject): boolean =>
  filter.clauses.every((clause) => {
    const actual = clause.kind === "tag" ? subject.tag(clause.key) : subject.attribute(clause.key)
    if (actual === undefined) return false
    return clause.comparator === "=" ? actual === clause.value : actual !== clause.value
  })
