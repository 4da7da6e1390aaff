/**
 * What the in-process stores (MlflowMemory, MlflowFileStore) share of a tracking server's behaviour: generated names
 * and ids, tag checks, and search semantics. Where the sqlite and file stores differ on purpose, each store keeps its own.
 */
import { Effect, Either, Random } from "effect"
import { randomUUID } from "node:crypto"
import type { InvalidInput } from "../errors.js"
import { validateTagKey } from "./Mlflow.js"
import type { LifecycleStage, ViewType } from "./Mlflow.js"

// ---------------------------------------------------------------------------------------------------------------
// Names and ids
// ---------------------------------------------------------------------------------------------------------------

const ADJECTIVES = [
  "able", "bold", "brave", "bright", "calm", "clever", "crisp", "dapper", "eager", "fancy", "gentle", "glamorous",
  "honest", "useful", "stately", "thundering", "nimble", "polite", "rare", "serene", "sincere", "tasteful", "wise"
]
const ANIMALS = [
  "ant", "bass", "bat", "bee", "cat", "crab", "deer", "doe", "elk", "fly", "fox", "goat", "hare", "lamb", "lark",
  "mole", "moth", "owl", "ram", "shrike", "skink", "slug", "snail", "toad", "wolf", "yak"
]

/** A name like MLflow's generated ones (`rogue-skink-852`), for a run created without one. */
export const randomRunName: Effect.Effect<string> = Effect.gen(function*() {
  const adjective = ADJECTIVES[yield* Random.nextIntBetween(0, ADJECTIVES.length)]!
  const animal = ANIMALS[yield* Random.nextIntBetween(0, ANIMALS.length)]!
  const n = yield* Random.nextIntBetween(0, 1000)
  return `${adjective}-${animal}-${n}`
})

/** A run id as MLflow makes them: a random UUID's 32 hex digits. */
export const newRunId = (): string => randomUUID().replace(/-/g, "")

/** Code-unit order, as Python compares strings. */
export const compareStrings = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0)

// ---------------------------------------------------------------------------------------------------------------
// Checks
// ---------------------------------------------------------------------------------------------------------------

/**
 * Checks every key of a tag list (with `validateTagKey`, or `check` where a store adds rules of its own), in order,
 * before anything is written: the first bad key fails the whole list.
 */
export const validateTags = (
  tags: ReadonlyArray<{ readonly key: string; readonly value: string }>,
  check: (key: string) => Either.Either<unknown, InvalidInput> = validateTagKey
): Either.Either<void, InvalidInput> => {
  for (const tag of tags) {
    const checked = check(tag.key)
    if (Either.isLeft(checked)) return Either.left(checked.left)
  }
  return Either.void
}

// ---------------------------------------------------------------------------------------------------------------
// Searches
// ---------------------------------------------------------------------------------------------------------------

/** Whether a search with `viewType` (ACTIVE_ONLY when absent, as in MLflow) sees an entity in `stage`. */
export const viewAdmits = (viewType: ViewType | undefined, stage: LifecycleStage): boolean => {
  switch (viewType ?? "ACTIVE_ONLY") {
    case "ACTIVE_ONLY":
      return stage === "active"
    case "DELETED_ONLY":
      return stage === "deleted"
    case "ALL":
      return true
  }
}
