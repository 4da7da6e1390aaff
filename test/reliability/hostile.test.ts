/**
 * Hostile and malformed input, as one table run on every store (Memory, Http on the emulator, FileStore): keys, tags,
 * manifests, packages, artifact names and ids that would escape a run or the store, filter values, content a hostile
 * writer left in the store, and server replies of the wrong shape. Each case fails with a typed error (its `_tag` is
 * checked) and writes nothing: the whole store is snapshot before and after.
 */
import type { FileSystem, Path } from "@effect/platform"
import { NodeContext } from "@effect/platform-node"
import type { Scope } from "effect"
import { Cause, Effect, Either, Exit, Layer, ManagedRuntime, Option, Stream } from "effect"
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import type { Emulator, HttpFault } from "../../emulator/index.js"
import { GenerationKey } from "../../src/asset/GenerationKey.js"
import { Package } from "../../src/asset/Package.js"
import { ProjectKey } from "../../src/asset/ProjectKey.js"
import { ReleaseKey } from "../../src/asset/ReleaseKey.js"
import { StateId } from "../../src/asset/StateId.js"
import { Tag } from "../../src/asset/Tag.js"
import * as Filter from "../../src/mlflow/Filter.js"
import { Mlflow } from "../../src/mlflow/Mlflow.js"
import type { RunInfo } from "../../src/mlflow/Mlflow.js"
import * as MlflowFileStore from "../../src/mlflow/MlflowFileStore.js"
import * as Directory from "../../src/registry/Directory.js"
import * as Layout from "../../src/registry/layout.js"
import { MlflowRegistry } from "../../src/registry/MlflowRegistry.js"
import { Registry } from "../../src/registry/Registry.js"
import { runCli } from "../support/processes.js"
import { rawZip } from "../support/zip.js"
import { bytes, helloworldZip, key, Probe, sha256, store, type StoreKind, trainedTag, treeSnapshot } from "./support.js"

// ---------------------------------------------------------------------------------------------------------------
// Hostile packages, built once as raw zips (a zip writer would refuse to write most of them)
// ---------------------------------------------------------------------------------------------------------------

const manifest = (name = "helloworld", version = "1") =>
  Buffer.from(`NAME = "${name}"\nVERSION = "${version}"\nPACKAGE = "hello.world"\nMODULES = {}`)

const pipeline = { name: "hello/world/pipeline.py", data: Buffer.from("x = 1\n") }

let scratch = ""
/** Writes a hostile package file (or directory) into the scratch directory and returns its path. */
const hostileFiles: Record<string, () => string> = {
  notZip: () => file("not-a-zip.4ml", Buffer.from("this is not a zip, but it ends in .4ml\n")),
  emptyFile: () => file("empty.4ml", Buffer.alloc(0)),
  zipSlip: () =>
    file(
      "slip.4ml",
      rawZip([{ name: "__4ml__.py", data: manifest() }, { name: "../evil.py", data: Buffer.from("x") }])
    ),
  absolute: () =>
    file(
      "absolute.4ml",
      rawZip([{ name: "__4ml__.py", data: manifest() }, { name: "/tmp/forml-evil.py", data: Buffer.from("x") }])
    ),
  backslash: () =>
    file(
      "backslash.4ml",
      rawZip([{ name: "__4ml__.py", data: manifest() }, { name: "..\\evil.py", data: Buffer.from("x") }])
    ),
  symlink: () =>
    file(
      "symlink.4ml",
      rawZip([{ name: "__4ml__.py", data: manifest() }, {
        name: "link",
        data: Buffer.from("/etc/passwd"),
        mode: 0o120777
      }])
    ),
  zipBomb: () =>
    file(
      "bomb.4ml",
      rawZip([{ name: "__4ml__.py", data: manifest() }, { name: "zeros.bin", data: Buffer.alloc(24 * 1024 * 1024) }])
    ),
  noManifest: () => file("no-manifest.4ml", rawZip([pipeline])),
  manifestNoVersion: () =>
    file(
      "no-version.4ml",
      rawZip([{
        name: "__4ml__.py",
        data: Buffer.from("NAME = \"helloworld\"\nPACKAGE = \"hello.world\"\nMODULES = {}")
      }, pipeline])
    ),
  manifestBadVersion: () =>
    file("bad-version.4ml", rawZip([{ name: "__4ml__.py", data: manifest("helloworld", "one point oh") }, pipeline])),
  manifestCode: () =>
    file(
      "code.4ml",
      rawZip([{ name: "__4ml__.py", data: Buffer.from(`import os\n${manifest()}\nNAME = os.getcwd()`) }, pipeline])
    ),
  manifestHuge: () =>
    file(
      "huge.4ml",
      rawZip([{
        name: "__4ml__.py",
        data: Buffer.concat([manifest(), Buffer.from(`\n# ${"x".repeat(2 * 1024 * 1024)}`)])
      }])
    ),
  manifestBadName: () =>
    file("bad-name.4ml", rawZip([{ name: "__4ml__.py", data: manifest("hello@world") }, pipeline])),
  dirNoManifest: () => {
    const dir = join(scratch, "dir-no-manifest")
    mkdirSync(join(dir, "hello"), { recursive: true })
    writeFileSync(join(dir, "hello", "x.py"), "x = 1\n")
    return dir
  },
  dirSymlinkOut: () => {
    const dir = join(scratch, "dir-symlink-out")
    mkdirSync(dir, { recursive: true })
    writeFileSync(join(dir, "__4ml__.py"), manifest())
    symlinkSync("/", join(dir, "root"))
    return dir
  }
}
const file = (name: string, data: Buffer): string => {
  const path = join(scratch, name)
  writeFileSync(path, data)
  return path
}
const hostile: Record<string, string> = {}

