/**
 * The benchmark's scenarios besides the lifecycle: artifact transfer through MlflowHttp against bare fetch, many states
 * written with bounded concurrency against sequentially, and the listing of a release with many generations.
 */
import * as NodeContext from "@effect/platform-node/NodeContext"
import { Chunk, Effect, Either, Exit, Layer, Scope, Stream } from "effect"
import { spawn } from "node:child_process"
import { randomUUID } from "node:crypto"
import { existsSync } from "node:fs"
import { mkdtemp, rm } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { Package } from "../src/asset/Package.js"
import { ProjectKey } from "../src/asset/ProjectKey.js"
import { ReleaseKey } from "../src/asset/ReleaseKey.js"
import { StateId } from "../src/asset/StateId.js"
import * as Filter from "../src/mlflow/Filter.js"
import { Mlflow } from "../src/mlflow/Mlflow.js"
import type { ArtifactRoot } from "../src/mlflow/Mlflow.js"
import * as Layout from "../src/registry/layout.js"
import { MlflowRegistry } from "../src/registry/MlflowRegistry.js"
import type { Registry } from "../src/registry/Registry.js"
import { pool, tagOf } from "./bare.js"
import { payloads, smallPackage } from "./fixtures.js"
import { compare, median, percentile, type Sample } from "./stats.js"
import type { Target } from "./target.js"

export interface Pair {
  readonly library: Sample
  readonly floor: Sample
}

const pair = ([library, floor]: ReadonlyArray<Sample>): Pair => ({ library: library!, floor: floor! })

/** A run of a fresh experiment to hold artifacts, made with the library (its requests are not measured). */
const scratchRun = (target: Target): Promise<ArtifactRoot> =>
  target.runtime.runPromise(Effect.gen(function*() {
    const mlflow = yield* Mlflow
    const experimentId = yield* mlflow.createExperiment(`bench-scratch-${randomUUID().slice(0, 8)}`)
    const run = yield* mlflow.createRun({ experimentId })
    return { runId: run.runId, artifactUri: run.info.artifactUri }
  }))

// ---------------------------------------------------------------------------------------------------------------
// Artifact transfer
// ---------------------------------------------------------------------------------------------------------------

/** Uploads and downloads `size` bytes through MlflowHttp and through bare fetch, to and from the same run. */
export const transfer = async (target: Target, size: number, runs: number, warmup: number) => {
  const root = await scratchRun(target)
  const bytes = payloads(1, size)[0]!
  const check = (n: number) => {
    if (n !== size) throw new Error(`downloaded ${n} bytes, not ${size}`)
  }
  const upload = pair(
    await compare(runs, warmup, [
      {
        counter: target.library,
        op: () => target.runtime.runPromise(Effect.flatMap(Mlflow, (m) => m.uploadArtifact(root, "library.bin", bytes)))
      },
      { counter: target.floor, op: () => target.bare.put(root.artifactUri, "bare.bin", bytes) }
    ])
  )
  const download = pair(
    await compare(runs, warmup, [
      {
        counter: target.library,
        op: () =>
          target.runtime.runPromise(
            Effect.flatMap(
              Mlflow,
              (m) => Stream.runFold(m.downloadArtifact(root, "library.bin"), 0, (n, c) => n + c.length)
            )
          ).then(check)
      },
      {
        counter: target.floor,
        op: () => target.bare.getEach(root.artifactUri, "library.bin", () => undefined).then(check)
      }
    ])
  )
  return { upload, download }
}

// ---------------------------------------------------------------------------------------------------------------
// Many states: bounded concurrency against sequential
// ---------------------------------------------------------------------------------------------------------------

/** A registry instance of the runtime, alive until `close`; `project` has release 1.0 pushed. */
const warmRegistry = async (target: Target, dir: string) => {
  const scope = Effect.runSync(Scope.make())
  const name = `bench-states-${randomUUID().slice(0, 8)}`
  const zip = await smallPackage(dir, name, "1.0")
  const context = Layer.buildWithScope(NodeContext.layer, scope)
  const reg = await target.runtime.runPromise(Effect.gen(function*() {
    const ctx = yield* context
    const reg = yield* Effect.provide(Scope.extend(MlflowRegistry.make(), scope), ctx)
    yield* Effect.provide(Effect.flatMap(Package.open(zip), reg.push), ctx)
    return reg
  }))
  return {
    reg,
    project: Either.getOrThrow(ProjectKey.parse(name)),
    release: Either.getOrThrow(ReleaseKey.parse("1.0")),
    close: () => Effect.runPromise(Scope.close(scope, Exit.void))
  }
}

/**
 * Writes `count` states of `size` bytes as one training, with `concurrency` writes in flight and one at a time, through
 * the registry and through bare fetch (PUTs into one run). Every run writes fresh state ids into the same training.
 */
