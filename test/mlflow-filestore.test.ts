/**
 * The file store (MLflow's own `mlruns/` format) and local artifacts: the Mlflow contract, reading what MLflow
 * 2.17.2 wrote, writing what it reads, atomic writes and path confinement.
 */
import { FileSystem, Path } from "@effect/platform"
import { NodeContext } from "@effect/platform-node"
import { describe, expect, it } from "@effect/vitest"
import { Chunk, Effect, Either, Fiber, Layer, Option, Stream, TestClock } from "effect"
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs"
import { join } from "node:path"
import YAML from "yaml"
import * as Filter from "../src/mlflow/Filter.js"
import * as LocalArtifacts from "../src/mlflow/LocalArtifacts.js"
import { concatBytes, downloadBytes, Mlflow } from "../src/mlflow/Mlflow.js"
import type { ViewType } from "../src/mlflow/Mlflow.js"
import * as MlflowFileStore from "../src/mlflow/MlflowFileStore.js"
import { mlflowContract } from "./contract/mlflow.js"
import { sharedPath } from "./support/shared.js"

const text = (s: string) => new TextEncoder().encode(s)
const decode = (b: Uint8Array) => new TextDecoder().decode(b)

const collect = <E, R>(stream: Stream.Stream<Uint8Array, E, R>) =>
  Effect.map(Stream.runCollect(stream), (c) => decode(concatBytes(Chunk.toReadonlyArray(c))))

const tempDir = Effect.flatMap(FileSystem.FileSystem, (fs) => fs.makeTempDirectoryScoped({ prefix: "forml-fs-" }))

/** A file store in a fresh temporary directory, removed with the layer. */
const tempStore = Layer.unwrapScoped(
  Effect.map(tempDir, (dir) => MlflowFileStore.layer({ root: `${dir}/mlruns` }))
).pipe(Layer.provide(NodeContext.layer))

mlflowContract("MlflowFileStore", tempStore, { largeArtifactBytes: 16 * 1024 * 1024 + 3, paramRefusal: "file" })

describe("LocalArtifacts", () => {
  it.scopedLive("uploads, lists and downloads, creating the root and parents", () =>
    Effect.gen(function*() {
      const fs = yield* FileSystem.FileSystem
      const path = yield* Path.Path
      const root = path.join(yield* tempDir, "run", "artifacts")
      yield* LocalArtifacts.upload(root, "a.txt", text("hello"))
      yield* LocalArtifacts.upload(root, "dir/sub/b.bin", Stream.make(text("ab"), text("cd")))
      const src = path.join(yield* tempDir, "src.txt")
      yield* fs.writeFileString(src, "from a file")
      yield* LocalArtifacts.upload(root, "dir/c.txt", { file: src })
      expect(yield* collect(LocalArtifacts.download(root, "a.txt"))).toBe("hello")
      expect(yield* collect(LocalArtifacts.download(root, "dir/sub/b.bin"))).toBe("abcd")
      expect(yield* collect(LocalArtifacts.download(root, "dir/c.txt"))).toBe("from a file")
      const top = yield* LocalArtifacts.list(root)
      expect(top.map((f) => [f.path, f.isDir, f.fileSize])).toEqual([["a.txt", false, 5], ["dir", true, undefined]])
      const dir = yield* LocalArtifacts.list(root, "dir")
      expect(dir.map((f) => [f.path, f.isDir, f.fileSize])).toEqual([["dir/c.txt", false, 11], [
        "dir/sub",
        true,
        undefined
      ]])
      expect(yield* LocalArtifacts.list(root, "missing")).toEqual([])
      expect(yield* LocalArtifacts.list(root, "a.txt")).toEqual([])
      // overwrite replaces the content
      yield* LocalArtifacts.upload(root, "a.txt", text("bye"))
      expect(yield* collect(LocalArtifacts.download(root, "a.txt"))).toBe("bye")
      // no temporary file is left behind
      const all = yield* fs.readDirectory(root, { recursive: true })
      expect(all.filter((n) => n.includes(".forml-tmp-"))).toEqual([])
    }).pipe(Effect.provide(NodeContext.layer)))

  it.scopedLive("a missing artifact or a directory fails the download with NotFound", () =>
    Effect.gen(function*() {
      const path = yield* Path.Path
      const root = path.join(yield* tempDir, "artifacts")
      const missingRoot = yield* Effect.flip(Stream.runDrain(LocalArtifacts.download(root, "x.txt")))
      expect(missingRoot._tag).toBe("NotFound")
      yield* LocalArtifacts.upload(root, "d/x.txt", text("x"))
      const missing = yield* Effect.flip(Stream.runDrain(LocalArtifacts.download(root, "d/y.txt")))
      expect(missing._tag).toBe("NotFound")
      const dir = yield* Effect.flip(Stream.runDrain(LocalArtifacts.download(root, "d")))
      expect(dir._tag).toBe("NotFound")
    }).pipe(Effect.provide(NodeContext.layer)))

  it.scopedLive("rejects bad paths and symlinks that lead out of the root", () =>
    Effect.gen(function*() {
      const fs = yield* FileSystem.FileSystem
      const path = yield* Path.Path
      const base = yield* tempDir
      const root = path.join(base, "artifacts")
      const outside = path.join(base, "outside")
      yield* fs.makeDirectory(root, { recursive: true })
      yield* fs.makeDirectory(outside)
      yield* fs.writeFileString(path.join(outside, "secret"), "secret")
      yield* fs.symlink(outside, path.join(root, "link"))
      yield* fs.symlink(path.join(outside, "secret"), path.join(root, "secret-link"))
      for (const bad of ["../x", "/abs", "a/../b", "a//b", "a\\b", "", "./a", ".forml-tmp-0011/x"]) {
        const e = yield* Effect.flip(LocalArtifacts.upload(root, bad, text("x")))
        expect(e._tag, bad).toBe("InvalidInput")
      }
      expect((yield* Effect.flip(LocalArtifacts.upload(root, "link/x", text("x"))))._tag).toBe("InvalidInput")
      expect(yield* fs.readDirectory(outside)).toEqual(["secret"])
      expect((yield* Effect.flip(Stream.runDrain(LocalArtifacts.download(root, "link/secret"))))._tag).toBe(
        "InvalidInput"
      )
      expect((yield* Effect.flip(Stream.runDrain(LocalArtifacts.download(root, "secret-link"))))._tag).toBe(
        "InvalidInput"
      )
      expect((yield* Effect.flip(Stream.runDrain(LocalArtifacts.download(root, "../outside/secret"))))._tag).toBe(
        "InvalidInput"
      )
      expect((yield* Effect.flip(LocalArtifacts.list(root, "link")))._tag).toBe("InvalidInput")
      // the listing leaves out links that lead outside
      expect(yield* LocalArtifacts.list(root)).toEqual([])
    }).pipe(Effect.provide(NodeContext.layer)))

  it.scopedLive("a failed upload leaves no file and no temporary file", () =>
    Effect.gen(function*() {
      const fs = yield* FileSystem.FileSystem
      const path = yield* Path.Path
      const root = path.join(yield* tempDir, "artifacts")
      yield* LocalArtifacts.upload(root, "keep.txt", text("old"))
      const failing = Stream.concat(Stream.make(text("partial")), Stream.fail("boom" as const))
      const e = yield* Effect.flip(LocalArtifacts.upload(root, "keep.txt", failing))
      expect(e).toBe("boom")
      expect(yield* collect(LocalArtifacts.download(root, "keep.txt"))).toBe("old")
      expect(yield* fs.readDirectory(root)).toEqual(["keep.txt"])
      // a stray temporary file (a crashed write) is not listed
      yield* fs.writeFileString(path.join(root, ".forml-tmp-deadbeefdeadbeef"), "junk")
      expect((yield* LocalArtifacts.list(root)).map((f) => f.path)).toEqual(["keep.txt"])
    }).pipe(Effect.provide(NodeContext.layer)))

  it("converts file URIs and paths", () => {
    expect(LocalArtifacts.fileUriToPath("file:///srv/a%20b/mlruns")).toEqual(Either.right("/srv/a b/mlruns"))
    expect(LocalArtifacts.fileUriToPath("file:/srv/x")).toEqual(Either.right("/srv/x"))
    expect(LocalArtifacts.fileUriToPath("/srv/x")).toEqual(Either.right("/srv/x"))
    expect(Either.isLeft(LocalArtifacts.fileUriToPath("mlflow-artifacts:/1/abc/artifacts"))).toBe(true)
    expect(Either.isLeft(LocalArtifacts.fileUriToPath("file://host/x"))).toBe(true)
    expect(LocalArtifacts.pathToFileUri("/srv/a b/mlruns")).toBe("file:///srv/a%20b/mlruns")
  })
})

