/**
 * The built `forml-mlflow` command as a user runs it: every command against a temporary file store (text and JSON
 * output, exit codes, bad input), `npm start`, one run against the HTTP emulator, and the progress display.
 */
import { NodeContext } from "@effect/platform-node"
import { Chunk, Effect, Either, Exit, Option, Scope, Stream } from "effect"
import { randomBytes } from "node:crypto"
import { mkdirSync, readFileSync, writeFileSync } from "node:fs"
import { createServer } from "node:net"
import * as path from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { type Emulator, startEmulator } from "../emulator/index.js"
import { Manifest } from "../src/asset/Manifest.js"
import { Package } from "../src/asset/Package.js"
import type { StateId } from "../src/asset/StateId.js"
import * as Output from "../src/cli/Output.js"
import * as Progress from "../src/cli/Progress.js"
import * as Store from "../src/cli/Store.js"
import * as Values from "../src/cli/Values.js"
import * as Redact from "../src/internal/redact.js"
import * as ArtifactStore from "../src/mlflow/ArtifactStore.js"
import { Mlflow } from "../src/mlflow/Mlflow.js"
import * as MlflowMemory from "../src/mlflow/MlflowMemory.js"
import * as SqlUri from "../src/mlflow/sql/uri.js"
import { cli, type CliResult, isBuilt, repoRoot, runProgram, tempDir } from "./support/cli.js"

const run = <A>(effect: Effect.Effect<A, unknown, NodeContext.NodeContext>) =>
  Effect.runPromise(Effect.provide(effect, NodeContext.layer))

/** A package directory: `__4ml__.py` as ForML writes it, and one module. */
const packageDir = (dir: string, name: string, version: string): string => {
  const manifest = Either.getOrThrow(Manifest.make({ name, version, package: name, modules: {} }))
  mkdirSync(path.join(dir, name), { recursive: true })
  writeFileSync(path.join(dir, Manifest.FILENAME), Manifest.write(manifest))
  writeFileSync(path.join(dir, name, "__init__.py"), `VERSION = "${version}"\n`)
  return dir
}

