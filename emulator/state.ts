/**
 * The emulator's state, passed to every handler: the flavor and backend it answers like, the MlflowMemory store
 * behind it, and the params and metrics it keeps beside that store (MlflowMemory does not render them in runs).
 */
import type { Mlflow, Run } from "../src/mlflow/Mlflow.js"
import type { MlflowMemoryHandle } from "../src/mlflow/MlflowMemory.js"
import * as Wire from "../src/mlflow/wire.js"
import type { Backend } from "./index.js"

export interface Metric {
  readonly key: string
  readonly value: number
  readonly timestamp: number
  readonly step: number
}

export interface RunExtras {
  readonly params: Map<string, string>
  readonly metrics: Array<Metric>
}

export interface State {
  /** The 3.x flavor (else 2.17). */
  readonly v3: boolean
  readonly backend: Backend
  readonly handle: MlflowMemoryHandle.Service
  readonly mlflow: Mlflow.Service
  /** Whether a runs/search the emulator pages itself (LIKE, ILIKE, IN) ends a full page with a next token. */
  readonly trailingEmptyPage: boolean
  readonly extras: Map<string, RunExtras>
}

export const extrasOf = (state: State, runId: string): RunExtras => {
  let e = state.extras.get(runId)
  if (e === undefined) {
    e = { params: new Map(), metrics: [] }
    state.extras.set(runId, e)
  }
  return e
}

/** A run's JSON with its params and latest metrics; a created run has no `outputs`, and in 2.17 no `inputs`. */
export const runBody = (state: State, run: Run, where: "create" | "read") => {
  const e = state.extras.get(run.runId)
  const latest = new Map<string, Metric>()
  for (const m of e?.metrics ?? []) {
    const seen = latest.get(m.key)
    if (seen === undefined || m.step > seen.step || (m.step === seen.step && m.timestamp >= seen.timestamp)) {
      latest.set(m.key, m)
    }
  }
  return Wire.runJson(run, {
    params: [...(e?.params ?? [])].map(([key, value]) => ({ key, value })),
    metrics: [...latest.values()],
    inputs: where === "read" || state.v3,
    outputs: where === "read" && state.v3
  })
}