// ---------------------------------------------------------------------------------------------------------------
// The file store itself
// ---------------------------------------------------------------------------------------------------------------

const SAMPLE_ROOT_URI = "file:///srv/forml-sample/mlruns"
const sampleDir = sharedPath("mlflow-filestore-sample", "mlruns")
const sampleText = (rel: string) => readFileSync(join(sampleDir, rel), "utf-8")
const replaceAll = (s: string, pairs: ReadonlyArray<readonly [string, string]>) =>
  pairs.reduce((acc, [from, to]) => acc.split(from).join(to), s)

/** Every file under `dir` (relative, `/`-separated), or none when it is missing. */
const walkFiles = (dir: string, rel = ""): Array<string> => {
  let entries: Array<string>
  try {
    entries = readdirSync(join(dir, rel))
  } catch {
    return []
  }
  return entries.flatMap((name) => {
    const key = rel === "" ? name : `${rel}/${name}`
    return statSync(join(dir, key)).isDirectory() ? walkFiles(dir, key) : [key]
  })
}

const tagMap = (tags: ReadonlyArray<{ readonly key: string; readonly value: string }>) =>
  Object.fromEntries(tags.map((t) => [t.key, t.value]))
const filesAsTags = (dir: string) =>
  Object.fromEntries(walkFiles(dir).map((key) => [key, readFileSync(join(dir, key), "utf-8")]))

/** A store over a fresh directory (or a copy of the MLflow-written sample), with its root path and service. */
const openStore = (options: { readonly sample?: boolean } = {}) =>
  Effect.gen(function*() {
    const fs = yield* FileSystem.FileSystem
    const root = join(yield* tempDir, "mlruns")
    if (options.sample === true) yield* fs.copy(sampleDir, root)
    const mlflow = yield* MlflowFileStore.make({ root })
    return { root, mlflow, uri: LocalArtifacts.pathToFileUri(root) }
  })

const readText = (p: string) => Effect.flatMap(FileSystem.FileSystem, (fs) => fs.readFileString(p))
const allRuns = (mlflow: Mlflow.Service, experimentIds: ReadonlyArray<string>, viewType: ViewType = "ALL") =>
  Effect.map(Stream.runCollect(mlflow.searchRuns({ experimentIds, viewType })), Chunk.toReadonlyArray)
const allExperiments = (mlflow: Mlflow.Service, viewType?: ViewType) =>
  Effect.map(Stream.runCollect(mlflow.searchExperiments({ viewType })), Chunk.toReadonlyArray)

