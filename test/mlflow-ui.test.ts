/**
 * What MLflow's own UI shows of a registry after `forml-mlflow demo`: runs named for what they are, release runs
 * FINISHED with an end time, committed generations FINISHED with their ordinal and score as metrics and a
 * description. Checked through the REST API (the UI's own source) on the emulator, in the files of the file store
 * (as a real `mlflow server` over them reads them), and on the in-memory store.
 */
import { NodeContext } from "@effect/platform-node"
import { Effect, Layer, Option } from "effect"
import { readdirSync, readFileSync } from "node:fs"
import * as path from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { parse as parseYaml } from "yaml"
import { startEmulator } from "../emulator/index.js"
import * as Demo from "../src/cli/Demo.js"
import * as MlflowMemory from "../src/mlflow/MlflowMemory.js"
import { MlflowMemoryHandle } from "../src/mlflow/MlflowMemory.js"
import * as Layout from "../src/registry/layout.js"
import { MlflowRegistry } from "../src/registry/MlflowRegistry.js"
import { cli, isBuilt, tempDir } from "./support/cli.js"

/** One run as the UI lists it. */
interface Shown {
  readonly name: string
  readonly status: string
  readonly endTime: number | undefined
  readonly level: string | undefined
  readonly parent: string | undefined
  readonly runId: string
  readonly note: string | undefined
  readonly metrics: Readonly<Record<string, { readonly value: number; readonly step: number }>>
}

/** What the demo makes on an empty store, in start order: 0.1.0 with one generation, 0.2.0 with two. */
const EXPECTED = [
  { name: "forml-demo 0.1.0", level: "release" },
  { name: "forml-demo 0.1.0 · generation 1", level: "generation", ordinal: 100, score: 0.76 },
  { name: "forml-demo 0.2.0", level: "release" },
  { name: "forml-demo 0.2.0 · generation 1", level: "generation", ordinal: 100 },
  { name: "forml-demo 0.2.0 · generation 2", level: "generation", ordinal: 200, score: 0.77 }
] as const

const checkShown = (runs: ReadonlyArray<Shown>) => {
  expect(runs.map((r) => r.name)).toEqual(EXPECTED.map((e) => e.name))
  for (const [i, expected] of EXPECTED.entries()) {
    const run = runs[i]!
    expect(run.level, run.name).toBe(expected.level)
    // nothing stays "in progress": every run is FINISHED with an end time after its start
    expect(run.status, run.name).toBe("FINISHED")
    expect(run.endTime, run.name).toBeGreaterThan(0)
    expect(run.note, run.name).toMatch(expected.level === "release" ? /^ForML release / : /^ForML generation /)
    if (expected.level === "release") {
      expect(run.metrics, run.name).toEqual({})
      continue
    }
    // a generation is the child of its release run; its step is its number
    const release = runs.find((r) => r.name === expected.name.split(" · ")[0])!
    expect(run.parent).toBe(release.runId)
    const step = Number(expected.name.split(" ").at(-1))
    const metrics: Record<string, { value: number; step: number }> = {
      [Layout.METRIC.ordinal]: { value: expected.ordinal, step }
    }
    if ("score" in expected) metrics[Layout.METRIC.score] = { value: expected.score, step }
    expect(run.metrics, run.name).toEqual(metrics)
  }
}

// ---------------------------------------------------------------------------------------------------------------

interface WireRun {
  readonly info: { run_id: string; run_name: string; status: string; end_time?: number; start_time: number }
  readonly data: {
    readonly tags?: ReadonlyArray<{ key: string; value: string }>
    readonly metrics?: ReadonlyArray<{ key: string; value: number; step: number; timestamp: number }>
  }
}

const fromWire = (r: WireRun): Shown => {
  const tags = new Map((r.data.tags ?? []).map((t) => [t.key, t.value]))
  // the UI titles a run by run_info.run_name; the mlflow.runName tag must agree with it
  expect(tags.get(Layout.TAG.runName)).toBe(r.info.run_name)
  return {
    name: r.info.run_name,
    status: r.info.status,
    endTime: r.info.end_time,
    level: tags.get(Layout.TAG.level),
    parent: tags.get(Layout.TAG.parent),
    runId: r.info.run_id,
    note: tags.get(Layout.TAG.note),
    metrics: Object.fromEntries((r.data.metrics ?? []).map((m) => [m.key, { value: m.value, step: m.step }]))
  }
}

