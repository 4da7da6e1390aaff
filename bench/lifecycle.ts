/**
 * The headline scenario: one registry lifecycle through the public library API (push; G times write N states and close
 * the next generation; list projects, releases and generations; open every tag; read every state and check it), and
 * its floor: the same work as the fewest plain fetch requests that do it in ForML's layout.
 */
import * as NodeContext from "@effect/platform-node/NodeContext"
import { Chunk, Effect, Either, Option, Stream } from "effect"
import { randomUUID } from "node:crypto"
import { readFile } from "node:fs/promises"
import { performance } from "node:perf_hooks"
import { GenerationKey } from "../src/asset/GenerationKey.js"
import { Package } from "../src/asset/Package.js"
import { ProjectKey } from "../src/asset/ProjectKey.js"
import { ReleaseKey } from "../src/asset/ReleaseKey.js"
import { StateId } from "../src/asset/StateId.js"
import { Tag, Timestamp } from "../src/asset/Tag.js"
import * as Filter from "../src/mlflow/Filter.js"
import * as Layout from "../src/registry/layout.js"
import { MlflowRegistry } from "../src/registry/MlflowRegistry.js"
import { pool, tagOf } from "./bare.js"
import type { BareRun } from "./bare.js"
import { sameBytes, sha256 } from "./fixtures.js"
import type { Counter } from "./stats.js"
import type { Target } from "./target.js"

export const PHASES = ["push", "train", "list", "open", "read"] as const
export type Phase = (typeof PHASES)[number]

export interface LifecycleOptions {
  readonly states: number
  readonly stateSize: number
  readonly generations: number
  /** Requests in flight within a phase (writes, opens, reads); 1 is sequential. */
  readonly concurrency: number
  /** The registry's `writers` option (the floor is the same either way). */
  readonly writers: "many" | "one"
}

export interface LifecycleRun {
  readonly ms: number
  readonly requests: number
  readonly phaseMs: Readonly<Record<Phase, number>>
  readonly phaseRequests: Readonly<Record<Phase, number>>
}

/** The inputs of one lifecycle: a package zip for a fresh project, and the state payloads per generation. */
export interface LifecycleInput {
  readonly project: string
  readonly zip: string
  readonly payloads: ReadonlyArray<ReadonlyArray<Uint8Array>>
}

const VERSION = "1.0"

class Phases {
  readonly ms: Record<Phase, number> = { push: 0, train: 0, list: 0, open: 0, read: 0 }
  readonly requests: Record<Phase, number> = { push: 0, train: 0, list: 0, open: 0, read: 0 }
  #phase: Phase | undefined
  #t0 = 0
  #r0 = 0
  constructor(readonly counter: Counter) {}
  begin(phase: Phase): void {
    this.#phase = phase
    this.#t0 = performance.now()
    this.#r0 = this.counter.requests
  }
  end(): void {
    const phase = this.#phase!
    this.ms[phase] += performance.now() - this.#t0
    this.requests[phase] += this.counter.requests - this.#r0
  }
  result(): LifecycleRun {
    return {
      ms: PHASES.reduce((s, p) => s + this.ms[p], 0),
      requests: PHASES.reduce((s, p) => s + this.requests[p], 0),
      phaseMs: { ...this.ms },
      phaseRequests: { ...this.requests }
    }
  }
}

const fail = (what: string): never => {
  throw new Error(`lifecycle check failed: ${what}`)
}

// ---------------------------------------------------------------------------------------------------------------
// Through the library
// ---------------------------------------------------------------------------------------------------------------

