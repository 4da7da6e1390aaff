/**
 * The behaviour every Registry built by MlflowRegistry shares, whatever Mlflow layer is under it (Memory, Http
 * against the emulator, FileStore), as one suite. Each test builds its own registry instances on a fresh store and
 * uses its own repoid and project names, so the suite also holds on a store shared between tests.
 */
import type { Path } from "@effect/platform"
import { FileSystem } from "@effect/platform"
import { NodeContext } from "@effect/platform-node"
import { Chunk, Effect, Either, Layer, Option, Stream } from "effect"
import type { Scope } from "effect"
import { createHash, randomUUID } from "node:crypto"
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { describe, expect, it } from "vitest"
import { GenerationKey } from "../../src/asset/GenerationKey.js"
import { Manifest } from "../../src/asset/Manifest.js"
import { Package } from "../../src/asset/Package.js"
import { ProjectKey } from "../../src/asset/ProjectKey.js"
import { ReleaseKey } from "../../src/asset/ReleaseKey.js"
import { StateId } from "../../src/asset/StateId.js"
import { Tag } from "../../src/asset/Tag.js"
import * as Filter from "../../src/mlflow/Filter.js"
import { downloadBytes, Mlflow } from "../../src/mlflow/Mlflow.js"
import type { Run } from "../../src/mlflow/Mlflow.js"
import * as Layout from "../../src/registry/layout.js"
import * as MlflowRegistry from "../../src/registry/MlflowRegistry.js"
import type { MlflowRegistryOptions } from "../../src/registry/MlflowRegistry.js"
import type { Registry } from "../../src/registry/Registry.js"
import { readJson, sharedPath } from "../support/shared.js"

export interface RegistryContractOptions {
  /** Per-test timeout in milliseconds; default 30 000. */
  readonly timeout?: number | undefined
  /** Options every registry of the contract is made with (a test's own options win). */
  readonly registry?: MlflowRegistryOptions | undefined
  /** Titles of tests that do not apply (reported as skipped), with the reason in the contract's name. */
  readonly skip?: ReadonlyArray<string> | undefined
}

type Env = Mlflow | FileSystem.FileSystem | Path.Path | Scope.Scope

// ---------------------------------------------------------------------------------------------------------------
// Fixtures
// ---------------------------------------------------------------------------------------------------------------

interface LayoutStep {
  readonly tagToml: string
  readonly states: Readonly<Record<string, string>>
}
const layout = readJson<{ readonly lifecycle: { readonly steps: ReadonlyArray<LayoutStep> } }>(
  "forml-vectors",
  "mlflow-layout.json"
)

/** ForML's `generation_tag` fixture as ForML wrote it (training, ordinal, tuning, score). */
export const generationTag: Tag = Either.getOrThrow(Tag.decode(layout.lifecycle.steps[0]!.tagToml))

export const tagWith = (...states: ReadonlyArray<StateId>): Tag => Tag.withStates(generationTag, states)

export const key = {
  project: (s: string): ProjectKey => Either.getOrThrow(ProjectKey.parse(s)),
  release: (s: string): ReleaseKey => Either.getOrThrow(ReleaseKey.parse(s)),
  generation: (n: number): GenerationKey => Either.getOrThrow(GenerationKey.parse(n))
}

export const bytes = (s: string): Uint8Array => new TextEncoder().encode(s)
export const sha256 = (b: Uint8Array): string => createHash("sha256").update(b).digest("hex")
export const unique = (prefix: string): string => `${prefix}${randomUUID().slice(0, 8)}`

export const collect = <A, E, R>(stream: Stream.Stream<A, E, R>): Effect.Effect<ReadonlyArray<A>, E, R> =>
  Effect.map(Stream.runCollect(stream), Chunk.toReadonlyArray)

export const helloworldZip = sharedPath("forml-vectors", "helloworld.4ml")

/** helloworld's sources, unpacked once per test file (removed when the process exits). */
let sources: string | undefined
const helloworldSources = Effect.suspend(() => {
  if (sources !== undefined) return Effect.succeed(sources)
  const dir = mkdtempSync(join(tmpdir(), "registry-sources-"))
  process.once("exit", () => rmSync(dir, { recursive: true, force: true }))
  const target = join(dir, "helloworld")
  return Effect.as(Package.unpack(helloworldZip, target), target).pipe(Effect.tap((t) => (sources = t)))
})

/** Packages of any name and version, built from helloworld's sources in a scoped temporary directory. */
export const packages = Effect.gen(function*() {
  const fs = yield* FileSystem.FileSystem
  const root = yield* fs.makeTempDirectoryScoped({ prefix: "registry-contract-" })
  const src = yield* helloworldSources
  let n = 0
  const manifest = (name: string, version: string) =>
    Either.getOrThrow(Manifest.make({ name, version, package: "hello.world" }))
  return {
    /** A `.4ml` zip package. */
    zip: (name: string, version: string) =>
      Package.create(src, manifest(name, version), join(root, `package-${n++}.4ml`)),
    /** A package directory (zipped by the registry when pushed). */
    directory: (name: string, version: string) =>
      Effect.gen(function*() {
        const dir = join(root, `directory-${n++}`)
        yield* fs.copy(src, dir)
        yield* fs.writeFileString(join(dir, Manifest.FILENAME), Manifest.write(manifest(name, version)))
        return yield* Package.open(dir)
      })
  }
})

