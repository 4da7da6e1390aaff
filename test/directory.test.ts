/**
 * Directory semantics: ForML's listing order and "latest" (checked against ForML's key vectors), the publish rule,
 * commit (fresh ids, bounded concurrency, next generation, races), defaults and typed failures. Mostly on a small
 * in-process Registry that records calls; the race between two trainers runs on MlflowRegistry over MlflowMemory.
 */
import { NodeContext } from "@effect/platform-node"
import { describe, expect, it } from "@effect/vitest"
import { Effect, Either, Layer, Option, Stream, TestClock } from "effect"
import { GenerationKey } from "../src/asset/GenerationKey.js"
import { Manifest } from "../src/asset/Manifest.js"
import { Package } from "../src/asset/Package.js"
import { ProjectKey } from "../src/asset/ProjectKey.js"
import { ReleaseKey } from "../src/asset/ReleaseKey.js"
import { StateId } from "../src/asset/StateId.js"
import { Tag, Timestamp } from "../src/asset/Tag.js"
import { Empty, InvalidInput, MlflowApiError, NotFound } from "../src/errors.js"
import * as MlflowMemory from "../src/mlflow/MlflowMemory.js"
import * as Directory from "../src/registry/Directory.js"
import * as MlflowRegistry from "../src/registry/MlflowRegistry.js"
import { Registry } from "../src/registry/Registry.js"
import { bytesOf, helloworldZip, hexOf, trainingA } from "./contract/forml.js"
import { readJson } from "./support/shared.js"

// ---------------------------------------------------------------------------------------------------------------
// A small in-process registry: listings in insertion order (so the Directory's sorting shows), a call log, and
// knobs for the cases a real store makes hard to stage (a race at close, a slow or failing write).
// ---------------------------------------------------------------------------------------------------------------

const right = <A, E>(e: Either.Either<A, E>): A => Either.getOrThrowWith(e, (err) => new Error(String(err)))
const project = (s: string): ProjectKey => right(ProjectKey.parse(s))
const release = (s: string): ReleaseKey => right(ReleaseKey.parse(s))
const gen = (n: number | string): GenerationKey => right(GenerationKey.parse(n))

interface FakeGeneration {
  readonly key: GenerationKey
  readonly tag: Option.Option<Tag>
  readonly states: Map<string, Uint8Array>
}
interface FakeRelease {
  readonly key: ReleaseKey
  readonly pkg: Package
  readonly generations: Array<FakeGeneration>
}

interface Fake {
  readonly projects: Map<string, Array<FakeRelease>>
  readonly unbound: Map<string, Uint8Array>
  readonly log: Array<string>
  /** Generations taken by another trainer between listing and close: close moves past them. */
  racing: number
  writeDelay: number
  inFlight: number
  maxInFlight: number
  failWrite: Option.Option<number>
}

/** A package value for the in-process registry (never read from disk). */
const pkgOf = (name: string, version: string): Package =>
  new Package({
    path: `/packages/${name}-${version}.4ml`,
    kind: "zip",
    manifest: right(Manifest.make({ name, version, package: "hello.world" }))
  })

const makeFake = (): Fake => ({
  projects: new Map(),
  unbound: new Map(),
  log: [],
  racing: 0,
  writeDelay: 0,
  inFlight: 0,
  maxInFlight: 0,
  failWrite: Option.none()
})

