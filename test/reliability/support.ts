/**
 * What the reliability tests share: the three stores (Memory, Http on the emulator, FileStore) each with a snapshot
 * of everything stored, packages, and a consistency check that reads a registry back through a fresh instance.
 */
import { FileSystem } from "@effect/platform"
import type { Path } from "@effect/platform"
import { NodeContext, NodeHttpClient } from "@effect/platform-node"
import { Chunk, Context, Effect, Either, Equal, Layer, Option, Stream } from "effect"
import { createHash, randomUUID } from "node:crypto"
import { readdirSync, readFileSync, statSync } from "node:fs"
import { join } from "node:path"
import { expect } from "vitest"
import { type Emulator, startEmulator } from "../../emulator/index.js"
import { GenerationKey } from "../../src/asset/GenerationKey.js"
import { Manifest } from "../../src/asset/Manifest.js"
import { Package } from "../../src/asset/Package.js"
import { ProjectKey } from "../../src/asset/ProjectKey.js"
import { ReleaseKey } from "../../src/asset/ReleaseKey.js"
import type { StateId } from "../../src/asset/StateId.js"
import { Tag, Timestamp } from "../../src/asset/Tag.js"
import * as Filter from "../../src/mlflow/Filter.js"
import { Mlflow } from "../../src/mlflow/Mlflow.js"
import type { Run } from "../../src/mlflow/Mlflow.js"
import * as MlflowFileStore from "../../src/mlflow/MlflowFileStore.js"
import * as MlflowHttp from "../../src/mlflow/MlflowHttp.js"
import { MlflowMemory, type MlflowMemoryHandle, type Snapshot } from "../../src/mlflow/MlflowMemory.js"
import * as Layout from "../../src/registry/layout.js"
import { MlflowRegistry } from "../../src/registry/MlflowRegistry.js"
import type { Registry } from "../../src/registry/Registry.js"
import { sharedPath } from "../support/shared.js"

// ---------------------------------------------------------------------------------------------------------------
// Small helpers
// ---------------------------------------------------------------------------------------------------------------

export const sha256 = (b: Uint8Array): string => createHash("sha256").update(b).digest("hex")
export const bytes = (s: string): Uint8Array => new TextEncoder().encode(s)
export const unique = (prefix: string): string => `${prefix}${randomUUID().slice(0, 8)}`

export const key = {
  project: (s: string): ProjectKey => Either.getOrThrow(ProjectKey.parse(s)),
  release: (s: string): ReleaseKey => Either.getOrThrow(ReleaseKey.parse(s)),
  generation: (n: number): GenerationKey => Either.getOrThrow(GenerationKey.parse(n))
}

export const collect = <A, E, R>(stream: Stream.Stream<A, E, R>): Effect.Effect<ReadonlyArray<A>, E, R> =>
  Effect.map(Stream.runCollect(stream), Chunk.toReadonlyArray)

export const helloworldZip = sharedPath("forml-vectors", "helloworld.4ml")

/** A trained tag listing `states`. */
export const trainedTag = (states: ReadonlyArray<StateId>): Tag =>
  Tag.make({ training: { timestamp: Timestamp.nowSync() }, states })

/** A `.4ml` of helloworld's sources under another name and version, in `dir`. */
export const makePackage = (dir: string, name: string, version: string) =>
  Effect.gen(function*() {
    const fs = yield* FileSystem.FileSystem
    const sources = join(dir, "helloworld-sources")
    if (!(yield* fs.exists(sources))) yield* Package.unpack(helloworldZip, sources)
    const manifest = Either.getOrThrow(Manifest.make({ name, version, package: "hello.world" }))
    return yield* Package.create(sources, manifest, join(dir, `${name}-${version}-${randomUUID().slice(0, 8)}.4ml`))
  })

// ---------------------------------------------------------------------------------------------------------------
// Stores with snapshots
// ---------------------------------------------------------------------------------------------------------------

export type StoreKind = "memory" | "http" | "file"

/** What a test can see of a store besides the Mlflow service: a snapshot of all of it, and its emulator or root. */
export interface Probe {
  readonly kind: StoreKind
  /** Everything stored, as canonical text: two equal snapshots mean nothing was written in between. */
  readonly snapshot: Effect.Effect<string>
  readonly emulator: Option.Option<Emulator>
  readonly memory: Option.Option<MlflowMemoryHandle.Service>
  readonly root: Option.Option<string>
}
export const Probe = Context.GenericTag<Probe>("test/reliability/Probe")

