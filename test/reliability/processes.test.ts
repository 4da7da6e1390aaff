/**
 * Crashes and concurrent writers across OS processes (test/support/worker.ts): a process killed between writing states
 * and closing leaves no visible generation, a kill during push leaves no release without its package, the file store
 * survives kills at any point, and 8 processes pushing, writing and closing at once leave one release run, generations
 * 1..N and every state readable with its sha256.
 */
import { Effect, Exit, Option } from "effect"
import { readdirSync, readFileSync, statSync } from "node:fs"
import { join } from "node:path"
import { describe, expect, it } from "vitest"
import YAML from "yaml"
import { Package } from "../../src/asset/Package.js"
import { StateId } from "../../src/asset/StateId.js"
import { Mlflow } from "../../src/mlflow/Mlflow.js"
import * as MlflowFileStore from "../../src/mlflow/MlflowFileStore.js"
import { MlflowRegistry } from "../../src/registry/MlflowRegistry.js"
import {
  type CliResult,
  type Event,
  type Plan,
  runCli,
  startWorker,
  type Worker,
  workerScript
} from "../support/processes.js"
import {
  bytes,
  expectConvergedWriters,
  helloworldZip,
  key,
  Probe,
  readBack,
  store,
  trainedTag,
  unboundRuns,
  unique
} from "./support.js"

type Committed = Extract<Event, { event: "committed" }>

const plan = (repoid: string, root: Option.Option<string>, steps: Plan["steps"]): Plan => ({
  store: Option.match(root, {
    onNone: () => ({ kind: "http" as const }),
    onSome: (r) => ({ kind: "file" as const, root: r })
  }),
  repoid,
  project: "helloworld",
  release: "1",
  steps
})

/** The worker's environment for a store: MLflow's variables for the emulator, nothing for a file store. */
const envOf = (probe: Probe, extra: Record<string, string> = {}): Record<string, string> =>
  Option.match(probe.emulator, {
    onNone: () => ({}),
    onSome: (e) => ({ MLFLOW_TRACKING_URI: e.url, MLFLOW_HTTP_REQUEST_BACKOFF_JITTER: "0", ...extra })
  })

/** The CLI's store option: the file store's root (the emulator is reached through MLFLOW_TRACKING_URI). */
const cliStore = (probe: Probe): Record<string, string> =>
  Option.match(probe.root, { onNone: () => ({}), onSome: (root) => ({ MLFLOW_TRACKING_URI: root }) })

const promise = <A>(f: () => Promise<A>) => Effect.promise(f)

const pause = (ms: number) => promise(() => new Promise((r) => setTimeout(r, ms)))

const pushStep = { op: "push", package: helloworldZip } as const

/** Pushes helloworld 1 and commits generation 1 (with a registry instance of its own). */
const pushed = (repoid: string) =>
  Effect.scoped(Effect.gen(function*() {
    const registry = yield* MlflowRegistry.make({ repoid })
    yield* registry.push(yield* Package.open(helloworldZip))
    const sid = StateId.random()
    yield* registry.write(key.project("helloworld"), key.release("1"), sid, bytes("generation 1"))
    yield* registry.close(key.project("helloworld"), key.release("1"), key.generation(1), trainedTag([sid]))
  }))

// the bundle is built (or found) once, before the timed tests
it("bundles the worker", async () => {
  expect(await workerScript()).toMatch(/worker-[0-9a-f]{16}\.mjs$/)
}, 60_000)

// ---------------------------------------------------------------------------------------------------------------
// Crashes
// ---------------------------------------------------------------------------------------------------------------

