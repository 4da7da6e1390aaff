/**
 * The benchmark (`npm run bench -- [scenario...] [options]`): registry lifecycle, artifact transfer, many states with
 * bounded concurrency, a large listing and streaming memory, each against its floor of bare fetch requests to the same
 * server (the test emulator in a child process, or MLFLOW_TRACKING_URI's server). Prints one table, writes it as JSON.
 */
import { spawn } from "node:child_process"
import { randomUUID } from "node:crypto"
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises"
import { tmpdir } from "node:os"
import { dirname, join, resolve } from "node:path"
import { fileURLToPath } from "node:url"
import { parseArgs } from "node:util"
import { largePackage, payloads, smallPackage } from "./fixtures.js"
import { floor, library, type LifecycleInput, type LifecycleRun, PHASES } from "./lifecycle.js"
import { machine, type Row, row, table } from "./report.js"
import { cpu, listing, start, states, transfer } from "./scenarios.js"
import { compare, median, percentile } from "./stats.js"
import { streamS3Figures } from "./stream-s3.js"
import type { StreamFigures, StreamSettings } from "./stream.js"
import { STREAM_PHASES, type StreamPhase } from "./stream.js"
import { connect, EMULATOR_ENV, type Target } from "./target.js"

const SCENARIOS = [
  "lifecycle",
  "transfer",
  "states",
  "listing",
  "streaming",
  "streaming-s3",
  "streaming-azure",
  "cpu",
  "start"
] as const
type Scenario = (typeof SCENARIOS)[number]

const USAGE = `usage: npm run bench -- [${SCENARIOS.join("|")} ...] [options]

  (no scenario: all of them)
  --runs N            measured runs per figure (default 5, at least 5 for the table's p95)
  --warmup N          unmeasured runs first (default 1)
  --states N          lifecycle: states per generation (default 10)
  --state-size BYTES  lifecycle: bytes per state (default 100000)
  --generations N     lifecycle: generations (default 3)
  --concurrency N     requests in flight where the scenario allows (default 8)
  --writers W         lifecycle: the registry's writers option, many (default) or one (no convergence searches)
  --transfer-size B   transfer: artifact bytes (default 50 MiB)
  --many N            states: how many states (default 100)
  --many-size B       states: bytes per state (default 100000)
  --listing N         listing: generations of the release (default 10000)
  --stream-state B    streaming: state bytes (default 256 MiB)
  --stream-package B  streaming: package bytes (default 256 MiB; 1 GiB with --large)
  --stream-runs N     streaming: runs of each side (default 1: its figure is the peak RSS)
  --calls N           cpu: sequential calls of each kind on each side (default 1000)
  --large             streaming (and streaming-s3, streaming-azure) with a 1 GiB package
  --json              print the results as one JSON object instead of the table
  --out PATH          where the JSON goes (default bench/results.json)

Sizes take a suffix: k, M, G (powers of 1000) or KiB, MiB, GiB.
Against a real server: MLFLOW_TRACKING_URI (and MLflow's other variables) set; the default is the emulator.`

const parseSize = (text: string): number => {
  const m = /^(\d+(?:\.\d+)?)\s*(k|m|g|kb|mb|gb|kib|mib|gib)?$/i.exec(text.trim())
  if (m === null) throw new Error(`not a size: ${text}`)
  const unit = (m[2] ?? "").toLowerCase()
  const scale: Record<string, number> = {
    "": 1,
    k: 1e3,
    kb: 1e3,
    m: 1e6,
    mb: 1e6,
    g: 1e9,
    gb: 1e9,
    kib: 1024,
    mib: 1024 ** 2,
    gib: 1024 ** 3
  }
  return Math.round(Number(m[1]) * scale[unit]!)
}

const parseCount = (text: string, least = 1): number => {
  const n = Number(text)
  if (!Number.isInteger(n) || n < least) throw new Error(`not a whole number >= ${least}: ${text}`)
  return n
}

const MiB = 1024 * 1024