const memorySnapshot = (s: Snapshot): string =>
  JSON.stringify({
    experiments: s.experiments.map((
      e
    ) => [e.experimentId, e.name, e.lifecycleStage, e.tags.map((t) => [t.key, t.value])]),
    runs: s.runs.map((r) => [
      r.runId,
      r.info.experimentId,
      r.info.status,
      r.info.lifecycleStage,
      r.info.endTime ?? null,
      r.tags.map((t) => [t.key, t.value])
    ]),
    artifacts: [...s.artifacts].map(([run, files]) => [run, [...files].map(([p, b]) => [p, sha256(b)])])
  })

/** Every file and directory under `root` (relative path, and the sha256 of a file's bytes), sorted. */
export const treeSnapshot = (root: string): string => {
  const out: Array<string> = []
  const walk = (dir: string, rel: string) => {
    for (const name of readdirSync(dir).sort()) {
      const full = join(dir, name)
      const path = rel === "" ? name : `${rel}/${name}`
      const info = statSync(full)
      if (info.isDirectory()) {
        out.push(`${path}/`)
        walk(full, path)
      } else {
        out.push(`${path} ${sha256(readFileSync(full))}`)
      }
    }
  }
  walk(root, "")
  return out.join("\n")
}

const platform = Layer.merge(NodeHttpClient.layerUndici, NodeContext.layer)

/** Http settings for tests: MLflow's retry count, no waiting between retries. */
export const fastRetries: Partial<MlflowHttp.MlflowHttpConfig> = { backoffFactor: 0, backoffJitter: 0, maxRetries: 7 }

/**
 * A store of the given kind with its probe, for the life of the layer. Http runs on a fresh emulator with `settings`;
 * the file store in a fresh temporary directory.
 */
export const store = (
  kind: StoreKind,
  settings: Partial<MlflowHttp.MlflowHttpConfig> = fastRetries
): Layer.Layer<Mlflow | Probe | FileSystem.FileSystem | Path.Path> => {
  const probe = (p: Omit<Probe, "kind" | "emulator" | "memory" | "root"> & Partial<Probe>): Probe => ({
    kind,
    emulator: Option.none(),
    memory: Option.none(),
    root: Option.none(),
    ...p
  })
  const built = Effect.gen(function*() {
    switch (kind) {
      case "memory": {
        const handle = yield* MlflowMemory.make()
        return [
          handle.mlflow,
          probe({ snapshot: Effect.map(handle.snapshot, memorySnapshot), memory: Option.some(handle) })
        ] as const
      }
      case "http": {
        const emulator = yield* startEmulator()
        const mlflow = yield* Effect.orDie(MlflowHttp.make({ trackingUri: emulator.url, ...settings }))
        return [
          mlflow,
          probe({
            snapshot: Effect.map(emulator.handle.snapshot, memorySnapshot),
            emulator: Option.some(emulator),
            memory: Option.some(emulator.handle)
          })
        ] as const
      }
      case "file": {
        const fs = yield* FileSystem.FileSystem
        const dir = yield* Effect.orDie(fs.makeTempDirectoryScoped({ prefix: "forml-reliability-" }))
        const root = join(dir, "mlruns")
        const mlflow = yield* Effect.orDie(MlflowFileStore.make({ root }))
        return [mlflow, probe({ snapshot: Effect.sync(() => treeSnapshot(root)), root: Option.some(root) })] as const
      }
    }
  })
  return Layer.scopedContext(
    Effect.map(built, ([mlflow, p]) => Context.make(Mlflow, mlflow).pipe(Context.add(Probe, p)))
  ).pipe(Layer.provideMerge(platform))
}

// ---------------------------------------------------------------------------------------------------------------
// Reading a registry back
// ---------------------------------------------------------------------------------------------------------------

export interface GenerationView {
  readonly generation: number
  /** State id → sha256 of its bytes, in the tag's order. */
  readonly states: ReadonlyArray<readonly [string, string]>
}

export interface ReleaseView {
  readonly release: string
  /** The sha256 of the package read back (the registry verified it against its tag). */
  readonly package: string
  /** How many active release runs stand for this version (duplicates a race or a retry left). */
  readonly runs: number
  readonly generations: ReadonlyArray<GenerationView>
}

export interface ProjectView {
  readonly project: string
  readonly releases: ReadonlyArray<ReleaseView>
}