describe("what MLflow's UI shows after `forml-mlflow demo`", () => {
  const scratch = tempDir("forml-ui-")
  afterAll(() => scratch.remove())
  beforeAll(() => {
    if (!isBuilt()) throw new Error("dist/ is missing: run `npm run build` before these tests")
  })

  it(
    "on a server (the emulator), through the REST API the UI reads: runs/search and runs/get",
    () =>
      Effect.runPromise(Effect.scoped(Effect.gen(function*() {
        const emulator = yield* startEmulator()
        const result = yield* Effect.promise(() => cli(["--tracking-uri", emulator.url, "demo"], { cwd: scratch.dir }))
        expect(result.code, result.stderr).toBe(0)
        const api = `${emulator.url}/api/2.0/mlflow`
        const json = (url: string, body?: unknown) =>
          Effect.promise(async () => {
            const response = await fetch(
              url,
              body === undefined ? {} : {
                method: "POST",
                headers: { "content-type": "application/json" },
                body: JSON.stringify(body)
              }
            )
            expect(response.status, url).toBe(200)
            return (await response.json()) as Record<string, unknown>
          })
        const experiment = (yield* json(`${api}/experiments/get-by-name?experiment_name=forml-demo`))[
          "experiment"
        ] as { experiment_id: string }
        const found = (yield* json(`${api}/runs/search`, {
          experiment_ids: [experiment.experiment_id],
          order_by: ["attributes.start_time ASC"]
        }))["runs"] as ReadonlyArray<WireRun>
        const runs = found.map(fromWire)
        checkShown(runs)
        // a run opened on its own page says the same
        for (const run of runs) {
          const got = (yield* json(`${api}/runs/get?run_id=${run.runId}`))["run"] as WireRun
          expect(fromWire(got)).toEqual(run)
        }
        // the metric history the UI charts: one point per generation, at its number
        const history = (yield* json(
          `${api}/metrics/get-history?run_id=${runs[4]!.runId}&metric_key=${Layout.METRIC.score}`
        ))["metrics"] as ReadonlyArray<{ value: number; step: number }>
        expect(history.map((m) => [m.value, m.step])).toEqual([[0.77, 2]])
      }))),
    60_000
  )

  it("in the file store, as MLflow writes it: meta.yaml run_name, status 3, end_time; metrics files", async () => {
    const root = path.join(scratch.dir, "mlruns")
    const result = await cli(["--tracking-uri", root, "demo"], { cwd: scratch.dir })
    expect(result.code, result.stderr).toBe(0)
    const experimentDir = readdirSync(root)
      .map((e) => path.join(root, e))
      .find((dir) => {
        try {
          return (parseYaml(readFileSync(path.join(dir, "meta.yaml"), "utf-8")) as { name?: string }).name ===
            "forml-demo"
        } catch {
          return false
        }
      })!
    const runs: Array<Shown & { readonly start: number }> = []
    for (const id of readdirSync(experimentDir)) {
      const dir = path.join(experimentDir, id)
      if (!/^[0-9a-f]{32}$/.test(id)) continue
      const meta = parseYaml(readFileSync(path.join(dir, "meta.yaml"), "utf-8")) as {
        run_name: string
        status: number
        end_time: number | null
        start_time: number
      }
      const tag = (key: string) => {
        try {
          return readFileSync(path.join(dir, "tags", key), "utf-8")
        } catch {
          return undefined
        }
      }
      expect(tag(Layout.TAG.runName)).toBe(meta.run_name)
      const metrics: Record<string, { value: number; step: number }> = {}
      for (const key of readdirSync(path.join(dir, "metrics"))) {
        const text = readFileSync(path.join(dir, "metrics", key), "utf-8")
        // MLflow's line: "<timestamp> <value as Python prints a float> <step>\n"
        expect(text).toMatch(/^\d+ \d+\.\d+ \d+\n$/)
        const [, value, step] = text.trim().split(" ")
        metrics[key] = { value: Number(value), step: Number(step) }
      }
      runs.push({
        name: meta.run_name,
        status: meta.status === 3 ? "FINISHED" : String(meta.status),
        endTime: meta.end_time ?? undefined,
        level: tag(Layout.TAG.level),
        parent: tag(Layout.TAG.parent),
        runId: id,
        note: tag(Layout.TAG.note),
        metrics,
        start: meta.start_time
      })
    }
    runs.sort((a, b) => a.start - b.start || a.name.localeCompare(b.name))
    checkShown(runs)
    // the ordinal 100 is written as MLflow's file store writes a float
    const first = readFileSync(
      path.join(experimentDir, runs[1]!.runId, "metrics", Layout.METRIC.ordinal),
      "utf-8"
    )
    expect(first).toMatch(/^\d+ 100\.0 1\n$/)
  }, 60_000)

  it("on the in-memory store: names, status, end times and metrics", () =>
    Effect.runPromise(
      Effect.gen(function*() {
        yield* Demo.run()
        const handle = yield* MlflowMemoryHandle
        const snapshot = yield* handle.snapshot
        const runs = snapshot.runs.map((r): Shown => ({
          name: r.info.runName,
          status: r.info.status,
          endTime: r.info.endTime,
          level: Option.getOrUndefined(r.tag(Layout.TAG.level)),
          parent: Option.getOrUndefined(r.tag(Layout.TAG.parent)),
          runId: r.runId,
          note: Option.getOrUndefined(r.tag(Layout.TAG.note)),
          metrics: Object.fromEntries(
            (snapshot.metrics.get(r.runId) ?? []).map((m) => [m.key, { value: m.value, step: m.step }])
          )
        }))
        checkShown(runs)
      }).pipe(
        Effect.scoped,
        Effect.provide(MlflowRegistry.layer().pipe(Layer.provideMerge(MlflowMemory.layer()))),
        Effect.provide(NodeContext.layer)
      )
    ))
})