const fakeRegistry = (fake: Fake): Registry.Service => {
  const releasesOf = (p: ProjectKey) =>
    Option.fromNullable(fake.projects.get(p)).pipe(
      Effect.mapError(() => new NotFound({ entity: "project", key: p }))
    )
  const releaseOf = (p: ProjectKey, r: ReleaseKey) =>
    Effect.flatMap(releasesOf(p), (rs) =>
      Option.fromNullable(rs.find((x) => ReleaseKey.equals(x.key, r))).pipe(
        Effect.mapError(() => new NotFound({ entity: "release", key: `${p}-${r}` }))
      ))
  const generationOf = (p: ProjectKey, r: ReleaseKey, g: GenerationKey) =>
    Effect.flatMap(releaseOf(p, r), (rel) =>
      Option.fromNullable(rel.generations.find((x) => x.key === g)).pipe(
        Effect.mapError(() => new NotFound({ entity: "generation", key: `${p}-${r}-${g}` }))
      ))
  const read = (p: ProjectKey, r: ReleaseKey, g: GenerationKey, sid: StateId) =>
    Effect.flatMap(generationOf(p, r, g), (x) => {
      fake.log.push(`read ${sid}`)
      return Option.fromNullable(x.states.get(sid)).pipe(
        Effect.mapError(() => new NotFound({ entity: "state", key: sid }))
      )
    })
  return {
    projects: Stream.suspend(() => Stream.fromIterable([...fake.projects.keys()].map(project))),
    releases: (p) => Stream.unwrap(Effect.map(releasesOf(p), (rs) => Stream.fromIterable(rs.map((x) => x.key)))),
    generations: (p, r) =>
      Stream.unwrap(Effect.map(releaseOf(p, r), (rel) => Stream.fromIterable(rel.generations.map((x) => x.key)))),
    push: (pkg) =>
      Effect.sync(() => {
        fake.log.push(`push ${pkg.manifest.name}-${pkg.manifest.version}`)
        const rs = fake.projects.get(pkg.manifest.name) ?? []
        rs.push({ key: pkg.manifest.version, pkg, generations: [] })
        fake.projects.set(pkg.manifest.name, rs)
      }),
    pull: (p, r) => Effect.map(releaseOf(p, r), (rel) => rel.pkg),
    mount: (p, r) => Effect.map(releaseOf(p, r), (rel) => `/staging/${p}/${rel.key}`),
    write: (p, r, sid, data) =>
      Effect.gen(function*() {
        yield* releaseOf(p, r)
        fake.inFlight++
        fake.maxInFlight = Math.max(fake.maxInFlight, fake.inFlight)
        yield* Effect.sleep(fake.writeDelay)
        fake.inFlight--
        const n = fake.log.filter((l) => l.startsWith("write")).length
        if (Option.isSome(fake.failWrite) && fake.failWrite.value === n) {
          return yield* new MlflowApiError({ status: 500, errorCode: "INTERNAL_ERROR", detail: "write failed" })
        }
        fake.log.push(`write ${sid}`)
        const bytes = data instanceof Uint8Array
          ? data
          : Buffer.concat([...(yield* Stream.runCollect(data))])
        fake.unbound.set(sid, bytes)
      }),
    read,
    readStream: (p, r, g, sid) => Stream.fromEffect(read(p, r, g, sid)),
    close: (p, r, g, t) =>
      Effect.gen(function*() {
        const rel = yield* releaseOf(p, r)
        const missing = t.states.filter((s) => !fake.unbound.has(s))
        if (missing.length > 0) {
          return yield* new InvalidInput({ kind: "Tag", input: missing.join(","), reason: "states not written" })
        }
        const used = (g + fake.racing) as GenerationKey
        fake.log.push(`close ${g} as ${used}`)
        rel.generations.push({
          key: used,
          tag: Option.some(t),
          states: new Map(t.states.map((s) => [s, fake.unbound.get(s)!]))
        })
        return used
      }),
    open: (p, r, g) =>
      Effect.flatMap(generationOf(p, r, g), (x) =>
        Option.match(x.tag, {
          onNone: () => Effect.fail(new Empty({ entity: "tag", key: `${p}-${r}-${g}` })),
          onSome: Effect.succeed
        }))
  }
}

const withFake = (fake: Fake) => Effect.provideService(Registry, fakeRegistry(fake))

/** A fake holding `helloworld` with the given releases (in this order) and, for each, its generations. */
const seeded = (releases: ReadonlyArray<readonly [string, ReadonlyArray<number>]>): Fake => {
  const fake = makeFake()
  fake.projects.set(
    "helloworld",
    releases.map(([v, gs]) => ({
      key: release(v),
      pkg: pkgOf("helloworld", v),
      generations: gs.map((g) => ({
        key: gen(g),
        tag: Option.some(Tag.make({ training: { timestamp: right(Timestamp.parse("2019-04-01T00:00:00")) } })),
        states: new Map()
      }))
    }))
  )
  return fake
}

const hello = project("helloworld")

// ---------------------------------------------------------------------------------------------------------------
// Listings and latest keys
// ---------------------------------------------------------------------------------------------------------------

interface ReleaseVectors {
  readonly sortInput: ReadonlyArray<string>
  readonly sorted: ReadonlyArray<string>
  readonly listingDedupe: ReadonlyArray<{ input: ReadonlyArray<string>; listing: ReadonlyArray<string>; last: string }>
}
interface GenerationVectors {
  readonly listingExample: {
    readonly input: ReadonlyArray<string | number>
    readonly listing: ReadonlyArray<number>
    readonly last: number
    readonly nextOfLast: number
  }
}
const releaseVectors = readJson<ReleaseVectors>("forml-vectors", "releases.json")
const generationVectors = readJson<GenerationVectors>("forml-vectors", "generations.json")

