/**
 * The emulator answers like real MLflow servers where the recordings are silent: 3.x stores a chunked artifact PUT
 * empty, experiment searches take only `attribute`, `tag` and `tags` as entity prefixes, and a file-store server's
 * get-by-name refuses a name holding `'`. Plain `fetch`, so that no client code stands between test and server.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Option } from "effect"
import { type Backend, type Emulator, fileStoreNameRefusal, type Flavor, startEmulator } from "../emulator/index.js"

interface Answer {
  readonly status: number
  readonly body: unknown
}

const api = (emulator: Emulator, route: string) => `${emulator.url}/api/2.0/mlflow/${route}`

const answer = (response: Response): Promise<Answer> =>
  response.text().then((text) => ({ status: response.status, body: text === "" ? undefined : JSON.parse(text) }))

const post = (emulator: Emulator, route: string, body: unknown) =>
  Effect.promise(() =>
    fetch(api(emulator, route), {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(body)
    }).then(answer)
  )

const get = (emulator: Emulator, route: string, query: Record<string, string>) =>
  Effect.promise(() => fetch(`${api(emulator, route)}?${new URLSearchParams(query).toString()}`).then(answer))

const bytes = (n: number) => Uint8Array.from({ length: n }, (_, i) => (i * 7 + 3) % 256)

/** A body `fetch` can only send chunked: a stream of unknown length. */
const stream = (data: Uint8Array) =>
  new ReadableStream<Uint8Array>({
    start(controller) {
      controller.enqueue(data.subarray(0, data.length >> 1))
      controller.enqueue(data.subarray(data.length >> 1))
      controller.close()
    }
  })

const artifactUrl = (emulator: Emulator, path: string) => `${emulator.url}/api/2.0/mlflow-artifacts/artifacts/${path}`

const put = (emulator: Emulator, path: string, data: Uint8Array, chunked: boolean) =>
  Effect.promise(() =>
    fetch(
      artifactUrl(emulator, path),
      chunked
        ? { method: "PUT", body: stream(data), duplex: "half" }
        : { method: "PUT", body: data }
    ).then(answer)
  )

const download = (emulator: Emulator, path: string) =>
  Effect.promise(async () => {
    const response = await fetch(artifactUrl(emulator, path))
    return { status: response.status, bytes: new Uint8Array(await response.arrayBuffer()) }
  })

const emulatorOf = (flavor: Flavor, backend: Backend = "sqlite") => startEmulator({ flavor, backend })

const invalidParameter = (message: string) => ({ error_code: "INVALID_PARAMETER_VALUE", message })

// ---------------------------------------------------------------------------------------------------------------
// Artifact PUT without Content-Length
// ---------------------------------------------------------------------------------------------------------------

describe("artifact PUT sent chunked (no Content-Length)", () => {
  const data = bytes(70_000)

  it.scopedLive("3.x (uvicorn) stores an empty file and answers 200 {}; with a length it stores the bytes", () =>
    Effect.gen(function*() {
      const emulator = yield* emulatorOf("3.x-sqlite")
      expect(yield* put(emulator, "1/r1/artifacts/chunked.bin", data, true)).toEqual({ status: 200, body: {} })
      const sent = emulator.requests().find((r) => r.method === "PUT")
      expect(sent?.headers["transfer-encoding"]).toBe("chunked")
      expect(sent?.headers["content-length"]).toBeUndefined()
      expect(yield* download(emulator, "1/r1/artifacts/chunked.bin")).toEqual({ status: 200, bytes: new Uint8Array(0) })

      expect(yield* put(emulator, "1/r1/artifacts/sized.bin", data, false)).toEqual({ status: 200, body: {} })
      expect(emulator.requests().at(-1)?.headers["content-length"]).toBe(String(data.length))
      expect(yield* download(emulator, "1/r1/artifacts/sized.bin")).toEqual({ status: 200, bytes: data })
    }))

  it.scopedLive("2.17 (gunicorn) stores the chunked bytes", () =>
    Effect.gen(function*() {
      const emulator = yield* emulatorOf("2.17-sqlite")
      expect(yield* put(emulator, "1/r1/artifacts/chunked.bin", data, true)).toEqual({ status: 200, body: {} })
      expect(emulator.requests().at(-1)?.headers["transfer-encoding"]).toBe("chunked")
      expect(yield* download(emulator, "1/r1/artifacts/chunked.bin")).toEqual({ status: 200, bytes: data })
    }))
})