const options = () => {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: {
      runs: { type: "string", default: "5" },
      warmup: { type: "string", default: "1" },
      states: { type: "string", default: "10" },
      "state-size": { type: "string", default: "100000" },
      generations: { type: "string", default: "3" },
      concurrency: { type: "string", default: "8" },
      writers: { type: "string", default: "many" },
      "transfer-size": { type: "string", default: String(50 * MiB) },
      many: { type: "string", default: "100" },
      "many-size": { type: "string", default: "100000" },
      listing: { type: "string", default: "10000" },
      "stream-state": { type: "string", default: String(256 * MiB) },
      "stream-package": { type: "string" },
      "stream-runs": { type: "string" },
      calls: { type: "string", default: "1000" },
      large: { type: "boolean", default: false },
      json: { type: "boolean", default: false },
      out: { type: "string", default: "bench/results.json" },
      help: { type: "boolean", default: false }
    }
  })
  const unknown = positionals.filter((p) => !(SCENARIOS as ReadonlyArray<string>).includes(p))
  if (values.help || unknown.length > 0) {
    if (unknown.length > 0) process.stderr.write(`unknown scenario: ${unknown.join(", ")}\n`)
    process.stderr.write(`${USAGE}\n`)
    process.exit(values.help ? 0 : 2)
  }
  const runs = parseCount(values.runs)
  if (values.writers !== "many" && values.writers !== "one") {
    process.stderr.write(`--writers: many or one, not ${values.writers}\n${USAGE}\n`)
    process.exit(2)
  }
  const writers: "many" | "one" = values.writers
  return {
    scenarios: (positionals.length === 0 ? [...SCENARIOS] : positionals) as ReadonlyArray<Scenario>,
    runs,
    warmup: parseCount(values.warmup, 0),
    states: parseCount(values.states),
    stateSize: parseSize(values["state-size"]),
    generations: parseCount(values.generations),
    concurrency: parseCount(values.concurrency),
    writers,
    transferSize: parseSize(values["transfer-size"]),
    many: parseCount(values.many),
    manySize: parseSize(values["many-size"]),
    listing: parseCount(values.listing, 0),
    streamState: parseSize(values["stream-state"]),
    streamPackage: values["stream-package"] !== undefined
      ? parseSize(values["stream-package"])
      : values.large
      ? 1024 * MiB
      : 256 * MiB,
    // the streaming figures are about memory: one run of each side keeps the default run short
    streamRuns: values["stream-runs"] !== undefined ? parseCount(values["stream-runs"]) : 1,
    calls: parseCount(values.calls),
    json: values.json,
    out: resolve(values.out)
  }
}
type Options = ReturnType<typeof options>

/** The bytes each phase of the streaming scenarios moves: the package for push and pull, a state for write and read. */
const streamSizes = (o: Options): Record<StreamPhase, number> => ({
  push: o.streamPackage,
  pull: o.streamPackage,
  write: o.streamState,
  read: o.streamState
})

const log = (line: string) => process.stderr.write(`${line}\n`)

const mb = (bytes: number) => `${(bytes / 1e6).toFixed(bytes >= 1e7 ? 0 : 1)} MB`
const kb = (bytes: number) => (bytes >= 1e6 ? mb(bytes) : `${Math.round(bytes / 1e3)} KB`)

// ---------------------------------------------------------------------------------------------------------------
// Scenarios
// ---------------------------------------------------------------------------------------------------------------

interface LifecycleFigures {
  readonly library: ReadonlyArray<LifecycleRun>
  readonly floor: ReadonlyArray<LifecycleRun>
  readonly libraryMs: ReadonlyArray<number>
  readonly floorMs: ReadonlyArray<number>
  readonly peakRssMb: number
}