/** One lifecycle on a fresh registry instance (a cold start, as a new process would have). */
export const library = (target: Target, input: LifecycleInput, options: LifecycleOptions): Promise<LifecycleRun> => {
  const phases = new Phases(target.library)
  const concurrency = options.concurrency
  const timed = <A, E, R>(phase: Phase, effect: Effect.Effect<A, E, R>) =>
    Effect.acquireUseRelease(
      Effect.sync(() => phases.begin(phase)),
      () => effect,
      () => Effect.sync(() => phases.end())
    )
  const program = Effect.gen(function*() {
    const reg = yield* MlflowRegistry.make({ writers: options.writers })
    const project = yield* ProjectKey.parse(input.project)
    const release = yield* ReleaseKey.parse(VERSION)
    yield* timed("push", Effect.flatMap(Package.open(input.zip), reg.push))
    const written: Array<ReadonlyArray<readonly [StateId, Uint8Array]>> = []
    yield* timed(
      "train",
      Effect.forEach(input.payloads, (payloads, g) =>
        Effect.gen(function*() {
          const states = payloads.map((bytes) => [StateId.random(), bytes] as const)
          yield* Effect.forEach(states, ([sid, bytes]) => reg.write(project, release, sid, bytes), {
            concurrency,
            discard: true
          })
          const tag = Tag.withStates(Tag.trained(yield* Timestamp.now), states.map(([sid]) => sid))
          const generation = yield* GenerationKey.parse(g + 1)
          const used = yield* reg.close(project, release, generation, tag)
          if (used !== generation) fail(`closed as ${used}, not ${generation}`)
          written.push(states)
        }), { discard: true })
    )
    const collect = <A, E>(s: Stream.Stream<A, E>) => Effect.map(Stream.runCollect(s), Chunk.toReadonlyArray)
    const generations = yield* timed(
      "list",
      Effect.gen(function*() {
        const projects = yield* collect(reg.projects)
        if (!projects.includes(project)) fail(`project ${project} not listed`)
        const releases = yield* collect(reg.releases(project))
        if (releases.length !== 1 || releases[0]!.toString() !== VERSION) fail("release not listed")
        return yield* collect(reg.generations(project, release))
      })
    )
    if (generations.length !== options.generations) fail(`listed ${generations.length} generations`)
    const tags = yield* timed(
      "open",
      Effect.forEach(generations, (g) => Effect.map(reg.open(project, release, g), (tag) => [g, tag] as const), {
        concurrency
      })
    )
    yield* timed(
      "read",
      Effect.forEach(
        tags.flatMap(([g, tag]) => tag.states.map((sid, i) => [g, sid, written[g - 1]![i]!] as const)),
        ([g, sid, expected]) =>
          Effect.map(reg.read(project, release, g, sid), (bytes) => {
            if (!sameBytes(bytes, expected[1]) || expected[0] !== sid) fail(`state ${sid} of generation ${g}`)
          }),
        { concurrency, discard: true }
      )
    )
  })
  return target.runtime.runPromise(
    Effect.scoped(program).pipe(Effect.provide(NodeContext.layer))
  ).then(() => phases.result())
}

// ---------------------------------------------------------------------------------------------------------------
// The floor: plain fetch, only the necessary requests
// ---------------------------------------------------------------------------------------------------------------

const render = (filter: Filter.Filter): string => Either.getOrThrow(Filter.render(filter))

const storedWhole = (
  listed: ReadonlyArray<{ readonly path: string; readonly size: number }>,
  expected: ReadonlyArray<readonly [string, number]>
) => {
  const sizes = new Map(listed.map((f) => [f.path, f.size]))
  for (const [name, size] of expected) if (sizes.get(name) !== size) fail(`${name} not stored whole`)
}

/**
 * The fewest requests for the same lifecycle in the same layout, integrity guarantees included (sha256 tags ride in
 * the batch that commits; one artifact listing checks the sizes stored before a release lists or a generation commits):
 * push = create experiment, create release run, PUT package, list it, tag its sha256; each generation = create run,
 * PUT each state, list them, PUT tag.toml, one log-batch (sha256s and the commit); list = experiments/search, one
 * runs/search to tell projects from other experiments, one for the releases, one for the generations; then one GET
 * per tag and state.
 */
