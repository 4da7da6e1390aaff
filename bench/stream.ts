/**
 * The streaming scenario, meant to run in a process of its own so that its peak RSS is its own: push and pull a large
 * package, write and read a large state, through the registry ("library") or with bare fetch ("floor").
 */
import * as NodeContext from "@effect/platform-node/NodeContext"
import { Effect, Either, Stream } from "effect"
import { createHash, randomUUID } from "node:crypto"
import { mkdtemp, rm, stat } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { performance } from "node:perf_hooks"
import { GenerationKey } from "../src/asset/GenerationKey.js"
import { Package } from "../src/asset/Package.js"
import { ProjectKey } from "../src/asset/ProjectKey.js"
import { ReleaseKey } from "../src/asset/ReleaseKey.js"
import { StateId } from "../src/asset/StateId.js"
import { Tag, Timestamp } from "../src/asset/Tag.js"
import { Mlflow } from "../src/mlflow/Mlflow.js"
import * as Layout from "../src/registry/layout.js"
import { MlflowRegistry } from "../src/registry/MlflowRegistry.js"
import { chunks, chunksDigest, chunkStream } from "./fixtures.js"
import { RssSampler } from "./stats.js"
import { connect } from "./target.js"

export const STREAM_PHASES = ["push", "pull", "write", "read"] as const
export type StreamPhase = (typeof STREAM_PHASES)[number]

export interface StreamSettings {
  readonly side: "library" | "floor"
  /** The package to push (built by the parent, so that building it does not count here) and its project name. */
  readonly zip: string
  readonly project: string
  readonly stateSize: number
  readonly runs: number
}

export interface StreamFigures {
  readonly side: "library" | "floor"
  readonly ms: Readonly<Record<StreamPhase, ReadonlyArray<number>>>
  readonly requests: Readonly<Record<StreamPhase, number>>
  readonly peakRssMb: Readonly<Record<StreamPhase, number>>
  /** RSS once everything is loaded, before the first operation. */
  readonly baselineRssMb: number
  /** The process's peak RSS over its whole life (getrusage). */
  readonly maxRssMb: number
}

const MB = 1024 * 1024

