/**
 * ForML's own registry tests, ported: the provider contract every `asset.Registry` passes (projects, releases,
 * generations, push, mount, read, open) and the Directory level tests (latest and explicit keys, the empty release),
 * run against any store that can give fresh Registry instances. Fixtures come from ForML's recorded lifecycle.
 */
import { NodeContext } from "@effect/platform-node"
import { afterAll, beforeAll, describe, expect, layer as layerSuite } from "@effect/vitest"
import type { Layer } from "effect"
import { Chunk, Effect, Either, Equal, Option, Stream } from "effect"
import { mkdtemp, rm } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { GenerationKey } from "../../src/asset/GenerationKey.js"
import { Manifest } from "../../src/asset/Manifest.js"
import { Package } from "../../src/asset/Package.js"
import { ProjectKey } from "../../src/asset/ProjectKey.js"
import { ReleaseKey } from "../../src/asset/ReleaseKey.js"
import { StateId } from "../../src/asset/StateId.js"
import { Tag, Timestamp } from "../../src/asset/Tag.js"
import * as Directory from "../../src/registry/Directory.js"
import { Registry } from "../../src/registry/Registry.js"
import { readJson, sharedPath } from "../support/shared.js"

// ---------------------------------------------------------------------------------------------------------------
// Fixtures: ForML's conftest values, taken from the lifecycle ForML 0.93 ran on MLflow (mlflow-layout.json)
// ---------------------------------------------------------------------------------------------------------------

interface LifecycleStep {
  readonly step: string
  readonly states?: Readonly<Record<string, string>>
  readonly closed?: number
  readonly tagToml?: string
}

const steps = readJson<{ lifecycle: { steps: ReadonlyArray<LifecycleStep> } }>("forml-vectors", "mlflow-layout.json")
  .lifecycle.steps

const right = <A, E>(e: Either.Either<A, E>): A => Either.getOrThrowWith(e, (err) => new Error(String(err)))

const hex = (s: string): Uint8Array => Uint8Array.from(Buffer.from(s, "hex"))

export interface Training {
  /** The states in tag order, with their bytes. */
  readonly states: ReadonlyArray<readonly [StateId, Uint8Array]>
  readonly tag: Tag
  readonly generation: GenerationKey
}

const training = (name: string): Training => {
  const step = steps.find((s) => s.step === name)
  if (step?.states === undefined || step.tagToml === undefined || step.closed === undefined) {
    throw new Error(`lifecycle step ${name} is not a training`)
  }
  return {
    states: Object.entries(step.states).map(([sid, value]) => [right(StateId.parse(sid)), hex(value)] as const),
    tag: right(Tag.decode(step.tagToml)),
    generation: right(GenerationKey.parse(step.closed))
  }
}

/** ForML's `populated` fixture: states 00…00 and 01…01, closed as generation 1 with `generation_tag`. */
export const trainingA: Training = training("A")
/** The second training of the lifecycle, closed through the Directory by another registry instance (generation 2). */
export const trainingB: Training = training("B")

export const helloworldZip = sharedPath("forml-vectors", "helloworld.4ml")
export const helloworld2Zip = sharedPath("forml-vectors", "helloworld-2.4ml")

/** Packages built from the helloworld sources with other manifests (a scratch directory for the test file). */
export interface PackageFactory {
  readonly make: (name: string, version: string) => Effect.Effect<Package, unknown>
  readonly dispose: () => Promise<void>
}

export const packageFactory = async (): Promise<PackageFactory> => {
  const dir = await mkdtemp(join(tmpdir(), "forml-packages-"))
  const sources = join(dir, "src")
  await Effect.runPromise(Package.unpack(helloworldZip, sources).pipe(Effect.provide(NodeContext.layer)))
  let n = 0
  return {
    make: (name, version) =>
      Effect.gen(function*() {
        const manifest = yield* Manifest.make({ name, version, package: "hello.world" })
        return yield* Package.create(sources, manifest, join(dir, `${n++}-${name}-${version}.4ml`))
      }).pipe(Effect.provide(NodeContext.layer)),
    dispose: () => rm(dir, { recursive: true, force: true })
  }
}

