/**
 * `forml-mlflow list`: the projects; the releases of a project; the generations of a release; the states of a
 * generation (as a table, or one JSON document).
 */
import { Args, Command } from "@effect/cli"
import { Effect, Option } from "effect"
import type { GenerationKey } from "../../asset/GenerationKey.js"
import type { ProjectKey } from "../../asset/ProjectKey.js"
import type { ReleaseKey } from "../../asset/ReleaseKey.js"
import * as Directory from "../../registry/Directory.js"
import { Registry } from "../../registry/Registry.js"
import { printJson, printLine, table } from "../Output.js"
import { generationArg, globalOptions, projectArg, provideStore, releaseArg, Settings } from "../Shell.js"
import { orDash, tagJson, timestampText } from "../Values.js"

const CONCURRENCY = 8

const listProjects = Effect.gen(function*() {
  const { json } = yield* Settings
  const projects = yield* Directory.projects
  const rows = yield* Effect.forEach(
    projects,
    (project) => Effect.map(Directory.releases(project), (releases) => ({ project, releases })),
    { concurrency: CONCURRENCY }
  )
  if (json) {
    return yield* printJson({
      projects: rows.map((r) => ({
        name: r.project,
        releases: r.releases.length,
        latest: r.releases.at(-1)?.toString() ?? null
      }))
    })
  }
  if (rows.length === 0) return yield* printLine("no projects")
  yield* printLine(table(
    ["PROJECT", "RELEASES", "LATEST"],
    rows.map((r) => [r.project, String(r.releases.length), r.releases.at(-1)?.toString() ?? "-"])
  ))
})

const listReleases = (project: ProjectKey) =>
  Effect.gen(function*() {
    const { json } = yield* Settings
    const releases = yield* Directory.releases(project)
    const rows = yield* Effect.forEach(
      releases,
      (release) => Effect.map(Directory.generations(project, release), (generations) => ({ release, generations })),
      { concurrency: CONCURRENCY }
    )
    if (json) {
      return yield* printJson({
        project,
        releases: rows.map((r) => ({
          release: r.release.toString(),
          generations: r.generations.length,
          latest: r.generations.at(-1) ?? null
        }))
      })
    }
    if (rows.length === 0) return yield* printLine(`no releases of ${project}`)
    yield* printLine(table(
      ["RELEASE", "GENERATIONS", "LATEST"],
      rows.map((r) => [r.release.toString(), String(r.generations.length), String(r.generations.at(-1) ?? "-")])
    ))
  })

const listGenerations = (project: ProjectKey, releaseKey: ReleaseKey) =>
  Effect.gen(function*() {
    const { json } = yield* Settings
    const registry = yield* Registry
    const release = yield* Directory.release(project, releaseKey)
    const generations = yield* Directory.generations(project, release)
    const rows = yield* Effect.forEach(
      generations,
      (generation) => Effect.map(registry.open(project, release, generation), (tag) => ({ generation, tag })),
      { concurrency: CONCURRENCY }
    )
    if (json) {
      return yield* printJson({
        project,
        release: release.toString(),
        generations: rows.map((r) => ({ generation: r.generation, ...tagJson(r.tag) }))
      })
    }
    if (rows.length === 0) return yield* printLine(`no generations of ${project} ${release}`)
    yield* printLine(table(
      ["GENERATION", "TRAINED", "ORDINAL", "TUNED", "SCORE", "STATES"],
      rows.map((r) => [
        String(r.generation),
        timestampText(r.tag.training.timestamp),
        orDash(r.tag.training.ordinal),
        timestampText(r.tag.tuning.timestamp),
        orDash(r.tag.tuning.score),
        String(r.tag.states.length)
      ])
    ))
  })

const listStates = (project: ProjectKey, releaseKey: ReleaseKey, generationKey: GenerationKey) =>
  Effect.gen(function*() {
    const { json } = yield* Settings
    const registry = yield* Registry
    const release = yield* Directory.release(project, releaseKey)
    const generation = yield* Directory.generation(project, release, generationKey)
    const tag = yield* registry.open(project, release, generation)
    if (json) {
      return yield* printJson({ project, release: release.toString(), generation, states: [...tag.states] })
    }
    if (tag.states.length === 0) return yield* printLine(`no states in ${project} ${release} generation ${generation}`)
    yield* printLine(table(["INDEX", "STATE"], tag.states.map((sid, i) => [String(i), sid])))
  })

export const list = Command.make(
  "list",
  {
    ...globalOptions,
    project: Args.optional(projectArg),
    release: Args.optional(releaseArg),
    generation: Args.optional(generationArg)
  },
  (a) =>
    Option.match(a.project, {
      onNone: () => listProjects,
      onSome: (project) =>
        Option.match(a.release, {
          onNone: () => listReleases(project),
          onSome: (release) =>
            Option.match(a.generation, {
              onNone: () => listGenerations(project, release),
              onSome: (generation) => listStates(project, release, generation)
            })
        })
    })
).pipe(
  Command.withDescription(
    "List projects; the releases of a project; the generations of a release; the states of a generation"
  ),
  provideStore
)