/** Runs the scenario in this process; call it in a process of its own (`stream-process.ts`). */
export const streamFigures = async (settings: StreamSettings): Promise<StreamFigures> => {
  const target = await connect()
  const counter = settings.side === "library" ? target.library : target.floor
  const dir = await mkdtemp(join(tmpdir(), "forml-bench-stream-"))
  const name = settings.project
  const zip = settings.zip
  const zipSize = (await stat(zip)).size
  const stateDigest = chunksDigest(settings.stateSize)
  const ms: Record<StreamPhase, Array<number>> = { push: [], pull: [], write: [], read: [] }
  const requests: Record<StreamPhase, number> = { push: 0, pull: 0, write: 0, read: 0 }
  const peaks: Record<StreamPhase, number> = { push: 0, pull: 0, write: 0, read: 0 }
  const phase = async <A>(p: StreamPhase, f: () => Promise<A>): Promise<A> => {
    const rss = new RssSampler()
    rss.start(2)
    const before = counter.requests
    const t0 = performance.now()
    const a = await f()
    ms[p].push(performance.now() - t0)
    requests[p] = counter.requests - before
    peaks[p] = Math.max(peaks[p], rss.stop() / MB)
    return a
  }
  const fail = (what: string): never => {
    throw new Error(`streaming check failed: ${what}`)
  }
  const checkSize = async (file: string) => {
    const size = (await stat(file)).size
    if (size !== zipSize) fail(`pulled ${size} bytes, not ${zipSize}`)
  }
  /** Drops what the runs of the experiment hold (the emulator keeps artifacts in memory). */
  const drop = async () => {
    if (target.dropArtifacts === undefined) return
    const roots = await target.runtime.runPromise(Effect.gen(function*() {
      const mlflow = yield* Mlflow
      const experiment = yield* mlflow.getExperimentByName(name)
      const runs = yield* Stream.runCollect(
        mlflow.searchRuns({ experimentIds: [experiment.experimentId], viewType: "ALL" })
      )
      // (artifacts in an object store are not the emulator's to drop)
      return [...runs].filter((r) => r.info.artifactUri.startsWith("mlflow-artifacts:"))
        .map((r) => r.info.artifactUri.replace(/^mlflow-artifacts:/, "").replace(/^\/+/, ""))
    }))
    for (const root of roots) await target.dropArtifacts(root)
  }
  const baselineRssMb = process.memoryUsage.rss() / MB
  const project = Either.getOrThrow(ProjectKey.parse(name))
  const release = Either.getOrThrow(ReleaseKey.parse("1.0"))

  if (settings.side === "library") {
    const run = (g: number) =>
      Effect.scoped(Effect.gen(function*() {
        // a fresh instance per run: each push is a cold one
        const reg = yield* MlflowRegistry.make({ staging: join(dir, `staging-${g}`) })
        const go = <A, E>(p: StreamPhase, effect: Effect.Effect<A, E>) =>
          Effect.promise(() => phase(p, () => Effect.runPromise(Effect.orDie(effect))))
        const pkg = yield* Package.open(zip)
        yield* go("push", reg.push(pkg))
        const pulled = yield* go("pull", reg.pull(project, release))
        yield* Effect.promise(() => checkSize(pulled.path))
        yield* Effect.promise(() => rm(pulled.path))
        const sid = StateId.random()
        yield* go("write", reg.write(project, release, sid, chunkStream(settings.stateSize)))
        const generation = yield* GenerationKey.parse(g)
        yield* reg.close(project, release, generation, Tag.withStates(Tag.trained(yield* Timestamp.now), [sid]))
        const digest = yield* go(
          "read",
          Effect.suspend(() => {
            const hash = createHash("sha256")
            return Effect.as(
              Stream.runForEach(reg.readStream(project, release, generation, sid), (c) =>
                Effect.sync(() => hash.update(c))),
              hash
            )
          }).pipe(Effect.map((hash) =>
            hash.digest("hex")
          ))
        )
        if (digest !== stateDigest) fail("the state read back differs")
      }))
    for (let g = 1; g <= settings.runs; g++) {
      await target.runtime.runPromise(run(g).pipe(Effect.provide(NodeContext.layer)))
      await drop()
    }
  } else {
    const bare = target.bare
    const experimentId = await bare.createExperiment(name)
    for (let g = 1; g <= settings.runs; g++) {
      const release = await bare.createRun(experimentId, Layout.releaseTags("", "1.0"))
      await phase("push", () => bare.putFile(release.artifactUri, Layout.ARTIFACT.package, zip))
      const pulled = join(dir, `pulled-${g}.4ml`)
      await phase("pull", () => bare.getFile(release.artifactUri, Layout.ARTIFACT.package, pulled))
      await checkSize(pulled)
      await rm(pulled)
      const run = await bare.createRun(experimentId, Layout.generationTags("", release.runId, "bench"))
      const name = Layout.ARTIFACT.state(randomUUID())
      await phase("write", async () => {
        const hash = createHash("sha256")
        async function* hashed() {
          for await (const chunk of chunks(settings.stateSize)) {
            hash.update(chunk)
            yield chunk
          }
        }
        await bare.putStream(run.artifactUri, name, hashed(), settings.stateSize)
        hash.digest("hex")
      })
      const digest = await phase("read", async () => {
        const hash = createHash("sha256")
        await bare.getEach(run.artifactUri, name, (c) => hash.update(c))
        return hash.digest("hex")
      })
      if (digest !== stateDigest) fail("the state read back differs")
      await drop()
    }
  }
  await rm(dir, { recursive: true, force: true })
  await target.close()
  return {
    side: settings.side,
    ms,
    requests,
    peakRssMb: peaks,
    baselineRssMb,
    maxRssMb: process.resourceUsage().maxRSS / 1024
  }
}
