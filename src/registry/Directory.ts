/**
 * Directory: ForML's navigation over a Registry. Sorted listings, "latest" at every level (the maximum key), the
 * publishing rule (a new release must be strictly greater than the latest) and the commit of a trained generation.
 */
import { Array as Arr, Chunk, Effect, Either, Equal, Option, Order, Stream } from "effect"
import { GenerationKey } from "../asset/GenerationKey.js"
import type { Package } from "../asset/Package.js"
import { ProjectKey } from "../asset/ProjectKey.js"
import { ReleaseKey } from "../asset/ReleaseKey.js"
import { StateId } from "../asset/StateId.js"
import { Tag, Timestamp } from "../asset/Tag.js"
import type { TomlValue } from "../asset/Tag.js"
import { Empty, InvalidInput, NotFound } from "../errors.js"
import type { InvalidPackage, InvalidTag } from "../errors.js"
import { Registry } from "./Registry.js"
import type { StoreFailure } from "./Registry.js"

// ---------------------------------------------------------------------------------------------------------------
// Listings
// ---------------------------------------------------------------------------------------------------------------

/** A listing as ForML's `Level.Listing` builds it: each key once (the first one met wins), in ascending order. */
const listing = <A>(items: Chunk.Chunk<A>, order: Order.Order<A>): ReadonlyArray<A> =>
  Arr.sort(Arr.dedupeWith(Chunk.toReadonlyArray(items), Equal.equals), order)

const projectOrder: Order.Order<ProjectKey> = Order.string

/** Every project of the registry, each once, sorted by name. */
export const projects: Effect.Effect<ReadonlyArray<ProjectKey>, StoreFailure, Registry> = Effect.flatMap(
  Registry,
  (registry) => Effect.map(Stream.runCollect(registry.projects), (keys) => listing(keys, projectOrder))
).pipe(Effect.withSpan("Directory.projects"))

/** The releases of a project in PEP 440 order; NotFound if the project does not exist. */
export const releases = Effect.fn("Directory.releases")(function*(project: ProjectKey) {
  const registry = yield* Registry
  return listing(yield* Stream.runCollect(registry.releases(project)), ReleaseKey.Order)
})

/** The committed generations of a release in numeric order; NotFound if the project or release does not exist. */
export const generations = Effect.fn("Directory.generations")(function*(project: ProjectKey, release: ReleaseKey) {
  const registry = yield* Registry
  return listing(yield* Stream.runCollect(registry.generations(project, release)), GenerationKey.Order)
})

// ---------------------------------------------------------------------------------------------------------------
// Latest and explicit keys
// ---------------------------------------------------------------------------------------------------------------

const releaseName = (project: ProjectKey, release: ReleaseKey): string => `${project}-${release}`
const generationName = (project: ProjectKey, release: ReleaseKey, generation: GenerationKey): string =>
  `${project}-${release}-${generation}`

/** The greatest project name; Empty if the registry holds no project. */
export const latestProject: Effect.Effect<ProjectKey, Empty | StoreFailure, Registry> = Effect.flatMap(
  projects,
  (keys) =>
    Option.match(Arr.last(keys), {
      onNone: () => Effect.fail(new Empty({ entity: "projects", key: "" })),
      onSome: Effect.succeed
    })
)

/** The greatest release of a project (PEP 440); Empty if it has none, NotFound if the project does not exist. */
export const latestRelease = Effect.fn("Directory.latestRelease")(function*(project: ProjectKey) {
  const keys = yield* releases(project)
  return yield* Option.match(Arr.last(keys), {
    onNone: () => Effect.fail(new Empty({ entity: "releases", key: project })),
    onSome: Effect.succeed
  })
})

/** The greatest generation of a release; Empty if it has none, NotFound if the project or release does not exist. */
export const latestGeneration = Effect.fn("Directory.latestGeneration")(
  function*(project: ProjectKey, release: ReleaseKey) {
    const keys = yield* generations(project, release)
    return yield* Option.match(Arr.last(keys), {
      onNone: () => Effect.fail(new Empty({ entity: "generations", key: releaseName(project, release) })),
      onSome: Effect.succeed
    })
  }
)

/**
 * A release of a project: the given one if it is listed (as the store spells it, so `1.0.0` finds `1.0`), else
 * NotFound; without a key, the latest (Empty if the project has no release).
 */
export const release = Effect.fn("Directory.release")(function*(project: ProjectKey, key?: ReleaseKey | undefined) {
  if (key === undefined) return yield* latestRelease(project)
  const listed = Arr.findFirst(yield* releases(project), (k) => Equal.equals(k, key))
  return yield* Option.match(listed, {
    onNone: () => Effect.fail(new NotFound({ entity: "release", key: releaseName(project, key) })),
    onSome: Effect.succeed
  })
})

/**
 * A generation of a release: the given one if it is committed, else NotFound; without a key, the latest (Empty if
 * the release has none).
 */