describe("MlflowFileStore reads what MLflow 2.17.2 wrote", () => {
  /** What the sample's files say, read directly: experiments (active and in .trash) and their runs. */
  const expected = (() => {
    const experiments: Array<{ id: string; name: string; deleted: boolean; tags: Record<string, string> }> = []
    const runs: Array<{
      id: string
      experimentId: string
      dir: string
      meta: Record<string, unknown>
      tags: Record<string, string>
    }> = []
    for (const [base, deleted] of [[sampleDir, false], [join(sampleDir, ".trash"), true]] as const) {
      for (const id of readdirSync(base)) {
        if (id === ".trash" || !existsSync(join(base, id, "meta.yaml"))) continue
        const meta = YAML.parse(readFileSync(join(base, id, "meta.yaml"), "utf-8")) as Record<string, unknown>
        experiments.push({ id, name: String(meta["name"]), deleted, tags: filesAsTags(join(base, id, "tags")) })
        for (const runId of readdirSync(join(base, id))) {
          const dir = join(base, id, runId)
          if (runId === "tags" || !existsSync(join(dir, "meta.yaml"))) continue
          const runMeta = YAML.parse(readFileSync(join(dir, "meta.yaml"), "utf-8")) as Record<string, unknown>
          runs.push({ id: runId, experimentId: id, dir, meta: runMeta, tags: filesAsTags(join(dir, "tags")) })
        }
      }
    }
    return { experiments, runs }
  })()

  it("the sample holds what its README lists", () => {
    expect(expected.experiments.map((e) => e.name).sort()).toEqual(
      ["Default", "helloworld", "helloworld@test1", "sample_deleted_exp", "sample_exp", "sample_renamed_exp"]
    )
    expect(expected.runs.length).toBe(9)
  })

  it.scoped("every experiment with its tags and lifecycle, by id, by name and by search", () =>
    Effect.gen(function*() {
      const { mlflow } = yield* openStore({ sample: true })
      for (const e of expected.experiments) {
        const got = yield* mlflow.getExperiment(e.id)
        expect(got.name).toBe(e.name)
        expect(got.lifecycleStage).toBe(e.deleted ? "deleted" : "active")
        expect(tagMap(got.tags)).toEqual(e.tags)
        expect((yield* mlflow.getExperimentByName(e.name)).experimentId).toBe(e.id)
      }
      const sampleExp = yield* mlflow.getExperimentByName("sample_exp")
      expect(tagMap(sampleExp.tags)).toEqual({
        team: "ml",
        "project/owner": "alice",
        "note with spaces": "set after creation"
      })
      expect(sampleExp.artifactLocation).toBe(`${SAMPLE_ROOT_URI}/635045208141978991`)
      expect(sampleExp.creationTime).toBe(1795674421104)
      expect((yield* mlflow.getExperiment("520544963499364034")).tag("state")).toEqual(Option.some("to be deleted"))
      expect((yield* allExperiments(mlflow, "ALL")).length).toBe(6)
      expect((yield* allExperiments(mlflow)).map((e) => e.name).sort()).toEqual(
        ["Default", "helloworld", "helloworld@test1", "sample_exp", "sample_renamed_exp"]
      )
      expect((yield* allExperiments(mlflow, "DELETED_ONLY")).map((e) => e.experimentId)).toEqual(["520544963499364034"])
    }).pipe(Effect.provide(NodeContext.layer)))

  it.scoped("every run with its tags, status, times and lifecycle; views and ForML's filter", () =>
    Effect.gen(function*() {
      const { mlflow } = yield* openStore({ sample: true })
      const statuses = ["RUNNING", "SCHEDULED", "FINISHED", "FAILED", "KILLED"]
      for (const r of expected.runs) {
        const got = yield* mlflow.getRun(r.id)
        expect(got.info.experimentId).toBe(r.experimentId)
        expect(got.info.runName).toBe(r.meta["run_name"])
        expect(got.info.userId).toBe(r.meta["user_id"])
        expect(got.info.status).toBe(statuses[Number(r.meta["status"]) - 1])
        expect(got.info.startTime).toBe(r.meta["start_time"])
        expect(got.info.endTime).toBe(r.meta["end_time"] ?? undefined)
        expect(got.info.lifecycleStage).toBe(r.meta["lifecycle_stage"])
        expect(got.info.artifactUri).toBe(r.meta["artifact_uri"])
        expect(tagMap(got.tags)).toEqual(r.tags)
      }
      const ids = expected.experiments.map((e) => e.id)
      const all = yield* allRuns(mlflow, ids)
      expect(all.map((r) => r.runId).sort()).toEqual(expected.runs.map((r) => r.id).sort())
      const active = yield* allRuns(mlflow, ids, "ACTIVE_ONLY")
      expect(active.map((r) => r.info.runName)).not.toContain("run-deleted")
      expect(active.map((r) => r.info.runName)).not.toContain("run-in-deleted-exp")
      expect(active.length).toBe(7)
      const params = yield* mlflow.getRun("4d4765fd577342e8860f2b6961bd2046")
      expect(tagMap(params.tags)).toMatchObject({
        "ns/sub/key": "slash",
        "key with spaces": "spaces",
        "mlflow.user": "alice",
        "mlflow.runName": "run-params-metric"
      })
      const finished = yield* mlflow.getRun("ac031fea88d54f2bb5907264154d4941")
      expect(finished.info).toMatchObject({ status: "FINISHED", endTime: 1700000007000 })
      const release = yield* mlflow.getRun("264c4afd0fe842b3a70ef29010fbfeff")
      expect(release.tag("forml.repoid")).toEqual(Option.some(""))
      const generations = yield* Stream.runCollect(mlflow.searchRuns({
        experimentIds: ["943519852629867517"],
        filter: Filter.and(Filter.tag("forml.repoid", ""), Filter.tag("forml.level", "generation")),
        viewType: "ALL"
      }))
      expect(
        Chunk.toReadonlyArray(generations).map((r) => r.tag("mlflow.source.git.commit")).map(Option.getOrThrow).sort()
      )
        .toEqual(["1", "2"])
    }).pipe(Effect.provide(NodeContext.layer)))

  it.scoped("every artifact, listed and byte-equal, although the recorded paths (/srv/forml-sample) are absent", () =>
    Effect.gen(function*() {
      const { mlflow } = yield* openStore({ sample: true })
      let count = 0
      for (const r of expected.runs) {
        const run = (yield* mlflow.getRun(r.id)).info
        const files = walkFiles(join(r.dir, "artifacts"))
        const listed: Array<string> = []
        const walk = (p?: string): Effect.Effect<void, unknown> =>
          Effect.flatMap(
            mlflow.listArtifacts(run, p),
            (entries) =>
              Effect.forEach(entries, (f) => (f.isDir ? walk(f.path) : Effect.sync(() => listed.push(f.path))), {
                discard: true
              })
          )
        yield* walk()
        expect(listed.sort()).toEqual(files.sort())
        for (const file of files) {
          const bytes = yield* downloadBytes(run, file).pipe(Effect.provideService(Mlflow, mlflow))
          expect(Buffer.from(bytes).equals(readFileSync(join(r.dir, "artifacts", file)))).toBe(true)
          count++
        }
      }
      expect(count).toBe(12)
      const gen1 = (yield* mlflow.getRun("7fad11c4286b4771a63a8dfc3814a7d5")).info
      expect((yield* mlflow.listArtifacts(gen1)).map((f) => f.path)).toEqual([
        "00000000-0000-0000-0000-000000000001.bin",
        "00000000-0000-0000-0000-000000000002.bin",
        "tag.toml"
      ])
      const notes = (yield* mlflow.getRun("4d4765fd577342e8860f2b6961bd2046")).info
      expect((yield* mlflow.listArtifacts(notes)).map((f) => ({ ...f }))).toEqual([{ path: "notes", isDir: true }])
    }).pipe(Effect.provide(NodeContext.layer)))

  it.scoped("writes into the copy stay inside it: new runs, artifacts of recorded runs, restore from .trash", () =>
    Effect.gen(function*() {
      const fs = yield* FileSystem.FileSystem
      const { mlflow, root } = yield* openStore({ sample: true })
      const old = (yield* mlflow.getRun("ac031fea88d54f2bb5907264154d4941")).info
      yield* mlflow.uploadArtifact(old, "late/added.txt", text("late"))
      expect(yield* readText(join(root, "635045208141978991", old.runId, "artifacts", "late", "added.txt"))).toBe(
        "late"
      )
      const fresh = yield* mlflow.createRun({ experimentId: "635045208141978991", runName: "fresh" })
      // MLflow derives a run's artifact URI from its experiment's recorded location
      expect(fresh.info.artifactUri).toBe(`${SAMPLE_ROOT_URI}/635045208141978991/${fresh.runId}/artifacts`)
      yield* mlflow.uploadArtifact(fresh.info, "a.txt", text("a"))
      expect(yield* readText(join(root, "635045208141978991", fresh.runId, "artifacts", "a.txt"))).toBe("a")
      yield* mlflow.restoreExperiment("520544963499364034")
      expect(yield* fs.exists(join(root, ".trash", "520544963499364034"))).toBe(false)
      expect((yield* mlflow.getExperiment("520544963499364034")).lifecycleStage).toBe("active")
      const restored = yield* mlflow.getRun("4f3edbb1a214411b8990f668b02c65ab")
      expect(restored.info.lifecycleStage).toBe("active")
      const meta = YAML.parse(yield* readText(join(root, "520544963499364034", "meta.yaml"))) as Record<string, unknown>
      expect(meta).toMatchObject({ lifecycle_stage: "active", tags: { state: "to be deleted" } })
      yield* mlflow.setTag(restored.runId, "after", "restore")
      expect(yield* readText(join(root, "520544963499364034", restored.runId, "tags", "after"))).toBe("restore")
    }).pipe(Effect.provide(NodeContext.layer)))
})

