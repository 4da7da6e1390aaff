/**
 * Replays the recorded MLflow exchanges (`../shared/mlflow-wire`, three servers) against the emulator and checks
 * each reply: status, `error_code`, the JSON layout, the keys and array lengths, and every value that does not vary.
 */
import { Effect, Exit, Scope } from "effect"
import { createHash } from "node:crypto"
import { readFileSync } from "node:fs"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { type Emulator, type EmulatorOptions, pythonJson, startEmulator } from "../emulator/index.js"
import { sharedPath } from "./support/shared.js"

// ---------------------------------------------------------------------------------------------------------------
// The recordings
// ---------------------------------------------------------------------------------------------------------------

type Json = null | boolean | number | string | ReadonlyArray<Json> | { readonly [key: string]: Json }
type JsonObject = { readonly [key: string]: Json }

interface WireRequest {
  readonly method: string
  readonly path: string
  readonly pathTemplate?: string
  readonly contentType: string | null
  readonly json?: Json
  readonly jsonTemplate?: Json
  readonly text?: string
  readonly bodyBase64?: string
  readonly bodyGenerator?: { readonly algorithm: string; readonly seed: string; readonly size: number }
}

interface WireResponse {
  readonly status: number
  readonly contentType: string | null
  readonly headers: Readonly<Record<string, string>>
  readonly json?: Json
  readonly jsonStyle?: "indent2" | "python-oneline" | "raw"
  readonly text?: string
  readonly bodySha256?: string
}

interface WireLine {
  readonly scenario: string
  readonly step: string
  readonly request: WireRequest
  readonly response: WireResponse
  readonly check?: { readonly expectSha256: string }
  readonly captures: Readonly<Record<string, string>>
}

const runName = (run: Json): string => String((run as { info?: { run_name?: string } }).info?.run_name)

const readLines = (file: string): ReadonlyArray<WireLine> =>
  readFileSync(sharedPath("mlflow-wire", file), "utf-8")
    .split("\n")
    .filter((l) => l.trim() !== "")
    .slice(1)
    .map((l) => JSON.parse(l) as WireLine)

const SCENARIOS = ["experiments", "runs", "artifacts", "forml-lifecycle", "protocol", "batch"] as const

// ---------------------------------------------------------------------------------------------------------------
// What is not replayed, and what differs by design
// ---------------------------------------------------------------------------------------------------------------

/** Exchanges left out, with the reason. */
const EXCLUDED: Readonly<Record<string, string>> = {
  "protocol/root": "the web UI's landing page (here the notice of a source install), not part of the REST API"
}

/**
 * Where a recording's server behaves differently from the emulator's flavor (`2.17-sqlite` for both 2.17 files,
 * `3.x-sqlite` for the 3.x file): the README's numbered differences. Each entry lists what is accepted at that step.
 */
interface Accepted {
  /** The status and the error_code may differ. */
  readonly status?: boolean
  /** Values may differ (keys and lengths are still checked). */
  readonly values?: boolean
  /** The reply may differ altogether (status, keys, values): the step shows a store-specific behaviour. */
  readonly all?: boolean
  /** Compare the runs of a search by name, and check the order of ours instead (ties of random run ids). */
  readonly sortRuns?: boolean
  readonly reason: string
}

/** Accepted on every recording. */
const COMMON: Readonly<Record<string, Accepted>> = {
  "batch/search-order-start-time-asc": { sortRuns: true, reason: "b3 and b4 tie on start_time: run ids decide" },
  "batch/search-order-run-id-asc": { sortRuns: true, reason: "run ids are random" },
  "batch/search-order-start-time-asc-run-id-desc": {
    sortRuns: true,
    reason: "b3 and b4 tie on start_time: run ids decide"
  }
}

