/**
 * The benchmark's output: one table (operation, requests, median and p95 ms, the floor and the ratio to it, peak RSS,
 * the target and whether it is met) and the same figures as JSON, with the machine they came from.
 */
import { availableParallelism, cpus, platform, release, totalmem } from "node:os"

export interface Row {
  /** A stable key for scripts reading the JSON. */
  readonly id: string
  readonly operation: string
  readonly requests: number | undefined
  readonly medianMs: number
  readonly p95Ms: number | undefined
  readonly floorRequests: number | undefined
  readonly floorMedianMs: number | undefined
  /** medianMs / floorMedianMs. */
  readonly ratio: number | undefined
  readonly peakRssMb: number | undefined
  readonly target: string | undefined
  readonly met: boolean | undefined
  readonly note: string | undefined
}

export const row = (r: Partial<Row> & Pick<Row, "id" | "operation" | "medianMs">): Row => ({
  requests: undefined,
  p95Ms: undefined,
  floorRequests: undefined,
  floorMedianMs: undefined,
  ratio: r.floorMedianMs === undefined || r.floorMedianMs === 0 ? undefined : r.medianMs / r.floorMedianMs,
  peakRssMb: undefined,
  target: undefined,
  met: undefined,
  note: undefined,
  ...r
})

export interface Machine {
  readonly cpus: number
  readonly cpuModel: string
  readonly memoryGb: number
  readonly node: string
  readonly os: string
}

export const machine = (): Machine => ({
  cpus: availableParallelism(),
  cpuModel: cpus()[0]?.model.trim() ?? "unknown",
  memoryGb: Math.round(totalmem() / 1024 ** 3),
  node: process.version,
  os: `${platform()} ${release()}`
})

const fixed = (
  n: number | undefined,
  digits: number
): string => (n === undefined || Number.isNaN(n) ? "" : n.toFixed(digits))

/** The rows as one text table. */
export const table = (rows: ReadonlyArray<Row>): string => {
  const header = [
    "operation",
    "req",
    "median ms",
    "p95 ms",
    "floor req",
    "floor ms",
    "ratio",
    "peak RSS MB",
    "target",
    "met"
  ]
  const lines = rows.map((r) => [
    r.operation,
    r.requests === undefined ? "" : String(r.requests),
    fixed(r.medianMs, 1),
    fixed(r.p95Ms, 1),
    r.floorRequests === undefined ? "" : String(r.floorRequests),
    fixed(r.floorMedianMs, 1),
    r.ratio === undefined ? "" : `${r.ratio.toFixed(2)}×`,
    fixed(r.peakRssMb, 0),
    r.target ?? "",
    r.met === undefined ? "" : r.met ? "yes" : "NO"
  ])
  const widths = header.map((h, i) => Math.max(h.length, ...lines.map((l) => l[i]!.length)))
  const numeric = new Set([1, 2, 3, 4, 5, 6, 7])
  const render = (cells: ReadonlyArray<string>) =>
    `| ${cells.map((c, i) => (numeric.has(i) ? c.padStart(widths[i]!) : c.padEnd(widths[i]!))).join(" | ")} |`
  const rule = `|${widths.map((w, i) => (numeric.has(i) ? `${"-".repeat(w + 1)}:` : "-".repeat(w + 2))).join("|")}|`
  const notes = rows.filter((r) => r.note !== undefined).map((r) => `- ${r.operation.trim()}: ${r.note}`)
  return [render(header), rule, ...lines.map(render), ...(notes.length > 0 ? ["", ...notes] : [])].join("\n")
}