describe("MlflowFileStore writes what MLflow 2.17.2 reads", () => {
  it.scoped("a new root gets the Default experiment and .trash/, byte for byte", () =>
    Effect.gen(function*() {
      const fs = yield* FileSystem.FileSystem
      yield* TestClock.setTime(1795674421015)
      const { root, uri } = yield* openStore()
      expect(yield* readText(join(root, "0", "meta.yaml"))).toBe(
        replaceAll(sampleText("0/meta.yaml"), [[SAMPLE_ROOT_URI, uri]])
      )
      expect((yield* fs.readDirectory(root)).sort()).toEqual([".trash", "0"])
      expect(yield* fs.readDirectory(join(root, ".trash"))).toEqual([])
      // opening it again changes nothing
      yield* TestClock.setTime(1795674499999)
      yield* MlflowFileStore.make({ root })
      expect(yield* readText(join(root, "0", "meta.yaml"))).toContain("creation_time: 1795674421015\n")
    }).pipe(Effect.provide(NodeContext.layer)))

  it.scoped("experiments, runs, tags, deletions: the same bytes as the sample where nothing is random", () =>
    Effect.gen(function*() {
      const fs = yield* FileSystem.FileSystem
      const { mlflow, root, uri } = yield* openStore()
      const sampleE = "635045208141978991"
      yield* TestClock.setTime(1795674421104)
      const e = yield* mlflow.createExperiment("sample_exp", {
        tags: [{ key: "team", value: "ml" }, { key: "project/owner", value: "alice" }]
      })
      expect(e).toMatch(/^[1-9][0-9]{17}$/)
      const swap = (pairs: ReadonlyArray<readonly [string, string]>) => [[SAMPLE_ROOT_URI, uri] as const, ...pairs]
      expect(yield* readText(join(root, e, "meta.yaml"))).toBe(
        replaceAll(sampleText(`${sampleE}/meta.yaml`), swap([[sampleE, e]]))
      )
      expect(yield* readText(join(root, e, "tags", "team"))).toBe(sampleText(`${sampleE}/tags/team`))
      expect(yield* readText(join(root, e, "tags", "project", "owner"))).toBe(
        sampleText(`${sampleE}/tags/project/owner`)
      )

      // run-finished
      const sampleF = "ac031fea88d54f2bb5907264154d4941"
      const f = yield* mlflow.createRun({
        experimentId: e,
        runName: "run-finished",
        startTime: 1700000005000,
        userId: "unknown"
      })
      yield* mlflow.updateRun(f.runId, { status: "FINISHED", endTime: 1700000007000 })
      expect(yield* readText(join(root, e, f.runId, "meta.yaml"))).toBe(
        replaceAll(sampleText(`${sampleE}/${sampleF}/meta.yaml`), swap([[sampleE, e], [sampleF, f.runId]]))
      )
      expect(yield* readText(join(root, e, f.runId, "tags", "mlflow.runName"))).toBe(
        sampleText(`${sampleE}/${sampleF}/tags/mlflow.runName`)
      )
      expect((yield* fs.readDirectory(join(root, e, f.runId))).sort()).toEqual(
        ["artifacts", "meta.yaml", "metrics", "params", "tags"]
      )

      // run-deleted: stays in place with deleted_time
      const sampleD = "5077a227902a4d799cbb5b8fd30d998e"
      const d = yield* mlflow.createRun({
        experimentId: e,
        runName: "run-deleted",
        startTime: 1700000008000,
        userId: "unknown"
      })
      yield* mlflow.setTag(d.runId, "reason", sampleText(`${sampleE}/${sampleD}/tags/reason`))
      yield* TestClock.setTime(1795674421119)
      yield* mlflow.deleteRun(d.runId)
      expect(yield* readText(join(root, e, d.runId, "meta.yaml"))).toBe(
        replaceAll(sampleText(`${sampleE}/${sampleD}/meta.yaml`), swap([[sampleE, e], [sampleD, d.runId]]))
      )
      expect(yield* readText(join(root, e, d.runId, "tags", "reason"))).toBe(
        sampleText(`${sampleE}/${sampleD}/tags/reason`)
      )

      // sample_deleted_exp: moved to .trash/ with its run, which is marked deleted at the same instant
      const sampleX = "520544963499364034"
      const sampleXR = "4f3edbb1a214411b8990f668b02c65ab"
      yield* TestClock.setTime(1795674421121)
      const x = yield* mlflow.createExperiment("sample_deleted_exp", {
        tags: [{ key: "state", value: sampleText(`.trash/${sampleX}/tags/state`) }]
      })
      const xr = yield* mlflow.createRun({
        experimentId: x,
        runName: "run-in-deleted-exp",
        startTime: 1700000009000,
        userId: "unknown"
      })
      yield* TestClock.setTime(1795674421124)
      yield* mlflow.deleteExperiment(x)
      expect(yield* fs.exists(join(root, x))).toBe(false)
      expect(yield* readText(join(root, ".trash", x, "meta.yaml"))).toBe(
        replaceAll(sampleText(`.trash/${sampleX}/meta.yaml`), swap([[sampleX, x]]))
      )
      expect(yield* readText(join(root, ".trash", x, xr.runId, "meta.yaml"))).toBe(
        replaceAll(sampleText(`.trash/${sampleX}/${sampleXR}/meta.yaml`), swap([[sampleX, x], [sampleXR, xr.runId]]))
      )
      expect((yield* mlflow.getRun(xr.runId)).info.lifecycleStage).toBe("deleted")
    }).pipe(Effect.provide(NodeContext.layer)))

  it.scoped("a server-written run (no user, generated name) has the same key set as the sample's runs", () =>
    Effect.gen(function*() {
      const { mlflow, root } = yield* openStore()
      const e = yield* mlflow.createExperiment("keys")
      const r = yield* mlflow.createRun({ experimentId: e })
      const ours = YAML.parse(yield* readText(join(root, e, r.runId, "meta.yaml"))) as Record<string, unknown>
      const theirs = YAML.parse(sampleText("635045208141978991/ac031fea88d54f2bb5907264154d4941/meta.yaml")) as Record<
        string,
        unknown
      >
      expect(Object.keys(ours)).toEqual(Object.keys(theirs))
      expect(ours).toMatchObject({
        user_id: "",
        status: 1,
        source_type: 4,
        tags: [],
        end_time: null,
        run_uuid: r.runId
      })
      expect(yield* readText(join(root, e, r.runId, "tags", "mlflow.runName"))).toBe(r.info.runName)
      expect(r.info.runName).toMatch(/^[a-z]+-[a-z]+-\d{1,3}$/)
    }).pipe(Effect.provide(NodeContext.layer)))

  it.scoped("names that YAML would read as other types, or not read plain, come back as the same strings", () =>
    Effect.gen(function*() {
      const { mlflow, root } = yield* openStore()
      const names = [
        "yes",
        "y",
        "on",
        "007",
        "0x1F",
        "1_000",
        "1:20",
        "-1",
        "3.0",
        ".5",
        "1e3",
        "+.inf",
        "null",
        "~",
        "<<",
        "=",
        "2024-01-01",
        "2001-12-14t21:59:43.10-05:00",
        "a: b",
        "a:",
        "? q",
        "- d",
        "-",
        "--- x",
        "...",
        "#x",
        "a #b",
        "[x]",
        "{y}",
        "a,b",
        "*s",
        "&a",
        "!b",
        "|c",
        ">d",
        "%p",
        "@at",
        "`t",
        "'q",
        "\"dq",
        "it's \"q\"",
        " lead",
        "trail ",
        "héllo wörld",
        "日本語",
        "emoji 😀",
        "a\u00a0nbsp",
        "tab\there",
        "multi\nline",
        "x\n",
        "cr\rx",
        "bell\u0007",
        "del\u007f",
        "bom\ufeffx",
        "back\\slash",
        "x".repeat(30) + " " + "y".repeat(60)
      ]
      const ids: Array<string> = []
      for (const name of names) {
        const id = yield* mlflow.createExperiment(name)
        ids.push(id)
        yield* mlflow.createRun({ experimentId: id, runName: name, userId: name })
      }
      // a rewrite (delete) reads and writes meta.yaml again; a second store reads only the files
      for (const id of ids.slice(0, 20)) yield* mlflow.deleteExperiment(id)
      const reread = yield* MlflowFileStore.make({ root })
      for (const [i, name] of names.entries()) {
        expect((yield* reread.getExperiment(ids[i]!)).name, JSON.stringify(name)).toBe(name)
        const [run] = yield* allRuns(reread, [ids[i]!])
        expect(run!.info, JSON.stringify(name)).toMatchObject({ runName: name, userId: name })
      }
    }).pipe(Effect.provide(NodeContext.layer)))

  it("meta.yaml quoting: what PyYAML 6 writes is read back, and written the same where it is one line", () => {
    // Each text is what `yaml.safe_dump({...}, default_flow_style=False, allow_unicode=True)` wrote (PyYAML 6.0.3).
    const long = `${"x".repeat(30)} ${"y".repeat(60)} ${"z".repeat(40)}`
    const pyyaml: ReadonlyArray<readonly [string, string]> = [
      [
        long,
        `name: ${"x".repeat(30)} ${"y".repeat(60)}\n  ${"z".repeat(40)}\ntags:\n  k: ${"x".repeat(30)} ${
          "y".repeat(60)
        }\n    ${"z".repeat(40)}\n`
      ],
      ["multi\n\nline\n", "name: 'multi\n\n\n  line\n\n  '\ntags:\n  k: 'multi\n\n\n    line\n\n    '\n"],
      ["tab\there", "name: \"tab\\there\"\ntags:\n  k: \"tab\\there\"\n"],
      ["it's \"q\"", "name: it's \"q\"\ntags:\n  k: it's \"q\"\n"],
      ["yes", "name: 'yes'\ntags:\n  k: 'yes'\n"],
      ["<<", "name: '<<'\ntags:\n  k: '<<'\n"],
      ["2024-01-01", "name: '2024-01-01'\ntags:\n  k: '2024-01-01'\n"]
    ]
    for (const [name, written] of pyyaml) {
      expect(MlflowFileStore.parseYaml("meta.yaml", written), JSON.stringify(name)).toEqual(
        Either.right({ name, tags: { k: name } })
      )
      const ours = MlflowFileStore.renderYaml({ tags: { k: name }, name })
      if (name.length < 80 && !name.includes("\n")) expect(ours).toBe(written)
      expect(MlflowFileStore.parseYaml("meta.yaml", ours)).toEqual(Either.right({ name, tags: { k: name } }))
    }
    // numbers, nulls and empty collections keep their types through a read-modify-write
    const meta = "end_time: null\nstart_time: 1700000001000\nstatus: 1\ntags: []\nx: 1.5\ny: 0x1F\n"
    const parsed = Either.getOrThrow(MlflowFileStore.parseYaml("meta.yaml", meta))
    expect(parsed).toMatchObject({ end_time: null, start_time: 1700000001000, status: 1, tags: [] })
    expect(MlflowFileStore.renderYaml(parsed)).toBe(meta)
  })
})