export const states = async (
  target: Target,
  count: number,
  size: number,
  concurrency: number,
  runs: number,
  warmup: number
) => {
  const dir = await mkdtemp(join(tmpdir(), "forml-bench-"))
  const warm = await warmRegistry(target, dir)
  try {
    const data = payloads(count, size)
    const root = await scratchRun(target)
    const write = (reg: Registry.Service, inFlight: number) => () =>
      target.runtime.runPromise(
        Effect.forEach(data, (bytes) => reg.write(warm.project, warm.release, StateId.random(), bytes), {
          concurrency: inFlight,
          discard: true
        })
      )
    const bare = (inFlight: number) => () =>
      pool(data, inFlight, (bytes) => target.bare.put(root.artifactUri, `${randomUUID()}.bin`, bytes))
    const sequential = pair(
      await compare(runs, warmup, [
        { counter: target.library, op: write(warm.reg, 1) },
        { counter: target.floor, op: bare(1) }
      ])
    )
    const parallel = pair(
      await compare(runs, warmup, [
        { counter: target.library, op: write(warm.reg, concurrency) },
        { counter: target.floor, op: bare(concurrency) }
      ])
    )
    return { sequential, parallel }
  } finally {
    await warm.close()
    await rm(dir, { recursive: true, force: true })
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Listing many generations
// ---------------------------------------------------------------------------------------------------------------

const hex32 = (prefix: string, n: number) => `${prefix}${n.toString(16).padStart(32 - prefix.length, "0")}`

/**
 * Puts a project with one release holding `count` committed generations on the server: straight into the emulator's
 * store, or (a real server) with runs/create calls, 16 in flight. Returns the project name and the release run id.
 */
const seedGenerations = async (target: Target, count: number): Promise<{ project: string; releaseRunId: string }> => {
  const project = `bench-listing-${randomUUID().slice(0, 8)}`
  const repoid = ""
  if (target.load !== undefined) {
    const experimentId = String(9_000_000 + Math.floor(Math.random() * 1_000_000))
    const releaseRunId = hex32("beac", 0)
    const start = Date.now() - 3_600_000
    await target.load({
      experiments: [{ experimentId, name: project }],
      runs: [
        {
          runId: releaseRunId,
          experimentId,
          userId: Layout.USER_ID,
          startTime: start,
          tags: Layout.releaseTags(repoid, "1.0")
        },
        ...Array.from({ length: count }, (_, i) => ({
          runId: hex32(`b${experimentId}`, i),
          experimentId,
          userId: Layout.USER_ID,
          status: "FINISHED" as const,
          startTime: start + 1 + i,
          endTime: start + 2 + i,
          tags: [
            ...Layout.generationTags(repoid, releaseRunId, "seeded"),
            { key: Layout.TAG.commit, value: String(i + 1) }
          ]
        }))
      ]
    })
    return { project, releaseRunId }
  }
  const bare = target.bare
  const experimentId = await bare.createExperiment(project)
  const release = await bare.createRun(experimentId, Layout.releaseTags(repoid, "1.0"))
  await pool(Array.from({ length: count }, (_, i) => i), 16, async (i) => {
    await bare.createRun(experimentId, [
      ...Layout.generationTags(repoid, release.runId, "seeded"),
      { key: Layout.TAG.commit, value: String(i + 1) }
    ])
  })
  return { project, releaseRunId: release.runId }
}

/** Lists the generations of a release holding `count` of them: the registry (release resolved) against bare pages. */
export const listing = async (target: Target, count: number, runs: number, warmup: number) => {
  const floorBefore = target.floor.requests
  const seed = await seedGenerations(target, count)
  target.floor.requests = floorBefore
  const project = Either.getOrThrow(ProjectKey.parse(seed.project))
  const release = Either.getOrThrow(ReleaseKey.parse("1.0"))
  const scope = Effect.runSync(Scope.make())
  try {
    const reg = await target.runtime.runPromise(
      Scope.extend(MlflowRegistry.make(), scope).pipe(Effect.provide(NodeContext.layer))
    )
    // the release is resolved once (a warm instance), as it would be after any other call on it
    await target.runtime.runPromise(Stream.runDrain(reg.releases(project)))
    const check = (n: number) => {
      if (n !== count) throw new Error(`listed ${n} generations, not ${count}`)
    }
    const filter = Either.getOrThrow(Filter.render(Layout.generationRuns("", seed.releaseRunId)))
    const experimentId = (await target.bare.get<{ experiment: { experiment_id: string } }>(
      "experiments/get-by-name",
      { experiment_name: seed.project }
    )).experiment.experiment_id
    target.floor.requests = floorBefore
    return pair(
      await compare(runs, warmup, [
        {
          counter: target.library,
          op: () =>
            target.runtime.runPromise(
              Effect.map(Stream.runCollect(reg.generations(project, release)), (c) => Chunk.toReadonlyArray(c).length)
            ).then(check)
        },
        {
          counter: target.floor,
          op: async () => {
            const found = await target.bare.searchRuns([experimentId], filter)
            check(new Set(found.flatMap((r) => tagOf(r, Layout.TAG.commit) ?? [])).size)
          }
        }
      ])
    )
  } finally {
    await Effect.runPromise(Scope.close(scope, Exit.void))
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Client CPU per request
// ---------------------------------------------------------------------------------------------------------------

export interface CpuFigures {
  readonly calls: number
  /** Process CPU time (user + system) per call, and wall time per call, in ms. */
  readonly library: { readonly cpuMs: number; readonly wallMs: number }
  readonly floor: { readonly cpuMs: number; readonly wallMs: number }
}

/**
 * `calls` sequential calls through the library against the same calls with bare fetch, in 5 interleaved blocks
 * after a warm-up, measuring this process's CPU time: `runs/get` (Mlflow.getRun, decoded) and a whole read of a
 * 100 KB artifact (Mlflow.readArtifact).
 */
export const cpu = async (target: Target, calls: number) => {
  const root = await scratchRun(target)
  await target.runtime.runPromise(
    Effect.flatMap(Mlflow, (m) => m.uploadArtifact(root, "a.bin", payloads(1, 100_000)[0]!))
  )
  const measure = async (
    library: () => Promise<unknown>,
    floor: () => Promise<unknown>
  ): Promise<CpuFigures> => {
    const totals = { library: { cpu: 0, wall: 0 }, floor: { cpu: 0, wall: 0 } }
    const block = Math.max(1, Math.ceil(calls / 5))
    for (let i = 0; i < 100; i++) {
      await library()
      await floor()
    }
    for (let done = 0; done < calls; done += block) {
      for (const [side, op] of [["library", library], ["floor", floor]] as const) {
        const cpu0 = process.cpuUsage()
        const wall0 = performance.now()
        for (let i = 0; i < Math.min(block, calls - done); i++) await op()
        const used = process.cpuUsage(cpu0)
        totals[side].cpu += (used.user + used.system) / 1000
        totals[side].wall += performance.now() - wall0
      }
    }
    return {
      calls,
      library: { cpuMs: totals.library.cpu / calls, wallMs: totals.library.wall / calls },
      floor: { cpuMs: totals.floor.cpu / calls, wallMs: totals.floor.wall / calls }
    }
  }
  const getRun = await measure(
    () => target.runtime.runPromise(Effect.flatMap(Mlflow, (m) => m.getRun(root.runId))),
    () => target.bare.get("runs/get", { run_id: root.runId })
  )
  const read = await measure(
    () => target.runtime.runPromise(Effect.flatMap(Mlflow, (m) => m.readArtifact(root, "a.bin"))),
    () => target.bare.getBytes(root.artifactUri, "a.bin")
  )
  return { getRun, read }
}

// ---------------------------------------------------------------------------------------------------------------
// The command's start
// ---------------------------------------------------------------------------------------------------------------

export interface StartFigures {
  /** Wall ms per start, median and p95, of each command line; `node` is `node -e 0`, the floor. */
  readonly commands: ReadonlyArray<{ readonly label: string; readonly medianMs: number; readonly p95Ms: number }>
  readonly node: { readonly medianMs: number; readonly p95Ms: number }
  readonly runs: number
}

/**
 * Starts the built command (`dist/cli/main.js`, made by `npm run build`) `runs` times for each of `--version`,
 * `--help` and `list` on a small file store (two `demo` runs), interleaved with bare `node -e 0`.
 */
export const start = async (runs: number): Promise<StartFigures | undefined> => {
  const cli = join(process.cwd(), "dist", "cli", "main.js")
  if (!existsSync(cli)) return undefined
  const store = await mkdtemp(join(tmpdir(), "forml-bench-start-"))
  try {
    const run = (args: ReadonlyArray<string>) =>
      new Promise<number>((done, reject) => {
        const t0 = performance.now()
        const child = spawn(process.execPath, args, {
          stdio: ["ignore", "ignore", "ignore"],
          env: { ...process.env, MLFLOW_TRACKING_URI: "" }
        })
        child.once("error", reject)
        child.once(
          "exit",
          (code) => (code === 0 ? done(performance.now() - t0) : reject(new Error(`${args.join(" ")}: exit ${code}`)))
        )
      })
    const mlruns = join(store, "mlruns")
    await run([cli, "--tracking-uri", mlruns, "demo"])
    await run([cli, "--tracking-uri", mlruns, "demo"])
    const lines: ReadonlyArray<readonly [string, ReadonlyArray<string>]> = [
      ["--version", [cli, "--version"]],
      ["--help", [cli, "--help"]],
      ["list (a file store: 1 project, 3 releases)", [cli, "--tracking-uri", mlruns, "list"]]
    ]
    const times = lines.map(() => [] as Array<number>)
    const node: Array<number> = []
    for (let i = 0; i < runs + 2; i++) {
      const warm = i < 2
      const n = await run(["-e", "0"])
      if (!warm) node.push(n)
      for (const [j, [, args]] of lines.entries()) {
        const t = await run(args)
        if (!warm) times[j]!.push(t)
      }
    }
    return {
      commands: lines.map(([label], j) => ({ label, medianMs: median(times[j]!), p95Ms: percentile(times[j]!, 95) })),
      node: { medianMs: median(node), p95Ms: percentile(node, 95) },
      runs
    }
  } finally {
    await rm(store, { recursive: true, force: true })
  }
}