/** A failure as the command must report it: exit `code`, nothing on stdout, one line on stderr, no stack trace. */
const expectFailure = (r: CliResult, code: 1 | 2, pattern: RegExp) => {
  const context = `exit ${r.code}, stderr: ${r.stderr}`
  expect(r.code, context).toBe(code)
  expect(r.out, context).toBe("")
  expect(r.stderr, context).toMatch(pattern)
  expect(r.stderr.trim().split("\n"), context).toHaveLength(1)
  expect(r.stderr, context).not.toMatch(/\n\s+at |Error: \{|FiberFailure/)
  if (code === 1) expect(r.stderr.startsWith("error: "), context).toBe(true)
}

interface ProjectRow {
  readonly name: string
  readonly releases: number
  readonly latest: string | null
}
interface ReleaseRow {
  readonly release: string
  readonly generations: number
  readonly latest: number | null
}
interface TagJson {
  readonly training: { readonly timestamp: string | null; readonly ordinal: unknown }
  readonly tuning: { readonly timestamp: string | null; readonly score: unknown }
  readonly states: ReadonlyArray<string>
}

/** The subprocess tests need the build (`npm test` builds first); without it they fail rather than skip. */
const requireBuild = () => {
  if (!isBuilt()) throw new Error("dist/cli/main.js is missing: run `npm run build` before these tests")
}

describe("forml-mlflow on a file store", () => {
  beforeAll(requireBuild)
  const tmp = tempDir()
  const store = path.join(tmp.dir, "mlruns")
  const fm = (...args: Array<string>) => cli(["--tracking-uri", store, ...args], { cwd: tmp.dir })
  afterAll(tmp.remove)

  it("demo fills an empty store, and runs again with the next patch release", async () => {
    const first = await fm("demo")
    expect(first.code, first.stderr).toBe(0)
    expect(first.stderr).toBe("")
    expect(first.out).toContain("forml-demo 0.1.0 with generations 1")
    expect(first.out).toContain("forml-demo 0.2.0 with generations 1, 2")
    const second = await fm("--json", "demo")
    expect(second.code, second.stderr).toBe(0)
    expect(second.json()).toEqual({ project: "forml-demo", releases: [{ release: "0.2.1", generations: [1, 2] }] })
  })

  it("lists, shows, reads states and pulls packages, as text and as JSON", async () => {
    const out = path.join(tmp.dir, "pulled.4ml")
    const stateFile = path.join(tmp.dir, "state.bin")
    const results = await Promise.all([
      fm("--json", "list"),
      fm("list", "forml-demo", "--json"),
      // global options are accepted after the command too
      cli(["list", "forml-demo", "0.2.0", "--json", "--tracking-uri", store], { cwd: tmp.dir }),
      fm("list", "forml-demo", "0.2.0"),
      fm("--json", "list", "forml-demo", "0.2.0", "2"),
      fm("--json", "show", "forml-demo"),
      fm("show", "forml-demo", "0.1.0", "1"),
      fm("state", "forml-demo", "0.2.0", "1", "1"),
      fm("--json", "state", "forml-demo", "0.2.0", "1", "-1", "-o", stateFile),
      fm("--json", "pull", "forml-demo", "0.2.0", "-o", out),
      fm("pull", "forml-demo")
    ])
    for (const r of results) expect(r.code, r.stderr).toBe(0)
    const [projects, releases, generations, generationsText, states, latest, shown, raw, toFile, pulled, pull] = results

    expect(projects!.json<{ projects: Array<ProjectRow> }>().projects).toEqual([
      { name: "forml-demo", releases: 3, latest: "0.2.1" }
    ])
    expect(releases!.json<{ project: string; releases: Array<ReleaseRow> }>()).toEqual({
      project: "forml-demo",
      releases: [
        { release: "0.1.0", generations: 1, latest: 1 },
        { release: "0.2.0", generations: 2, latest: 2 },
        { release: "0.2.1", generations: 2, latest: 2 }
      ]
    })

    const gens = generations!.json<{ release: string; generations: Array<TagJson & { generation: number }> }>()
    expect(gens.release).toBe("0.2.0")
    expect(gens.generations.map((g) => g.generation)).toEqual([1, 2])
    expect(gens.generations[0]!.training.ordinal).toBe(100)
    expect(gens.generations[0]!.tuning).toEqual({ timestamp: null, score: null })
    expect(gens.generations[1]!.tuning.score).toBe(0.77)
    expect(gens.generations.every((g) => g.states.length === 2 && g.training.timestamp !== null)).toBe(true)
    expect(generationsText!.out).toMatch(/^GENERATION\s+TRAINED\s+ORDINAL\s+TUNED\s+SCORE\s+STATES$/m)
    expect(generationsText!.out).toMatch(/^2\s+\S+\s+200\s+\S+\s+0\.77\s+2$/m)
    const st = states!.json<{ generation: number; states: Array<string> }>()
    expect(st.generation).toBe(2)
    expect(st.states).toEqual(gens.generations[1]!.states)

    // show: the latest release and generation by default
    expect(latest!.json()).toMatchObject({
      project: "forml-demo",
      release: "0.2.1",
      generation: 2,
      states: expect.any(Array)
    })
    expect(shown!.out).toMatch(/^generation\s+1$/m)
    expect(shown!.out).toMatch(/^ordinal\s+100$/m)
    expect(shown!.out).toMatch(/^states\s+2$/m)

    // state: raw bytes on stdout; by negative index into a file
    expect(JSON.parse(raw!.out)).toMatchObject({ release: "0.2.0", generation: 1, node: 1 })
    const written = toFile!.json<{ path: string; size: number; index: number; state: string }>()
    expect(written).toMatchObject({ path: stateFile, index: 1, state: gens.generations[0]!.states[1] })
    expect(readFileSync(stateFile).equals(raw!.stdout)).toBe(true)

    // pull: a .4ml that opens as the release's package; the latest into ./<project>-<release>.4ml by default
    expect(pulled!.json()).toMatchObject({ project: "forml-demo", release: "0.2.0", path: out })
    const pkg = await run(Package.open(out))
    expect(pkg.kind).toBe("zip")
    expect(pkg.manifest.name).toBe("forml-demo")
    expect(pkg.manifest.version.toString()).toBe("0.2.0")
    const defaultTarget = path.join(tmp.dir, "forml-demo-0.2.1.4ml")
    expect(pull!.out).toContain(defaultTarget)
    expect((await run(Package.open(defaultTarget))).manifest.version.toString()).toBe("0.2.1")
  })

  it("pushes directories and .4ml files, commits states as new generations", async () => {
    const dir = packageDir(path.join(tmp.dir, "pushed-src"), "pushed", "1.0")
    const zipSource = packageDir(path.join(tmp.dir, "pushed-src-1.1"), "pushed", "1.1")
    const zip = path.join(tmp.dir, "pushed-1.1.4ml")
    const manifest = Either.getOrThrow(Manifest.make({ name: "pushed", version: "1.1", package: "pushed" }))
    await run(Package.create(zipSource, manifest, zip))

    const p1 = await fm("--json", "push", dir)
    expect(p1.code, p1.stderr).toBe(0)
    expect(p1.json()).toEqual({ project: "pushed", release: "1.0" })
    const s1 = path.join(tmp.dir, "s1.bin")
    const s2 = path.join(tmp.dir, "s2.bin")
    writeFileSync(s1, randomBytes(3000))
    writeFileSync(s2, Buffer.concat([Buffer.from([0, 255, 10, 13]), randomBytes(70_000)]))
    const [p2, again, c0] = await Promise.all([
      fm("push", zip),
      fm("push", dir),
      fm("commit", "pushed", "1.0", s1, "--ordinal", "2024-01-02T03:04:05Z")
    ])
    expect(p2.code, p2.stderr).toBe(0)
    expect(p2.out.trim()).toBe("published pushed 1.1")
    expectFailure(again, 1, /not an increment/)
    expect(c0.code, c0.stderr).toBe(0)
    expect(c0.out).toBe("1\n")

    // without a release: the latest (1.1)
    const c1 = await fm("--json", "commit", "pushed", s1, s2, "--ordinal", "5", "--score", "0.9")
    expect(c1.code, c1.stderr).toBe(0)
    expect(c1.json()).toEqual({ project: "pushed", release: "1.1", generation: 1 })

    const [tag, second, tagOld] = await Promise.all([
      fm("--json", "show", "pushed"),
      fm("state", "pushed", "1.1", "1", "1"),
      fm("--json", "show", "pushed", "1.0", "1")
    ])
    const t = tag.json<TagJson & { release: string; generation: number }>()
    expect(t.release).toBe("1.1")
    expect(t.generation).toBe(1)
    expect(t.training.ordinal).toBe(5)
    expect(t.tuning.score).toBe(0.9)
    expect(t.tuning.timestamp).not.toBeNull()
    expect(t.states).toHaveLength(2)
    expect(second.stdout.equals(readFileSync(s2))).toBe(true)
    expect(tagOld.json<TagJson>().training.ordinal).toBe("2024-01-02T03:04:05+00:00")
  })

  it("reports bad input on one line: exit 1 for failures, 2 for bad usage", async () => {
    const notZip = path.join(tmp.dir, "not-a-package.4ml")
    writeFileSync(notZip, "hello")
    const [
      unknownProject,
      badVersion,
      unknownGeneration,
      badGeneration,
      unknownState,
      missingPackage,
      notAPackage,
      missingStateFile,
      badUri,
      unknownOption
    ] = await Promise.all([
      fm("list", "nope"),
      fm("list", "forml-demo", "1.0!x"),
      fm("show", "forml-demo", "0.1.0", "9"),
      fm("list", "forml-demo", "0.1.0", "abc"),
      fm("state", "forml-demo", "0.1.0", "1", "7"),
      fm("push", path.join(tmp.dir, "missing.4ml")),
      fm("push", notZip),
      fm("commit", "forml-demo", path.join(tmp.dir, "missing.bin")),
      cli(["--tracking-uri", "s3://bucket/path", "list"], { cwd: tmp.dir }),
      fm("list", "--bogus")
    ])
    expectFailure(unknownProject!, 1, /project not found: nope/)
    expectFailure(badVersion!, 2, /invalid release version "1\.0!x"/)
    expectFailure(unknownGeneration!, 1, /generation not found: forml-demo-0\.1\.0-9/)
    expectFailure(badGeneration!, 2, /invalid generation number "abc"/)
    expectFailure(unknownState!, 1, /state not found/)
    expectFailure(missingPackage!, 2, /missing\.4ml' must exist/)
    expectFailure(notAPackage!, 1, /invalid package/)
    expectFailure(missingStateFile!, 2, /state file not found/)
    expectFailure(badUri!, 1, /invalid TrackingUri "s3:\/\/bucket\/path"/)
    // an option the parser does not know is not looked up as a project name
    expectFailure(unknownOption!, 2, /unknown option "--bogus"/)
  })

  it("takes the store from MLFLOW_TRACKING_URI (a file: URI), else ./mlruns; --repoid keeps its own projects", async () => {
    const fresh = tempDir()
    try {
      const [fromEnv, team] = await Promise.all([
        cli(["--json", "list"], { cwd: fresh.dir, env: { MLFLOW_TRACKING_URI: `file://${store}` } }),
        cli(["--json", "--repoid", "team", "list"], { cwd: tmp.dir })
      ])
      // everything so far, nothing broken by the failed commands
      expect(fromEnv.json<{ projects: Array<ProjectRow> }>().projects.map((p) => p.name)).toEqual([
        "forml-demo",
        "pushed"
      ])
      // the default store is ./mlruns in the working directory (tmp.dir holds the store as ./mlruns), and another
      // virtual repository sees none of its projects
      expect(team.code, team.stderr).toBe(0)
      expect(team.json()).toEqual({ projects: [] })
    } finally {
      fresh.remove()
    }
  })

  it("npm start runs demo, then list", async () => {
    const target = tempDir()
    try {
      const npm = process.platform === "win32" ? "npm.cmd" : "npm"
      const r = await runProgram(npm, ["start", "--silent"], {
        cwd: repoRoot,
        env: { MLFLOW_TRACKING_URI: path.join(target.dir, "mlruns") }
      })
      expect(r.code, r.stderr).toBe(0)
      expect(r.out).toContain("published forml-demo 0.1.0 with generations 1")
      expect(r.out).toMatch(/^PROJECT\s+RELEASES\s+LATEST\nforml-demo\s+2\s+0\.2\.0\n$/m)
    } finally {
      target.remove()
    }
  })
})

describe("forml-mlflow on an MLflow server (emulator)", () => {
  const tmp = tempDir()
  const scope = Effect.runSync(Scope.make())
  let emulator: Emulator
  beforeAll(async () => {
    requireBuild()
    emulator = await Effect.runPromise(Scope.extend(startEmulator(), scope))
  })
  afterAll(async () => {
    await Effect.runPromise(Scope.close(scope, Exit.void))
    tmp.remove()
  })

  /** A port nothing listens on. */
  const closedPort = () =>
    new Promise<number>((resolve) => {
      const server = createServer()
      server.listen(0, "127.0.0.1", () => {
        const address = server.address()
        const port = typeof address === "object" && address !== null ? address.port : 1
        server.close(() => resolve(port))
      })
    })

  it("runs demo, list and state over HTTP; credentials are sent but never printed", async () => {
    const url = emulator.url
    const demo = await cli(["--tracking-uri", url, "--json", "demo"], { cwd: tmp.dir })
    expect(demo.code, demo.stderr).toBe(0)
    expect(demo.json()).toMatchObject({ releases: [{ release: "0.1.0" }, { release: "0.2.0" }] })

    const port = await closedPort()
    const [listed, state, unreachable] = await Promise.all([
      cli(["--json", "list", "forml-demo"], {
        cwd: tmp.dir,
        env: { MLFLOW_TRACKING_URI: url.replace("http://", "http://alice:s3cret-pw@") }
      }),
      cli(["--tracking-uri", url, "state", "forml-demo", "0.2.0", "2", "0"], { cwd: tmp.dir }),
      cli(["--tracking-uri", `http://bob:hunter2@127.0.0.1:${port}`, "list"], {
        cwd: tmp.dir,
        env: { MLFLOW_HTTP_REQUEST_MAX_RETRIES: "0", MLFLOW_TRACKING_PASSWORD: "hunter2" }
      })
    ])
    expect(listed.code, listed.stderr).toBe(0)
    expect(listed.json<{ releases: Array<ReleaseRow> }>().releases).toEqual([
      { release: "0.1.0", generations: 1, latest: 1 },
      { release: "0.2.0", generations: 2, latest: 2 }
    ])
    expect(listed.out + listed.stderr).not.toContain("s3cret")
    const basic = `Basic ${Buffer.from("alice:s3cret-pw").toString("base64")}`
    expect(emulator.requests().some((r) => r.headers.authorization === basic)).toBe(true)
    expect(JSON.parse(state.out)).toMatchObject({ release: "0.2.0", generation: 2, node: 0 })

    expectFailure(unreachable, 1, new RegExp(`MLflow at http://\\*\\*\\*@127\\.0\\.0\\.1:${port}.*ECONNREFUSED`))
    expect(unreachable.stderr).not.toContain("hunter2")
    expect(unreachable.stderr).not.toContain("bob")
  })
})

// ---------------------------------------------------------------------------------------------------------------
// In-process parts: store selection, redaction, progress
// ---------------------------------------------------------------------------------------------------------------

describe("tracking URIs, redaction and progress", () => {
  it("reads tracking URIs as file stores or servers", () => {
    expect(Store.parseTarget("http://host:5000/prefix")).toEqual(
      Either.right({ _tag: "Http", uri: "http://host:5000/prefix" })
    )
    expect(Store.parseTarget("file:///srv/mlruns")).toEqual(Either.right({ _tag: "FileStore", root: "/srv/mlruns" }))
    expect(Store.parseTarget("file:rel/mlruns", "/work")).toEqual(
      Either.right({ _tag: "FileStore", root: "/work/rel/mlruns" })
    )
    expect(Store.parseTarget("./mlruns", "/work")).toEqual(Either.right({ _tag: "FileStore", root: "/work/mlruns" }))
    const bad = Store.parseTarget("databricks://user:pw@x")
    expect(Either.isLeft(bad) && bad.left.message).toMatch(/invalid TrackingUri "databricks:\/\/\*\*\*@x"/)
    expect(Store.trackingUri(undefined, {})).toBe("./mlruns")
    expect(Store.trackingUri(undefined, { MLFLOW_TRACKING_URI: "http://a" })).toBe("http://a")
    expect(Store.trackingUri("x", { MLFLOW_TRACKING_URI: "http://a" })).toBe("x")
  })

  it("takes credentials out of messages", () => {
    expect(Output.redact("GET https://u:p@h/x failed", {})).toBe("GET https://***@h/x failed")
    expect(Output.redact("Authorization: Bearer abc.def", {})).toBe("Authorization: Bearer ***")
    expect(Output.redact("token tok-123 rejected", { MLFLOW_TRACKING_TOKEN: "tok-123" })).toBe("token *** rejected")
  })

  it("redacts with one rule and one mask in every layer", () => {
    expect(Redact.userInfo("http://bob:p@ss@host:5000/x")).toBe("http://***@host:5000/x")
    expect(Redact.password("postgresql://me:p@ss@h/db")).toBe("postgresql://me:***@h/db")
    expect(Redact.line("GET https://h/c?sig=abc&X-Amz-Signature=def\n  AccountKey=ghi;")).toBe(
      "GET https://h/c?sig=***&X-Amz-Signature=*** AccountKey=***;"
    )
    expect(ArtifactStore.scrub).toBe(Redact.line)
    expect(SqlUri.redactUri).toBe(Redact.password)
    expect(Store.describeTarget({ _tag: "Http", uri: "https://u:pw@host/" })).toBe(`https://${Redact.MASK}@host/`)
  })

  it("draws a status line for long transfers through the Mlflow service, and clears it", async () => {
    const writes: Array<string> = []
    let clock = 0
    const screen: Progress.Screen = {
      write: (text) => void writes.push(text),
      now: () => (clock += 50),
      delayMs: 100,
      intervalMs: 0
    }
    const size = 3 * 1024 * 1024
    const data = new Uint8Array(size).fill(7)
    const downloaded = await Effect.runPromise(
      Effect.gen(function*() {
        const mlflow = yield* Mlflow
        const id = yield* mlflow.createExperiment("progress")
        const created = yield* mlflow.createRun({ experimentId: id })
        const chunks = Stream.fromIterable(
          Array.from({ length: 6 }, (_, i) => data.subarray(i * size / 6, (i + 1) * size / 6))
        )
        yield* mlflow.uploadArtifact(created.info, "dir/big.bin", chunks)
        return yield* Stream.runCollect(mlflow.downloadArtifact(created.info, "dir/big.bin"))
      }).pipe(Effect.provide(Progress.layer(screen)), Effect.provide(MlflowMemory.layer()))
    )
    expect(Chunk.toReadonlyArray(downloaded).reduce((n, c) => n + c.length, 0)).toBe(size)
    const text = writes.join("")
    expect(text).toMatch(/uploading big\.bin {2}\d/)
    expect(text).toMatch(/downloading big\.bin {2}[\d.]+ MiB \/ 3\.00 MiB {2}\d+%/)
    expect(writes.at(-1)).toBe("\r\x1b[2K")
    expect(Progress.formatBytes(512)).toBe("512 B")
    expect(Progress.formatBytes(1536)).toBe("1.50 KiB")
    expect(Progress.formatProgress("x", 512, Option.some(1024), 1000)).toBe("x  512 B / 1.00 KiB  50%  512 B/s")
  })

  it("reads state references and ordinals", () => {
    const sids = ["a", "b", "c"] as unknown as ReadonlyArray<StateId>
    const ref = (s: string) => Either.getOrThrow(Values.parseStateRef(s))
    expect(Values.pickState(sids, ref("0"))).toEqual(Option.some([0, "a"]))
    expect(Values.pickState(sids, ref("-1"))).toEqual(Option.some([2, "c"]))
    expect(Values.pickState(sids, ref("3"))).toEqual(Option.none())
    expect(Values.pickState(sids, ref("-4"))).toEqual(Option.none())
    expect(Either.isLeft(Values.parseStateRef("zz"))).toBe(true)
    expect(Values.parseOrdinal("42")).toBe(42n)
    expect(Values.parseOrdinal("0.5")).toBe(0.5)
    expect(Values.parseOrdinal("true")).toBe(true)
    expect(Values.parseOrdinal("batch-7")).toBe("batch-7")
    expect(Values.tomlJson(Values.parseOrdinal("2024-01-02T03:04:05"))).toBe("2024-01-02T03:04:05")
    expect(Values.tomlJson(2n ** 60n)).toBe("1152921504606846976")
    expect(Values.tomlJson(Number.NaN)).toBe("NaN")
  })

  it("a short transfer draws nothing", () => {
    const writes: Array<string> = []
    const m = Progress.meter(
      { write: (t) => void writes.push(t), now: () => 0, delayMs: 300, intervalMs: 100 },
      "x",
      Option.none()
    )
    m.add(10)
    m.finish()
    expect(writes).toEqual([])
  })
})