describe("Directory listings", () => {
  it.effect("releases come in ForML's Listing order (PEP 440), the latest is the last", () => {
    const fake = seeded(releaseVectors.sortInput.map((v) => [v, []] as const))
    return Effect.gen(function*() {
      const listed = yield* Directory.releases(hello)
      expect(listed.map(String)).toEqual(releaseVectors.sorted)
      expect(String(yield* Directory.latestRelease(hello))).toBe(releaseVectors.sorted.at(-1))
    }).pipe(withFake(fake))
  })

  it.effect("equal releases are listed once, the first one met wins (ForML's listingDedupe)", () =>
    Effect.forEach(releaseVectors.listingDedupe, (c) =>
      Effect.gen(function*() {
        const listed = yield* Directory.releases(hello)
        expect(listed.map(String)).toEqual(c.listing)
        expect(String(yield* Directory.latestRelease(hello))).toBe(c.last)
      }).pipe(withFake(seeded(c.input.map((v) => [v, []] as const))))))

  it.effect("generations sort numerically; the next of the latest is latest + 1", () => {
    const ex = generationVectors.listingExample
    const fake = seeded([["1", ex.input.map((g) => gen(g))]])
    return Effect.gen(function*() {
      expect(yield* Directory.generations(hello, release("1"))).toEqual(ex.listing)
      const latest = yield* Directory.latestGeneration(hello, release("1"))
      expect(latest).toBe(ex.last)
      expect(GenerationKey.next(latest)).toBe(ex.nextOfLast)
    }).pipe(withFake(fake))
  })

  it.effect("projects are sorted by name; the latest project is the greatest", () => {
    const fake = makeFake()
    for (const name of ["titanic", "forml-titanic", "helloworld", "Zeta"]) fake.projects.set(name, [])
    return Effect.gen(function*() {
      expect(yield* Directory.projects).toEqual(["Zeta", "forml-titanic", "helloworld", "titanic"])
      expect(yield* Directory.latestProject).toBe("titanic")
    }).pipe(withFake(fake))
  })

  it.effect("a latest key of an empty level is Empty; an unknown parent is NotFound", () =>
    Effect.gen(function*() {
      const noProjects = yield* Effect.flip(Directory.latestProject.pipe(withFake(makeFake())))
      expect(noProjects).toBeInstanceOf(Empty)
      expect(noProjects.message).toBe("no projects")
      const fake = seeded([["1", []]])
      fake.projects.set("bare", [])
      const noReleases = yield* Effect.flip(Directory.latestRelease(project("bare")).pipe(withFake(fake)))
      expect(noReleases).toBeInstanceOf(Empty)
      expect(noReleases.message).toBe("no releases in bare")
      const noGenerations = yield* Effect.flip(Directory.latestGeneration(hello, release("1")).pipe(withFake(fake)))
      expect(noGenerations).toBeInstanceOf(Empty)
      expect(noGenerations.message).toBe("no generations in helloworld-1")
      const unknown = yield* Effect.flip(Directory.latestRelease(project("nope")).pipe(withFake(fake)))
      expect(unknown).toBeInstanceOf(NotFound)
      const unknownRelease = yield* Effect.flip(Directory.latestGeneration(hello, release("9")).pipe(withFake(fake)))
      expect(unknownRelease).toBeInstanceOf(NotFound)
    }))

  it.effect("an explicit key resolves to the store's spelling; an unknown one is NotFound", () => {
    const fake = seeded([["1.0", [1, 2]], ["2", []]])
    return Effect.gen(function*() {
      expect(String(yield* Directory.release(hello, release("1.0.0")))).toBe("1.0")
      expect(String(yield* Directory.release(hello))).toBe("2")
      const missing = yield* Effect.flip(Directory.release(hello, release("1.5")))
      expect(missing).toEqual(new NotFound({ entity: "release", key: "helloworld-1.5" }))
      expect(yield* Directory.generation(hello, release("1"), gen(1))).toBe(1)
      const noGeneration = yield* Effect.flip(Directory.generation(hello, release("1"), gen(3)))
      expect(noGeneration).toEqual(new NotFound({ entity: "generation", key: "helloworld-1-3" }))
      const position = yield* Directory.resolve(hello, release("1"))
      expect(position.generation).toEqual(Option.some(2))
      expect(Option.isNone((yield* Directory.resolve(hello)).generation)).toBe(true)
    }).pipe(withFake(fake))
  })
})

