/**
 * The server the benchmark runs against: the test emulator in a child process (default), or the real tracking server
 * of MLFLOW_TRACKING_URI. Gives the library's Mlflow layer (its requests counted) and the bare fetch client.
 */
import * as NodeContext from "@effect/platform-node/NodeContext"
import * as NodeHttpClient from "@effect/platform-node/NodeHttpClient"
import type * as FileSystem from "@effect/platform/FileSystem"
import * as HttpClient from "@effect/platform/HttpClient"
import type * as Path from "@effect/platform/Path"
import { Effect, Layer, ManagedRuntime, Redacted } from "effect"
import { fileURLToPath } from "node:url"
import type { Mlflow } from "../src/mlflow/Mlflow.js"
import * as MlflowHttp from "../src/mlflow/MlflowHttp.js"
import type { Seed } from "../src/mlflow/MlflowMemory.js"
import { Bare } from "./bare.js"
import { startChild } from "./child.js"
import type { Counter } from "./stats.js"

export type LibraryRuntime = ManagedRuntime.ManagedRuntime<Mlflow | FileSystem.FileSystem | Path.Path, unknown>

export interface Target {
  /** "emulator" or the tracking URI (without credentials). */
  readonly name: string
  readonly emulated: boolean
  readonly url: string
  /** The emulator's control URL ("" for a real server). */
  readonly controlUrl: string
  readonly settings: MlflowHttp.MlflowHttpConfig
  /** Counts the library's requests (every attempt the HttpClient sends). */
  readonly library: Counter
  /** Counts the bare client's requests. */
  readonly floor: Counter
  readonly runtime: LibraryRuntime
  readonly bare: Bare
  /** Seeds the emulator's store (the emulator only). */
  readonly load: ((seed: Seed) => Promise<void>) | undefined
  /** Drops stored artifacts under a location `<experiment>/<run>/artifacts...` (the emulator only). */
  readonly dropArtifacts: ((location: string) => Promise<void>) | undefined
  readonly close: () => Promise<void>
}

/** The HttpClient from `base`, counting each request it sends. */
const counting = <E, R>(base: Layer.Layer<HttpClient.HttpClient, E, R>, counter: Counter) =>
  Layer.effect(
    HttpClient.HttpClient,
    Effect.map(HttpClient.HttpClient, (client) =>
      HttpClient.tapRequest(client, () =>
        Effect.sync(() => {
          counter.requests++
        })))
  ).pipe(Layer.provide(base))

const authHeaders = (settings: MlflowHttp.MlflowHttpConfig): Record<string, string> => {
  if (settings.username !== undefined) {
    const user = Redacted.value(settings.username)
    const password = settings.password === undefined ? "" : Redacted.value(settings.password)
    return { authorization: `Basic ${Buffer.from(`${user}:${password}`).toString("base64")}` }
  }
  if (settings.token !== undefined) return { authorization: `Bearer ${Redacted.value(settings.token)}` }
  return {}
}

interface Child {
  readonly url: string
  readonly control: string
  readonly stop: () => Promise<void>
}

/** Starts `bench/server.js` (compiled next to this module) and waits for the URLs it prints. */
const startServerProcess = async (): Promise<Child> => {
  const script = fileURLToPath(new URL("./server.js", import.meta.url))
  const { info, stop } = await startChild<{ readonly url: string; readonly control: string }>(script, process.env)
  return { ...info, stop }
}

const runtimeOf = (settings: MlflowHttp.MlflowHttpConfig, client: Layer.Layer<HttpClient.HttpClient, unknown>) =>
  ManagedRuntime.make(
    MlflowHttp.layer(settings).pipe(Layer.provideMerge(Layer.merge(client, NodeContext.layer)))
  ) as LibraryRuntime

/** Where a child process of the benchmark finds the emulator its parent started. */
export const EMULATOR_ENV = { url: "FORML_BENCH_EMULATOR_URL", control: "FORML_BENCH_EMULATOR_CONTROL" } as const

/**
 * MLFLOW_TRACKING_URI's server when the variable is set; else the emulator a parent process passed down; else a fresh
 * emulator in a child process.
 */
export const connect = async (): Promise<Target> => {
  const library: Counter = { requests: 0 }
  const floor: Counter = { requests: 0 }
  const real = process.env["MLFLOW_TRACKING_URI"]
  if (real !== undefined && real !== "") {
    const settings = await Effect.runPromise(MlflowHttp.config)
    const runtime = runtimeOf(settings, counting(MlflowHttp.layerUndiciTls(settings), library))
    return {
      name: settings.trackingUri,
      emulated: false,
      url: settings.trackingUri,
      controlUrl: "",
      settings,
      library,
      floor,
      runtime,
      bare: new Bare(settings.trackingUri, authHeaders(settings), floor),
      load: undefined,
      dropArtifacts: undefined,
      close: () => runtime.dispose()
    }
  }
  const given = process.env[EMULATOR_ENV.url]
  const child: Child = given !== undefined && given !== ""
    ? { url: given, control: process.env[EMULATOR_ENV.control] ?? "", stop: () => Promise.resolve() }
    : await startServerProcess()
  const settings: MlflowHttp.MlflowHttpConfig = { trackingUri: child.url }
  const runtime = runtimeOf(settings, counting(NodeHttpClient.layerUndici, library))
  const control = async (path: string, body: unknown) => {
    const response = await fetch(`${child.control}${path}`, { method: "POST", body: JSON.stringify(body) })
    if (!response.ok) throw new Error(`emulator control ${path}: ${response.status} ${await response.text()}`)
  }
  return {
    name: "emulator",
    emulated: true,
    url: child.url,
    controlUrl: child.control,
    settings,
    library,
    floor,
    runtime,
    bare: new Bare(child.url, {}, floor),
    load: (seed) => control("/load", seed),
    dropArtifacts: (location) => control("/drop", { location }),
    close: async () => {
      await runtime.dispose()
      await child.stop()
    }
  }
}