// ---------------------------------------------------------------------------------------------------------------
// Entity prefixes: experiment searches (SearchExperimentsUtils) against run searches (SearchUtils)
// ---------------------------------------------------------------------------------------------------------------

/** SearchExperimentsUtils._get_identifier's message (MLflow 2.17.2 and 3.x alike). */
const badEntity = (prefix: string) =>
  invalidParameter(`Invalid entity type '${prefix}'. Valid entity types are ('attribute', 'tag', 'tags')`)

const experimentNames = (a: Answer): ReadonlyArray<string> =>
  ((a.body as { experiments?: ReadonlyArray<{ name: string }> }).experiments ?? []).map((e) => e.name)

for (const flavor of ["2.17-sqlite", "3.x-sqlite"] as const) {
  describe(`entity prefixes on ${flavor}`, () => {
    it.scopedLive("experiment searches refuse attributes., attr. and run., before looking at the key", () =>
      Effect.gen(function*() {
        const emulator = yield* emulatorOf(flavor)
        yield* post(emulator, "experiments/create", { name: "fidelity", tags: [{ key: "team", value: "ml" }] })
        for (const prefix of ["attributes", "attr", "run", "metric"]) {
          const filter = `${prefix}.name = 'fidelity'`
          const viaPost = yield* post(emulator, "experiments/search", { max_results: 10, filter })
          expect(viaPost.status).toBe(400)
          expect(viaPost.body).toMatchObject(badEntity(prefix))
          const viaGet = yield* get(emulator, "experiments/search", { max_results: "10", filter })
          expect(viaGet.status).toBe(400)
          expect(viaGet.body).toMatchObject(badEntity(prefix))
        }
        // the entity is checked first: an unknown key behind a bad prefix still names the prefix
        expect((yield* post(emulator, "experiments/search", { max_results: 10, filter: "attributes.nme = 'x'" })).body)
          .toMatchObject(badEntity("attributes"))
        // order_by goes through the same check
        const ordered = yield* post(emulator, "experiments/search", {
          max_results: 10,
          order_by: ["attributes.name DESC"]
        })
        expect(ordered.status).toBe(400)
        expect(ordered.body).toMatchObject(badEntity("attributes"))
      }))

    it.scopedLive("experiment searches take attribute., a bare key, tag. and tags.", () =>
      Effect.gen(function*() {
        const emulator = yield* emulatorOf(flavor)
        yield* post(emulator, "experiments/create", { name: "fidelity", tags: [{ key: "team", value: "ml" }] })
        yield* post(emulator, "experiments/create", { name: "other" })
        const filters = ["attribute.name = 'fidelity'", "name = 'fidelity'", "tag.team = 'ml'", "tags.team = 'ml'"]
        for (const filter of filters) {
          const viaPost = yield* post(emulator, "experiments/search", { max_results: 10, filter })
          expect(viaPost.status, filter).toBe(200)
          expect(experimentNames(viaPost), filter).toEqual(["fidelity"])
          const viaGet = yield* get(emulator, "experiments/search", { max_results: "10", filter })
          expect(experimentNames(viaGet), filter).toEqual(["fidelity"])
        }
        const ordered = yield* post(emulator, "experiments/search", {
          max_results: 10,
          order_by: ["attribute.name DESC"]
        })
        expect(experimentNames(ordered)).toEqual(["other", "fidelity", "Default"])
      }))

    it.scopedLive("run searches take attributes., attribute., attr. and run.", () =>
      Effect.gen(function*() {
        const emulator = yield* emulatorOf(flavor)
        const created = yield* post(emulator, "experiments/create", { name: "fidelity" })
        const experimentId = (created.body as { experiment_id: string }).experiment_id
        yield* post(emulator, "runs/create", { experiment_id: experimentId, run_name: "r1", start_time: 1 })
        yield* post(emulator, "runs/create", { experiment_id: experimentId, run_name: "r2", start_time: 2 })
        for (const prefix of ["attributes", "attribute", "attr", "run"]) {
          const found = yield* post(emulator, "runs/search", {
            experiment_ids: [experimentId],
            filter: `${prefix}.run_name = 'r1'`,
            max_results: 10
          })
          expect(found.status, prefix).toBe(200)
          const runs = (found.body as { runs?: ReadonlyArray<{ info: { run_name: string } }> }).runs ?? []
          expect(runs.map((r) => r.info.run_name), prefix).toEqual(["r1"])
        }
      }))
  })
}

