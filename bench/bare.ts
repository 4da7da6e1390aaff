/**
 * The floor of every figure: MLflow's REST API and artifact proxy called with plain `fetch`, no retries, no schema,
 * no Effect. Each call is one request, counted on the shared counter.
 */
import { createReadStream, createWriteStream } from "node:fs"
import { stat } from "node:fs/promises"
import { Readable, Writable } from "node:stream"
import { pipeline } from "node:stream/promises"
import type { Counter } from "./stats.js"

export interface BareRun {
  readonly runId: string
  readonly experimentId: string
  readonly artifactUri: string
  readonly tags: ReadonlyArray<{ readonly key: string; readonly value: string }>
}

export interface BareExperiment {
  readonly experimentId: string
  readonly name: string
}

export interface KeyValue {
  readonly key: string
  readonly value: string
}

interface WireRun {
  readonly info: { readonly run_id: string; readonly experiment_id: string; readonly artifact_uri: string }
  readonly data?: { readonly tags?: ReadonlyArray<KeyValue> }
}

const toRun = (r: WireRun): BareRun => ({
  runId: r.info.run_id,
  experimentId: r.info.experiment_id,
  artifactUri: r.info.artifact_uri,
  tags: r.data?.tags ?? []
})

export const tagOf = (run: BareRun, key: string): string | undefined => {
  for (let i = run.tags.length - 1; i >= 0; i--) if (run.tags[i]!.key === key) return run.tags[i]!.value
  return undefined
}

/** A fetch client of one tracking server (`base` without a trailing slash), with optional auth headers. */
export class Bare {
  constructor(
    readonly base: string,
    readonly headers: Readonly<Record<string, string>>,
    readonly counter: Counter
  ) {}