/**
 * What `writers` concurrent writers of one release of `helloworld` must leave, read back as `back`: the release listed
 * once (MLflow has no compare-and-set: a writer whose run creation stalls past another's convergence check can leave a
 * second run of the release, README "Limits", which reads must not notice), and generations 1..N, each with the states
 * its writer reported committing, read back with their sha256.
 */
export const expectConvergedWriters = (
  back: ReadonlyArray<ProjectView>,
  reported: ReadonlyArray<GenerationView>,
  writers: number
): void => {
  expect(reported).toHaveLength(writers)
  expect(back.map((p) => p.project)).toEqual(["helloworld"])
  const releases = back[0]!.releases
  expect(releases.map((r) => r.release)).toEqual(["1"])
  expect(releases[0]!.runs).toBeGreaterThanOrEqual(1)
  expect(releases[0]!.runs).toBeLessThanOrEqual(2)
  const generations = releases[0]!.generations
  expect(generations.map((g) => g.generation)).toEqual(Array.from({ length: writers }, (_, i) => i + 1))
  expect([...reported].sort((a, b) => a.generation - b.generation).map((c) => [c.generation, c.states]))
    .toEqual(generations.map((g) => [g.generation, g.states]))
}

/**
 * Reads every project, release and generation of `repoid` through a fresh registry instance: every listed release
 * pulls (its package is there and matches its sha256), every listed generation opens (its tag is there) and each of
 * its states reads (verified against its sha256 tag). Any failure fails the check; the view is returned for asserts.
 */
export const readBack = (repoid: string) =>
  Effect.scoped(Effect.gen(function*() {
    const mlflow = yield* Mlflow
    const registry: Registry.Service = yield* MlflowRegistry.make({ repoid })
    const projects = [...new Set(yield* collect(registry.projects))].sort()
    const views: Array<ProjectView> = []
    for (const project of projects) {
      const experiment = yield* mlflow.getExperimentByName(Layout.experimentName(project, repoid))
      const runs = yield* collect(mlflow.searchRuns({
        experimentIds: [experiment.experimentId],
        filter: Layout.releaseRuns(repoid)
      }))
      const releases: Array<ReleaseView> = []
      for (const release of yield* collect(registry.releases(project))) {
        const pkg = yield* registry.pull(project, release)
        const fs = yield* FileSystem.FileSystem
        const packageSha = sha256(yield* Effect.orDie(fs.readFile(pkg.path)))
        const generations: Array<GenerationView> = []
        for (const generation of yield* collect(registry.generations(project, release))) {
          const tag = yield* registry.open(project, release, generation)
          const states: Array<readonly [string, string]> = []
          for (const sid of tag.states) {
            states.push([sid, sha256(yield* registry.read(project, release, generation, sid))])
          }
          generations.push({ generation, states })
        }
        releases.push({
          release: release.toString(),
          package: packageSha,
          runs: runs.filter((r) => Option.exists(releaseOf(r), (k) => Equal.equals(k, release))).length,
          generations: [...generations].sort((a, b) => a.generation - b.generation)
        })
      }
      views.push({ project, releases })
    }
    return views
  }))

const releaseOf = (run: Run): Option.Option<ReleaseKey> =>
  Option.flatMap(run.tag(Layout.TAG.commit), (v) => Either.getRight(ReleaseKey.parse(v)))

/** The active runs of an experiment by name (none when it does not exist). */
export const activeRuns = (experiment: string) =>
  Effect.gen(function*() {
    const mlflow = yield* Mlflow
    const found = yield* Effect.option(mlflow.getExperimentByName(experiment))
    if (Option.isNone(found)) return []
    return yield* collect(mlflow.searchRuns({ experimentIds: [found.value.experimentId] }))
  })

/** Uncommitted generation runs of a repository's experiment (trainings that never closed). */
export const unboundRuns = (experiment: string, repoid: string) =>
  Effect.gen(function*() {
    const mlflow = yield* Mlflow
    const found = yield* Effect.option(mlflow.getExperimentByName(experiment))
    if (Option.isNone(found)) return []
    const runs = yield* collect(mlflow.searchRuns({
      experimentIds: [found.value.experimentId],
      filter: Filter.and(Filter.tag(Layout.TAG.repoid, repoid), Filter.tag(Layout.TAG.level, Layout.LEVEL.generation))
    }))
    return runs.filter((r) => !Layout.isCommitted(r))
  })
