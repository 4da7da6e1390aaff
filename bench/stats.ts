/**
 * Timing and memory figures of the benchmark: repeated runs with median and p95, and a sampler of the process's
 * resident set size (peak RSS) while an operation runs.
 */
import { performance } from "node:perf_hooks"

/** Nearest-rank percentile of a sample (p in 0..100). */
export const percentile = (values: ReadonlyArray<number>, p: number): number => {
  if (values.length === 0) return Number.NaN
  const sorted = [...values].sort((a, b) => a - b)
  const rank = Math.ceil((p / 100) * sorted.length)
  return sorted[Math.min(sorted.length, Math.max(1, rank)) - 1]!
}

export const median = (values: ReadonlyArray<number>): number => {
  if (values.length === 0) return Number.NaN
  const sorted = [...values].sort((a, b) => a - b)
  const mid = Math.floor(sorted.length / 2)
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2
}

const MB = 1024 * 1024

/** Samples `process.memoryUsage.rss()` every few milliseconds between start and stop; the peak is kept. */
export class RssSampler {
  #peak = 0
  #timer: NodeJS.Timeout | undefined
  start(intervalMs = 5): void {
    this.#peak = Math.max(this.#peak, process.memoryUsage.rss())
    this.#timer = setInterval(() => {
      this.#peak = Math.max(this.#peak, process.memoryUsage.rss())
    }, intervalMs)
  }
  stop(): number {
    if (this.#timer !== undefined) clearInterval(this.#timer)
    this.#timer = undefined
    this.#peak = Math.max(this.#peak, process.memoryUsage.rss())
    return this.#peak
  }
  get peakMb(): number {
    return this.#peak / MB
  }
}

/** A request counter shared by the library's HTTP client and the bare fetch client. */
export interface Counter {
  requests: number
}

export interface Sample {
  /** Milliseconds of each measured run. */
  readonly ms: ReadonlyArray<number>
  /** Requests of each measured run. */
  readonly requests: ReadonlyArray<number>
  readonly medianMs: number
  readonly p95Ms: number
  /** The highest RSS seen while the measured runs ran, in MB. */
  readonly peakRssMb: number
}

/** One side of a comparison: an operation and the counter its requests go to. */
export interface Contender {
  readonly counter: Counter
  /** Gets the run's index (warm-up runs are negative), so that each run can use fresh names. */
  readonly op: (index: number) => Promise<void>
}

/**
 * Runs every contender `warmup` times unmeasured, then `runs` times measured, interleaved (the order flips every run,
 * so that neither side always runs on a warmer or a more crowded server); the peak RSS is sampled per contender.
 */
export const compare = async (
  runs: number,
  warmup: number,
  contenders: ReadonlyArray<Contender>
): Promise<ReadonlyArray<Sample>> => {
  const ms = contenders.map((): Array<number> => [])
  const requests = contenders.map((): Array<number> => [])
  const peaks = contenders.map(() => 0)
  for (let i = -warmup; i < runs; i++) {
    const order = contenders.map((_, k) => k)
    if (i % 2 !== 0) order.reverse()
    for (const k of order) {
      const contender = contenders[k]!
      const rss = new RssSampler()
      rss.start()
      const before = contender.counter.requests
      const t0 = performance.now()
      await contender.op(i)
      const elapsed = performance.now() - t0
      const peak = rss.stop()
      if (i < 0) continue
      ms[k]!.push(elapsed)
      requests[k]!.push(contender.counter.requests - before)
      peaks[k] = Math.max(peaks[k]!, peak)
    }
  }
  return contenders.map((_, k) => ({
    ms: ms[k]!,
    requests: requests[k]!,
    medianMs: median(ms[k]!),
    p95Ms: percentile(ms[k]!, 95),
    peakRssMb: peaks[k]! / MB
  }))
}

/** Milliseconds of one call. */
export const timed = async <A>(f: () => Promise<A>): Promise<readonly [A, number]> => {
  const t0 = performance.now()
  const a = await f()
  return [a, performance.now() - t0]
}