// ---------------------------------------------------------------------------------------------------------------
// The seeded store: a release, a good generation, and generations a hostile writer left
// ---------------------------------------------------------------------------------------------------------------

const REPOID = "hostile"
const project = key.project("helloworld")
const release = key.release("1")

interface Seeded {
  readonly releaseRun: RunInfo
  readonly goodState: StateId
  readonly tamperedState: StateId
}

/** A committed generation run written straight to MLflow, as a hostile or broken writer could leave one. */
const rawGeneration = (
  releaseRun: RunInfo,
  number: number,
  artifacts: ReadonlyArray<readonly [string, Uint8Array]>,
  tags: ReadonlyArray<{ readonly key: string; readonly value: string }> = []
) =>
  Effect.gen(function*() {
    const mlflow = yield* Mlflow
    const run = yield* mlflow.createRun({
      experimentId: releaseRun.experimentId,
      tags: Layout.generationTags(REPOID, releaseRun.runId, crypto.randomUUID())
    })
    for (const [name, data] of artifacts) yield* mlflow.uploadArtifact(run.info, name, data)
    yield* mlflow.setTags(run.runId, [...tags, { key: Layout.TAG.commit, value: String(number) }])
  })

const seed = Effect.scoped(Effect.gen(function*() {
  const mlflow = yield* Mlflow
  const registry = yield* MlflowRegistry.make({ repoid: REPOID })
  yield* registry.push(yield* Package.open(helloworldZip))
  const goodState = StateId.random()
  yield* registry.write(project, release, goodState, bytes("good state"))
  yield* registry.close(project, release, key.generation(1), trainedTag([goodState]))
  const experiment = yield* mlflow.getExperimentByName(`helloworld@${REPOID}`)
  const releaseRun = (yield* Stream.runCollect(mlflow.searchRuns({
    experimentIds: [experiment.experimentId],
    filter: Layout.releaseRuns(REPOID)
  }))).pipe((c) => [...c][0]!.info)
  yield* rawGeneration(releaseRun, 2, [["tag.toml", bytes("states = [\n")]])
  yield* rawGeneration(releaseRun, 3, [[
    "tag.toml",
    bytes("[training]\ntimestamp = 2024-01-01T00:00:00\nstates = [\"not-a-uuid\"]\n")
  ]])
  yield* rawGeneration(releaseRun, 4, [])
  const tamperedState = StateId.random()
  yield* rawGeneration(
    releaseRun,
    5,
    [["tag.toml", Tag.encodeBytes(trainedTag([tamperedState]))], [`${tamperedState}.bin`, bytes("tampered")]],
    [{ key: Layout.sha256Tag(`${tamperedState}.bin`), value: sha256(bytes("original")) }]
  )
  yield* rawGeneration(releaseRun, 6, [["tag.toml", new Uint8Array([0xff, 0xfe, 0x00, 0x41])]])
  return { releaseRun, goodState, tamperedState } satisfies Seeded
}))