// ---------------------------------------------------------------------------------------------------------------
// get-by-name on a file store
// ---------------------------------------------------------------------------------------------------------------

describe("experiments/get-by-name of a name holding '", () => {
  const quoted = "x@it's"

  it.scopedLive("a file store refuses it with its own filter's 400; a plain name and a search with \"…\" work", () =>
    Effect.gen(function*() {
      const emulator = yield* emulatorOf("2.17-sqlite", "file")
      expect(emulator.backend).toBe("file")
      // the file store checks a new name through the same filter, so such an experiment cannot be created over HTTP;
      // one made in the store itself (as another server or a migration could have) is what the look-ups meet
      const created = yield* post(emulator, "experiments/create", { name: quoted })
      expect(created).toEqual({
        status: 400,
        body: invalidParameter("Invalid clause(s) in filter string: name = 'x@it's, '")
      })
      yield* emulator.handle.mlflow.createExperiment(quoted)
      yield* post(emulator, "experiments/create", { name: "x@plain" })

      const refused = yield* get(emulator, "experiments/get-by-name", { experiment_name: quoted })
      expect(refused).toEqual({
        status: 400,
        body: invalidParameter("Invalid clause(s) in filter string: name = 'x@it's, '")
      })
      const plain = yield* get(emulator, "experiments/get-by-name", { experiment_name: "x@plain" })
      expect(plain.status).toBe(200)
      expect((plain.body as { experiment: { name: string } }).experiment.name).toBe("x@plain")

      const searched = yield* post(emulator, "experiments/search", { max_results: 10, filter: `name = "${quoted}"` })
      expect(searched.status).toBe(200)
      expect(experimentNames(searched)).toEqual([quoted])
    }))

  it.scopedLive("3.x on a file store refuses it too, with the 3.x error fields", () =>
    Effect.gen(function*() {
      const emulator = yield* emulatorOf("3.x-sqlite", "file")
      yield* emulator.handle.mlflow.createExperiment(quoted)
      const refused = yield* get(emulator, "experiments/get-by-name", { experiment_name: quoted })
      expect(refused.status).toBe(400)
      expect(refused.body).toMatchObject(invalidParameter("Invalid clause(s) in filter string: name = 'x@it's, '"))
    }))

  it.scopedLive("a sqlite store finds it", () =>
    Effect.gen(function*() {
      const emulator = yield* emulatorOf("2.17-sqlite")
      expect(emulator.backend).toBe("sqlite")
      yield* post(emulator, "experiments/create", { name: quoted })
      const found = yield* get(emulator, "experiments/get-by-name", { experiment_name: quoted })
      expect(found.status).toBe(200)
      expect((found.body as { experiment: { name: string } }).experiment.name).toBe(quoted)
    }))

  // MLflow 2.17.2's SearchExperimentsUtils._process_statement on sqlparse 0.4.2, run on each filter `name = '<name>'`
  it("the refusal lists what sqlparse leaves unparsed", () => {
    const cases: ReadonlyArray<readonly [string, string | undefined]> = [
      ["it's", "name = 'it's, '"],
      ["helloworld@team's", "name = 'helloworld@team's, '"],
      ["a'b'c", "name = 'a'b, 'c'"],
      ["a b'c d", "name = 'a b'c, d, '"],
      ["x' b", "name = 'x' b, '"],
      ["'x", "name = ''x, '"],
      ["x'", "'"],
      ["'", "'"],
      ["x@it''s", undefined],
      ["q\"x", undefined],
      ["plain", undefined]
    ]
    for (const [name, list] of cases) {
      expect(Option.getOrUndefined(fileStoreNameRefusal(name)), name).toBe(
        list === undefined ? undefined : `Invalid clause(s) in filter string: ${list}`
      )
    }
  })
})