const FILESTORE_DIFFERENCES: Readonly<Record<string, Accepted>> = {
  "experiments/create-duplicate-name": { status: true, reason: "difference 11: wording and code of a taken name" },
  "experiments/update-rename-to-existing-name": {
    status: true,
    reason: "difference 11: file store says RESOURCE_ALREADY_EXISTS"
  },
  "experiments/search-post-page-token-offset-negative": { all: true, reason: "difference 15: negative offset token" },
  "experiments/delete-default-experiment": {
    status: true,
    reason: "difference 10: the file store refuses to delete 0"
  },
  "experiments/get-default-experiment": { values: true, reason: "difference 10: 0 stays active on the file store" },
  "experiments/restore-default-experiment": { status: true, reason: "difference 10: restoring an active 0 is 404" },
  "runs/create-without-experiment-id": {
    status: true,
    reason: "difference 12: INVALID_PARAMETER_VALUE on the file store"
  },
  "runs/set-tag-key-251-chars": { status: true, reason: "difference 8: the file store accepts long keys" },
  "runs/get-after-long-tag": {
    all: true,
    reason: "differences 7, 8: the file store keeps 10 000 characters and the 251-character key"
  },
  "runs/search-max0": { all: true, reason: "difference 14: the file store answers max_results 0 with a token" },
  "batch/log-batch-param-changed-value": { status: true, reason: "difference 18: 500 on the 2.17 file store" }
}

const V3_DIFFERENCES: Readonly<Record<string, Accepted>> = {}

// ---------------------------------------------------------------------------------------------------------------
// Request building
// ---------------------------------------------------------------------------------------------------------------

const substitute = (template: string, captures: ReadonlyMap<string, string>): string =>
  template.replace(/\{\{(enc:)?([A-Z0-9_]+)\}\}/g, (_, enc: string | undefined, name: string) => {
    const value = captures.get(name)
    if (value === undefined) throw new Error(`no capture ${name}`)
    return enc === undefined ? value : encodeURIComponent(value)
  })

const substituteJson = (template: Json, captures: ReadonlyMap<string, string>): Json => {
  if (typeof template === "string") return substitute(template, captures)
  if (Array.isArray(template)) return template.map((t) => substituteJson(t, captures))
  if (template !== null && typeof template === "object") {
    return Object.fromEntries(Object.entries(template).map(([k, v]) => [k, substituteJson(v, captures)]))
  }
  return template
}

/** The README's `sha256-counter`: block i = SHA-256("<seed>:<i>"), concatenated, cut to size. */
const generate = (seed: string, size: number): Uint8Array => {
  const out = new Uint8Array(size)
  for (let i = 0, offset = 0; offset < size; i++, offset += 32) {
    const block = createHash("sha256").update(`${seed}:${i}`, "utf8").digest()
    out.set(block.subarray(0, Math.min(32, size - offset)), offset)
  }
  return out
}

const requestBody = (r: WireRequest, captures: ReadonlyMap<string, string>): string | Uint8Array | undefined => {
  if (r.jsonTemplate !== undefined) return JSON.stringify(substituteJson(r.jsonTemplate, captures))
  if (r.json !== undefined) return JSON.stringify(r.json)
  if (r.text !== undefined) return r.text
  if (r.bodyBase64 !== undefined) return new Uint8Array(Buffer.from(r.bodyBase64, "base64"))
  if (r.bodyGenerator !== undefined) return generate(r.bodyGenerator.seed, r.bodyGenerator.size)
  return undefined
}

// ---------------------------------------------------------------------------------------------------------------
// Comparing replies
// ---------------------------------------------------------------------------------------------------------------

/** Keys whose values vary between servers and runs (README: "Values that vary"). */
const VARYING_KEYS = new Set(["creation_time", "last_update_time", "message", "sqlstate", "error_class"])
const RANDOM_RUN_NAME = /^[a-z]+-[a-z]+-\d+$/

interface Context {
  /** Recorded value → the value the emulator gave (ids, artifact URIs). */
  readonly ids: ReadonlyMap<string, string>
  /** The file store orders tags, params and metrics arbitrarily. */
  readonly unordered: boolean
  readonly values: boolean
}

const mapString = (expected: string, ctx: Context): string => {
  const whole = ctx.ids.get(expected)
  if (whole !== undefined) return whole
  let out = expected
  // long ids (run ids, file-store experiment ids) also occur inside other strings, such as artifact URIs
  for (const [from, to] of [...ctx.ids].filter(([k]) => k.length >= 8).sort((a, b) => b[0].length - a[0].length)) {
    out = out.split(from).join(to)
  }
  return out
}