// ---------------------------------------------------------------------------------------------------------------
// Publishing
// ---------------------------------------------------------------------------------------------------------------

describe("Directory.publish", () => {
  it.effect("publishes into an empty registry and returns the project and release", () => {
    const fake = makeFake()
    return Effect.gen(function*() {
      const published = yield* Directory.publish(pkgOf("helloworld", "1"))
      expect(published.project).toBe("helloworld")
      expect(String(published.release)).toBe("1")
      expect(fake.log).toEqual(["push helloworld-1"])
    }).pipe(withFake(fake))
  })

  it.effect("a release must be strictly greater than the latest (PEP 440)", () => {
    const fake = seeded([["1.0", []], ["1.1", []]])
    return Effect.gen(function*() {
      for (const v of ["1.1", "1.1.0", "1.0", "1.1.dev1", "1.1rc1", "0.9"]) {
        const rejected = yield* Effect.flip(Directory.publish(pkgOf("helloworld", v)))
        expect(rejected).toBeInstanceOf(InvalidInput)
        expect(rejected._tag).toBe("InvalidInput")
        expect(rejected.message).not.toContain("\n")
        expect(rejected.message).toContain("not an increment from the existing helloworld-1.1")
      }
      expect(fake.log).toEqual([])
      for (const v of ["1.1.post1", "1.2.dev0", "2"]) yield* Directory.publish(pkgOf("helloworld", v), hello)
      expect(fake.log).toEqual(["push helloworld-1.1.post1", "push helloworld-1.2.dev0", "push helloworld-2"])
      expect(String(yield* Directory.latestRelease(hello))).toBe("2")
    }).pipe(withFake(fake))
  })

  it.effect("a package of another project is rejected when publishing into a named project", () => {
    const fake = seeded([["1", []]])
    return Effect.gen(function*() {
      const rejected = yield* Effect.flip(Directory.publish(pkgOf("titanic", "5"), hello))
      expect(rejected).toBeInstanceOf(InvalidInput)
      expect(rejected.message).toContain("the package is titanic, not helloworld")
      // into a project of its own (even a new one) it goes
      yield* Directory.publish(pkgOf("titanic", "5"))
      expect(fake.log).toEqual(["push titanic-5"])
    }).pipe(withFake(fake))
  })

  it.effect("a manifest name that is not a project key is rejected before anything is written", () => {
    const fake = makeFake()
    return Effect.gen(function*() {
      const rejected = yield* Effect.flip(Directory.publish(pkgOf("hello@repo", "1")))
      expect(rejected).toBeInstanceOf(InvalidInput)
      expect(rejected._tag === "InvalidInput" && rejected.kind).toBe("ProjectKey")
      expect(fake.log).toEqual([])
    }).pipe(withFake(fake))
  })

  it.effect("pull and mount default to the latest release", () => {
    const fake = seeded([["2", []], ["10", []], ["1", []]])
    return Effect.gen(function*() {
      expect(String((yield* Directory.pull(hello)).manifest.version)).toBe("10")
      expect(String((yield* Directory.pull(hello, release("2"))).manifest.version)).toBe("2")
      expect(yield* Directory.mount(hello)).toBe("/staging/helloworld/10")
      expect(yield* Effect.flip(Directory.pull(hello, release("3")))).toBeInstanceOf(NotFound)
      expect(yield* Effect.flip(Directory.pull(project("nope")))).toBeInstanceOf(NotFound)
    }).pipe(withFake(fake))
  })
})

// ---------------------------------------------------------------------------------------------------------------
// Tags and states
// ---------------------------------------------------------------------------------------------------------------