export const registry = (options: MlflowRegistryOptions = {}) => MlflowRegistry.make(options)

/** The runs of an experiment by name (every lifecycle stage), straight from MLflow. */
export const runsOf = (experiment: string) =>
  Effect.gen(function*() {
    const mlflow = yield* Mlflow
    const e = yield* mlflow.getExperimentByName(experiment)
    return yield* collect(mlflow.searchRuns({ experimentIds: [e.experimentId], viewType: "ALL" }))
  })

export const experimentNames = Effect.flatMap(
  Mlflow,
  (mlflow) => Effect.map(collect(mlflow.searchExperiments({ viewType: "ALL" })), (es) => es.map((e) => e.name))
)

/**
 * The experiments whose name holds `part` (a test's unique name): what a test created, even on a server that other
 * suites use at the same time.
 */
export const experimentsNaming = (part: string) =>
  Effect.map(experimentNames, (names) => names.filter((name) => name.includes(part)))

const tagOf = (run: Run, k: string): string | undefined => Option.getOrUndefined(run.tag(k))

/** A fresh repoid, a registry instance on it, and a project (named after `name`) with release 1 pushed. */
export const pushed = (name: string) =>
  Effect.gen(function*() {
    const repoid = unique("r")
    const reg = yield* registry({ repoid })
    const pkgs = yield* packages
    const project = key.project(unique(name))
    const release = key.release("1")
    yield* reg.push(yield* pkgs.zip(project, "1"))
    return { repoid, reg, pkgs, project, release }
  })

/**
 * A fresh repoid and project whose experiment holds one release run of version 1 tagged `tags` (what a push that
 * stopped half-way leaves), and a registry instance on it.
 */
const leftBehind = (
  name: string,
  tags: (repoid: string, version: string) => ReadonlyArray<Layout.TagPair>
) =>
  Effect.gen(function*() {
    const mlflow = yield* Mlflow
    const repoid = unique("r")
    const project = key.project(unique(name))
    const experimentId = yield* mlflow.createExperiment(`${project}@${repoid}`)
    const run = yield* mlflow.createRun({ experimentId, tags: tags(repoid, "1") })
    const reg = yield* registry({ repoid })
    return { repoid, project, run, reg }
  })

/**
 * A generation as ForML commits it under `releaseRun`: one state (returned) and its tag.toml, no sha256 tags, the
 * commit tag set last.
 */
const formlGeneration = (repoid: string, releaseRun: Run, state: Uint8Array, generation: number) =>
  Effect.gen(function*() {
    const mlflow = yield* Mlflow
    const run = yield* mlflow.createRun({
      experimentId: releaseRun.info.experimentId,
      tags: Layout.generationTags(repoid, releaseRun.runId, randomUUID())
    })
    const sid = StateId.random()
    yield* mlflow.uploadArtifact(run.info, `${sid}.bin`, state)
    yield* mlflow.uploadArtifact(run.info, "tag.toml", Tag.encodeBytes(tagWith(sid)))
    yield* mlflow.setTag(run.runId, Layout.TAG.commit, String(generation))
    return sid
  })

/** Trains one generation of a pushed release with the given states and closes it; returns the number used. */
export const train = (
  reg: Registry.Service,
  project: ProjectKey,
  release: ReleaseKey,
  states: ReadonlyArray<readonly [StateId, Uint8Array]>,
  generation: number
) =>
  Effect.gen(function*() {
    for (const [sid, data] of states) yield* reg.write(project, release, sid, data)
    return yield* reg.close(project, release, key.generation(generation), tagWith(...states.map(([sid]) => sid)))
  })

// ---------------------------------------------------------------------------------------------------------------
// The suite
// ---------------------------------------------------------------------------------------------------------------