const sortKeyed = (items: ReadonlyArray<Json>): ReadonlyArray<Json> =>
  items.every((i) =>
      i !== null && typeof i === "object" && !Array.isArray(i) && typeof (i as JsonObject)["key"] === "string"
    )
    ? [...items].sort((a, b) => {
      const ka = String((a as JsonObject)["key"])
      const kb = String((b as JsonObject)["key"])
      return ka < kb
        ? -1
        : ka > kb
        ? 1
        : Number((a as JsonObject)["step"] ?? 0) - Number((b as JsonObject)["step"] ?? 0)
    })
    : items

/** Differences between a recorded JSON value and the emulator's, as readable lines. */
const compare = (expected: Json, actual: Json | undefined, path: string, ctx: Context, out: Array<string>): void => {
  if (actual === undefined) {
    out.push(`${path}: missing`)
    return
  }
  if (Array.isArray(expected)) {
    if (!Array.isArray(actual)) return void out.push(`${path}: expected an array`)
    if (expected.length !== actual.length) {
      return void out.push(`${path}: ${actual.length} items, recorded ${expected.length}`)
    }
    const e = ctx.unordered ? sortKeyed(expected) : expected
    const a = ctx.unordered ? sortKeyed(actual as ReadonlyArray<Json>) : (actual as ReadonlyArray<Json>)
    e.forEach((item, i) => compare(item, a[i], `${path}[${i}]`, ctx, out))
    return
  }
  if (expected !== null && typeof expected === "object") {
    if (actual === null || typeof actual !== "object" || Array.isArray(actual)) {
      return void out.push(`${path}: expected an object`)
    }
    const o = expected as JsonObject
    const a = actual as JsonObject
    const ek = Object.keys(o).sort()
    const ak = Object.keys(a).sort()
    if (ek.join() !== ak.join()) out.push(`${path}: keys ${JSON.stringify(ak)}, recorded ${JSON.stringify(ek)}`)
    for (const key of ek) {
      if (!(key in a)) continue
      if (VARYING_KEYS.has(key)) continue
      // a generated run name (and its mlflow.runName tag) is random
      if (key === "run_name" && typeof o[key] === "string" && RANDOM_RUN_NAME.test(o[key] as string)) continue
      if (key === "value" && o["key"] === "mlflow.runName" && RANDOM_RUN_NAME.test(String(o[key]))) continue
      compare(o[key]!, a[key], `${path}.${key}`, ctx, out)
    }
    return
  }
  if (!ctx.values) return
  const want = typeof expected === "string" ? mapString(expected, ctx) : expected
  if (want !== actual) {
    out.push(`${path}: ${JSON.stringify(actual)?.slice(0, 120)}, recorded ${JSON.stringify(want)?.slice(0, 120)}`)
  }
}

/** Where a captured value sits in the recorded reply, to read ours from the same place. */
const findPath = (
  json: Json,
  value: string,
  path: ReadonlyArray<string | number> = []
): ReadonlyArray<string | number> | undefined => {
  if (json === value) return path
  if (Array.isArray(json)) {
    for (const [i, item] of json.entries()) {
      const found = findPath(item, value, [...path, i])
      if (found !== undefined) return found
    }
  } else if (json !== null && typeof json === "object") {
    for (const [k, v] of Object.entries(json)) {
      const found = findPath(v, value, [...path, k])
      if (found !== undefined) return found
    }
  }
  return undefined
}

const at = (json: Json | undefined, path: ReadonlyArray<string | number>): Json | undefined => {
  let cur: Json | undefined = json
  for (const p of path) {
    if (cur === null || typeof cur !== "object") return undefined
    cur = (cur as Record<string | number, Json>)[p]
  }
  return cur
}

// ---------------------------------------------------------------------------------------------------------------
// The replay
// ---------------------------------------------------------------------------------------------------------------

interface Replayer {
  readonly emulator: () => Emulator
  readonly captures: Map<string, string>
  readonly ids: Map<string, string>
}

