/**
 * The per-instance memo of MlflowRegistry's get-or-create lookups, over effect's Cache: concurrent callers share one
 * lookup, and a failure is not kept (its entry is dropped, because Cache's Exit-dependent time-to-live ends only once
 * the clock passes it, so a zero one would still serve the failure for the rest of that millisecond).
 *
 * @internal
 */
import { Cache, Duration, Effect, Either, FiberRef, Option, Tracer } from "effect"
import { globalValue } from "effect/GlobalValue"

/** @internal */
export interface Memo<K, A, E> {
  readonly get: (key: K) => Effect.Effect<A, E>
  /** The value and whether this call computed it (false: it was cached or computed by a concurrent caller). */
  readonly getFresh: (key: K) => Effect.Effect<readonly [A, boolean], E>
  readonly peek: (key: K) => Effect.Effect<Option.Option<A>>
  readonly set: (key: K, value: A) => Effect.Effect<void>
  readonly invalidate: (key: K) => Effect.Effect<void>
}

/**
 * The span of the caller that starts a memo's lookup. effect's Cache runs a lookup in the context it was made in
 * (the layer's), which would make the lookup's calls (a create, a search) the roots of traces of their own; the
 * lookup runs on the caller's fiber, so a FiberRef carries the caller's span to it.
 */
const lookupParent = globalValue(
  Symbol.for("forml-mlflow/registry/lookupParent"),
  () => FiberRef.unsafeMake<Option.Option<Tracer.AnySpan>>(Option.none())
)

/** @internal */
export const memo = <K, A, E>(lookup: (key: K) => Effect.Effect<A, E>): Effect.Effect<Memo<K, A, E>> =>
  Effect.map(
    Cache.make<K, A, E>({
      capacity: Number.MAX_SAFE_INTEGER,
      timeToLive: Duration.infinity,
      lookup: (key) =>
        Effect.flatMap(FiberRef.get(lookupParent), (parent) =>
          Option.match(parent, {
            onNone: () => lookup(key),
            onSome: (span) => Effect.withParentSpan(lookup(key), span)
          }))
    }),
    (cache) => {
      // effect's Cache keeps failures like values; dropping the entry makes the next caller look again.
      const forget = (key: K) => <X>(self: Effect.Effect<X, E>) =>
        Effect.tapError(
          Effect.flatMap(
            Effect.serviceOption(Tracer.ParentSpan),
            (parent) => Effect.locally(self, lookupParent, parent)
          ),
          () => cache.invalidate(key)
        )
      return {
        get: (key) => forget(key)(cache.get(key)),
        getFresh: (key) =>
          forget(key)(Effect.map(cache.getEither(key), (e) => [Either.merge(e), Either.isRight(e)] as const)),
        peek: (key) => cache.getOptionComplete(key),
        set: (key, value) => cache.set(key, value),
        invalidate: (key) => cache.invalidate(key)
      }
    }
  )