// ---------------------------------------------------------------------------------------------------------------
// The table
// ---------------------------------------------------------------------------------------------------------------

type Env = Mlflow | Registry | Probe | FileSystem.FileSystem | Path.Path | Scope.Scope

interface Case {
  readonly name: string
  /** The `_tag` of the typed failure. */
  readonly tag: string
  readonly run: (seeded: Seeded, emulator: Option.Option<Emulator>) => Effect.Effect<unknown, unknown, Env>
  /** Only on these stores (default: all). */
  readonly only?: ReadonlyArray<StoreKind> | undefined
}

const releasesOf = (name: string) => Effect.flatMap(ProjectKey.parse(name), (p) => Directory.releases(p))
const tagOf = (version: string) => Effect.flatMap(ReleaseKey.parse(version), (r) => Directory.tag(project, r))
const generationOf = (g: string | number) =>
  Effect.flatMap(GenerationKey.parse(g), (n) => Directory.tag(project, release, n))
const readState = (sid: string, generation = 1) =>
  Effect.flatMap(
    StateId.parse(sid),
    (s) => Effect.flatMap(Registry, (r) => r.read(project, release, key.generation(generation), s))
  )
const decodeTag = (text: string | Uint8Array) => Either.map(Tag.decode(text), () => "decoded")
const pushFile = (name: string) =>
  Effect.flatMap(
    Effect.suspend(() => Package.open(hostile[name]!)),
    (pkg) => Effect.flatMap(Registry, (r) => r.push(pkg))
  )
const openGeneration = (n: number) => Effect.flatMap(Registry, (r) => r.open(project, release, key.generation(n)))
const withRegistry = (repoid: string, op: (r: Registry["Type"]) => Effect.Effect<unknown, unknown, Env>) =>
  Effect.flatMap(MlflowRegistry.make({ repoid }), op)
/** Answers the next request matching `match` with `body` (a 200), through the emulator. */
const reply = (emulator: Option.Option<Emulator>, match: HttpFault["match"], body: string) =>
  Effect.sync(() => Option.getOrThrow(emulator).fault({ status: 200, body, contentType: "application/json", match }))