describe("Directory.tag and Directory.state", () => {
  const withTrained = () => {
    const fake = seeded([["1", []], ["2", []]])
    const rel = fake.projects.get("helloworld")![0]!
    rel.generations.push({ key: gen(1), tag: Option.some(trainingA.tag), states: new Map(trainingA.states) })
    const untrained = Tag.make({
      tuning: { timestamp: right(Timestamp.parse("2019-04-05T00:00:00")), score: 1.5 },
      states: trainingA.states.map(([sid]) => sid)
    })
    rel.generations.push({ key: gen(2), tag: Option.some(untrained), states: new Map(trainingA.states) })
    rel.generations.push({ key: gen(3), tag: Option.none(), states: new Map() })
    return fake
  }

  it.effect("defaults: the latest release, its latest generation; an empty release reads as the empty tag", () => {
    const fake = withTrained()
    return Effect.gen(function*() {
      expect(Tag.equals(yield* Directory.tag(hello), Tag.empty)).toBe(true) // release 2 has no generation
      expect(Tag.equals(yield* Directory.tag(hello, release("1"), gen(1)), trainingA.tag)).toBe(true)
      expect(yield* Effect.flip(Directory.tag(hello, release("2"), gen(1)))).toBeInstanceOf(NotFound)
      // a generation without a tag: the store's Empty comes through
      expect(yield* Effect.flip(Directory.tag(hello, release("1")))).toBeInstanceOf(Empty)
      const bare = makeFake()
      bare.projects.set("helloworld", [])
      expect(yield* Effect.flip(Directory.tag(hello).pipe(withFake(bare)))).toBeInstanceOf(Empty)
    }).pipe(withFake(fake))
  })

  it.effect("states by id, by index and by negative index; unlisted references are NotFound without a read", () => {
    const fake = withTrained()
    return Effect.gen(function*() {
      const [sid0, v0] = trainingA.states[0]!
      const [sid1, v1] = trainingA.states[1]!
      expect(hexOf(yield* Directory.state(hello, release("1"), gen(1), sid1))).toBe(hexOf(v1))
      expect(hexOf(yield* Directory.state(hello, release("1"), gen(1), 0))).toBe(hexOf(v0))
      expect(hexOf(yield* Directory.state(hello, release("1"), gen(1), -1))).toBe(hexOf(v1))
      expect(hexOf(yield* Directory.state(hello, release("1"), gen(1), -2))).toBe(hexOf(v0))
      const reads = fake.log.length
      for (const ref of [2, -3, 0.5, StateId.random()]) {
        const missing = yield* Effect.flip(Directory.state(hello, release("1"), gen(1), ref))
        expect(missing).toBeInstanceOf(NotFound)
        expect(missing._tag === "NotFound" && missing.entity).toBe("state")
      }
      expect(fake.log.length).toBe(reads)
      expect(sid0).not.toBe(sid1)
      const streamed = yield* bytesOf(Directory.stateStream(hello, release("1"), gen(1), 1))
      expect(hexOf(streamed)).toBe(hexOf(v1))
      const unlisted = yield* Effect.flip(bytesOf(Directory.stateStream(hello, release("1"), gen(1), 7)))
      expect(unlisted).toBeInstanceOf(NotFound)
    }).pipe(withFake(fake))
  })

  it.effect("an untrained generation (or an empty release) reads every state as empty bytes, as in ForML", () => {
    const fake = withTrained()
    return Effect.gen(function*() {
      const before = fake.log.length
      expect((yield* Directory.state(hello, release("1"), gen(2), 0)).length).toBe(0)
      expect((yield* Directory.state(hello, release("1"), gen(2), StateId.random())).length).toBe(0)
      expect((yield* Directory.state(hello, undefined, undefined, 0)).length).toBe(0)
      expect((yield* bytesOf(Directory.stateStream(hello, release("1"), gen(2), 0))).length).toBe(0)
      expect(fake.log.length).toBe(before)
    }).pipe(withFake(fake))
  })
})

// ---------------------------------------------------------------------------------------------------------------
// Commit
// ---------------------------------------------------------------------------------------------------------------