export const floor = async (
  target: Target,
  input: LifecycleInput,
  options: LifecycleOptions
): Promise<LifecycleRun> => {
  const bare = target.bare
  const phases = new Phases(target.floor)
  const concurrency = options.concurrency
  const repoid = ""

  phases.begin("push")
  const zip = await readFile(input.zip)
  const experimentId = await bare.createExperiment(input.project)
  const releaseRun = await bare.createRun(experimentId, Layout.releaseTags(repoid, VERSION))
  await bare.put(releaseRun.artifactUri, Layout.ARTIFACT.package, zip)
  storedWhole(await bare.listArtifacts(releaseRun.artifactUri), [[Layout.ARTIFACT.package, zip.length]])
  await bare.logTags(releaseRun.runId, [{ key: Layout.sha256Tag(Layout.ARTIFACT.package), value: sha256(zip) }])
  phases.end()

  phases.begin("train")
  const session = randomUUID()
  const written: Array<ReadonlyArray<readonly [string, Uint8Array]>> = []
  for (const [g, payloads] of input.payloads.entries()) {
    const run = await bare.createRun(experimentId, Layout.generationTags(repoid, releaseRun.runId, session))
    const states = payloads.map((bytes) => [randomUUID(), bytes] as const)
    const digests: Array<{ key: string; value: string }> = []
    await pool(states, concurrency, async ([sid, bytes]) => {
      await bare.put(run.artifactUri, Layout.ARTIFACT.state(sid), bytes)
      digests.push({ key: Layout.sha256Tag(Layout.ARTIFACT.state(sid)), value: sha256(bytes) })
    })
    storedWhole(
      await bare.listArtifacts(run.artifactUri),
      states.map(([sid, bytes]) => [Layout.ARTIFACT.state(sid), bytes.length] as const)
    )
    const tag = Tag.encodeBytes(Tag.withStates(Tag.trained(Timestamp.nowSync()), states.map(([sid]) => sid as StateId)))
    await bare.put(run.artifactUri, Layout.ARTIFACT.tag, tag)
    await bare.logTags(run.runId, [
      ...digests,
      { key: Layout.sha256Tag(Layout.ARTIFACT.tag), value: sha256(tag) },
      { key: Layout.TAG.commit, value: String(g + 1) }
    ])
    written.push(states)
  }
  phases.end()

  phases.begin("list")
  const experiments = await bare.searchExperiments()
  const candidates = experiments.filter((e) => Option.isSome(Layout.projectOf(e.name, repoid)))
  const holders = new Set<string>()
  for (let i = 0; i < candidates.length; i += 100) {
    const ids = candidates.slice(i, i + 100).map((e) => e.experimentId)
    for (const run of await bare.searchRuns(ids, render(Layout.releaseRuns(repoid)))) holders.add(run.experimentId)
  }
  if (!holders.has(experimentId)) fail("project not listed")
  const releases = await bare.searchRuns([experimentId], render(Layout.releaseRuns(repoid)))
  if (releases.length !== 1 || tagOf(releases[0]!, Layout.TAG.commit) !== VERSION) fail("release not listed")
  const runs = await bare.searchRuns([experimentId], render(Layout.generationRuns(repoid, releases[0]!.runId)))
  const byNumber = new Map<number, BareRun>()
  for (const run of runs) {
    const commit = tagOf(run, Layout.TAG.commit)
    if (commit !== undefined) byNumber.set(Number(commit), run)
  }
  const generations = [...byNumber.keys()].sort((a, b) => a - b)
  phases.end()
  if (generations.length !== options.generations) fail(`listed ${generations.length} generations`)

  phases.begin("open")
  const tags: Array<readonly [number, Tag]> = []
  await pool(generations, concurrency, async (g) => {
    const run = byNumber.get(g)!
    tags.push([g, Either.getOrThrow(Tag.decode(await bare.getBytes(run.artifactUri, Layout.ARTIFACT.tag)))])
  })
  phases.end()

  phases.begin("read")
  const reads = tags.flatMap(([g, tag]) => tag.states.map((sid, i) => [g, sid, written[g - 1]![i]!] as const))
  await pool(reads, concurrency, async ([g, sid, expected]) => {
    const run = byNumber.get(g)!
    const name = Layout.ARTIFACT.state(sid)
    const bytes = await bare.getBytes(run.artifactUri, name)
    if (sha256(bytes) !== tagOf(run, Layout.sha256Tag(name))) fail(`sha256 of ${sid}`)
    if (!sameBytes(bytes, expected[1]) || expected[0] !== sid) fail(`state ${sid} of generation ${g}`)
  })
  phases.end()
  return phases.result()
}