export const generation = Effect.fn("Directory.generation")(
  function*(project: ProjectKey, release: ReleaseKey, key?: GenerationKey | undefined) {
    if (key === undefined) return yield* latestGeneration(project, release)
    const keys = yield* generations(project, release)
    if (!keys.includes(key)) {
      return yield* Effect.fail(new NotFound({ entity: "generation", key: generationName(project, release, key) }))
    }
    return key
  }
)

/** Where a lookup landed: the release, and the generation unless the release has none (and none was asked for). */
export interface Position {
  readonly project: ProjectKey
  readonly release: ReleaseKey
  readonly generation: Option.Option<GenerationKey>
}

/**
 * Resolves a position with ForML's defaults: the latest release, the latest generation. An explicit key that is not
 * there is NotFound; a project without releases is Empty; a release without generations resolves to no generation.
 */
export const resolve = Effect.fn("Directory.resolve")(function*(
  project: ProjectKey,
  releaseKey?: ReleaseKey | undefined,
  generationKey?: GenerationKey | undefined
) {
  const r = yield* release(project, releaseKey)
  if (generationKey !== undefined) {
    const g = yield* generation(project, r, generationKey)
    return { project, release: r, generation: Option.some(g) } satisfies Position
  }
  const g = Arr.last(yield* generations(project, r))
  return { project, release: r, generation: g } satisfies Position
})

// ---------------------------------------------------------------------------------------------------------------
// Releases: publish, pull, mount
// ---------------------------------------------------------------------------------------------------------------

export interface Published {
  readonly project: ProjectKey
  readonly release: ReleaseKey
}

/**
 * Publishes a package as a new release of the project its manifest names. Rejected (InvalidInput, nothing written):
 * a manifest name that is not a project key, a name other than `project` when one is given, and a version that is
 * not strictly greater (PEP 440) than the project's latest release.
 */
export const publish = Effect.fn("Directory.publish")(function*(pkg: Package, project?: ProjectKey | undefined) {
  const registry = yield* Registry
  const { name, version } = pkg.manifest
  if (project !== undefined && name !== project) {
    return yield* Effect.fail(
      new InvalidInput({
        kind: "Package",
        input: `${name}-${version}`,
        reason: `project mismatch: the package is ${name}, not ${project}`
      })
    )
  }
  const key = yield* ProjectKey.parse(name)
  const existing = yield* releases(key).pipe(
    Effect.catchTag("NotFound", () => Effect.succeed<ReadonlyArray<ReleaseKey>>([]))
  )
  const previous = Arr.last(existing)
  if (Option.isSome(previous) && Order.lessThanOrEqualTo(ReleaseKey.Order)(version, previous.value)) {
    return yield* Effect.fail(
      new InvalidInput({
        kind: "ReleaseKey",
        input: releaseName(key, version),
        reason: `not an increment from the existing ${releaseName(key, previous.value)}`
      })
    )
  }
  yield* registry.push(pkg)
  return { project: key, release: version } satisfies Published
})

/** The package of a release (default: the latest). */
export const pull = Effect.fn("Directory.pull")(function*(project: ProjectKey, releaseKey?: ReleaseKey | undefined) {
  const registry = yield* Registry
  return yield* registry.pull(project, yield* release(project, releaseKey))
})

/** The package of a release (default: the latest) unpacked into the staging directory; returns the directory. */
export const mount = Effect.fn("Directory.mount")(function*(project: ProjectKey, releaseKey?: ReleaseKey | undefined) {
  const registry = yield* Registry
  return yield* registry.mount(project, yield* release(project, releaseKey))
})

// ---------------------------------------------------------------------------------------------------------------
// Generations: tag, state, commit
// ---------------------------------------------------------------------------------------------------------------

/**
 * The tag of a generation (defaults: the latest release, its latest generation). A release without generations reads
 * as the empty tag when no generation is asked for; an explicit generation that is not committed is NotFound.
 */
export const tag = Effect.fn("Directory.tag")(function*(
  project: ProjectKey,
  releaseKey?: ReleaseKey | undefined,
  generationKey?: GenerationKey | undefined
) {
  const registry = yield* Registry
  const position = yield* resolve(project, releaseKey, generationKey)
  return yield* Option.match(position.generation, {
    onNone: () => Effect.succeed(Tag.empty),
    onSome: (g) => registry.open(project, position.release, g)
  })
})

/** A state reference: its id, or its position in the tag's state list (negative counts from the end). */
export type StateRef = StateId | number

const stateOf = (t: Tag, ref: StateRef, where: string): Either.Either<StateId, NotFound> => {
  if (typeof ref === "number") {
    const n = t.states.length
    const index = ref < 0 ? n + ref : ref
    const sid = Number.isInteger(index) && index >= 0 ? t.states[index] : undefined
    return sid === undefined
      ? Either.left(new NotFound({ entity: "state", key: `${where}#${ref}` }))
      : Either.right(sid)
  }
  return t.states.includes(ref)
    ? Either.right(ref)
    : Either.left(new NotFound({ entity: "state", key: `${where}/${ref}` }))
}