export const registryContract = <E>(
  name: string,
  mlflow: () => Layer.Layer<Mlflow, E>,
  options: RegistryContractOptions = {}
) => {
  const timeout = options.timeout ?? 30_000
  const defaults = options.registry ?? {}
  // every registry of the contract: the module's `registry` with this contract's options
  const registry = (given: MlflowRegistryOptions = {}) => MlflowRegistry.make({ ...defaults, ...given })
  const test = <A, E2>(title: string, body: () => Effect.Effect<A, E2, Env>) =>
    it.skipIf(options.skip?.includes(title) === true)(
      title,
      () =>
        Effect.runPromise(
          body().pipe(Effect.asVoid, Effect.scoped, Effect.provide(Layer.merge(mlflow(), NodeContext.layer)))
        ),
      timeout
    )

  describe(`Registry contract: ${name}`, () => {
    test("push, list, pull and mount a release; the wire layout is ForML's", () =>
      Effect.gen(function*() {
        const repoid = unique("r")
        const reg = yield* registry({ repoid })
        const pkgs = yield* packages
        const project = key.project(unique("helloworld"))
        const pkg = yield* pkgs.zip(project, "1")
        yield* reg.push(pkg)
        expect(yield* collect(reg.projects)).toEqual([project])
        expect((yield* collect(reg.releases(project))).map(String)).toEqual(["1"])
        expect(yield* collect(reg.generations(project, key.release("1")))).toEqual([])

        const runs = yield* runsOf(`${project}@${repoid}`)
        expect(runs).toHaveLength(1)
        const run = runs[0]!
        expect(tagOf(run, "forml.repoid")).toBe(repoid)
        expect(tagOf(run, "forml.level")).toBe("release")
        expect(tagOf(run, "mlflow.source.git.commit")).toBe("1")
        const uploaded = new Uint8Array(yield* downloadBytes(run.info, "package.4ml"))
        expect(uploaded).toEqual(new Uint8Array(readFileSync(pkg.path)))
        expect(tagOf(run, "forml.sha256.package.4ml")).toBe(sha256(uploaded))

        const pulled = yield* reg.pull(project, key.release("1"))
        expect(pulled.manifest.name).toBe(project)
        expect(pulled.manifest.version.toString()).toBe("1")
        expect(new Uint8Array(readFileSync(pulled.path))).toEqual(uploaded)
        const mounted = yield* reg.mount(project, key.release("1"))
        expect(existsSync(join(mounted, "__4ml__.py"))).toBe(true)
        expect(existsSync(join(mounted, "hello", "world", "pipeline.py"))).toBe(true)
      }))

    test("a directory package is zipped and pushed", () =>
      Effect.gen(function*() {
        const reg = yield* registry({ repoid: unique("r") })
        const pkgs = yield* packages
        const project = key.project(unique("dirpkg"))
        yield* reg.push(yield* pkgs.directory(project, "0.1"))
        const pulled = yield* reg.pull(project, key.release("0.1"))
        expect(pulled.kind).toBe("zip")
        expect(pulled.manifest.name).toBe(project)
      }))

    test("write, close, open and read a generation; sha256 tags and FINISHED on the committed run", () =>
      Effect.gen(function*() {
        const { repoid, reg, project, release } = yield* pushed("gen")
        const s1 = StateId.random()
        const s2 = StateId.random()
        const used = yield* train(reg, project, release, [[s1, bytes("one")], [s2, bytes("two")]], 1)
        expect(used).toBe(1)
        expect(yield* collect(reg.generations(project, release))).toEqual([1])
        const tag = yield* reg.open(project, release, key.generation(1))
        expect(Tag.equals(tag, tagWith(s1, s2))).toBe(true)
        expect(yield* reg.read(project, release, key.generation(1), s1)).toEqual(bytes("one"))
        const streamed = yield* collect(reg.readStream(project, release, key.generation(1), s2))
        expect(Buffer.concat(streamed).toString("utf8")).toBe("two")

        const runs = yield* runsOf(`${project}@${repoid}`)
        const generation = runs.find((r) => tagOf(r, "forml.level") === "generation")!
        const releaseRun = runs.find((r) => tagOf(r, "forml.level") === "release")!
        expect(tagOf(generation, "mlflow.parentRunId")).toBe(releaseRun.runId)
        expect(tagOf(generation, "mlflow.source.git.commit")).toBe("1")
        expect(tagOf(generation, "forml.session")).toMatch(/^[0-9a-f-]{36}$/)
        expect(tagOf(generation, `forml.sha256.${s1}.bin`)).toBe(sha256(bytes("one")))
        expect(tagOf(generation, `forml.sha256.${s2}.bin`)).toBe(sha256(bytes("two")))
        expect(tagOf(generation, "forml.sha256.tag.toml")).toBe(sha256(Tag.encodeBytes(tagWith(s1, s2))))
        expect(generation.info.status).toBe("FINISHED")
        expect(generation.info.endTime).toBeDefined()
        expect(new TextDecoder().decode(yield* downloadBytes(generation.info, "tag.toml")))
          .toBe(Tag.encode(tagWith(s1, s2)))
      }))

    test("(1) project names with - and . work; foreign experiments are skipped in listings", () =>
      Effect.gen(function*() {
        const mlflow = yield* Mlflow
        const repoid = unique("r")
        const pkgs = yield* packages
        const dashed = key.project(unique("hello-world-"))
        const dotted = key.project(unique("hello.world."))
        const other = key.project(unique("other"))
        // foreign experiments: a valid-looking name without releases, another repository, a name that is no project
        yield* mlflow.createExperiment(unique("my-exp-"))
        yield* mlflow.createExperiment(`${unique("my-exp-")}@${repoid}`)
        yield* mlflow.createExperiment(`${unique("x")}@${unique("other")}`)
        yield* mlflow.createExperiment(`${unique("not a project ")}@${repoid}`)
        yield* mlflow.createExperiment(`${unique("p")}@`)
        const reg = yield* registry({ repoid })
        yield* reg.push(yield* pkgs.zip(dashed, "1"))
        yield* reg.push(yield* pkgs.zip(dotted, "2.0"))
        const elsewhere = yield* registry({ repoid: unique("r") })
        yield* elsewhere.push(yield* pkgs.zip(other, "1"))
        expect([...(yield* collect(reg.projects))].sort()).toEqual([dashed, dotted].sort())
        expect(yield* collect(elsewhere.projects)).toEqual([other])
        expect((yield* collect(reg.releases(dashed))).map(String)).toEqual(["1"])
        expect((yield* collect(reg.releases(dotted))).map(String)).toEqual(["2.0"])

        // the plain namespace: Default and `my-exp` are experiments, not projects
        const plain = yield* registry()
        const plainProject = key.project(unique("plain-"))
        yield* plain.push(yield* pkgs.zip(plainProject, "1"))
        const listed = yield* collect(plain.projects)
        expect(listed).toContain(plainProject)
        expect(listed).not.toContain("Default")
        expect(listed.some((p) => p.startsWith("my-exp-"))).toBe(false)
        expect(listed).not.toContain(dashed)
      }))

    test("(2) a repoid with a quote works; a value with both quote kinds is InvalidInput before anything is created", () =>
      Effect.gen(function*() {
        const pkgs = yield* packages
        const quoted = `${unique("it's")}`
        const reg = yield* registry({ repoid: quoted })
        const project = key.project(unique("quoted"))
        const sid = StateId.random()
        // an MLflow server on a file store cannot create an experiment whose name holds ' (its own name check builds
        // an unescaped filter): there the push is a one-line InvalidInput, nothing is created, and look-ups of such a
        // name still answer (through a search that quotes it)
        const mlflow = yield* Mlflow
        const probe = yield* Effect.either(mlflow.createExperiment(unique("probe'")))
        if (Either.isLeft(probe) && probe.left._tag === "InvalidInput") {
          expect(probe.left.message).toContain("cannot create an experiment whose name holds '")
          const refused = yield* Effect.flip(reg.push(yield* pkgs.zip(project, "1")))
          expect(refused._tag).toBe("InvalidInput")
          expect(yield* experimentsNaming(project)).toEqual([])
          expect((yield* Effect.flip(reg.pull(project, key.release("1"))))._tag).toBe("NotFound")
          expect(yield* collect(reg.projects)).toEqual([])
        } else {
          yield* reg.push(yield* pkgs.zip(project, "1"))
          expect(yield* train(reg, project, key.release("1"), [[sid, bytes("q")]], 1)).toBe(1)
          expect(yield* collect(reg.projects)).toEqual([project])
          expect(yield* reg.read(project, key.release("1"), key.generation(1), sid)).toEqual(bytes("q"))
          // a fresh instance finds the project by its name
          expect(yield* collect((yield* registry({ repoid: quoted })).releases(project))).toEqual([key.release("1")])
        }

        const bad = yield* registry({ repoid: `a'b"c${unique("")}` })
        const badProject = key.project(unique("bad"))
        const pkg = yield* pkgs.zip(badProject, "1")
        const failures = [
          yield* Effect.flip(bad.push(pkg)),
          yield* Effect.flip(collect(bad.projects)),
          yield* Effect.flip(collect(bad.releases(badProject))),
          yield* Effect.flip(bad.write(badProject, key.release("1"), sid, bytes("x"))),
          yield* Effect.flip(bad.close(badProject, key.release("1"), key.generation(1), tagWith())),
          yield* Effect.flip(bad.open(badProject, key.release("1"), key.generation(1))),
          yield* Effect.flip(bad.read(badProject, key.release("1"), key.generation(1), sid)),
          yield* Effect.flip(bad.pull(badProject, key.release("1")))
        ]
        for (const failure of failures) expect(failure._tag).toBe("InvalidInput")
        expect(yield* experimentsNaming(badProject)).toEqual([])

        const badSession = yield* registry({ repoid: unique("r"), session: `x'"y` })
        expect((yield* Effect.flip(badSession.push(pkg)))._tag).toBe("InvalidInput")
      }))

    test("(3) a state absent from a committed generation is NotFound; a generation without tag.toml is Empty", () =>
      Effect.gen(function*() {
        const mlflow = yield* Mlflow
        const { repoid, reg, project, release } = yield* pushed("absent")
        const sid = StateId.random()
        yield* train(reg, project, release, [[sid, bytes("s")]], 1)
        const absent = yield* Effect.flip(reg.read(project, release, key.generation(1), StateId.random()))
        expect(absent._tag).toBe("NotFound")
        expect((yield* Effect.flip(reg.read(project, release, key.generation(2), sid)))._tag).toBe("NotFound")
        expect((yield* Effect.flip(reg.open(project, release, key.generation(2))))._tag).toBe("NotFound")

        // a committed generation run written without tag.toml (as ForML leaves it after a failed upload)
        const releaseRun = (yield* runsOf(`${project}@${repoid}`)).find((r) => tagOf(r, "forml.level") === "release")!
        yield* mlflow.createRun({
          experimentId: releaseRun.info.experimentId,
          tags: [...Layout.generationTags(repoid, releaseRun.runId, randomUUID()), {
            key: Layout.TAG.commit,
            value: "2"
          }]
        })
        expect(yield* collect(reg.generations(project, release))).toEqual([1, 2])
        const empty = yield* Effect.flip(reg.open(project, release, key.generation(2)))
        expect(empty._tag).toBe("Empty")
      }))

    test("(4) one fresh training run per close: two trainings in one instance give generations 1 and 2, intact", () =>
      Effect.gen(function*() {
        const { repoid, reg, project, release } = yield* pushed("twice")
        const [a, b, c, d] = [StateId.random(), StateId.random(), StateId.random(), StateId.random()]
        expect(yield* train(reg, project, release, [[a, bytes("a")], [b, bytes("b")]], 1)).toBe(1)
        expect(yield* train(reg, project, release, [[c, bytes("c")], [d, bytes("d")]], 2)).toBe(2)
        expect(yield* collect(reg.generations(project, release))).toEqual([1, 2])
        expect(Tag.equals(yield* reg.open(project, release, key.generation(1)), tagWith(a, b))).toBe(true)
        expect(Tag.equals(yield* reg.open(project, release, key.generation(2)), tagWith(c, d))).toBe(true)
        expect(yield* reg.read(project, release, key.generation(1), a)).toEqual(bytes("a"))
        expect(yield* reg.read(project, release, key.generation(2), d)).toEqual(bytes("d"))
        // generation 1 holds only its own states
        expect((yield* Effect.flip(reg.read(project, release, key.generation(1), c)))._tag).toBe("NotFound")
        const generations = (yield* runsOf(`${project}@${repoid}`)).filter((r) =>
          tagOf(r, "forml.level") === "generation"
        )
        expect(generations).toHaveLength(2)
        // a close with a number already taken moves to the next free one
        const e = StateId.random()
        expect(yield* train(reg, project, release, [[e, bytes("e")]], 1)).toBe(3)
        expect(yield* reg.read(project, release, key.generation(1), a)).toEqual(bytes("a"))
        expect(yield* reg.read(project, release, key.generation(3), e)).toEqual(bytes("e"))
      }))

    test("(5) close checks every state of the tag was written to this training; nothing is committed otherwise", () =>
      Effect.gen(function*() {
        const repoid = unique("r")
        const reg = yield* registry({ repoid })
        const other = yield* registry({ repoid })
        const pkgs = yield* packages
        const project = key.project(unique("check"))
        const release = key.release("1")
        yield* reg.push(yield* pkgs.zip(project, "1"))
        const written = StateId.random()
        const foreign = StateId.random()
        yield* reg.write(project, release, written, bytes("w"))
        yield* other.write(project, release, foreign, bytes("f"))
        // a state never written, then a state written by another instance (ForML would commit both)
        const missing = yield* Effect.flip(
          reg.close(project, release, key.generation(1), tagWith(written, StateId.random()))
        )
        expect(missing._tag).toBe("NotFound")
        const elsewhere = yield* Effect.flip(reg.close(project, release, key.generation(1), tagWith(written, foreign)))
        expect(elsewhere._tag).toBe("NotFound")
        // a cold instance has no training: closing states there is NotFound too
        const cold = yield* registry({ repoid })
        expect((yield* Effect.flip(cold.close(project, release, key.generation(1), tagWith(written))))._tag)
          .toBe("NotFound")
        // a tag ForML could not open (no training timestamp)
        const untrained = Tag.withStates(Tag.empty, [written])
        expect((yield* Effect.flip(reg.close(project, release, key.generation(1), untrained)))._tag).toBe(
          "InvalidInput"
        )
        expect(yield* collect(reg.generations(project, release))).toEqual([])
        const runs = yield* runsOf(`${project}@${repoid}`)
        expect(
          runs.some((r) =>
            tagOf(r, "mlflow.source.git.commit") !== undefined && tagOf(r, "forml.level") === "generation"
          )
        )
          .toBe(false)
        // the training goes on and closes fine
        expect(yield* reg.close(project, release, key.generation(1), tagWith(written))).toBe(1)
        expect(yield* reg.read(project, release, key.generation(1), written)).toEqual(bytes("w"))
      }))

    test("(5b) a tag without states closes on a cold instance; a given session resumes an earlier training", () =>
      Effect.gen(function*() {
        const repoid = unique("r")
        const pkgs = yield* packages
        const project = key.project(unique("resume"))
        const release = key.release("1")
        const first = yield* registry({ repoid })
        yield* first.push(yield* pkgs.zip(project, "1"))
        expect(yield* (yield* registry({ repoid })).close(project, release, key.generation(1), tagWith())).toBe(1)
        const session = randomUUID()
        const writer = yield* registry({ repoid, session })
        const sid = StateId.random()
        yield* writer.write(project, release, sid, bytes("resumed"))
        const closer = yield* registry({ repoid, session })
        expect(yield* closer.close(project, release, key.generation(2), tagWith(sid))).toBe(2)
        expect(yield* first.read(project, release, key.generation(2), sid)).toEqual(bytes("resumed"))
      }))

    test("(6) write to a release never pushed is NotFound and creates nothing", () =>
      Effect.gen(function*() {
        const repoid = unique("r")
        const reg = yield* registry({ repoid })
        const pkgs = yield* packages
        const ghost = key.project(unique("ghost"))
        const e1 = yield* Effect.flip(reg.write(ghost, key.release("1"), StateId.random(), bytes("x")))
        expect(e1._tag).toBe("NotFound")
        expect(yield* experimentsNaming(ghost)).toEqual([])
        const project = key.project(unique("real"))
        yield* reg.push(yield* pkgs.zip(project, "1"))
        const e2 = yield* Effect.flip(reg.write(project, key.release("2"), StateId.random(), bytes("x")))
        expect(e2._tag).toBe("NotFound")
        expect(yield* runsOf(`${project}@${repoid}`)).toHaveLength(1)
        expect((yield* Effect.flip(reg.pull(ghost, key.release("1"))))._tag).toBe("NotFound")
        expect((yield* Effect.flip(collect(reg.releases(ghost))))._tag).toBe("NotFound")
        expect((yield* Effect.flip(collect(reg.generations(project, key.release("2")))))._tag).toBe("NotFound")
        expect(yield* collect(reg.projects)).toEqual([project])
      }))

    test("(7) every operation works on a cold instance", () =>
      Effect.gen(function*() {
        const repoid = unique("r")
        const pkgs = yield* packages
        const project = key.project(unique("cold"))
        const release = key.release("1.2")
        const sid = StateId.random()
        yield* Effect.scoped(Effect.gen(function*() {
          const warm = yield* registry({ repoid })
          yield* warm.push(yield* pkgs.zip(project, "1.2"))
          yield* train(warm, project, release, [[sid, bytes("cold")]], 1)
        }))
        const fresh = () => registry({ repoid })
        expect(yield* (yield* fresh()).read(project, release, key.generation(1), sid)).toEqual(bytes("cold"))
        expect(Tag.equals(yield* (yield* fresh()).open(project, release, key.generation(1)), tagWith(sid))).toBe(true)
        expect(yield* collect((yield* fresh()).generations(project, release))).toEqual([1])
        expect((yield* collect((yield* fresh()).releases(project))).map(String)).toEqual(["1.2"])
        expect((yield* (yield* fresh()).pull(project, release)).manifest.name).toBe(project)
        const writer = yield* fresh()
        const sid2 = StateId.random()
        yield* writer.write(project, release, sid2, bytes("two"))
        expect(yield* writer.close(project, release, key.generation(2), tagWith(sid2))).toBe(2)
      }))

    test("(8) release 1.0 and 1.0.0 are one key (PEP 440 equality)", () =>
      Effect.gen(function*() {
        const repoid = unique("r")
        const reg = yield* registry({ repoid })
        const pkgs = yield* packages
        const project = key.project(unique("pep"))
        yield* reg.push(yield* pkgs.zip(project, "1.0"))
        const sid = StateId.random()
        const other = yield* registry({ repoid })
        yield* other.write(project, key.release("1.0.0"), sid, bytes("v"))
        expect(yield* other.close(project, key.release("1.0.0"), key.generation(1), tagWith(sid))).toBe(1)
        expect(yield* reg.read(project, key.release("v1.0"), key.generation(1), sid)).toEqual(bytes("v"))
        expect((yield* (yield* registry({ repoid })).pull(project, key.release("1.0.0"))).manifest.version.toString())
          .toBe("1.0")
        // pushing 1.0.0 lands on the release run of 1.0
        yield* other.push(yield* pkgs.zip(project, "1.0.0"))
        const releases = (yield* runsOf(`${project}@${repoid}`)).filter((r) => tagOf(r, "forml.level") === "release")
        expect(releases).toHaveLength(1)
        expect(tagOf(releases[0]!, "mlflow.source.git.commit")).toBe("1.0")
        expect((yield* collect(reg.releases(project))).map(String)).toEqual(["1.0"])
      }))

    test("(9) pulled packages live in the staging directory; the default one goes with the layer", () =>
      Effect.gen(function*() {
        const fs = yield* FileSystem.FileSystem
        const repoid = unique("r")
        const pkgs = yield* packages
        const project = key.project(unique("staging"))
        const staging = yield* fs.makeTempDirectoryScoped({ prefix: "registry-staging-" })
        const given = yield* registry({ repoid, staging })
        yield* given.push(yield* pkgs.zip(project, "1"))
        const pulled = yield* given.pull(project, key.release("1"))
        expect(pulled.path.startsWith(staging)).toBe(true)
        const mounted = yield* given.mount(project, key.release("1"))
        expect(mounted.startsWith(staging)).toBe(true)

        const defaultPath = yield* Effect.scoped(Effect.gen(function*() {
          const reg = yield* registry({ repoid })
          const pkg = yield* reg.pull(project, key.release("1"))
          expect(existsSync(pkg.path)).toBe(true)
          return pkg.path
        }))
        expect(existsSync(defaultPath)).toBe(false)
      }))

    test("(10) listings walk every page", () =>
      Effect.gen(function*() {
        const mlflow = yield* Mlflow
        const { repoid, project, release } = yield* pushed("pages")
        const releaseRun = (yield* runsOf(`${project}@${repoid}`))[0]!
        // more committed generations than one page of the smallest page size any layer uses here is not practical
        // over HTTP, so 25 runs, listed by a second instance (the layers' own paging is in their contract)
        yield* Effect.forEach(Array.from({ length: 25 }, (_, i) => i + 1), (n) =>
          mlflow.createRun({
            experimentId: releaseRun.info.experimentId,
            tags: [...Layout.generationTags(repoid, releaseRun.runId, randomUUID()), {
              key: Layout.TAG.commit,
              value: String(n)
            }]
          }), { concurrency: 5, discard: true })
        const listed = yield* collect((yield* registry({ repoid })).generations(project, release))
        expect(listed).toEqual(Array.from({ length: 25 }, (_, i) => i + 1))
      }))

    test("integrity: a tampered artifact fails with IntegrityError; artifacts without a sha256 tag read fine", () =>
      Effect.gen(function*() {
        const mlflow = yield* Mlflow
        const { repoid, reg, project, release } = yield* pushed("tamper")
        const sid = StateId.random()
        yield* train(reg, project, release, [[sid, bytes("genuine")]], 1)
        const runs = yield* runsOf(`${project}@${repoid}`)
        const generation = runs.find((r) => tagOf(r, "forml.level") === "generation")!
        const releaseRun = runs.find((r) => tagOf(r, "forml.level") === "release")!
        yield* mlflow.uploadArtifact(generation.info, `${sid}.bin`, bytes("forged!"))
        yield* mlflow.uploadArtifact(generation.info, "tag.toml", Tag.encodeBytes(tagWith(StateId.random())))
        yield* mlflow.uploadArtifact(releaseRun.info, "package.4ml", new Uint8Array(readFileSync(helloworldZip)))
        const fresh = yield* registry({ repoid })
        const read = yield* Effect.flip(fresh.read(project, release, key.generation(1), sid))
        expect(read._tag).toBe("IntegrityError")
        expect((yield* Effect.flip(fresh.open(project, release, key.generation(1))))._tag).toBe("IntegrityError")
        expect((yield* Effect.flip(fresh.pull(project, release)))._tag).toBe("IntegrityError")

        // a generation as ForML writes it: no sha256 tags
        const formlSid = yield* formlGeneration(repoid, releaseRun, bytes("pickled"), 2)
        expect(yield* fresh.read(project, release, key.generation(2), formlSid)).toEqual(bytes("pickled"))
        expect(Tag.equals(yield* fresh.open(project, release, key.generation(2)), tagWith(formlSid))).toBe(true)
      }))

    test("streamed states: write from a stream, read as a stream", () =>
      Effect.gen(function*() {
        const reg = yield* registry({ repoid: unique("r") })
        const pkgs = yield* packages
        const project = key.project(unique("stream"))
        const release = key.release("1")
        yield* reg.push(yield* pkgs.zip(project, "1"))
        const chunk = new Uint8Array(256 * 1024).map((_, i) => i % 251)
        const sid = StateId.random()
        yield* reg.write(project, release, sid, Stream.make(chunk, chunk, chunk, chunk))
        yield* reg.close(project, release, key.generation(1), tagWith(sid))
        const back = yield* reg.read(project, release, key.generation(1), sid)
        expect(back.length).toBe(4 * chunk.length)
        expect(sha256(back)).toBe(sha256(new Uint8Array([...chunk, ...chunk, ...chunk, ...chunk])))
        const streamed = yield* Stream.runFold(
          reg.readStream(project, release, key.generation(1), sid),
          0,
          (n, c) => n + c.length
        )
        expect(streamed).toBe(4 * chunk.length)
      }))

    test("deleted experiments and release runs are restored by push", () =>
      Effect.gen(function*() {
        const mlflow = yield* Mlflow
        const repoid = unique("r")
        const pkgs = yield* packages
        const project = key.project(unique("restore"))
        yield* (yield* registry({ repoid })).push(yield* pkgs.zip(project, "1"))
        const experiment = yield* mlflow.getExperimentByName(`${project}@${repoid}`)
        const [run] = yield* runsOf(`${project}@${repoid}`)
        yield* mlflow.deleteRun(run!.runId)
        yield* mlflow.deleteExperiment(experiment.experimentId)
        const reg = yield* registry({ repoid })
        expect(yield* collect(reg.projects)).toEqual([])
        expect((yield* Effect.flip(reg.pull(project, key.release("1"))))._tag).toBe("NotFound")
        yield* reg.push(yield* pkgs.zip(project, "1"))
        const runs = yield* runsOf(`${project}@${repoid}`)
        expect(runs).toHaveLength(1)
        expect(runs[0]!.runId).toBe(run!.runId)
        expect(runs[0]!.info.lifecycleStage).toBe("active")
        expect(yield* collect(reg.projects)).toEqual([project])
      }))

    test("a release run left without its package is listed, pulls as NotFound, and the next push repairs it", () =>
      Effect.gen(function*() {
        // what ForML leaves when its upload fails: the experiment and the release run, no package.4ml
        const { repoid, project, run: broken, reg } = yield* leftBehind("broken", Layout.releaseTags)
        const pkgs = yield* packages
        expect(yield* collect(reg.projects)).toEqual([project])
        expect((yield* collect(reg.releases(project))).map(String)).toEqual(["1"])
        const missing = yield* Effect.flip(reg.pull(project, key.release("1")))
        expect(missing._tag).toBe("NotFound")
        yield* reg.push(yield* pkgs.zip(project, "1"))
        const runs = yield* runsOf(`${project}@${repoid}`)
        expect(runs.map((r) => r.runId)).toEqual([broken.runId])
        expect((yield* reg.pull(project, key.release("1"))).manifest.name).toBe(project)
      }))

    test("a push that did not finish (no package yet) is not listed and reads as NotFound until a push repairs it", () =>
      Effect.gen(function*() {
        // what a push leaves when it fails between creating the release run and setting the package's sha256
        const { repoid, project, run: unfinished, reg } = yield* leftBehind("unfinished", Layout.newReleaseTags)
        const pkgs = yield* packages
        expect(yield* collect(reg.projects)).toEqual([])
        expect(yield* collect(reg.releases(project))).toEqual([])
        expect((yield* Effect.flip(reg.pull(project, key.release("1"))))._tag).toBe("NotFound")
        expect((yield* Effect.flip(reg.write(project, key.release("1"), StateId.random(), bytes("x"))))._tag)
          .toBe("NotFound")
        yield* reg.push(yield* pkgs.zip(project, "1"))
        expect((yield* runsOf(`${project}@${repoid}`)).map((r) => r.runId)).toEqual([unfinished.runId])
        expect(yield* collect(reg.projects)).toEqual([project])
        expect((yield* collect(reg.releases(project))).map(String)).toEqual(["1"])
        expect((yield* reg.pull(project, key.release("1"))).manifest.name).toBe(project)
      }))

    test("a package whose name is not a project key is InvalidInput and creates nothing", () =>
      Effect.gen(function*() {
        const reg = yield* registry({ repoid: unique("r") })
        const pkgs = yield* packages
        const bad = unique("bad")
        const failure = yield* Effect.flip(reg.push(yield* pkgs.zip(`${bad} name`, "1")))
        expect(failure._tag).toBe("InvalidInput")
        // (only names of this test: other suites may create experiments on a shared server meanwhile)
        expect(yield* experimentsNaming(bad)).toEqual([])
      }))

    test("a generation number held by a ForML run is never shadowed: close moves to the next free number", () =>
      Effect.gen(function*() {
        const { repoid, reg, project, release } = yield* pushed("forml")
        const sid = StateId.random()
        yield* reg.write(project, release, sid, bytes("ours"))
        // ForML commits generation 1 meanwhile (it never checks)
        const releaseRun = (yield* runsOf(`${project}@${repoid}`)).find((r) => tagOf(r, "forml.level") === "release")!
        const formlSid = yield* formlGeneration(repoid, releaseRun, bytes("theirs"), 1)
        expect(yield* reg.close(project, release, key.generation(1), tagWith(sid))).toBe(2)
        const fresh = yield* registry({ repoid })
        expect(yield* fresh.read(project, release, key.generation(1), formlSid)).toEqual(bytes("theirs"))
        expect(yield* fresh.read(project, release, key.generation(2), sid)).toEqual(bytes("ours"))
        expect(yield* collect(fresh.generations(project, release))).toEqual([1, 2])
      }))

    test("filters go through Filter: the release search is by tag, never by an interpolated string", () =>
      Effect.sync(() => {
        expect(Either.getOrThrow(Filter.render(Layout.releaseRuns("it's")))).toBe(
          "tags.`forml.repoid` = \"it's\" AND tags.`forml.level` = 'release'"
        )
        expect(Either.isLeft(Filter.render(Layout.releaseRuns(`a'b"c`)))).toBe(true)
      }))
  })
}