const CASES: ReadonlyArray<Case> = [
  // keys
  { name: "project: empty", tag: "InvalidInput", run: () => releasesOf("") },
  { name: "project: holds @", tag: "InvalidInput", run: () => releasesOf("helloworld@other") },
  { name: "project: holds /", tag: "InvalidInput", run: () => releasesOf("hello/world") },
  { name: "project: ..", tag: "InvalidInput", run: () => releasesOf("..") },
  { name: "project: 300 characters", tag: "InvalidInput", run: () => releasesOf("p".repeat(300)) },
  { name: "project: a newline", tag: "InvalidInput", run: () => releasesOf("hello\nworld") },
  { name: "project: a NUL", tag: "InvalidInput", run: () => releasesOf("hello\u0000") },
  { name: "release: not PEP 440", tag: "InvalidInput", run: () => tagOf("one point oh") },
  { name: "release: empty", tag: "InvalidInput", run: () => tagOf("") },
  { name: "release: a path", tag: "InvalidInput", run: () => tagOf("1.0/../../2") },
  { name: "release: a dangling local part", tag: "InvalidInput", run: () => tagOf("1.0+") },
  { name: "generation: 0", tag: "InvalidInput", run: () => generationOf(0) },
  { name: "generation: -1", tag: "InvalidInput", run: () => generationOf(-1) },
  { name: "generation: 1.5", tag: "InvalidInput", run: () => generationOf(1.5) },
  { name: "generation: '1e3'", tag: "InvalidInput", run: () => generationOf("1e3") },
  { name: "generation: past 2^53", tag: "InvalidInput", run: () => generationOf("9007199254740993") },
  { name: "generation: not committed", tag: "NotFound", run: () => generationOf(99) },
  { name: "state id: not a UUID", tag: "InvalidInput", run: () => readState("not-a-uuid") },
  { name: "state id: a path", tag: "InvalidInput", run: () => readState("../../../etc/passwd") },
  { name: "state id: not in the generation", tag: "NotFound", run: () => readState(StateId.random()) },
  // tags
  {
    name: "close: a tag without a training timestamp",
    tag: "InvalidInput",
    run: () => Effect.flatMap(Registry, (r) => r.close(project, release, key.generation(7), Tag.empty))
  },
  {
    name: "close: a tag listing a state never written",
    tag: "NotFound",
    run: () =>
      Effect.flatMap(Registry, (r) => r.close(project, release, key.generation(7), trainedTag([StateId.random()])))
  },
  {
    name: "close: a release that does not exist",
    tag: "NotFound",
    run: () => Effect.flatMap(Registry, (r) => r.close(project, key.release("9.9"), key.generation(1), trainedTag([])))
  },
  { name: "tag: not TOML", tag: "InvalidTag", run: () => decodeTag("states = [") },
  { name: "tag: states is a string", tag: "InvalidTag", run: () => decodeTag("states = \"x\"") },
  { name: "tag: a state is not a UUID", tag: "InvalidTag", run: () => decodeTag("states = [\"not-a-uuid\"]") },
  { name: "tag: a state is a number", tag: "InvalidTag", run: () => decodeTag("states = [1]") },
  {
    name: "tag: a timestamp that is a string",
    tag: "InvalidTag",
    run: () => decodeTag("[training]\ntimestamp = \"now\"\nstates = []")
  },
  { name: "tag: [training] is a list", tag: "InvalidTag", run: () => decodeTag("training = [1]\nstates = []") },
  { name: "tag: a byte order mark", tag: "InvalidTag", run: () => decodeTag("\ufeffstates = []") },
  { name: "tag: not UTF-8", tag: "InvalidTag", run: () => decodeTag(new Uint8Array([0xff, 0xfe, 0x41])) },
  // what a hostile writer left in the store
  { name: "stored tag: not TOML", tag: "InvalidTag", run: () => openGeneration(2) },
  { name: "stored tag: a state that is not a UUID", tag: "InvalidTag", run: () => openGeneration(3) },
  { name: "stored tag: missing", tag: "Empty", run: () => openGeneration(4) },
  { name: "stored tag: not UTF-8", tag: "InvalidTag", run: () => openGeneration(6) },
  {
    name: "stored state: bytes other than its sha256",
    tag: "IntegrityError",
    run: (s) => readState(s.tamperedState, 5)
  },
  // manifests and packages
  { name: "package: not a zip", tag: "InvalidPackage", run: () => pushFile("notZip") },
  { name: "package: an empty file", tag: "InvalidPackage", run: () => pushFile("emptyFile") },
  { name: "package: zip-slip (../)", tag: "InvalidPackage", run: () => pushFile("zipSlip") },
  { name: "package: an absolute entry", tag: "InvalidPackage", run: () => pushFile("absolute") },
  { name: "package: a backslash entry", tag: "InvalidPackage", run: () => pushFile("backslash") },
  { name: "package: a symlink entry", tag: "InvalidPackage", run: () => pushFile("symlink") },
  { name: "package: a zip bomb", tag: "InvalidPackage", run: () => pushFile("zipBomb") },
  { name: "package: no manifest", tag: "InvalidPackage", run: () => pushFile("noManifest") },
  { name: "package: a directory without manifest", tag: "InvalidPackage", run: () => pushFile("dirNoManifest") },
  { name: "package: a directory linking out of itself", tag: "InvalidPackage", run: () => pushFile("dirSymlinkOut") },
  {
    name: "package: does not exist",
    tag: "InvalidPackage",
    run: () =>
      Effect.flatMap(Registry, (r) => Effect.flatMap(Package.open(join(scratch, "missing.4ml")), (pkg) => r.push(pkg)))
  },
  { name: "manifest: no VERSION", tag: "InvalidPackage", run: () => pushFile("manifestNoVersion") },
  { name: "manifest: a version that is not PEP 440", tag: "InvalidPackage", run: () => pushFile("manifestBadVersion") },
  { name: "manifest: code instead of literals", tag: "InvalidPackage", run: () => pushFile("manifestCode") },
  { name: "manifest: 2 MiB", tag: "InvalidPackage", run: () => pushFile("manifestHuge") },
  { name: "manifest: a name that is not a project", tag: "InvalidInput", run: () => pushFile("manifestBadName") },
  // artifact names and ids that would leave a run or the store
  ...[
    ["../escape.bin", "up"],
    ["/etc/forml-escape", "absolute"],
    ["a/../../b.bin", "through"],
    ["a\\..\\..\\b", "backslash"],
    ["a/./b", "dot"],
    ["", "empty"]
  ]
    .map(([name, label]): Case => ({
      name: `artifact upload: ${label} (${JSON.stringify(name)})`,
      tag: "InvalidInput",
      run: (s) => Effect.flatMap(Mlflow, (m) => m.uploadArtifact(s.releaseRun, name!, bytes("escape")))
    })),
  {
    name: "artifact download: ../../meta.yaml",
    tag: "InvalidInput",
    run: (s) => Effect.flatMap(Mlflow, (m) => Stream.runDrain(m.downloadArtifact(s.releaseRun, "../../meta.yaml")))
  },
  {
    name: "artifact listing: ..",
    tag: "InvalidInput",
    run: (s) => Effect.flatMap(Mlflow, (m) => m.listArtifacts(s.releaseRun, ".."))
  },
  {
    name: "tag key: ../../../meta.yaml",
    tag: "InvalidInput",
    run: (s) => Effect.flatMap(Mlflow, (m) => m.setTag(s.releaseRun.runId, "../../../meta.yaml", "x"))
  },
  {
    name: "tag keys: one bad key in a batch writes none",
    tag: "InvalidInput",
    run: (s) =>
      Effect.flatMap(
        Mlflow,
        (m) => m.setTags(s.releaseRun.runId, [{ key: "fine", value: "1" }, { key: "/abs", value: "2" }])
      )
  },
  { name: "run id: a path", tag: "NotFound", run: () => Effect.flatMap(Mlflow, (m) => m.getRun("../../0")) },
  {
    name: "experiment id: a path",
    tag: "NotFound",
    run: () => Effect.flatMap(Mlflow, (m) => m.getExperiment("../.."))
  },
  {
    name: "experiment name: empty",
    tag: "InvalidInput",
    run: () => Effect.flatMap(Mlflow, (m) => m.createExperiment(""))
  },
  // filter values
  {
    name: "repoid: both quote kinds, on a listing",
    tag: "InvalidInput",
    run: () => withRegistry(`it's "x"`, (r) => Stream.runDrain(r.projects))
  },
  {
    name: "repoid: both quote kinds, on a push",
    tag: "InvalidInput",
    run: () => withRegistry(`it's "x"`, (r) => Effect.flatMap(Package.open(helloworldZip), (pkg) => r.push(pkg)))
  },
  {
    name: "filter: a value with both quote kinds",
    tag: "InvalidInput",
    run: (s) =>
      Effect.flatMap(
        Mlflow,
        (m) =>
          Stream.runDrain(
            m.searchRuns({ experimentIds: [s.releaseRun.experimentId], filter: Filter.and(Filter.tag("k", `'"`)) })
          )
      )
  },
  // server replies of the wrong shape (through the emulator)
  ...([
    [
      "experiments/get-by-name: an id that is a number",
      "experiments/get-by-name",
      "{\"experiment\": {\"experiment_id\": 7, \"name\": \"x\"}}"
    ],
    ["runs/search: runs that is a string", "runs/search", "{\"runs\": \"none\"}"],
    ["runs/search: a run without info", "runs/search", "{\"runs\": [{\"data\": {}}]}"],
    [
      "runs/search: a tag without a key",
      "runs/search",
      "{\"runs\": [{\"info\": {\"run_id\": \"x\"}, \"data\": {\"tags\": [{\"value\": 1}]}}]}"
    ],
    ["experiments/get-by-name: an empty reply", "experiments/get-by-name", "{}"]
  ] as const).map(([name, path, body]): Case => ({
    name: `reply ${name}`,
    tag: "DecodeError",
    only: ["http"],
    run: (_, emulator) => Effect.zipRight(reply(emulator, { path }, body), Directory.generations(project, release))
  })),
  {
    name: "reply runs/get: a run of the wrong shape, on a pull",
    tag: "DecodeError",
    only: ["http"],
    run: (_, emulator) =>
      Effect.zipRight(
        reply(emulator, { path: "runs/get" }, "{\"run\": {\"info\": {\"run_id\": 1}}}"),
        Effect.flatMap(Registry, (r) => r.pull(project, release))
      )
  }
]

