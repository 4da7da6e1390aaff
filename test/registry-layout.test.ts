/**
 * The registry against ForML's own MLflow layout (`forml-vectors/mlflow-layout.json`): what ForML 0.93 wrote reads
 * back as ForML read it, and what this registry writes for the same lifecycle is ForML's layout, call by call.
 */
import type { FileSystem, Path } from "@effect/platform"
import { NodeContext } from "@effect/platform-node"
import { Effect, Either, Layer, Option } from "effect"
import type { Scope } from "effect"
import { createHash } from "node:crypto"
import { readFileSync } from "node:fs"
import { describe, expect, it } from "vitest"
import { Package } from "../src/asset/Package.js"
import { StateId } from "../src/asset/StateId.js"
import { Tag } from "../src/asset/Tag.js"
import type { Filter } from "../src/mlflow/Filter.js"
import { Mlflow } from "../src/mlflow/Mlflow.js"
import type { CreateRunOptions, Run } from "../src/mlflow/Mlflow.js"
import * as MlflowMemory from "../src/mlflow/MlflowMemory.js"
import { MlflowMemoryHandle } from "../src/mlflow/MlflowMemory.js"
import type { Seed } from "../src/mlflow/MlflowMemory.js"
import * as MlflowRegistry from "../src/registry/MlflowRegistry.js"
import { collect, key } from "./contract/registry.js"
import { layoutSeed, type LayoutStep, readLayout } from "./support/layout.js"
import { sharedPath } from "./support/shared.js"

// ---------------------------------------------------------------------------------------------------------------
// The recorded layout
// ---------------------------------------------------------------------------------------------------------------

const layout = readLayout()
const helloworld = sharedPath("forml-vectors", "helloworld.4ml")
const sha256 = (b: Uint8Array): string => createHash("sha256").update(b).digest("hex")
const hex = (b: string): Uint8Array => new Uint8Array(Buffer.from(b, "hex"))

/**
 * The layout as a seed: EXPn becomes experiment "n" (Default is "0" on every store), run placeholders stay as run
 * ids. The recorded package's bytes are not in the layout; helloworld.4ml (the same sources) stands in.
 */
const seed = (): Seed => {
  const pkg = new Uint8Array(readFileSync(helloworld))
  const exp = (s: string) => s.replace(/EXP(\d+)/g, "$1")
  return layoutSeed(layout, pkg, exp)
}

const run = <A, E>(
  body: Effect.Effect<A, E, Mlflow | MlflowMemoryHandle | Scope.Scope | FileSystem.FileSystem | Path.Path>
) => Effect.runPromise(body.pipe(Effect.scoped, Effect.provide(Layer.merge(MlflowMemory.layer(), NodeContext.layer))))

// ---------------------------------------------------------------------------------------------------------------
// Reading what ForML wrote
// ---------------------------------------------------------------------------------------------------------------

describe("ForML's layout reads back through the registry", () => {
  for (const view of Object.values(layout.formlView)) {
    it(`repoid ${JSON.stringify(view.repoid)}: projects, releases, packages, generations, tags and states`, () =>
      run(Effect.gen(function*() {
        const handle = yield* MlflowMemoryHandle
        yield* handle.load(seed())
        const reg = yield* MlflowRegistry.make({ repoid: view.repoid })
        // ForML lists the Default experiment as a project; it is not one (no release), so it is skipped here
        const expected = view.projects.filter((p) => p.name !== "Default")
        expect(view.repoid !== "" || view.projects.some((p) => p.name === "Default")).toBe(true)
        const projects = yield* collect(reg.projects)
        expect(projects).toEqual(expected.map((p) => p.name))
        expect(projects).not.toContain("Default")
        for (const project of expected) {
          const pk = key.project(project.name)
          expect((yield* collect(reg.releases(pk))).map(String)).toEqual(project.releases.map((r) => r.version))
          for (const release of project.releases) {
            const rk = key.release(release.version)
            const pkg = yield* reg.pull(pk, rk)
            expect(pkg.manifest.name).toBe(release.package.manifest.name)
            expect(pkg.manifest.version.toString()).toBe(release.package.manifest.version)
            expect(pkg.manifest.package).toBe(release.package.manifest.package)
            expect(yield* collect(reg.generations(pk, rk))).toEqual(release.generations.map((g) => g.key))
            for (const generation of release.generations) {
              const gk = key.generation(generation.key)
              const tag = yield* reg.open(pk, rk, gk)
              expect(Tag.equals(tag, Either.getOrThrow(Tag.decode(generation.tagToml)))).toBe(true)
              expect(Tag.encode(tag)).toBe(generation.tagToml)
              expect(tag.states).toEqual(generation.states.map((s) => s.sid))
              for (const state of generation.states) {
                const data = yield* reg.read(pk, rk, gk, Either.getOrThrow(StateId.parse(state.sid)))
                expect(data.length).toBe(state.size)
                expect(sha256(data)).toBe(state.sha256)
              }
            }
          }
        }
      })))
  }
})