const lifecycleFigures = async (target: Target, o: Options, concurrency: number): Promise<LifecycleFigures> => {
  const dir = await mkdtemp(join(tmpdir(), "forml-bench-"))
  try {
    const stamp = randomUUID().slice(0, 6)
    const inputs = async (side: string): Promise<ReadonlyArray<LifecycleInput>> =>
      Promise.all(Array.from({ length: o.warmup + o.runs }, async (_, i) => {
        const project = `bench-${stamp}-${side}${concurrency}-${i}`
        return {
          project,
          zip: await smallPackage(dir, project, "1.0"),
          payloads: Array.from({ length: o.generations }, () => payloads(o.states, o.stateSize))
        }
      }))
    const libraryInputs = await inputs("l")
    const floorInputs = await inputs("f")
    const settings = {
      states: o.states,
      stateSize: o.stateSize,
      generations: o.generations,
      concurrency,
      writers: o.writers
    }
    const libraryRuns: Array<LifecycleRun> = []
    const floorRuns: Array<LifecycleRun> = []
    const [lib, bare] = await compare(o.runs, o.warmup, [
      {
        counter: target.library,
        op: async (i) => {
          const run = await library(target, libraryInputs[i + o.warmup]!, settings)
          if (i >= 0) libraryRuns.push(run)
        }
      },
      {
        counter: target.floor,
        op: async (i) => {
          const run = await floor(target, floorInputs[i + o.warmup]!, settings)
          if (i >= 0) floorRuns.push(run)
        }
      }
    ])
    return { library: libraryRuns, floor: floorRuns, libraryMs: lib!.ms, floorMs: bare!.ms, peakRssMb: lib!.peakRssMb }
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
}

const medianOf = (runs: ReadonlyArray<LifecycleRun>, f: (r: LifecycleRun) => number) => median(runs.map(f))

const lifecycleRows = (f: LifecycleFigures, o: Options, concurrency: number): Array<Row> => {
  const label = `${concurrency === 1 ? "sequential" : `${concurrency} in flight`}${
    o.writers === "one" ? ", writers: one" : ""
  }`
  const shape = `${o.generations}×${o.states} states of ${kb(o.stateSize)}`
  const main = row({
    id: concurrency === 1 ? "lifecycle" : "lifecycle-concurrent",
    operation: `lifecycle (${shape}, ${label})`,
    requests: medianOf(f.library, (r) => r.requests),
    medianMs: median(f.libraryMs),
    p95Ms: percentile(f.libraryMs, 95),
    floorRequests: medianOf(f.floor, (r) => r.requests),
    floorMedianMs: median(f.floorMs),
    peakRssMb: f.peakRssMb,
    target: "≤ 1.15× floor"
  })
  const withMet = { ...main, met: main.ratio !== undefined && main.ratio <= 1.15 }
  return [
    withMet,
    ...PHASES.map((p) => {
      const phase = row({
        id: `${withMet.id}.${p}`,
        operation: `  ${p}`,
        requests: medianOf(f.library, (r) => r.phaseRequests[p]),
        medianMs: medianOf(f.library, (r) => r.phaseMs[p]),
        p95Ms: percentile(f.library.map((r) => r.phaseMs[p]), 95),
        floorRequests: medianOf(f.floor, (r) => r.phaseRequests[p]),
        floorMedianMs: medianOf(f.floor, (r) => r.phaseMs[p]),
        target: "≤ 1.3× floor"
      })
      return { ...phase, met: phase.ratio !== undefined && phase.ratio <= 1.3 }
    })
  ]
}

/** Runs the streaming scenario in a child process of its own (its peak RSS is the figure). */
const streamProcess = (target: Target, settings: StreamSettings): Promise<StreamFigures> =>
  new Promise((done, reject) => {
    const script = join(dirname(fileURLToPath(import.meta.url)), "stream-process.js")
    const env = { ...process.env }
    if (target.emulated) {
      env[EMULATOR_ENV.url] = target.url
      env[EMULATOR_ENV.control] = target.controlUrl
    }
    const child = spawn(process.execPath, [script, JSON.stringify(settings)], {
      env,
      stdio: ["ignore", "pipe", "inherit"]
    })
    let out = ""
    child.stdout.on("data", (d: Buffer) => {
      out += d.toString("utf8")
    })
    child.once("error", reject)
    child.once("exit", (code) => {
      if (code !== 0) return reject(new Error(`the streaming process (${settings.side}) failed (${code})`))
      done(JSON.parse(out.trim().split("\n").pop()!) as StreamFigures)
    })
  })

// ---------------------------------------------------------------------------------------------------------------
// Main
// ---------------------------------------------------------------------------------------------------------------

/** What a scenario's run is given: the target, the options, and where its rows and details go. */
interface ScenarioRun {
  readonly target: Target
  readonly o: Options
  readonly scenario: Scenario
  readonly rows: Array<Row>
  readonly extra: Record<string, unknown>
}

/** What each scenario measures: it runs, then adds its rows and its details. */
const SCENARIO_RUNS: Record<Scenario, (run: ScenarioRun) => Promise<void>> = {
  "lifecycle": async ({ extra, o, rows, target }) => {
    const sequential = await lifecycleFigures(target, o, 1)
    rows.push(...lifecycleRows(sequential, o, 1))
    extra["lifecycle"] = sequential
    if (o.concurrency > 1) {
      const concurrent = await lifecycleFigures(target, o, o.concurrency)
      rows.push(...lifecycleRows(concurrent, o, o.concurrency))
      extra["lifecycleConcurrent"] = concurrent
    }
  },
  "transfer": async ({ o, rows, target }) => {
    const { upload, download } = await transfer(target, o.transferSize, o.runs, o.warmup)
    for (const [id, label, p] of [["upload", "upload", upload], ["download", "download", download]] as const) {
      const r = row({
        id,
        operation: `${label} ${mb(o.transferSize)} (MlflowHttp vs fetch)`,
        requests: median(p.library.requests),
        medianMs: p.library.medianMs,
        p95Ms: p.library.p95Ms,
        floorRequests: median(p.floor.requests),
        floorMedianMs: p.floor.medianMs,
        peakRssMb: p.library.peakRssMb,
        target: "≤ 1.25× floor"
      })
      rows.push({ ...r, met: r.ratio !== undefined && r.ratio <= 1.25 })
    }
  },
  "states": async ({ o, rows, target }) => {
    const { sequential, parallel } = await states(target, o.many, o.manySize, o.concurrency, o.runs, o.warmup)
    const shape = `${o.many} states of ${kb(o.manySize)}`
    const seq = row({
      id: "states-sequential",
      operation: `write ${shape}, sequential`,
      requests: median(sequential.library.requests),
      medianMs: sequential.library.medianMs,
      p95Ms: sequential.library.p95Ms,
      floorRequests: median(sequential.floor.requests),
      floorMedianMs: sequential.floor.medianMs,
      peakRssMb: sequential.library.peakRssMb
    })
    const speedup = sequential.library.medianMs / parallel.library.medianMs
    const par = row({
      id: "states-concurrent",
      operation: `write ${shape}, ${o.concurrency} in flight`,
      requests: median(parallel.library.requests),
      medianMs: parallel.library.medianMs,
      p95Ms: parallel.library.p95Ms,
      floorRequests: median(parallel.floor.requests),
      floorMedianMs: parallel.floor.medianMs,
      peakRssMb: parallel.library.peakRssMb,
      target: "faster than sequential",
      met: speedup > 1,
      note: `${speedup.toFixed(2)}× the sequential speed (bare fetch: ${
        (sequential.floor.medianMs / parallel.floor.medianMs).toFixed(2)
      }×)`
    })
    rows.push(seq, par)
  },
  "listing": async ({ o, rows, target }) => {
    const p = await listing(target, o.listing, o.runs, o.warmup)
    const requests = median(p.library.requests)
    const most = Math.ceil(o.listing / 1000) + 1
    rows.push(row({
      id: "listing",
      operation: `list ${o.listing} generations of a release`,
      requests,
      medianMs: p.library.medianMs,
      p95Ms: p.library.p95Ms,
      floorRequests: median(p.floor.requests),
      floorMedianMs: p.floor.medianMs,
      peakRssMb: p.library.peakRssMb,
      target: `≤ ${most} requests`,
      met: Math.max(...p.library.requests) <= most
    }))
  },
  "start": async ({ extra, o, rows }) => {
    const figures = await start(Math.max(10, o.runs))
    if (figures === undefined) {
      log("  start: dist/cli/main.js is not built (npm run build); skipped")
      return
    }
    extra["start"] = figures
    for (const c of figures.commands) {
      rows.push({
        ...row({
          id: `start.${c.label.split(" ")[0]!.replace(/^-+/, "")}`,
          operation: `forml-mlflow ${c.label}: start to exit`,
          medianMs: c.medianMs,
          p95Ms: c.p95Ms,
          floorMedianMs: figures.node.medianMs,
          target: "≤ 250 ms",
          note: `${figures.runs} starts; the floor is \`node -e 0\` (${figures.node.medianMs.toFixed(0)} ms)`
        }),
        met: c.medianMs <= 250
      })
    }
  },
  "cpu": async ({ extra, o, rows, target }) => {
    const figures = await cpu(target, o.calls)
    extra["cpu"] = figures
    for (
      const [id, label, f] of [
        ["cpu.getRun", "runs/get (Mlflow.getRun)", figures.getRun],
        ["cpu.read", "read a 100 KB artifact whole (Mlflow.readArtifact)", figures.read]
      ] as const
    ) {
      const ratio = f.library.cpuMs / f.floor.cpuMs
      rows.push({
        ...row({
          id,
          operation: `client CPU per call: ${label}`,
          requests: 1,
          medianMs: f.library.cpuMs,
          floorRequests: 1,
          floorMedianMs: f.floor.cpuMs,
          target: "≤ 1.3× floor (CPU)",
          note: `${f.calls} calls; wall per call ${f.library.wallMs.toFixed(2)} ms (bare fetch ${
            f.floor.wallMs.toFixed(2)
          } ms)`
        }),
        met: ratio <= 1.3
      })
    }
  },
  "streaming-s3": (run) => streamingStore(run),
  "streaming-azure": (run) => streamingStore(run),
  "streaming": async ({ extra, o, rows, target }) => {
    const dir = await mkdtemp(join(tmpdir(), "forml-bench-"))
    const streamed = await (async () => {
      try {
        const project = `bench-stream-${randomUUID().slice(0, 8)}`
        const zip = await largePackage(dir, project, "1.0", o.streamPackage)
        const settings = { zip, project, stateSize: o.streamState, runs: o.streamRuns }
        const lib = await streamProcess(target, { side: "library", ...settings })
        const bare = await streamProcess(target, { side: "floor", ...settings, project: `${project}-bare` })
        return { lib, bare }
      } finally {
        await rm(dir, { recursive: true, force: true })
      }
    })()
    const { lib, bare } = streamed
    extra["streaming"] = { library: lib, floor: bare }
    const sizes = streamSizes(o)
    for (const p of STREAM_PHASES) {
      rows.push(row({
        id: `streaming.${p}`,
        operation: `${p} ${p === "push" || p === "pull" ? "package" : "state"} of ${mb(sizes[p])} (streamed)`,
        requests: lib.requests[p],
        medianMs: median(lib.ms[p]),
        p95Ms: percentile(lib.ms[p], 95),
        floorRequests: bare.requests[p],
        floorMedianMs: median(bare.ms[p]),
        peakRssMb: lib.peakRssMb[p],
        target: "peak RSS < 250 MB",
        met: lib.peakRssMb[p] < 250,
        ...(p === "push"
          ? {
            note: `times over ${o.streamRuns} run${
              o.streamRuns === 1 ? "" : "s"
            } of each side (--stream-runs); push re-publishes the same release after the first run`
          }
          : {})
      }))
    }
    rows.push(row({
      id: "streaming.process",
      operation: "streaming process, whole life",
      medianMs: Number.NaN,
      peakRssMb: lib.maxRssMb,
      target: "peak RSS < 250 MB",
      met: lib.maxRssMb < 250,
      note: `baseline ${lib.baselineRssMb.toFixed(0)} MB before the first operation; the bare fetch process peaked at ${
        bare.maxRssMb.toFixed(0)
      } MB`
    }))
  }
}

/** The streaming scenario with artifacts straight in S3 or Azure Blob. */
const streamingStore = async ({ extra, o, rows, scenario }: ScenarioRun) => {
  // artifacts straight in S3 (s3rver) or Azure Blob (azurite), the server in direct mode; the library side
  // only (no bare floor)
  const store = scenario === "streaming-s3" ? "s3" : "azure"
  const dir = await mkdtemp(join(tmpdir(), "forml-bench-"))
  const lib = await (async () => {
    try {
      const project = `bench-${store}-${randomUUID().slice(0, 8)}`
      const zip = await largePackage(dir, project, "1.0", o.streamPackage)
      return await streamS3Figures({ zip, project, stateSize: o.streamState, runs: o.streamRuns }, store)
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  })()
  extra[store === "s3" ? "streamingS3" : "streamingAzure"] = lib
  const sizes = streamSizes(o)
  for (const p of STREAM_PHASES) {
    rows.push(row({
      id: `${scenario}.${p}`,
      operation: `${p} ${p === "push" || p === "pull" ? "package" : "state"} of ${mb(sizes[p])} in ${
        store === "s3" ? "S3 (s3rver)" : "Azure Blob (azurite)"
      }`,
      requests: lib.requests[p],
      medianMs: median(lib.ms[p]),
      p95Ms: percentile(lib.ms[p], 95),
      peakRssMb: lib.peakRssMb[p],
      target: "peak RSS < 250 MB",
      met: lib.peakRssMb[p] < 250
    }))
  }
}

const main = async () => {
  const o = options()
  const started = Date.now()
  const target = await connect()
  log(`forml-mlflow bench on ${target.name}: ${o.scenarios.join(", ")} (${o.runs} runs, ${o.warmup} warm-up)`)
  const rows: Array<Row> = []
  const extra: Record<string, unknown> = {}
  const stepStart = () => Date.now()
  const stepDone = (name: string, t: number) => log(`  ${name}: ${((Date.now() - t) / 1000).toFixed(1)} s`)
  try {
    for (const scenario of o.scenarios) {
      const t = stepStart()
      await SCENARIO_RUNS[scenario]({ extra, o, rows, scenario, target })
      stepDone(scenario, t)
    }
  } finally {
    await target.close()
  }
  const seconds = (Date.now() - started) / 1000
  const results = {
    server: target.name,
    machine: machine(),
    date: new Date().toISOString(),
    seconds,
    options: { ...o, out: undefined },
    rows,
    details: extra
  }
  await mkdir(dirname(o.out), { recursive: true })
  await writeFile(o.out, `${JSON.stringify(results, null, 2)}\n`)
  const lifecycleOnly = o.scenarios.length === 1 && o.scenarios[0] === "lifecycle"
  if (o.json) {
    process.stdout.write(
      `${JSON.stringify(lifecycleOnly ? lifecycleJson(results.machine, target.name, o, extra) : results)}\n`
    )
  } else {
    const m = results.machine
    process.stdout.write(
      `forml-mlflow bench, server: ${target.name}; ${m.cpus} × ${m.cpuModel}, ${m.memoryGb} GB, Node ${m.node}; ` +
        `${o.runs} runs; ${seconds.toFixed(0)} s\n\n${table(rows)}\n\nJSON: ${o.out}\n`
    )
  }
}

/** The lifecycle alone as one JSON object: seconds in total and per phase, requests, and the same for the floor. */
const lifecycleJson = (m: ReturnType<typeof machine>, server: string, o: Options, extra: Record<string, unknown>) => {
  const summary = (f: LifecycleFigures | undefined) => {
    if (f === undefined) return undefined
    const side = (runs: ReadonlyArray<LifecycleRun>, ms: ReadonlyArray<number>) => ({
      seconds: median(ms) / 1000,
      p95Seconds: percentile(ms, 95) / 1000,
      phases: Object.fromEntries(PHASES.map((p) => [p, medianOf(runs, (r) => r.phaseMs[p]) / 1000])),
      requests: medianOf(runs, (r) => r.requests),
      phaseRequests: Object.fromEntries(PHASES.map((p) => [p, medianOf(runs, (r) => r.phaseRequests[p])]))
    })
    const library = side(f.library, f.libraryMs)
    const floor = side(f.floor, f.floorMs)
    return { ...library, floor, ratio: library.seconds / floor.seconds }
  }
  const sequential = summary(extra["lifecycle"] as LifecycleFigures | undefined)
  return {
    scenario: "lifecycle",
    server,
    machine: m,
    states: o.states,
    stateSize: o.stateSize,
    generations: o.generations,
    runs: o.runs,
    ...sequential,
    target: 1.15,
    met: sequential !== undefined && sequential.ratio <= 1.15,
    inFlight: o.concurrency > 1
      ? { concurrency: o.concurrency, ...summary(extra["lifecycleConcurrent"] as LifecycleFigures | undefined) }
      : undefined
  }
}

main().then(
  () => process.exit(0),
  (error: unknown) => {
    log(error instanceof Error ? error.stack ?? error.message : String(error))
    process.exit(1)
  }
)
