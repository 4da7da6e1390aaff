/** The shape of ForML's recorded MLflow layout (`forml-vectors/mlflow-layout.json`) and its loader. */
import type { Seed } from "../../src/mlflow/MlflowMemory.js"
import { readJson } from "./shared.js"

export interface LayoutArtifact {
  readonly path: string
  readonly size: number
  readonly sha256: string
  readonly base64?: string
  readonly text?: string
  readonly zipEntries?: ReadonlyArray<{ readonly name: string }>
}
export interface LayoutRun {
  readonly id: string
  readonly run_name: string
  readonly status: "RUNNING"
  readonly lifecycle_stage: "active" | "deleted"
  readonly user_id: string
  readonly artifact_uri: string
  readonly has_end_time?: boolean
  readonly tags: Readonly<Record<string, string>>
  readonly artifacts: ReadonlyArray<LayoutArtifact>
}
export interface LayoutExperiment {
  readonly id: string
  readonly name: string
  readonly lifecycle_stage: "active" | "deleted"
  readonly artifact_location: string
  readonly tags: Readonly<Record<string, string>>
  readonly runs: ReadonlyArray<LayoutRun>
}
export interface ViewGeneration {
  readonly key: number
  readonly tagToml: string
  readonly states: ReadonlyArray<{ readonly sid: string; readonly size: number; readonly sha256: string }>
}
export interface ViewRelease {
  readonly version: string
  readonly package: {
    readonly manifest: { readonly name: string; readonly version: string; readonly package: string }
    readonly entries: ReadonlyArray<{ readonly name: string }>
  }
  readonly generations: ReadonlyArray<ViewGeneration>
}
export interface View {
  readonly repoid: string
  readonly projects: ReadonlyArray<{ readonly name: string; readonly releases: ReadonlyArray<ViewRelease> }>
}
export interface ClientCall {
  readonly phase: string
  readonly method: string
  readonly path: string
  readonly params?: Readonly<Record<string, string>>
  readonly json?: {
    readonly name?: string
    readonly user_id?: string
    readonly tags?: ReadonlyArray<{ readonly key: string; readonly value: string }>
    readonly key?: string
    readonly value?: string
    readonly filter?: string
  }
}
export interface LayoutStep {
  readonly step: string
  readonly repoid: string
  readonly states: Readonly<Record<string, string>>
  readonly closed: number
  readonly tagToml: string
}
export interface Layout {
  readonly lifecycle: { readonly steps: ReadonlyArray<LayoutStep> }
  readonly experiments: ReadonlyArray<LayoutExperiment>
  readonly formlView: Readonly<Record<string, View>>
  readonly clientCalls: ReadonlyArray<ClientCall>
}

/** Reads and parses `forml-vectors/mlflow-layout.json` afresh on each call. */
export const readLayout = (): Layout => readJson<Layout>("forml-vectors", "mlflow-layout.json")

/**
 * The layout as an MlflowMemory seed. `subst` rewrites the placeholders (`EXPn`, `RUN_*`) in ids, locations, URIs and
 * tag values; runs start a millisecond apart in recorded order. The recorded package's bytes are not in the layout:
 * `pkg` stands in for every artifact recorded without text or base64.
 */
export const layoutSeed = (layout: Layout, pkg: Uint8Array, subst: (s: string) => string): Seed => {
  let start = 1_700_000_000_000
  return {
    experiments: layout.experiments.map((e) => ({
      experimentId: subst(e.id),
      name: e.name,
      lifecycleStage: e.lifecycle_stage,
      artifactLocation: subst(e.artifact_location),
      tags: e.tags
    })),
    runs: layout.experiments.flatMap((e) =>
      e.runs.map((r) => ({
        runId: subst(r.id),
        experimentId: subst(e.id),
        runName: r.run_name,
        userId: r.user_id,
        status: r.status,
        lifecycleStage: r.lifecycle_stage,
        startTime: start++,
        artifactUri: subst(r.artifact_uri),
        tags: Object.fromEntries(Object.entries(r.tags).map(([k, v]) => [k, subst(v)])),
        artifacts: r.artifacts.map((a) => ({
          path: a.path,
          bytes: a.base64 !== undefined
            ? new Uint8Array(Buffer.from(a.base64, "base64"))
            : a.text !== undefined
            ? new TextEncoder().encode(a.text)
            : pkg
        }))
      }))
    )
  }
}