// ---------------------------------------------------------------------------------------------------------------
// The runs
// ---------------------------------------------------------------------------------------------------------------

beforeAll(() => {
  scratch = mkdtempSync(join(tmpdir(), "forml-hostile-"))
  for (const [name, make] of Object.entries(hostileFiles)) hostile[name] = make()
})
afterAll(() => rmSync(scratch, { recursive: true, force: true }))

it("the table has at least 40 cases, each named once", () => {
  expect(CASES.length).toBeGreaterThanOrEqual(40)
  expect(new Set(CASES.map((c) => c.name)).size).toBe(CASES.length)
})

// Through the CLI: the same input as arguments, on a file store, each one line on stderr and exit 1 (failure) or 2
// (bad usage), nothing on stdout, and nothing written.
describe("Hostile input through the CLI: one line, exit 1 or 2, nothing written", () => {
  it("on a file store", async () => {
    const root = join(scratch, "cli-mlruns")
    const runtime = ManagedRuntime.make(MlflowFileStore.layer({ root }).pipe(Layer.provideMerge(NodeContext.layer)))
    try {
      await runtime.runPromise(
        Effect.scoped(
          Effect.flatMap(
            MlflowRegistry.make({ repoid: REPOID }),
            (r) => Effect.flatMap(Package.open(helloworldZip), (pkg) => r.push(pkg))
          )
        )
      )
    } finally {
      await runtime.dispose()
    }
    const before = treeSnapshot(root)
    const cases: ReadonlyArray<readonly [ReadonlyArray<string>, 1 | 2]> = [
      [["list", "helloworld@other"], 2],
      [["list", "hello\nworld"], 2],
      [["list", "../../etc"], 2],
      [["list", "helloworld", "one point oh"], 2],
      [["show", "helloworld", "1", "0"], 2],
      [["show", "helloworld", "1", "-1"], 2],
      [["show", "helloworld", "1", "1.5"], 2],
      [["state", "helloworld", "1", "1", "../../etc/passwd"], 2],
      [["push", hostile["zipSlip"]!], 1],
      [["push", hostile["symlink"]!], 1],
      [["push", hostile["zipBomb"]!], 1],
      [["push", hostile["manifestHuge"]!], 1],
      [["push", hostile["manifestBadName"]!], 1],
      [["--repoid", `it's "x"`, "list"], 1]
    ]
    const results = await Promise.all(cases.map(([args]) => runCli(["--tracking-uri", root, ...args])))
    for (const [i, r] of results.entries()) {
      const [args, code] = cases[i]!
      const context = `${args.join(" ")}: exit ${r.code}, stdout ${JSON.stringify(r.stdout)}, stderr ${
        JSON.stringify(r.stderr)
      }`
      expect(r.code, context).toBe(code)
      expect(r.stdout, context).toBe("")
      expect(r.stderr.trim().split("\n"), context).toHaveLength(1)
      expect(r.stderr, context).not.toMatch(/\bat .*:\d+:\d+/)
    }
    expect(treeSnapshot(root)).toBe(before)
  }, 60_000)
})