describe("Directory.commit", () => {
  const bytes = (n: number) => Uint8Array.of(n)

  it.effect("writes every state under a fresh id, then closes latest + 1 with the ids in order and now", () => {
    const fake = seeded([["1", [1, 2, 4]]])
    return Effect.gen(function*() {
      yield* TestClock.setTime(Date.UTC(2019, 3, 2, 12, 30, 45, 123))
      const used = yield* Directory.commit(hello, release("1"), [bytes(1), Stream.make(bytes(2), bytes(3)), bytes(4)], {
        ordinal: 42n,
        tuning: { timestamp: right(Timestamp.parse("2019-04-05T00:00:00")), score: 0.5 }
      })
      expect(used).toBe(5)
      const writes = fake.log.filter((l) => l.startsWith("write"))
      expect(writes.length).toBe(3)
      expect(fake.log.at(-1)).toBe("close 5 as 5")
      const t = yield* Directory.tag(hello, release("1"), gen(5))
      expect(t.states.length).toBe(3)
      expect(new Set(t.states).size).toBe(3)
      expect(Timestamp.toIsoString(Option.getOrThrow(t.training.timestamp))).toBe("2019-04-02T12:30:45.123000")
      expect(t.training.ordinal).toEqual(Option.some(42n))
      expect(t.tuning.score).toEqual(Option.some(0.5))
      expect(hexOf(yield* Directory.state(hello, release("1"), gen(5), 0))).toBe("01")
      expect(hexOf(yield* Directory.state(hello, release("1"), gen(5), 1))).toBe("0203")
      expect(hexOf(yield* Directory.state(hello, release("1"), gen(5), 2))).toBe("04")
    }).pipe(withFake(fake))
  })

  it.effect("the first generation of a release is 1; no states is a valid training", () => {
    const fake = seeded([["1", []]])
    return Effect.gen(function*() {
      expect(yield* Directory.commit(hello, release("1"), [])).toBe(1)
      const t = yield* Directory.tag(hello)
      expect(t.states).toEqual([])
      expect(Tag.isTrained(t)).toBe(true)
    }).pipe(withFake(fake))
  })

  it.effect("returns the generation close really used after a race", () => {
    const fake = seeded([["1", [1]]])
    fake.racing = 3
    return Effect.gen(function*() {
      expect(yield* Directory.commit(hello, release("1"), [bytes(9)])).toBe(5)
      expect(yield* Directory.latestGeneration(hello, release("1"))).toBe(5)
    }).pipe(withFake(fake))
  })

  it.live("writes at most `concurrency` states at once (default 8)", () =>
    Effect.gen(function*() {
      const fake = seeded([["1", []]])
      fake.writeDelay = 5
      yield* Directory.commit(hello, release("1"), Array.from({ length: 20 }, (_, i) => bytes(i))).pipe(withFake(fake))
      expect(fake.maxInFlight).toBe(8)
      const two = seeded([["1", []]])
      two.writeDelay = 5
      yield* Directory.commit(hello, release("1"), Array.from({ length: 7 }, (_, i) => bytes(i)), { concurrency: 2 })
        .pipe(withFake(two))
      expect(two.maxInFlight).toBe(2)
      expect(two.log.filter((l) => l.startsWith("write")).length).toBe(7)
    }))

  it.effect("an unknown release is NotFound and a failed write closes nothing", () =>
    Effect.gen(function*() {
      const fake = seeded([["1", []]])
      const missing = yield* Effect.flip(Directory.commit(hello, release("2"), [bytes(1)]).pipe(withFake(fake)))
      expect(missing).toBeInstanceOf(NotFound)
      expect(fake.log).toEqual([])
      fake.failWrite = Option.some(1)
      const failed = yield* Effect.flip(
        Directory.commit(hello, release("1"), [bytes(1), bytes(2), bytes(3)], { concurrency: 1 }).pipe(withFake(fake))
      )
      expect(failed).toBeInstanceOf(MlflowApiError)
      expect(fake.log.some((l) => l.startsWith("close"))).toBe(false)
      expect(yield* Directory.generations(hello, release("1")).pipe(withFake(fake))).toEqual([])
    }))
})

// ---------------------------------------------------------------------------------------------------------------
// Two trainers on one MLflow store
// ---------------------------------------------------------------------------------------------------------------

describe("Directory on MlflowRegistry", () => {
  it.live("trainers committing at once get distinct generations, each with its own states", () =>
    Effect.gen(function*() {
      const store = yield* MlflowMemory.make()
      const platform = Layer.merge(MlflowMemory.layerWith(store), NodeContext.layer)
      // each trainer is its own registry instance (its own training session) on the shared store
      const trainer = () => MlflowRegistry.layer({ repoid: "race" }).pipe(Layer.provide(platform))
      const pkg = yield* Package.open(helloworldZip).pipe(Effect.provide(NodeContext.layer))
      yield* Directory.publish(pkg).pipe(Effect.provide(trainer()))
      const r = pkg.manifest.version
      const used = yield* Effect.all(
        [1, 2, 3].map((i) => Directory.commit(hello, r, [Uint8Array.of(i)]).pipe(Effect.provide(trainer()))),
        { concurrency: "unbounded" }
      )
      expect([...used].sort()).toEqual([1, 2, 3])
      yield* Effect.gen(function*() {
        expect(yield* Directory.generations(hello, r)).toEqual([1, 2, 3])
        for (const [i, g] of used.entries()) {
          expect(hexOf(yield* Directory.state(hello, r, g, 0))).toBe(hexOf(Uint8Array.of(i + 1)))
        }
      }).pipe(Effect.provide(trainer()))
    }))
})