// ---------------------------------------------------------------------------------------------------------------
// Writing what ForML writes
// ---------------------------------------------------------------------------------------------------------------

type Call =
  | { readonly op: "getExperimentByName"; readonly name: string }
  | { readonly op: "createExperiment"; readonly name: string }
  | { readonly op: "createRun"; readonly options: CreateRunOptions }
  | { readonly op: "searchRuns"; readonly filter: Filter | undefined }
  | { readonly op: "setTag"; readonly runId: string; readonly key: string; readonly value: string }
  | { readonly op: "setTags"; readonly runId: string; readonly tags: ReadonlyArray<{ key: string; value: string }> }
  | { readonly op: "upload"; readonly runId: string; readonly path: string }
  | { readonly op: "other"; readonly name: string }

/** The memory store, with every call the registry makes recorded. */
const recorded = (calls: Array<Call>) =>
  Layer.effect(
    Mlflow,
    Effect.map(MlflowMemoryHandle, (handle): Mlflow["Type"] => {
      const m = handle.mlflow
      return {
        ...m,
        getExperimentByName: (name) => {
          calls.push({ op: "getExperimentByName", name })
          return m.getExperimentByName(name)
        },
        createExperiment: (name, options) => {
          calls.push({ op: "createExperiment", name })
          return m.createExperiment(name, options)
        },
        createRun: (options) => {
          calls.push({ op: "createRun", options })
          return m.createRun(options)
        },
        searchRuns: (options) => {
          calls.push({ op: "searchRuns", filter: options.filter })
          return m.searchRuns(options)
        },
        setTag: (runId, k, value) => {
          calls.push({ op: "setTag", runId, key: k, value })
          return m.setTag(runId, k, value)
        },
        setTags: (runId, tags, extras) => {
          calls.push({ op: "setTags", runId, tags })
          return m.setTags(runId, tags, extras)
        },
        uploadArtifact: (root, path, source) => {
          calls.push({ op: "upload", runId: root.runId, path })
          return m.uploadArtifact(root, path, source)
        },
        updateRun: (runId, options) => {
          calls.push({ op: "other", name: "updateRun" })
          return m.updateRun(runId, options)
        }
      }
    })
  ).pipe(Layer.provideMerge(MlflowMemory.layer()))

const TAG_KEYS = new Set([
  "forml.repoid",
  "forml.level",
  "forml.session",
  "mlflow.parentRunId",
  "mlflow.source.git.commit"
])