for (const kind of ["memory", "http", "file"] as const) {
  describe(`Hostile input on ${kind}: a typed error, and nothing written`, () => {
    let runtime: ManagedRuntime.ManagedRuntime<Mlflow | Probe | FileSystem.FileSystem | Path.Path, never>
    let seeded: Seeded
    beforeAll(async () => {
      runtime = ManagedRuntime.make(store(kind) as Layer.Layer<Mlflow | Probe | FileSystem.FileSystem | Path.Path>)
      seeded = await runtime.runPromise(seed)
    }, 30_000)
    afterAll(() => runtime.dispose())

    for (const c of CASES.filter((c) => c.only === undefined || c.only.includes(kind))) {
      it(`${c.name}: ${c.tag}`, () =>
        runtime.runPromise(Effect.scoped(Effect.gen(function*() {
          const probe = yield* Probe
          const registry = yield* MlflowRegistry.make({ repoid: REPOID })
          const before = yield* probe.snapshot
          const exit = yield* Effect.exit(
            Effect.provideService(Effect.suspend(() => c.run(seeded, probe.emulator)), Registry, registry)
          )
          Option.map(probe.emulator, (e) => e.clearFaults())
          if (Exit.isSuccess(exit)) expect.fail(`succeeded with ${JSON.stringify(exit.value)}`)
          const failure = Cause.failureOption(exit.cause)
          if (Option.isNone(failure)) expect.fail(`not a typed failure: ${Cause.pretty(exit.cause)}`)
          expect(failure.value).toMatchObject({ _tag: c.tag })
          // the error reads as one line
          expect(String((failure.value as Error).message)).not.toMatch(/\n/)
          expect(yield* probe.snapshot).toBe(before)
        }))))
    }
  })
}