/** Where a state is, or nothing when its generation is untrained (ForML then reads the state as empty bytes). */
const locate = Effect.fn("Directory.locate")(function*(
  project: ProjectKey,
  releaseKey: ReleaseKey | undefined,
  generationKey: GenerationKey | undefined,
  ref: StateRef
) {
  const registry = yield* Registry
  const position = yield* resolve(project, releaseKey, generationKey)
  if (Option.isNone(position.generation)) return Option.none()
  const g = position.generation.value
  const t = yield* registry.open(project, position.release, g)
  if (!Tag.isTrained(t)) return Option.none()
  const sid = yield* stateOf(t, ref, generationName(project, position.release, g))
  return Option.some([position.release, g, sid] as const)
})

/**
 * One state of a generation (defaults: the latest release and generation), by id or by index in its tag. As in
 * ForML, an untrained generation (no training timestamp, such as the empty tag of a release without generations)
 * reads every state as empty bytes; a reference the tag does not list is NotFound.
 */
export const state = Effect.fn("Directory.state")(function*(
  project: ProjectKey,
  releaseKey: ReleaseKey | undefined,
  generationKey: GenerationKey | undefined,
  ref: StateRef
) {
  const registry = yield* Registry
  const found = yield* locate(project, releaseKey, generationKey, ref)
  if (Option.isNone(found)) return new Uint8Array(0)
  const [r, g, sid] = found.value
  return yield* registry.read(project, r, g, sid)
})

/** `state` as a byte stream, for large states (an untrained generation's state is an empty stream). */
export const stateStream = (
  project: ProjectKey,
  releaseKey: ReleaseKey | undefined,
  generationKey: GenerationKey | undefined,
  ref: StateRef
): Stream.Stream<Uint8Array, NotFound | Empty | InvalidTag | StoreFailure, Registry> =>
  Stream.unwrap(
    Effect.gen(function*() {
      const registry = yield* Registry
      const found = yield* locate(project, releaseKey, generationKey, ref)
      return Option.match(found, {
        onNone: () => Stream.empty,
        onSome: ([r, g, sid]) => registry.readStream(project, r, g, sid)
      })
    })
  )

/** What a commit records besides the states: the training ordinal and the tuning mode, as the tag takes them. */
export interface CommitOptions {
  /** The training ordinal (the data point the training went up to), if any. */
  readonly ordinal?: TomlValue | Option.Option<TomlValue> | undefined
  /** The tuning mode, if the generation was tuned (a mode without a timestamp is dropped, as in ForML). */
  readonly tuning?: Tag.TuningInput | undefined
  /** How many states are written at once (default 8). */
  readonly concurrency?: number | undefined
}

/**
 * Trains a generation into the store: writes each state under a fresh state id, then closes the next generation
 * (latest + 1, or 1) with a tag listing those ids in order and a training timestamp of now. The release must exist
 * (NotFound otherwise, nothing written). Returns the generation really used: a concurrent commit may have taken the
 * number first, and the registry then moves to the next free one.
 */
export const commit = Effect.fn("Directory.commit")(function*<E = never>(
  project: ProjectKey,
  releaseKey: ReleaseKey,
  states: ReadonlyArray<Uint8Array | Stream.Stream<Uint8Array, E>>,
  options: CommitOptions = {}
) {
  const registry = yield* Registry
  const r = yield* release(project, releaseKey)
  const written = Arr.map(states, (data) => [StateId.random(), data] as const)
  yield* Effect.forEach(written, ([sid, data]) => registry.write(project, r, sid, data), {
    concurrency: options.concurrency ?? 8,
    discard: true
  })
  const timestamp = yield* Timestamp.now
  const t = Tag.make({
    training: { timestamp, ordinal: options.ordinal },
    tuning: options.tuning,
    states: Arr.map(written, ([sid]) => sid)
  })
  return yield* closeListed(registry, project, r, t)
})

const closeListed = (registry: Registry.Service, project: ProjectKey, r: ReleaseKey, t: Tag) =>
  Effect.flatMap(generations(project, r), (keys) => {
    const next = Option.match(Arr.last(keys), { onNone: () => GenerationKey.first, onSome: GenerationKey.next })
    return registry.close(project, r, next, t)
  })

/**
 * ForML's `Release.put(tag)`: closes the next generation (latest + 1, or 1) of a release with a tag whose states were
 * written before (by this registry instance). The release must exist. Returns the generation really used.
 */
export const closeNext = Effect.fn("Directory.closeNext")(
  function*(project: ProjectKey, releaseKey: ReleaseKey, t: Tag) {
    const registry = yield* Registry
    return yield* closeListed(registry, project, yield* release(project, releaseKey), t)
  }
)

/** The errors of reading a generation's tag through the directory. */
export type TagFailure = NotFound | Empty | InvalidTag | StoreFailure
/** The errors of reading a release's package through the directory. */
export type PackageFailure = NotFound | Empty | InvalidPackage | StoreFailure