describe("MlflowFileStore: the one-line meta.yaml reader", () => {
  // The fast reader takes only the layout PyYAML writes on one line per value; whatever it takes, it must read as the
  // full parser does, and what it does not take goes to the full parser.
  const pieces = [
    "a",
    "A1",
    "x y",
    "-1",
    "-",
    "--x",
    "1_000",
    "0x1F",
    "07",
    "1.5",
    ".inf",
    "~",
    "null",
    "yes",
    "No",
    "on",
    "<<",
    "=",
    "2024-01-01",
    "12:30:45",
    "a:b",
    "a: b",
    "a #b",
    "a#b",
    "#",
    "'",
    "''",
    "\"",
    "it's",
    "[x]",
    "{x}",
    "[]",
    "{}",
    "&a",
    "*a",
    "!x",
    "|",
    ">",
    "%",
    "@",
    "`",
    "?",
    "? x",
    ": x",
    "---",
    "...",
    " ",
    "  a",
    "a ",
    "\t",
    "\u00A0",
    "\u0085",
    "\u2028",
    "\uFEFF",
    "é",
    "日本",
    "\u{1F600}",
    "\\",
    "/",
    "file:///tmp/x y/1",
    "\r",
    ","
  ]
  const strings: Array<string> = [...pieces]
  for (const a of pieces) for (const b of pieces.slice(0, 30)) strings.push(a + b, `${a} ${b}`)

  const agrees = (text: string) => {
    const simple = MlflowFileStore.parseSimpleYaml(text)
    if (simple === undefined) return
    expect(MlflowFileStore.parseYamlDocument("meta.yaml", text), JSON.stringify(text)).toEqual(Either.right(simple))
  }

  it("reads what renderYaml writes as the full parser reads it", () => {
    let taken = 0
    for (const s of strings) {
      const text = MlflowFileStore.renderYaml({ name: s, tags: { k: s, [s]: s }, list: [s, 1], n: 1, e: [], m: {} })
      agrees(text)
      if (MlflowFileStore.parseSimpleYaml(text) !== undefined) taken++
    }
    // most values are one-line plain or single-quoted: the fast reader takes them
    expect(taken).toBeGreaterThan(strings.length / 2)
  })

  it("takes nothing the full parser reads otherwise or refuses", () => {
    for (const s of strings) {
      agrees(`name: ${s}\n`)
      agrees(`${s}: v\n`)
      agrees(`tags:\n  ${s}: v\n`)
      agrees(`tags:\n  k: ${s}\nx: 1\n`)
      agrees(`l:\n- ${s}\n`)
      agrees(`l:\n  - ${s}\nn: 2\n`)
      agrees(`name: '${s}'\n`)
      agrees(`name: x\n${s}\n`)
    }
    for (
      const text of [
        "",
        "\n",
        "a\n",
        "a:\n",
        "a:\n  b:\n",
        "a: 1\na: 2\n",
        "a: 1",
        "a:\n    b: 1\n",
        "a:\n  b: 1\n    c: 2\n",
        "a: x\n  y\n",
        "- a\n",
        "a: [1]\n",
        "a: {b: 1}\n",
        "a:\n- x\n  - y\n",
        "a: 'x\n  y'\n",
        "a: !!str 1\n",
        "%YAML 1.1\n---\na: 1\n",
        "a: 1 # c\n",
        "a: 'x' \n",
        "a:  x\n",
        "a:\tx\n",
        " a: 1\n",
        "a: 1\n\nb: 2\n"
      ]
    ) agrees(text)
  })

  it("reads the sample's meta.yaml files (written by MLflow) without the full parser", () => {
    const metas = readdirSync(sampleDir, { recursive: true, encoding: "utf-8" }).filter((f) => f.endsWith("meta.yaml"))
    expect(metas.length).toBeGreaterThan(5)
    for (const rel of metas) {
      const text = sampleText(rel)
      expect(MlflowFileStore.parseSimpleYaml(text), rel).toBeDefined()
      agrees(text)
    }
  })
})