describe("Crashes", () => {
  for (const kind of ["http", "file"] as const) {
    it(
      `a process killed between writing states and closing leaves no visible generation (${kind})`,
      () =>
        Effect.runPromise(
          Effect.gen(function*() {
            const probe = yield* Probe
            const repoid = unique("crash")
            yield* pushed(repoid)
            const worker = yield* promise(() =>
              startWorker(
                plan(repoid, probe.root, [{ op: "write", states: 3, size: 512 }, { op: "hang" }]),
                envOf(probe)
              )
            )
            const wrote = yield* promise(() => worker.waitFor((e) => e.event === "wrote"))
            yield* promise(() => worker.waitFor((e) => e.event === "hang"))
            yield* promise(() => worker.kill())
            expect((yield* promise(() => worker.exited)).signal).toBe("SIGKILL")
            // the release reads back whole, with generation 1 only
            const back = yield* readBack(repoid)
            expect(back).toHaveLength(1)
            expect(back[0]!.releases.map((r) => [r.release, r.generations.map((g) => g.generation)])).toEqual([["1", [
              1
            ]]])
            // the training is an orphaned unbound run holding the states, which gc can find
            const orphans = yield* unboundRuns(`helloworld@${repoid}`, repoid)
            expect(orphans).toHaveLength(1)
            const mlflow = yield* Mlflow
            const files = (yield* mlflow.listArtifacts(orphans[0]!.info)).map((f) => f.path).sort()
            expect(files).toEqual(
              (wrote as Extract<Event, { event: "wrote" }>).states.map(([sid]) => `${sid}.bin`).sort()
            )

            // gc (on the file store; it works through the Mlflow service alike on every store) lists it in a dry run,
            // the default, and deletes it with --no-dry-run; the generation stays
            if (kind === "file") {
              const gc = (...args: ReadonlyArray<string>) =>
                promise(() =>
                  runCli(["--json", "--repoid", repoid, "gc", ...args], { ...envOf(probe), ...cliStore(probe) })
                )
              const json = (r: CliResult) =>
                JSON.parse(r.stdout) as { dryRun: boolean; orphans: Array<{ runId: string }>; deleted: Array<string> }
              const listed = yield* gc("--older-than", "0")
              expect(listed.code, listed.stderr).toBe(0)
              expect(json(listed)).toMatchObject({ dryRun: true, orphans: [{ runId: orphans[0]!.runId }], deleted: [] })
              const deleted = yield* gc("--older-than", "0", "--no-dry-run")
              expect(json(deleted)).toMatchObject({ dryRun: false, deleted: [orphans[0]!.runId] })
              expect(yield* unboundRuns(`helloworld@${repoid}`, repoid)).toEqual([])
              expect(yield* readBack(repoid)).toEqual(back)
            }
          }).pipe(Effect.scoped, Effect.provide(store(kind)))
        ),
      60_000
    )
  }

  // The release run is created before the package is uploaded; it must not list until the package is there.
  it(
    "a process killed during push leaves no release that lists without a package (http)",
    () =>
      Effect.runPromise(
        Effect.gen(function*() {
          const probe = yield* Probe
          const emulator = Option.getOrThrow(probe.emulator)
          const repoid = unique("crash")
          // push creates the experiment and the release run, then searches to converge: that search is held, and the
          // process killed while it waits, after the run was created and before the package is uploaded
          emulator.fault({ delayMs: 1500, match: { path: "runs/search" } })
          const worker = yield* promise(() => startWorker(plan(repoid, probe.root, [pushStep]), envOf(probe)))
          const held = () => emulator.requests().some((r) => r.status === 0 && r.path.includes("runs/search"))
          for (let i = 0; i < 3000 && !held(); i++) yield* pause(5)
          yield* promise(() => worker.kill())
          expect(emulator.count({ path: "runs/create" })).toBe(1)
          expect(emulator.count({ method: "PUT" })).toBe(0)
          // the held search is answered (to nobody) before the store is read back
          for (let i = 0; i < 400 && held(); i++) yield* pause(5)
          const back = yield* Effect.exit(readBack(repoid))
          // either no release, or one whose package pulls
          expect(Exit.isSuccess(back)).toBe(true)
        }).pipe(Effect.scoped, Effect.provide(store("http")))
      ),
    60_000
  )

  it(
    "the file store survives kills at any point: everything reported committed reads back, no half-written file",
    () =>
      Effect.runPromise(
        Effect.gen(function*() {
          const probe = yield* Probe
          const root = Option.getOrThrow(probe.root)
          const repoid = unique("kill")
          const committed: Array<Committed> = []
          const delays = [200, 600, 1000]
          for (const [round, delay] of delays.entries()) {
            const worker: Worker = yield* promise(() =>
              startWorker(
                plan(repoid, probe.root, [pushStep, { op: "train", states: 3, size: 2048, count: 1000 }]),
                envOf(probe)
              )
            )
            yield* promise(() => worker.waitFor((e) => e.event === "start"))
            // on a slow machine the earlier kills may all land before a commit: the last round then lets one commit
            // first, so that some kill lands while committed work is there to be read back
            if (round === delays.length - 1 && committed.length === 0) {
              yield* promise(() => worker.waitFor((e) => e.event === "committed"))
            }
            yield* pause(delay)
            yield* promise(() => worker.kill())
            committed.push(...worker.events.filter((e): e is Committed => e.event === "committed"))
            // a fresh file store instance on the root reads back whole after every kill
            const back = yield* Effect.provide(readBack(repoid), MlflowFileStore.layer({ root }))
              .pipe(Effect.mapError((e) => new Error(`after kill ${round}: ${e.message}`)))
            const generations = back.flatMap((p) => p.releases.flatMap((r) => r.generations))
            for (const c of committed) {
              expect(generations.find((g) => g.generation === c.generation)?.states).toEqual(c.states)
            }
            const half = halfWritten(root)
            expect(
              half,
              `after kill ${round}: ${half.map((f) => `${f} = ${JSON.stringify(readFileSync(f, "utf-8"))}`).join("; ")}`
            ).toEqual([])
          }
          // the kills landed while work was going on
          expect(committed.length).toBeGreaterThan(0)
        }).pipe(Effect.scoped, Effect.provide(store("file")))
      ),
    60_000
  )
})