const replayStep = async (
  line: WireLine,
  r: Replayer,
  accepted: Accepted | undefined,
  unordered: boolean,
  normalize: (json: Json, endpoint: string) => Json
): Promise<ReadonlyArray<string>> => {
  const problems: Array<string> = []
  const req = line.request
  const path = req.pathTemplate === undefined ? req.path : substitute(req.pathTemplate, r.captures)
  const body = requestBody(req, r.captures)
  const headers: Record<string, string> = {}
  if (req.contentType !== null) headers["content-type"] = req.contentType
  const response = await fetch(`${r.emulator().url}${path}`, {
    method: req.method,
    headers,
    ...(body === undefined ? {} : { body })
  })
  const bytes = new Uint8Array(await response.arrayBuffer())
  const raw = new TextDecoder().decode(bytes)
  const want = line.response
  if (accepted?.all === true) return problems
  if (response.status !== want.status && accepted?.status !== true) {
    problems.push(`status ${response.status}, recorded ${want.status}: ${raw.slice(0, 200)}`)
    return problems
  }
  const contentType = response.headers.get("content-type")
  if (response.status === want.status && contentType !== want.contentType) {
    problems.push(`content-type ${contentType}, recorded ${want.contentType}`)
  }
  if (want.json !== undefined && response.status === want.status) {
    let json: Json
    try {
      json = JSON.parse(raw) as Json
    } catch {
      problems.push(`not JSON: ${raw.slice(0, 120)}`)
      return problems
    }
    const layout = want.jsonStyle === "python-oneline" ? pythonJson(json) : JSON.stringify(json, null, 2)
    if (want.jsonStyle !== "raw" && layout !== raw) {
      problems.push(`layout is not ${want.jsonStyle}: ${raw.slice(0, 120)}`)
    }
    const endpoint = req.path.replace(/^\/(?:ajax-)?api\/2\.0\/mlflow\//, "").split("?")[0]!
    const wantJson = normalize(want.json, endpoint)
    // captures first, so that this step's own ids compare as equal: read ours where the recorded value sits
    for (const [name, value] of Object.entries(line.captures)) {
      if (name.endsWith("_ART") && line.captures[`${name}IFACT_URI`] !== undefined) continue
      const where = findPath(wantJson, value)
      const ours = where === undefined ? undefined : at(json, where)
      if (typeof ours !== "string") {
        problems.push(`capture ${name}: not found in the reply`)
        continue
      }
      r.captures.set(name, ours)
      r.ids.set(value, ours)
      if (name.endsWith("_ARTIFACT_URI")) {
        const art = name.replace(/_ARTIFACT_URI$/, "_ART")
        const ourArt = ours.replace(/^mlflow-artifacts:\/+/, "")
        r.captures.set(art, ourArt)
        const recordedArt = line.captures[art]
        if (recordedArt !== undefined) r.ids.set(recordedArt, ourArt)
      }
    }
    if (wantJson !== null && typeof wantJson === "object" && "error_code" in wantJson) {
      if (accepted?.status === true) return problems
      const code = (json as JsonObject)["error_code"]
      if (code !== wantJson["error_code"]) {
        problems.push(`error_code ${String(code)}, recorded ${String(wantJson["error_code"])}`)
      }
    } else if (accepted?.sortRuns === true) {
      // run ids are random: ties in start_time and run_id order come out differently; the order itself is checked
      const byName = (j: Json) => ({
        runs: [...((j as { runs?: ReadonlyArray<Json> }).runs ?? [])].sort((a, b) =>
          runName(a).localeCompare(runName(b))
        )
      })
      compare(byName(wantJson), byName(json), "$", { ids: r.ids, unordered, values: true }, problems)
      const order = (req.json as { order_by?: ReadonlyArray<string> } | undefined)?.order_by ?? []
      const runs = ((json as { runs?: ReadonlyArray<Json> }).runs ?? []).map((x) =>
        (x as { info: { start_time: number; run_id: string } }).info
      )
      const idDesc = order.includes("attributes.run_id DESC")
      const startAsc = order.includes("attributes.start_time ASC")
      for (let i = 1; i < runs.length; i++) {
        const a = runs[i - 1]!
        const b = runs[i]!
        const byId = idDesc ? (a.run_id > b.run_id) : (a.run_id < b.run_id)
        const ok = startAsc ? a.start_time < b.start_time || (a.start_time === b.start_time && byId) : byId
        if (!ok) problems.push(`runs out of order at ${i}: ${JSON.stringify(order)}`)
      }
    } else {
      compare(wantJson, json, "$", { ids: r.ids, unordered, values: accepted?.values !== true }, problems)
    }
  } else if (response.status === want.status) {
    for (const header of ["content-disposition", "transfer-encoding"]) {
      if ((want.headers[header] ?? null) !== response.headers.get(header)) {
        problems.push(`${header} ${response.headers.get(header)}, recorded ${want.headers[header]}`)
      }
    }
    const expectSha = line.check?.expectSha256 ??
      (want.contentType?.startsWith("text/html") ? undefined : want.bodySha256)
    const sha = createHash("sha256").update(bytes).digest("hex")
    if (expectSha !== undefined && sha !== expectSha) problems.push(`body sha256 ${sha}, recorded ${expectSha}`)
  }
  return problems
}

/**
 * The file store's replies as the emulator's flavor would give them, for the differences that run through every
 * later step: the 251-character tag key it accepted (difference 8) shows in every later reply of that run, and its
 * runs/create replies carry `inputs` (difference 5).
 */
const normalizeFileStore = (json: Json, step: string): Json => {
  const walk = (j: Json, key: string | undefined): Json => {
    if (Array.isArray(j)) {
      const items = key === "tags" ? j.filter((t) => String((t as JsonObject)["key"] ?? "").length <= 250) : j
      return items.map((i) => walk(i, undefined))
    }
    if (j !== null && typeof j === "object") {
      return Object.fromEntries(
        Object.entries(j)
          .filter(([k]) => !(step === "runs/create" && k === "inputs"))
          .map(([k, v]) => [k, walk(v, k)])
      )
    }
    return j
  }
  return walk(json, undefined)
}

const FILES: ReadonlyArray<{
  readonly file: string
  readonly options: EmulatorOptions
  readonly differences: Readonly<Record<string, Accepted>>
  readonly unordered: boolean
  readonly normalize?: (json: Json, endpoint: string) => Json
}> = [
  { file: "mlflow-2.17.2-sqlite.jsonl", options: { flavor: "2.17-sqlite" }, differences: {}, unordered: false },
  {
    file: "mlflow-2.17.2-filestore.jsonl",
    // difference 1: no trailing empty runs/search page on the file store
    options: { flavor: "2.17-sqlite", trailingEmptyPage: false },
    differences: FILESTORE_DIFFERENCES,
    unordered: true,
    normalize: normalizeFileStore
  },
  { file: "mlflow-3.x-sqlite.jsonl", options: { flavor: "3.x-sqlite" }, differences: V3_DIFFERENCES, unordered: false }
]

for (const { differences, file, normalize, options, unordered } of FILES) {
  describe(`replay of ${file}`, () => {
    const lines = readLines(file)
    let scope: Scope.CloseableScope | undefined
    let emulator: Emulator | undefined
    const replayer: Replayer = {
      emulator: () => emulator!,
      captures: new Map(),
      ids: new Map()
    }
    beforeAll(async () => {
      scope = await Effect.runPromise(Scope.make())
      emulator = await Effect.runPromise(Scope.extend(startEmulator(options), scope))
    })
    afterAll(async () => {
      if (scope !== undefined) await Effect.runPromise(Scope.close(scope, Exit.void))
    })

    // the scenarios run in the recorded order on one server, as they were recorded
    for (const scenario of SCENARIOS) {
      it(`${scenario}: every exchange answers as recorded`, async () => {
        const steps = lines.filter((l) => l.scenario === scenario)
        expect(steps.length).toBeGreaterThan(20)
        const problems: Array<string> = []
        let replayed = 0
        for (const line of steps) {
          const id = `${scenario}/${line.step}`
          if (EXCLUDED[id] !== undefined) continue
          const found = await replayStep(
            line,
            replayer,
            differences[id] ?? COMMON[id],
            unordered,
            normalize ?? ((j) => j)
          )
          replayed++
          for (const p of found) problems.push(`${line.step}: ${p}`)
        }
        expect(problems).toEqual([])
        expect(replayed).toBe(steps.length - Object.keys(EXCLUDED).filter((k) => k.startsWith(`${scenario}/`)).length)
      })
    }
  })
}