  async #fetch(url: string, init: RequestInit): Promise<Response> {
    this.counter.requests++
    const response = await fetch(url, {
      ...init,
      headers: { ...this.headers, ...(init.headers as Record<string, string>) }
    })
    if (!response.ok) {
      const text = await response.text()
      throw new Error(`${init.method ?? "GET"} ${url}: ${response.status} ${text.slice(0, 200)}`)
    }
    return response
  }

  async post<A>(path: string, body: unknown): Promise<A> {
    const response = await this.#fetch(`${this.base}/api/2.0/mlflow/${path}`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(body)
    })
    return (await response.json()) as A
  }

  async get<A>(path: string, params: Record<string, string>): Promise<A> {
    const query = new URLSearchParams(params).toString()
    const response = await this.#fetch(`${this.base}/api/2.0/mlflow/${path}?${query}`, { method: "GET" })
    return (await response.json()) as A
  }

  // -- tracking ---------------------------------------------------------------------------------------------------

  async createExperiment(name: string): Promise<string> {
    return (await this.post<{ experiment_id: string }>("experiments/create", { name })).experiment_id
  }

  async createRun(experimentId: string, tags: ReadonlyArray<KeyValue>): Promise<BareRun> {
    const r = await this.post<{ run: WireRun }>("runs/create", {
      experiment_id: experimentId,
      start_time: Date.now(),
      user_id: "unknown",
      tags
    })
    return toRun(r.run)
  }

  async logTags(runId: string, tags: ReadonlyArray<KeyValue>): Promise<void> {
    for (let i = 0; i < tags.length; i += 100) {
      await this.post("runs/log-batch", { run_id: runId, tags: tags.slice(i, i + 100) })
    }
  }

  /** Every experiment (ACTIVE_ONLY), page by page. */
  async searchExperiments(): Promise<ReadonlyArray<BareExperiment>> {
    const out: Array<BareExperiment> = []
    let token: string | undefined
    do {
      const r = await this.post<
        { experiments?: ReadonlyArray<{ experiment_id: string; name: string }>; next_page_token?: string }
      >(
        "experiments/search",
        { max_results: 1000, view_type: "ACTIVE_ONLY", ...(token === undefined ? {} : { page_token: token }) }
      )
      for (const e of r.experiments ?? []) out.push({ experimentId: e.experiment_id, name: e.name })
      token = r.next_page_token === "" ? undefined : r.next_page_token
    } while (token !== undefined)
    return out
  }

  /** Every matching run (ACTIVE_ONLY), page by page at 1000. */
  async searchRuns(experimentIds: ReadonlyArray<string>, filter: string): Promise<ReadonlyArray<BareRun>> {
    const out: Array<BareRun> = []
    let token: string | undefined
    do {
      const r = await this.post<{ runs?: ReadonlyArray<WireRun>; next_page_token?: string }>("runs/search", {
        experiment_ids: experimentIds,
        filter,
        run_view_type: "ACTIVE_ONLY",
        max_results: 1000,
        ...(token === undefined ? {} : { page_token: token })
      })
      for (const run of r.runs ?? []) out.push(toRun(run))
      token = r.next_page_token === "" ? undefined : r.next_page_token
    } while (token !== undefined)
    return out
  }

  // -- artifacts (through the server's proxy) ---------------------------------------------------------------------

  artifactUrl(artifactUri: string, path: string): string {
    const root = artifactUri.replace(/^mlflow-artifacts:/, "").replace(/^\/+/, "").replace(/\/+$/, "")
    if (/^[a-z]+:/i.test(root)) throw new Error(`the bare client needs a proxied artifact store, not ${artifactUri}`)
    const segments = [...root.split("/"), ...path.split("/")].map(encodeURIComponent).join("/")
    return `${this.base}/api/2.0/mlflow-artifacts/artifacts/${segments}`
  }

  async put(artifactUri: string, path: string, body: Uint8Array): Promise<void> {
    const response = await this.#fetch(this.artifactUrl(artifactUri, path), {
      method: "PUT",
      headers: { "content-type": "application/octet-stream" },
      body
    })
    await response.arrayBuffer()
  }

  /** Streams a local file up (never whole in memory), with its length. */
  async putFile(artifactUri: string, path: string, file: string): Promise<void> {
    return this.#putReadable(artifactUri, path, createReadStream(file), (await stat(file)).size)
  }

  /** Streams a generated body of `size` bytes up, with its length. */
  putStream(artifactUri: string, path: string, chunks: AsyncIterable<Uint8Array>, size: number): Promise<void> {
    return this.#putReadable(artifactUri, path, Readable.from(chunks), size)
  }

  // with its Content-Length: a chunked body is stored as an empty file by MLflow 3.x
  async #putReadable(artifactUri: string, path: string, source: Readable, size: number): Promise<void> {
    const body = Readable.toWeb(source) as ReadableStream<Uint8Array>
    const response = await this.#fetch(this.artifactUrl(artifactUri, path), {
      method: "PUT",
      headers: { "content-type": "application/octet-stream", "content-length": String(size) },
      body,
      duplex: "half"
    } as RequestInit)
    await response.arrayBuffer()
  }

  /** One level of a run's artifacts: name and size of each file. */
  async listArtifacts(artifactUri: string): Promise<ReadonlyArray<{ readonly path: string; readonly size: number }>> {
    const root = artifactUri.replace(/^mlflow-artifacts:/, "").replace(/^\/+/, "").replace(/\/+$/, "")
    const response = await this.#fetch(
      `${this.base}/api/2.0/mlflow-artifacts/artifacts?${new URLSearchParams({ path: root })}`,
      { method: "GET" }
    )
    const r = (await response.json()) as {
      files?: ReadonlyArray<{ path: string; is_dir?: boolean; file_size?: number }>
    }
    return (r.files ?? []).filter((f) => f.is_dir !== true).map((f) => ({ path: f.path, size: f.file_size ?? 0 }))
  }

  async getBytes(artifactUri: string, path: string): Promise<Uint8Array> {
    const response = await this.#fetch(this.artifactUrl(artifactUri, path), { method: "GET" })
    return new Uint8Array(await response.arrayBuffer())
  }

  /** Reads an artifact chunk by chunk, handing each chunk to `onChunk`; returns the byte count. */
  async getEach(artifactUri: string, path: string, onChunk: (chunk: Uint8Array) => void): Promise<number> {
    const response = await this.#fetch(this.artifactUrl(artifactUri, path), { method: "GET" })
    let size = 0
    for await (const chunk of response.body as unknown as AsyncIterable<Uint8Array>) {
      size += chunk.length
      onChunk(chunk)
    }
    return size
  }

  /** Streams an artifact into a local file. */
  async getFile(artifactUri: string, path: string, file: string): Promise<void> {
    const response = await this.#fetch(this.artifactUrl(artifactUri, path), { method: "GET" })
    const web = response.body as ReadableStream<Uint8Array>
    await pipeline(Readable.fromWeb(web as Parameters<typeof Readable.fromWeb>[0]), createWriteStream(file))
  }
}

/** Runs `f` over `items` with at most `limit` in flight (plain promises). */
export const pool = async <A>(items: ReadonlyArray<A>, limit: number, f: (a: A, i: number) => Promise<void>) => {
  let next = 0
  const worker = async () => {
    while (next < items.length) {
      const i = next++
      await f(items[i]!, i)
    }
  }
  await Promise.all(Array.from({ length: Math.max(1, Math.min(limit, items.length)) }, worker))
}

/** A writable that discards what it gets (for streamed downloads). */
export const discard = (): Writable => new Writable({ write: (_chunk, _enc, done) => done() })