describe("MlflowFileStore: .trash, restore and the Default experiment", () => {
  it.scoped("delete moves the whole directory to .trash and marks active runs; restore brings all back", () =>
    Effect.gen(function*() {
      const fs = yield* FileSystem.FileSystem
      const { mlflow, root } = yield* openStore()
      const e = yield* mlflow.createExperiment("trash-me", { tags: [{ key: "k", value: "v" }] })
      const a = yield* mlflow.createRun({ experimentId: e, runName: "a" })
      const b = yield* mlflow.createRun({ experimentId: e, runName: "b" })
      yield* mlflow.uploadArtifact(a.info, "x.txt", text("x"))
      yield* mlflow.deleteRun(b.runId)
      yield* mlflow.deleteExperiment(e)
      expect(yield* fs.exists(join(root, e))).toBe(false)
      expect((yield* fs.readDirectory(join(root, ".trash", e))).sort()).toEqual(
        [a.runId, b.runId, "meta.yaml", "tags"].sort()
      )
      const metaA = YAML.parse(yield* readText(join(root, ".trash", e, a.runId, "meta.yaml"))) as Record<
        string,
        unknown
      >
      expect(metaA).toMatchObject({ lifecycle_stage: "deleted" })
      expect(typeof metaA["deleted_time"]).toBe("number")
      // artifacts of a run in .trash are still readable (its recorded path no longer exists)
      const inTrash = yield* mlflow.getRun(a.runId)
      expect(decode(yield* downloadBytes(inTrash.info, "x.txt").pipe(Effect.provideService(Mlflow, mlflow)))).toBe("x")
      expect(yield* Effect.flip(mlflow.createRun({ experimentId: e }))).toMatchObject({
        _tag: "MlflowApiError",
        status: 400
      })
      yield* mlflow.restoreExperiment(e)
      expect(yield* fs.exists(join(root, ".trash", e))).toBe(false)
      for (const r of [a, b]) {
        const meta = YAML.parse(yield* readText(join(root, e, r.runId, "meta.yaml"))) as Record<string, unknown>
        expect(meta["lifecycle_stage"]).toBe("active")
        expect("deleted_time" in meta).toBe(false)
      }
      const experimentMeta = YAML.parse(yield* readText(join(root, e, "meta.yaml"))) as Record<string, unknown>
      expect(experimentMeta).toMatchObject({ lifecycle_stage: "active", tags: { k: "v" } })
    }).pipe(Effect.provide(NodeContext.layer)))

  it.scoped("the Default experiment cannot be deleted (as MLflow's file store: 500 INTERNAL_ERROR)", () =>
    Effect.gen(function*() {
      const fs = yield* FileSystem.FileSystem
      const { mlflow, root } = yield* openStore()
      expect(yield* Effect.flip(mlflow.deleteExperiment("0"))).toMatchObject({
        _tag: "MlflowApiError",
        status: 500,
        errorCode: "INTERNAL_ERROR"
      })
      expect(yield* fs.exists(join(root, "0", "meta.yaml"))).toBe(true)
      expect(yield* Effect.flip(mlflow.restoreExperiment("0"))).toMatchObject({ _tag: "NotFound" })
    }).pipe(Effect.provide(NodeContext.layer)))
})