/** Bytes as hex, so that assertions compare contents whatever the array class. */
export const hexOf = (b: Uint8Array): string => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString("hex")

export const bytesOf = <E, R>(stream: Stream.Stream<Uint8Array, E, R>): Effect.Effect<Uint8Array, E, R> =>
  Effect.map(Stream.runCollect(stream), (chunks) => Buffer.concat(Chunk.toReadonlyArray(chunks)))

// ---------------------------------------------------------------------------------------------------------------
// The suite
// ---------------------------------------------------------------------------------------------------------------

export interface FormlContractOptions {
  /** Per-test timeout in milliseconds; default 20 000. */
  readonly timeout?: number | undefined
}

let counter = 0
/** A repoid no other test uses, so every registry starts empty on a shared store. */
const freshRepoid = (): string => `formltest${process.pid}x${counter++}x${Math.floor(Math.random() * 1e6)}`

/**
 * Runs ForML's registry contract and Directory level tests. `store` is built once for the suite; `registry(repoid)`
 * must give a new Registry instance (its own training session) over it, empty for a repoid not used before.
 */
export const formlContract = <R, E>(
  name: string,
  store: Layer.Layer<R, E>,
  registry: (repoid: string) => Layer.Layer<Registry, never, R>,
  options: FormlContractOptions = {}
): void => {
  const timeout = options.timeout ?? 20_000

  describe(name, () => {
    let packages: PackageFactory
    let pkg: Package
    let emptyReleasePkg: Package

    beforeAll(async () => {
      packages = await packageFactory()
      pkg = await Effect.runPromise(Package.open(helloworldZip).pipe(Effect.provide(NodeContext.layer)))
      // ForML's `empty_release`: `{project_release}.1`, published and never trained
      emptyReleasePkg = await Effect.runPromise(
        packages.make(pkg.manifest.name, `${pkg.manifest.version}.1`).pipe(Effect.orDie)
      )
    })
    afterAll(() => packages.dispose())

    const project = (): ProjectKey => right(ProjectKey.parse(pkg.manifest.name))
    const projectRelease = (): ReleaseKey => pkg.manifest.version
    const emptyRelease = (): ReleaseKey => emptyReleasePkg.manifest.version

    /** ForML's `populated`: push, write the states, close generation 1 (one registry instance). */
    const populate = Effect.gen(function*() {
      const reg = yield* Registry
      yield* reg.push(pkg)
      for (const [sid, value] of trainingA.states) yield* reg.write(project(), projectRelease(), sid, value)
      const used = yield* reg.close(project(), projectRelease(), trainingA.generation, trainingA.tag)
      expect(used).toBe(trainingA.generation)
    })

    /** ForML's conftest `registry`: `populated` plus the empty release `{project_release}.1`. */
    const withEmptyRelease = Effect.gen(function*() {
      yield* populate
      yield* Effect.flatMap(Registry, (reg) => reg.push(emptyReleasePkg))
    })

    layerSuite(store, { timeout, excludeTestServices: true })("ForML registry contract", (it) => {
      it.effect("projects: none in an empty registry, the pushed one once populated", () =>
        Effect.gen(function*() {
          expect(yield* Directory.projects.pipe(Effect.provide(registry(freshRepoid())))).toEqual([])
          const repoid = freshRepoid()
          yield* populate.pipe(Effect.provide(registry(repoid)))
          const listed = yield* Effect.flatMap(Registry, (reg) => Stream.runCollect(reg.projects)).pipe(
            Effect.provide(registry(repoid))
          )
          expect(Chunk.toReadonlyArray(listed)).toEqual([project()])
        }))

      it.effect("releases: an unknown project is NotFound, a populated one lists its release", () =>
        Effect.gen(function*() {
          const empty = yield* Effect.flatMap(Registry, (reg) => Stream.runCollect(reg.releases(project()))).pipe(
            Effect.provide(registry(freshRepoid())),
            Effect.flip
          )
          expect(empty._tag).toBe("NotFound")
          const listed = yield* Effect.gen(function*() {
            yield* populate
            return yield* Directory.releases(project())
          }).pipe(Effect.provide(registry(freshRepoid())))
          expect(listed.map(String)).toEqual([projectRelease().toString()])
        }))

      it.effect("generations: an unknown release is NotFound, a populated one lists its generation", () =>
        Effect.gen(function*() {
          const empty = yield* Directory.generations(project(), projectRelease()).pipe(
            Effect.provide(registry(freshRepoid())),
            Effect.flip
          )
          expect(empty._tag).toBe("NotFound")
          const listed = yield* Effect.gen(function*() {
            yield* populate
            const reg = yield* Registry
            return Chunk.toReadonlyArray(yield* Stream.runCollect(reg.generations(project(), projectRelease())))
          }).pipe(Effect.provide(registry(freshRepoid())))
          expect(listed).toEqual([trainingA.generation])
        }))

      it.effect("push: a package pushed into an empty registry becomes its release", () =>
        Effect.gen(function*() {
          const reg = yield* Registry
          yield* reg.push(pkg)
          expect((yield* Directory.releases(project())).map(String)).toEqual([projectRelease().toString()])
          expect(yield* Directory.generations(project(), projectRelease())).toEqual([])
        }).pipe(Effect.provide(registry(freshRepoid()))))

      it.effect("mount: the release unpacks with its manifest", () =>
        Effect.gen(function*() {
          yield* populate
          const reg = yield* Registry
          const dir = yield* reg.mount(project(), projectRelease())
          const mounted = yield* Package.open(dir)
          expect(mounted.kind).toBe("directory")
          expect(mounted.manifest.package).toBe(pkg.manifest.package)
          expect(mounted.manifest.name).toBe(pkg.manifest.name)
          expect(String(mounted.manifest.version)).toBe(String(projectRelease()))
        }).pipe(Effect.provide(registry(freshRepoid())), Effect.provide(NodeContext.layer)))

      it.effect("pull: the release's package comes back with the same manifest and entries", () =>
        Effect.gen(function*() {
          yield* populate
          const reg = yield* Registry
          const pulled = yield* reg.pull(project(), projectRelease())
          expect(pulled.kind).toBe("zip")
          expect(Equal.equals(pulled.manifest, pkg.manifest)).toBe(true)
        }).pipe(Effect.provide(registry(freshRepoid()))))

      it.effect("read: every state of the generation reads back as written", () =>
        Effect.gen(function*() {
          yield* populate
          const reg = yield* Registry
          for (const [sid, value] of trainingA.states) {
            expect(hexOf(yield* reg.read(project(), projectRelease(), trainingA.generation, sid))).toBe(hexOf(value))
            expect(hexOf(yield* bytesOf(reg.readStream(project(), projectRelease(), trainingA.generation, sid)))).toBe(
              hexOf(value)
            )
          }
        }).pipe(Effect.provide(registry(freshRepoid()))))

      it.effect("open: the generation's tag equals the closed one", () =>
        Effect.gen(function*() {
          yield* populate
          const reg = yield* Registry
          const opened = yield* reg.open(project(), projectRelease(), trainingA.generation)
          expect(Tag.equals(opened, trainingA.tag)).toBe(true)
          expect(Tag.encode(opened)).toBe(Tag.encode(trainingA.tag))
        }).pipe(Effect.provide(registry(freshRepoid()))))

      // ForML's test_serializable: a registry rebuilt from its settings equals the original. Here: a new instance
      // on the same repoid sees the same content.
      it.effect("a new instance on the same repoid reads what another wrote", () =>
        Effect.gen(function*() {
          const repoid = freshRepoid()
          yield* populate.pipe(Effect.provide(registry(repoid)))
          yield* Effect.gen(function*() {
            const reg = yield* Registry
            expect(yield* Directory.projects).toEqual([project()])
            const opened = yield* reg.open(project(), projectRelease(), trainingA.generation)
            expect(Tag.equals(opened, trainingA.tag)).toBe(true)
            const [sid, value] = trainingA.states[1]!
            expect(hexOf(yield* reg.read(project(), projectRelease(), trainingA.generation, sid))).toBe(hexOf(value))
          }).pipe(Effect.provide(registry(repoid)))
        }))
    })

    layerSuite(store, { timeout, excludeTestServices: true })("ForML Directory levels", (it) => {
      /** A fresh registry holding ForML's conftest `registry` content, for a test that changes it. */
      const withFreshFixture = <A, E2>(body: Effect.Effect<A, E2, Registry | R>) =>
        Effect.gen(function*() {
          yield* withEmptyRelease
          return yield* body
        }).pipe(Effect.provide(registry(freshRepoid())))

      // Read-only tests share one populated repoid, each through a new registry instance.
      let shared: string | undefined
      const sharedRepoid = Effect.suspend(() => {
        if (shared !== undefined) return Effect.succeed(shared)
        const repoid = freshRepoid()
        return withEmptyRelease.pipe(
          Effect.provide(registry(repoid)),
          Effect.tap(() => {
            shared = repoid
          }),
          Effect.as(repoid)
        )
      })
      const withFixture = <A, E2>(body: Effect.Effect<A, E2, Registry | R>) =>
        Effect.flatMap(sharedRepoid, (repoid) => Effect.provide(body, registry(repoid)))

      // ForML's `invalid_level` for releases: `{last_release.release[0] + 1}`
      const invalidRelease = (): ReleaseKey => right(ReleaseKey.parse(String(emptyRelease().release[0]! + 1n)))

      it.effect("release: the default is the last release, an explicit one is checked", () =>
        withFixture(Effect.gen(function*() {
          expect(String(yield* Directory.release(project()))).toBe(String(emptyRelease()))
          expect(String(yield* Directory.latestRelease(project()))).toBe(String(emptyRelease()))
          expect(String(yield* Directory.release(project(), projectRelease()))).toBe(String(projectRelease()))
          const missing = yield* Effect.flip(Directory.release(project(), invalidRelease()))
          expect(missing._tag).toBe("NotFound")
          // TestRegistry.test_get
          expect(String(yield* Directory.release(project(), projectRelease()))).toBe(String(projectRelease()))
        })))

      it.effect("release: an empty release has no generation and reads as the empty tag", () =>
        withFixture(Effect.gen(function*() {
          const empty = yield* Effect.flip(Directory.latestGeneration(project(), emptyRelease()))
          expect(empty._tag).toBe("Empty")
          const position = yield* Directory.resolve(project(), emptyRelease())
          expect(Option.isNone(position.generation)).toBe(true)
          const t = yield* Directory.tag(project(), emptyRelease())
          expect(t.states).toEqual([])
          expect(Tag.equals(t, Tag.empty)).toBe(true)
        })))

      it.effect("release: the artifact of an unknown release is NotFound", () =>
        withFixture(Effect.gen(function*() {
          expect((yield* Effect.flip(Directory.pull(project(), invalidRelease())))._tag).toBe("NotFound")
          expect((yield* Effect.flip(Directory.mount(project(), invalidRelease())))._tag).toBe("NotFound")
        })))

      it.effect("release: publishing an existing release is rejected", () =>
        withFixture(Effect.gen(function*() {
          const rejected = yield* Effect.flip(Directory.publish(pkg, project()))
          expect(rejected._tag).toBe("InvalidInput")
          expect((yield* Directory.releases(project())).length).toBe(2)
        })))

      it.effect("generation: the default is the last generation, an explicit one is checked", () =>
        withFixture(Effect.gen(function*() {
          expect(yield* Directory.generation(project(), projectRelease())).toBe(trainingA.generation)
          expect(yield* Directory.generation(project(), projectRelease(), trainingA.generation)).toBe(
            trainingA.generation
          )
          const missing = yield* Effect.flip(
            Directory.generation(project(), projectRelease(), GenerationKey.next(trainingA.generation))
          )
          expect(missing._tag).toBe("NotFound")
        })))

      it.effect("generation: tags of a trained, an empty and a missing generation", () =>
        withFixture(Effect.gen(function*() {
          const missing = yield* Effect.flip(Directory.tag(project(), emptyRelease(), trainingA.generation))
          expect(missing._tag).toBe("NotFound")
          const trained = yield* Directory.tag(project(), projectRelease(), trainingA.generation)
          expect(Tag.equals(trained, trainingA.tag)).toBe(true)
          expect(Tag.equals(yield* Directory.tag(project(), emptyRelease(), undefined), Tag.empty)).toBe(true)
        })))

      it.effect("generation: states by id and by index; unknown references are NotFound", () =>
        withFixture(Effect.gen(function*() {
          const badRelease = yield* Effect.flip(Directory.state(project(), invalidRelease(), undefined, 0))
          expect(badRelease._tag).toBe("NotFound")
          const badState = yield* Effect.flip(
            Directory.state(project(), projectRelease(), trainingA.generation, StateId.random())
          )
          expect(badState._tag).toBe("NotFound")
          for (const [i, [sid, value]] of trainingA.states.entries()) {
            const bySid = yield* Directory.state(project(), projectRelease(), trainingA.generation, sid)
            const byIndex = yield* Directory.state(project(), projectRelease(), trainingA.generation, i)
            const streamed = yield* bytesOf(Directory.stateStream(project(), projectRelease(), undefined, sid))
            expect(hexOf(bySid)).toBe(hexOf(value))
            expect(hexOf(byIndex)).toBe(hexOf(value))
            expect(hexOf(streamed)).toBe(hexOf(value))
          }
          // an empty release reads every state as empty bytes (ForML's untrained generation)
          expect((yield* Directory.state(project(), emptyRelease(), undefined, 0)).length).toBe(0)
        })))

      // Lifecycle step B: another registry instance writes its states and closes through the Directory
      it.effect("put: another instance closes the next generation through the directory", () =>
        Effect.gen(function*() {
          const repoid = freshRepoid()
          yield* populate.pipe(Effect.provide(registry(repoid)))
          const used = yield* Effect.gen(function*() {
            const reg = yield* Registry
            for (const [sid, value] of trainingB.states) yield* reg.write(project(), projectRelease(), sid, value)
            return yield* Directory.closeNext(project(), projectRelease(), trainingB.tag)
          }).pipe(Effect.provide(registry(repoid)))
          expect(used).toBe(trainingB.generation)
          yield* Effect.gen(function*() {
            expect(yield* Directory.generations(project(), projectRelease())).toEqual([
              trainingA.generation,
              trainingB.generation
            ])
            expect(Tag.equals(yield* Directory.tag(project()), trainingB.tag)).toBe(true)
            for (const [sid, value] of trainingB.states) {
              expect(hexOf(yield* Directory.state(project(), undefined, undefined, sid))).toBe(hexOf(value))
            }
            // generation 1 is untouched
            const [sid0, value0] = trainingA.states[0]!
            const first = yield* Directory.state(project(), projectRelease(), trainingA.generation, sid0)
            expect(hexOf(first)).toBe(hexOf(value0))
          }).pipe(Effect.provide(registry(repoid)))
        }))

      it.effect("commit: states under fresh ids, the next generation, a training timestamp of now", () =>
        withFreshFixture(Effect.gen(function*() {
          const before = Date.now()
          const values = [Uint8Array.of(1, 2, 3), Stream.make(Uint8Array.of(4), Uint8Array.of(5, 6)), new Uint8Array()]
          const used = yield* Directory.commit(project(), projectRelease(), values, { ordinal: 7n })
          expect(used).toBe(GenerationKey.next(trainingA.generation))
          const t = yield* Directory.tag(project(), projectRelease())
          expect(t.states.length).toBe(3)
          expect(new Set(t.states).size).toBe(3)
          expect(t.states.some((s) => trainingA.states.some(([a]) => a === s))).toBe(false)
          const stamp = Option.getOrThrow(t.training.timestamp)
          const ms = Number(Timestamp.epochMicros(stamp) / 1000n)
          expect(ms).toBeGreaterThanOrEqual(before - 1000)
          expect(ms).toBeLessThanOrEqual(Date.now() + 1000)
          expect(Option.isNone(t.tuning.timestamp)).toBe(true)
          expect(hexOf(yield* Directory.state(project(), projectRelease(), undefined, 0))).toBe("010203")
          expect(hexOf(yield* Directory.state(project(), projectRelease(), undefined, 1))).toBe("040506")
          expect((yield* Directory.state(project(), projectRelease(), undefined, 2)).length).toBe(0)
        })))
    })
  })
}