/**
 * Files a reader would take for data that are not whole: a `meta.yaml` that is not a YAML mapping, or a tag of this
 * library whose value cannot be complete (sha256 tags are 64 hex digits, or empty for a package not yet uploaded;
 * commit tags a number or a version).
 * Temporary names (`.forml-tmp-*`) are skipped, as readers skip them.
 */
const halfWritten = (root: string): ReadonlyArray<string> => {
  const bad: Array<string> = []
  const walk = (dir: string) => {
    for (const name of readdirSync(dir)) {
      if (name.startsWith(".forml-tmp-")) continue
      const full = join(dir, name)
      if (statSync(full).isDirectory()) {
        walk(full)
        continue
      }
      const text = readFileSync(full, "utf-8")
      if (name === "meta.yaml") {
        const parsed: unknown = YAML.parse(text)
        if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) bad.push(full)
      } else if (full.includes(`${join("tags", "forml.sha256.")}`) && !/^[0-9a-f]{64}$/.test(text)) {
        // the package's is empty from the creation of its release run until the package is uploaded
        if (!(name === "forml.sha256.package.4ml" && text === "")) bad.push(full)
      } else if (full.endsWith(join("tags", "mlflow.source.git.commit")) && !/^[0-9][0-9a-z.+!]*$/.test(text)) {
        bad.push(full)
      }
    }
  }
  walk(root)
  return bad
}

// ---------------------------------------------------------------------------------------------------------------
// Concurrent writers
// ---------------------------------------------------------------------------------------------------------------

const WRITERS = 8

describe("Concurrent writers", () => {
  for (const kind of ["http", "file"] as const) {
    it(
      `${WRITERS} processes push one release, write states and close generations at once (${kind})`,
      () =>
        Effect.runPromise(
          Effect.gen(function*() {
            const probe = yield* Probe
            const repoid = unique("race")
            const workers = yield* promise(() =>
              Promise.all(
                Array.from(
                  { length: WRITERS },
                  () =>
                    startWorker(
                      plan(repoid, probe.root, [pushStep, { op: "train", states: 2, size: 1024 }]),
                      envOf(probe)
                    )
                )
              )
            )
            const exits = yield* promise(() => Promise.all(workers.map((w) => w.exited)))
            for (const [i, exit] of exits.entries()) expect(exit.code, workers[i]!.output()).toBe(0)
            const reported = workers.flatMap((w) => w.events.filter((e): e is Committed => e.event === "committed"))
            expectConvergedWriters(yield* readBack(repoid), reported, WRITERS)
          }).pipe(Effect.scoped, Effect.provide(store(kind)))
        ),
      60_000
    )
  }
})