describe("MlflowFileStore: atomic writes", () => {
  it.scoped("no temporary file or directory is left behind, and failed creations leave nothing", () =>
    Effect.gen(function*() {
      const { mlflow, root } = yield* openStore()
      const e = yield* mlflow.createExperiment("atomic", { tags: [{ key: "a/b", value: "c" }] })
      const r = yield* mlflow.createRun({ experimentId: e, tags: [{ key: "x/y/z", value: "1" }] })
      yield* mlflow.setTags(r.runId, [{ key: "t1", value: "1" }, { key: "t2", value: "2" }])
      yield* mlflow.updateRun(r.runId, { status: "FAILED", endTime: 5 })
      yield* mlflow.uploadArtifact(r.info, "d/f.bin", text("f"))
      expect(yield* Effect.flip(mlflow.createExperiment("atomic"))).toMatchObject({ _tag: "AlreadyExists" })
      expect(yield* Effect.flip(mlflow.createExperiment("bad", { tags: [{ key: "bad key!", value: "" }] })))
        .toMatchObject({
          _tag: "InvalidInput"
        })
      yield* mlflow.deleteExperiment(e)
      yield* mlflow.restoreExperiment(e)
      const all = walkFiles(root)
      expect(all.filter((p) => p.includes(".forml-"))).toEqual([])
      expect(readdirSync(root).sort()).toEqual([".trash", "0", e].sort())
    }).pipe(Effect.provide(NodeContext.layer)))

  it.scoped("readers skip stray temporary files and directories (a crashed write)", () =>
    Effect.gen(function*() {
      const fs = yield* FileSystem.FileSystem
      const { mlflow, root } = yield* openStore()
      const e = yield* mlflow.createExperiment("stray")
      const r = yield* mlflow.createRun({ experimentId: e, runName: "real" })
      yield* mlflow.uploadArtifact(r.info, "kept.txt", text("k"))
      const stray = ".forml-tmp-0123456789abcdef"
      // a half-built experiment and run, a half-written tag and artifact
      yield* fs.makeDirectory(join(root, stray))
      yield* fs.writeFileString(join(root, stray, "meta.yaml"), yield* readText(join(root, e, "meta.yaml")))
      yield* fs.makeDirectory(join(root, e, stray))
      yield* fs.writeFileString(join(root, e, stray, "meta.yaml"), yield* readText(join(root, e, r.runId, "meta.yaml")))
      yield* fs.writeFileString(join(root, e, r.runId, "tags", stray), "half")
      yield* fs.writeFileString(join(root, e, r.runId, "artifacts", stray), "half")
      const reread = yield* MlflowFileStore.make({ root })
      expect((yield* allExperiments(reread, "ALL")).filter((x) => x.name === "stray").length).toBe(1)
      const runs = yield* allRuns(reread, [e])
      expect(runs.map((x) => x.runId)).toEqual([r.runId])
      expect(runs[0]!.tags.map((t) => t.key)).toEqual(["mlflow.runName"])
      expect((yield* reread.listArtifacts(r.info)).map((f) => f.path)).toEqual(["kept.txt"])
      expect(yield* Effect.flip(reread.getRun(stray))).toMatchObject({ _tag: "NotFound" })
      expect(yield* Effect.flip(reread.getExperiment(stray))).toMatchObject({ _tag: "NotFound" })
    }).pipe(Effect.provide(NodeContext.layer)))

  it.scopedLive("two stores on one root (as two processes) never create one name twice", () =>
    Effect.gen(function*() {
      const { mlflow: one, root } = yield* openStore()
      const two = yield* MlflowFileStore.make({ root })
      for (let round = 0; round < 5; round++) {
        const name = `race-${round}`
        const results = yield* Effect.all(
          [one, two, one, two].map((m) => Effect.either(m.createExperiment(name))),
          { concurrency: "unbounded" }
        )
        expect(results.filter(Either.isRight).length).toBe(1)
        for (const r of results.filter(Either.isLeft)) expect(r.left._tag).toBe("AlreadyExists")
      }
      const names = (yield* allExperiments(one, "ALL")).map((e) => e.name).filter((n) => n.startsWith("race-"))
      expect(names.sort()).toEqual(["race-0", "race-1", "race-2", "race-3", "race-4"])
      expect(existsSync(join(root, ".forml-create.lock"))).toBe(false)
    }).pipe(Effect.provide(NodeContext.layer)))

  it.scopedLive("creation waits for a held lock and breaks a stale one", () =>
    Effect.gen(function*() {
      const fs = yield* FileSystem.FileSystem
      const { mlflow, root } = yield* openStore()
      const lock = join(root, ".forml-create.lock")
      yield* fs.writeFileString(lock, "other process")
      const fiber = yield* Effect.fork(mlflow.createExperiment("waits"))
      yield* Effect.sleep("150 millis")
      expect(fiber.unsafePoll()).toBeNull()
      yield* fs.remove(lock)
      expect(yield* Fiber.join(fiber)).toMatch(/^\d{18}$/)
      yield* fs.writeFileString(lock, "crashed process")
      const old = new Date(Date.now() - 120_000)
      yield* fs.utimes(lock, old, old)
      expect(yield* mlflow.createExperiment("breaks")).toMatch(/^\d{18}$/)
      expect(yield* fs.exists(lock)).toBe(false)
    }).pipe(Effect.provide(NodeContext.layer)))
})