describe("the registry writes ForML's layout", () => {
  it("lifecycle A, B, C: experiments, runs, tags, artifacts and calls as ForML's", () => {
    const calls: Array<Call> = []
    return Effect.runPromise(
      Effect.gen(function*() {
        const handle = yield* MlflowMemoryHandle
        const steps = layout.lifecycle.steps
        const phases: Array<{ readonly phase: string; readonly calls: ReadonlyArray<Call> }> = []
        const phase = <A, E>(name: string, body: Effect.Effect<A, E>) =>
          Effect.gen(function*() {
            const start = calls.length
            const out = yield* body
            phases.push({ phase: name, calls: calls.slice(start) })
            return out
          })
        const pkg = yield* Package.open(helloworld)
        const project = key.project("helloworld")
        const release = key.release("1")
        const train = (reg: Effect.Effect.Success<ReturnType<typeof MlflowRegistry.make>>, step: LayoutStep) =>
          Effect.gen(function*() {
            const sids = Object.keys(step.states).map((s) => Either.getOrThrow(StateId.parse(s)))
            yield* phase(
              `${step.step}.write`,
              Effect.forEach(sids, (sid) => reg.write(project, release, sid, hex(step.states[sid]!)), { discard: true })
            )
            const tag = Either.getOrThrow(Tag.decode(step.tagToml))
            const used = yield* phase(
              `${step.step}.close`,
              reg.close(project, release, key.generation(step.closed), tag)
            )
            expect(used).toBe(step.closed)
          })
        const a = yield* MlflowRegistry.make({ repoid: "" })
        yield* phase("A.push", a.push(pkg))
        yield* train(a, steps[0]!)
        const b = yield* MlflowRegistry.make({ repoid: "" })
        yield* train(b, steps[1]!)
        const c = yield* MlflowRegistry.make({ repoid: "test1" })
        yield* phase("C.push", c.push(pkg))
        yield* train(c, steps[2]!)

        // the store: the same experiments, runs (by level, in order), tags and artifacts
        const snapshot = yield* handle.snapshot
        expect(snapshot.experiments.map((e) => e.name)).toEqual(layout.experiments.map((e) => e.name))
        const ids = new Map<string, string>() // placeholder -> our id
        for (const [i, expected] of layout.experiments.entries()) {
          const experiment = snapshot.experiments[i]!
          ids.set(expected.id, experiment.experimentId)
          const ours = snapshot.runs.filter((r) => r.info.experimentId === experiment.experimentId)
          expect(ours.map((r) => Option.getOrUndefined(r.tag("forml.level"))))
            .toEqual(expected.runs.map((r) => r.tags["forml.level"]))
          for (const [j, theirs] of expected.runs.entries()) {
            const mine: Run = ours[j]!
            ids.set(theirs.id, mine.runId)
            expect(mine.info.userId).toBe(theirs.user_id)
            for (const [k, v] of Object.entries(theirs.tags)) {
              if (k === "mlflow.runName") continue
              const value = Option.getOrUndefined(mine.tag(k))
              if (k === "forml.session") {
                expect(value).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/)
              } else if (k === "mlflow.parentRunId") expect(value).toBe(ids.get(v))
              else expect(value).toBe(v)
            }
            // the only extra tags are the sha256 of each artifact, the token of the run's creation (a uuid4) and the
            // run's description in MLflow's UI (mlflow.note.content, which ForML neither writes nor reads)
            expect(Option.getOrUndefined(mine.tag("forml.create"))).toMatch(
              /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/
            )
            expect(Option.getOrUndefined(mine.tag("mlflow.note.content"))).toMatch(/^ForML (release|generation) /)
            const extra = mine.tags.map((t) => t.key).filter((k) =>
              !(k in theirs.tags) && k !== "forml.create" && k !== "mlflow.note.content"
            )
            expect(extra.sort()).toEqual(theirs.artifacts.map((a) => `forml.sha256.${a.path}`).sort())
            const artifacts = snapshot.artifacts.get(mine.runId) ?? new Map<string, Uint8Array>()
            expect([...artifacts.keys()].sort()).toEqual(theirs.artifacts.map((a) => a.path).sort())
            for (const artifact of theirs.artifacts) {
              const data = artifacts.get(artifact.path)!
              expect(Option.getOrUndefined(mine.tag(`forml.sha256.${artifact.path}`))).toBe(sha256(data))
              // the package zip is not reproducible; every other artifact is byte for byte ForML's
              if (artifact.path !== "package.4ml") expect(sha256(data)).toBe(artifact.sha256)
            }
          }
        }

        // the calls: ForML's experiment names, run tags in ForML's order, artifact names in ForML's order
        const subst = (s: string) => ids.get(s) ?? s
        for (const { phase: name, calls: mine } of phases) {
          const theirs = layout.clientCalls.filter((c) => c.phase === name)
          expect(theirs.length).toBeGreaterThan(0)
          const names = (op: "getExperimentByName" | "createExperiment") =>
            mine.flatMap((c) => (c.op === op ? [c.name] : []))
          expect(names("getExperimentByName")).toEqual(
            theirs.filter((c) => c.path.endsWith("/experiments/get-by-name")).map((c) => c.params!.experiment_name)
          )
          expect(names("createExperiment")).toEqual(
            theirs.filter((c) => c.path.endsWith("/experiments/create")).map((c) => c.json!.name)
          )
          const created = mine.flatMap((c) => (c.op === "createRun" ? [c.options] : []))
          const theirCreates = theirs.filter((c) => c.path.endsWith("/runs/create"))
          expect(created.length).toBe(theirCreates.length)
          for (const [i, options] of created.entries()) {
            const expected = theirCreates[i]!.json!
            expect(options.userId).toBe(expected.user_id)
            // ForML's tags in ForML's order; after them, only an (empty, until the upload) sha256 tag and the token of
            // this creation, which every retry of it sends again
            const tags = options.tags ?? []
            expect(tags.slice(0, expected.tags!.length).map((t) => t.key)).toEqual(expected.tags!.map((t) => t.key))
            const token = tags.at(-1)!
            expect(token.key).toBe("forml.create")
            expect(options.idempotencyTag).toBe("forml.create")
            expect(tags.slice(expected.tags!.length)).toEqual(
              expected.tags!.some((t) => t.value === "release")
                ? [{ key: "forml.sha256.package.4ml", value: "" }, token]
                : [token]
            )
            for (const [j, e] of expected.tags!.entries()) {
              const t = tags[j]!
              if (e.key === "forml.session") continue
              expect(t.value).toBe(subst(e.value))
            }
          }
          expect(mine.flatMap((c) => (c.op === "upload" ? [c.path] : []))).toEqual(
            theirs.filter((c) => c.method === "PUT").map((c) => c.path.split("/").pop())
          )
          // the commit: ForML's set-tag of mlflow.source.git.commit, last of every tag written
          const theirCommit = theirs.find((c) => c.path.endsWith("/runs/set-tag"))
          const tagWrites = mine.flatMap((c) =>
            c.op === "setTag" ? [{ key: c.key, value: c.value }] : c.op === "setTags" ? c.tags : []
          )
          if (theirCommit !== undefined) {
            expect(tagWrites.at(-1)).toEqual({ key: theirCommit.json!.key, value: theirCommit.json!.value })
            expect(tagWrites.filter((t) => t.key === "mlflow.source.git.commit")).toHaveLength(1)
            // the commit comes after tag.toml is uploaded
            const uploadAt = mine.findIndex((c) => c.op === "upload" && c.path === "tag.toml")
            const commitAt = mine.findIndex((c) =>
              c.op === "setTags" && c.tags.some((t) => t.key === "mlflow.source.git.commit")
            )
            expect(uploadAt).toBeGreaterThanOrEqual(0)
            expect(commitAt).toBeGreaterThan(uploadAt)
          } else {
            expect(tagWrites.every((t) => t.key.startsWith("forml.sha256.") || t.key === "mlflow.note.content")).toBe(
              true
            )
          }
          // every filter is made of ForML's tag keys
          for (const c of mine) {
            if (c.op !== "searchRuns") continue
            for (const clause of c.filter?.clauses ?? []) {
              expect(clause.kind).toBe("tag")
              expect(TAG_KEYS.has(clause.key)).toBe(true)
            }
          }
        }
      }).pipe(Effect.scoped, Effect.provide(Layer.merge(recorded(calls), NodeContext.layer)))
    )
  })
})