describe("MlflowFileStore: nothing outside the root", () => {
  it.scoped("ids and keys that would leave the root are NotFound or InvalidInput", () =>
    Effect.gen(function*() {
      const { mlflow } = yield* openStore()
      const e = yield* mlflow.createExperiment("confined")
      const r = yield* mlflow.createRun({ experimentId: e })
      for (const id of ["..", "../0", ".trash", "0/..", "", "/etc", "tags"]) {
        expect(yield* Effect.flip(mlflow.getExperiment(id)), id).toMatchObject({ _tag: "NotFound" })
        expect(yield* Effect.flip(mlflow.getRun(id)), id).toMatchObject({ _tag: "NotFound" })
      }
      expect(yield* Effect.flip(mlflow.getRun(`../${e}/${r.runId}`))).toMatchObject({ _tag: "NotFound" })
      for (const key of ["../x", "a/../../x", "/x", ".forml-tmp-00/x"]) {
        expect(yield* Effect.flip(mlflow.setTag(r.runId, key, "v")), key).toMatchObject({ _tag: "InvalidInput" })
      }
      expect(yield* Effect.flip(mlflow.createExperiment("x", { tags: [{ key: "../../x", value: "v" }] })))
        .toMatchObject({
          _tag: "InvalidInput"
        })
    }).pipe(Effect.provide(NodeContext.layer)))

  it.scoped("an artifact URI outside the root is not followed; symlinks out of the store are refused", () =>
    Effect.gen(function*() {
      const fs = yield* FileSystem.FileSystem
      const { mlflow, root } = yield* openStore()
      const outside = join(yield* tempDir, "outside")
      yield* fs.makeDirectory(outside)
      const e = yield* mlflow.createExperiment("links")
      const r = yield* mlflow.createRun({ experimentId: e })
      // a forged artifact URI: the run's own directory is used
      yield* mlflow.uploadArtifact(
        { runId: r.runId, artifactUri: LocalArtifacts.pathToFileUri(outside) },
        "f.txt",
        text("f")
      )
      expect(yield* fs.readDirectory(outside)).toEqual([])
      expect(yield* readText(join(root, e, r.runId, "artifacts", "f.txt"))).toBe("f")
      // artifacts/ and tags/ replaced by links to a directory outside
      const s = yield* mlflow.createRun({ experimentId: e })
      yield* fs.remove(join(root, e, s.runId, "artifacts"), { recursive: true })
      yield* fs.symlink(outside, join(root, e, s.runId, "artifacts"))
      expect((yield* Effect.flip(mlflow.uploadArtifact(s.info, "g.txt", text("g"))))._tag).toBe("StorageError")
      yield* fs.remove(join(root, e, s.runId, "tags"), { recursive: true })
      yield* fs.symlink(outside, join(root, e, s.runId, "tags"))
      expect((yield* Effect.flip(mlflow.setTag(s.runId, "t", "v")))._tag).toBe("StorageError")
      expect(yield* fs.readDirectory(outside)).toEqual([])
      // a scheme that is not local
      const proxied = { runId: r.runId, artifactUri: `mlflow-artifacts:/${e}/${r.runId}/artifacts` }
      expect(yield* Effect.flip(mlflow.listArtifacts(proxied))).toMatchObject({ _tag: "UnsupportedArtifactStore" })
    }).pipe(Effect.provide(NodeContext.layer)))
})
