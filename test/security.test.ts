/**
 * Security: credentials never show (logs, spans, errors, config values, the CLI's output and `--json`), TLS is
 * verified unless MLFLOW_TRACKING_INSECURE_TLS is true, a custom CA and a client certificate work end to end, and
 * the file store never reads or writes outside its root whatever the names.
 */
import { FileSystem, Path } from "@effect/platform"
import { NodeContext, NodeHttpClient } from "@effect/platform-node"
import { describe, expect, it } from "@effect/vitest"
import {
  Cause,
  ConfigProvider,
  Effect,
  Exit,
  Layer,
  List,
  Logger,
  LogLevel,
  Option,
  Redacted,
  Stream,
  Tracer
} from "effect"
import { randomBytes } from "node:crypto"
import { mkdirSync, readFileSync, symlinkSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { inspect } from "node:util"
import { type Emulator, startEmulator } from "../emulator/index.js"
import { Package } from "../src/asset/Package.js"
import { StateId } from "../src/asset/StateId.js"
import * as MlflowFileStore from "../src/mlflow/MlflowFileStore.js"
import * as MlflowHttp from "../src/mlflow/MlflowHttp.js"
import * as Directory from "../src/registry/Directory.js"
import { MlflowRegistry } from "../src/registry/MlflowRegistry.js"
import { Registry } from "../src/registry/Registry.js"
import { bytes, collect, helloworldZip, key, trainedTag, treeSnapshot, unique } from "./reliability/support.js"
import { runCli } from "./support/processes.js"
import { hasOpenssl, httpsFront, makeCertificates } from "./support/tls.js"

// ---------------------------------------------------------------------------------------------------------------
// Capturing every output of the library
// ---------------------------------------------------------------------------------------------------------------

/** Everything the library said: log lines (all levels) and spans (names, attributes, events, how they ended). */
const recorder = () => {
  const lines: Array<string> = []
  const logger = Logger.make(({ annotations, cause, logLevel, message, spans }) => {
    lines.push(
      `${logLevel.label} ${inspect(message, { depth: 8 })} ${Cause.pretty(cause)} ${
        inspect([...annotations], { depth: 8 })
      }` +
        ` ${List.toArray(spans).map((s) => s.label).join(",")}`
    )
  })
  /** The tracer in place, with every span it makes recorded (name, attributes, events and how it ended). */
  const recording = (base: Tracer.Tracer): Tracer.Tracer =>
    Tracer.make({
      span: (name, parent, context, links, startTime, kind, options) => {
        const span = base.span(name, parent, context, links, startTime, kind, options)
        lines.push(`span ${name}`)
        const attribute = span.attribute.bind(span)
        const event = span.event.bind(span)
        const end = span.end.bind(span)
        span.attribute = (k, v) => {
          lines.push(`span ${name} attribute ${k}=${inspect(v, { depth: 8 })}`)
          attribute(k, v)
        }
        span.event = (n, t, a) => {
          lines.push(`span ${name} event ${n} ${inspect(a, { depth: 8 })}`)
          event(n, t, a)
        }
        span.end = (t, exit) => {
          lines.push(
            `span ${name} end ${Exit.isFailure(exit) ? Cause.pretty(exit.cause) : "ok"} ${
              inspect(span.attributes, { depth: 8 })
            }`
          )
          end(t, exit)
        }
        return span
      },
      context: (f, fiber) => base.context(f, fiber)
    })
  /** Runs `effect` with every log level on and the recording tracer. */
  const around = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
    effect.pipe(
      (e) => Effect.tracerWith((base) => Effect.withTracer(e, recording(base))),
      Effect.provide(Logger.replace(Logger.defaultLogger, logger)),
      Logger.withMinimumLogLevel(LogLevel.All)
    )
  return { lines, around }
}

/** Every way a value can be shown. */
const shown = (value: unknown): ReadonlyArray<string> => {
  const out = [String(value), inspect(value, { depth: 8, showHidden: true })]
  try {
    out.push(JSON.stringify(value) ?? "")
  } catch {
    // circular: the other forms are enough
  }
  if (value instanceof Error) out.push(value.message, value.stack ?? "")
  return out
}

const secrets = () => {
  const user = `forml-user-${randomBytes(4).toString("hex")}`
  const password = `pw-${randomBytes(8).toString("hex")}-SECRET`
  const token = `tok-${randomBytes(8).toString("hex")}-SECRET`
  return {
    user,
    password,
    token,
    /** What must never appear: the secrets, raw, URL-encoded and inside an Authorization header. */
    forbidden: [
      password,
      token,
      Buffer.from(`${user}:${password}`).toString("base64"),
      `Bearer ${token}`
    ]
  }
}

const expectClean = (texts: ReadonlyArray<string>, forbidden: ReadonlyArray<string>) => {
  const all = texts.join("\n")
  for (const secret of forbidden) expect(all.includes(secret), `a credential appears: ${secret}`).toBe(false)
}

// ---------------------------------------------------------------------------------------------------------------
// Credentials
// ---------------------------------------------------------------------------------------------------------------

const env = (values: Record<string, string>) =>
  Effect.withConfigProvider(ConfigProvider.fromMap(new Map(Object.entries(values))))

const platform = Layer.merge(NodeHttpClient.layerUndici, NodeContext.layer)

/** A lifecycle through the registry, then the failures a user meets: 401, 5xx past the retries, resets, bad replies. */
const exercise = (emulator: Emulator, repoid: string) =>
  Effect.gen(function*() {
    const texts: Array<string> = []
    const registry = yield* Registry
    const pkg = yield* Package.open(helloworldZip)
    yield* Directory.publish(pkg)
    const states = yield* Effect.forEach([1, 2], (i) =>
      Effect.as(registry.write(key.project("helloworld"), key.release("1"), StateId.random(), bytes(`s${i}`)), i))
    expect(states).toHaveLength(2)
    const sid = StateId.random()
    yield* registry.write(key.project("helloworld"), key.release("1"), sid, bytes("state"))
    yield* Directory.closeNext(key.project("helloworld"), key.release("1"), trainedTag([sid]))
    expect(yield* Directory.state(key.project("helloworld"), undefined, undefined, 0)).toEqual(bytes("state"))
    const failures: ReadonlyArray<readonly [() => void, Effect.Effect<unknown, unknown, Registry>]> = [
      [
        () =>
          emulator.fault({
            status: 401,
            body: "<html><title>401 Unauthorized</title></html>",
            contentType: "text/html"
          }),
        Directory.projects
      ],
      [() =>
        emulator.fault({ status: 403, errorCode: "PERMISSION_DENIED" }), Directory.projects],
      [() => emulator.fault({ status: 503, times: 20 }), Directory.releases(key.project("helloworld"))],
      [() => emulator.fault({ reset: true, times: 20 }), Directory.projects],
      [
        () => emulator.fault({ status: 200, body: "<html>sign in</html>", contentType: "text/html" }),
        Directory.projects
      ],
      [() => undefined, Directory.releases(key.project("missing"))]
    ]
    for (const [fault, op] of failures) {
      fault()
      const exit = yield* Effect.exit(op)
      emulator.clearFaults()
      expect(Exit.isFailure(exit)).toBe(true)
      if (Exit.isFailure(exit)) {
        texts.push(Cause.pretty(exit.cause))
        for (const e of Cause.failures(exit.cause)) texts.push(...shown(e))
      }
    }
    expect(repoid).not.toBe("")
    return texts
  })

describe("Credentials never appear", () => {
  for (const scheme of ["basic", "bearer", "in the URI"] as const) {
    it.scopedLive(
      `${scheme}: not in logs, spans, errors or config values, though every request carries them`,
      () =>
        Effect.gen(function*() {
          const s = secrets()
          const emulator = yield* startEmulator()
          const uri = scheme === "in the URI"
            ? emulator.url.replace("http://", `http://${s.user}:${encodeURIComponent(s.password)}@`)
            : emulator.url
          const variables: Record<string, string> = {
            MLFLOW_TRACKING_URI: uri,
            MLFLOW_HTTP_REQUEST_MAX_RETRIES: "1",
            MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR: "0",
            MLFLOW_HTTP_REQUEST_BACKOFF_JITTER: "0",
            ...(scheme === "basic" ? { MLFLOW_TRACKING_USERNAME: s.user, MLFLOW_TRACKING_PASSWORD: s.password } : {}),
            ...(scheme === "bearer" ? { MLFLOW_TRACKING_TOKEN: s.token } : {})
          }
          const rec = recorder()
          const repoid = unique("sec")
          const settings = yield* MlflowHttp.config.pipe(env(variables))
          const layer = MlflowRegistry.layer({ repoid }).pipe(
            Layer.provideMerge(MlflowHttp.layer(settings)),
            Layer.provide(platform)
          )
          const texts = yield* rec.around(exercise(emulator, repoid).pipe(Effect.provide(layer)))
          // the credentials went out with every request
          const expected = scheme === "bearer"
            ? `Bearer ${s.token}`
            : `Basic ${Buffer.from(`${s.user}:${s.password}`).toString("base64")}`
          expect(emulator.requests().length).toBeGreaterThan(10)
          expect(emulator.requests().every((r) => r.headers["authorization"] === expected)).toBe(true)
          expect(rec.lines.some((l) => l.startsWith("span MlflowRegistry.push"))).toBe(true)
          expectClean(
            [
              ...rec.lines,
              ...texts,
              ...shown(settings),
              ...shown(settings.password),
              ...shown(settings.token),
              ...shown(settings.trackingUri)
            ],
            s.forbidden
          )
          // a wrong URI that holds credentials is refused without echoing them
          const bad = yield* Effect.flip(
            MlflowHttp.config.pipe(env({ MLFLOW_TRACKING_URI: `ftp://${s.user}:${s.password}@h/` }))
          )
          expectClean(shown(bad), s.forbidden)
        }).pipe(Effect.provide(NodeContext.layer)),
      30_000
    )
  }

  it.scopedLive("the CLI prints no credential: text, --json, every log level, failures", () =>
    Effect.gen(function*() {
      const s = secrets()
      const emulator = yield* startEmulator()
      const withUser = emulator.url.replace("http://", `http://${s.user}:${encodeURIComponent(s.password)}@`)
      const base = { MLFLOW_HTTP_REQUEST_MAX_RETRIES: "0", MLFLOW_TRACKING_TOKEN: s.token }
      const outputs: Array<string> = []
      const cli = (args: ReadonlyArray<string>, variables: Record<string, string>) =>
        Effect.promise(() => runCli(args, { ...base, ...variables })).pipe(
          Effect.tap((r) => Effect.sync(() => outputs.push(r.stdout, r.stderr)))
        )
      const good = yield* cli(["--log-level", "all", "push", helloworldZip], { MLFLOW_TRACKING_URI: withUser })
      expect(good.code, good.stdout + good.stderr).toBe(0)
      const listed = yield* cli(["--log-level", "all", "--json", "list"], { MLFLOW_TRACKING_URI: withUser })
      expect(listed.code).toBe(0)
      expect(JSON.parse(listed.stdout)).toMatchObject({ projects: expect.arrayContaining([expect.anything()]) })
      // the URI with credentials as an option, then failures: a 401, a refused connection, a bad reply
      emulator.fault({ status: 401, body: "<title>401 Unauthorized</title>", contentType: "text/html" })
      const denied = yield* cli(["--json", "--tracking-uri", withUser, "list"], {})
      expect(denied.code).toBe(1)
      expect(denied.stderr.trim().split("\n")).toHaveLength(1)
      const refused = yield* cli(["list", "--tracking-uri", `http://${s.user}:${s.password}@127.0.0.1:9/`], {})
      expect(refused.code).toBe(1)
      emulator.fault({ status: 200, body: "<html>sign in</html>", contentType: "text/html" })
      const garbage = yield* cli(["--log-level", "all", "--json", "list"], { MLFLOW_TRACKING_URI: emulator.url })
      expect(garbage.code).toBe(1)
      expect(emulator.requests().some((r) => r.headers["authorization"] !== undefined)).toBe(true)
      expectClean(outputs, s.forbidden)
    }).pipe(Effect.provide(NodeContext.layer)), 60_000)
})

// ---------------------------------------------------------------------------------------------------------------
// TLS
// ---------------------------------------------------------------------------------------------------------------

/** A registry lifecycle through `layerConfigNode` with MLflow's variables (the application's way in). */
const lifecycleOver = (variables: Record<string, string>) =>
  Effect.scoped(Effect.gen(function*() {
    const registry = yield* MlflowRegistry.make({ repoid: unique("tls") })
    const project = key.project("helloworld")
    const release = key.release("1")
    yield* registry.push(yield* Package.open(helloworldZip))
    const sid = StateId.random()
    yield* registry.write(project, release, sid, bytes("over tls"))
    const generation = yield* registry.close(project, release, key.generation(1), trainedTag([sid]))
    expect(yield* registry.read(project, release, generation, sid)).toEqual(bytes("over tls"))
    expect((yield* registry.pull(project, release)).manifest.name).toBe("helloworld")
    return yield* collect(registry.releases(project))
  })).pipe(
    Effect.provide(MlflowHttp.layerConfigNode().pipe(Layer.provide(NodeContext.layer))),
    env({ MLFLOW_HTTP_REQUEST_MAX_RETRIES: "0", ...variables })
  )

describe.skipIf(!hasOpenssl)("TLS (skipped without openssl)", () => {
  it.scopedLive(
    "verified by default: an unknown CA, a self-signed or another host's certificate is a TransportError",
    () =>
      Effect.gen(function*() {
        const certs = yield* makeCertificates
        const emulator = yield* startEmulator()
        const trusted = yield* httpsFront(emulator.url, { identity: certs.server })
        const selfSigned = yield* httpsFront(emulator.url, { identity: certs.selfSigned })
        const otherHost = yield* httpsFront(emulator.url, { identity: certs.otherHost })
        const cases: ReadonlyArray<Record<string, string>> = [
          { MLFLOW_TRACKING_URI: trusted.url },
          { MLFLOW_TRACKING_URI: trusted.url, MLFLOW_TRACKING_INSECURE_TLS: "false" },
          { MLFLOW_TRACKING_URI: selfSigned.url, MLFLOW_TRACKING_SERVER_CERT_PATH: certs.caPath },
          { MLFLOW_TRACKING_URI: otherHost.url, MLFLOW_TRACKING_SERVER_CERT_PATH: certs.caPath }
        ]
        for (const variables of cases) {
          const error = yield* Effect.flip(lifecycleOver(variables))
          expect(error, JSON.stringify(variables)).toMatchObject({ _tag: "TransportError" })
        }
        // nothing got through to the server
        expect(emulator.requests()).toEqual([])
      }).pipe(Effect.provide(NodeContext.layer)),
    30_000
  )

  it.scopedLive("MLFLOW_TRACKING_INSECURE_TLS=true skips verification", () =>
    Effect.gen(function*() {
      const certs = yield* makeCertificates
      const emulator = yield* startEmulator()
      const front = yield* httpsFront(emulator.url, { identity: certs.selfSigned })
      const releases = yield* lifecycleOver({ MLFLOW_TRACKING_URI: front.url, MLFLOW_TRACKING_INSECURE_TLS: "true" })
      expect(releases.map(String)).toEqual(["1"])
    }).pipe(Effect.provide(NodeContext.layer)), 30_000)

  it.scopedLive(
    "a custom CA (MLFLOW_TRACKING_SERVER_CERT_PATH) and a client certificate work for a whole lifecycle",
    () =>
      Effect.gen(function*() {
        const certs = yield* makeCertificates
        const emulator = yield* startEmulator()
        const front = yield* httpsFront(emulator.url, {
          identity: certs.server,
          caPath: certs.caPath,
          requireClientCert: true
        })
        const verified = { MLFLOW_TRACKING_URI: front.url, MLFLOW_TRACKING_SERVER_CERT_PATH: certs.caPath }
        // the server wants a client certificate: none, or one no CA vouches for, is refused
        expect(yield* Effect.flip(lifecycleOver(verified))).toMatchObject({ _tag: "TransportError" })
        expect(
          yield* Effect.flip(lifecycleOver({ ...verified, MLFLOW_TRACKING_CLIENT_CERT_PATH: certs.strangerPemPath }))
        ).toMatchObject({ _tag: "TransportError" })
        expect(emulator.requests()).toEqual([])
        const releases = yield* lifecycleOver({ ...verified, MLFLOW_TRACKING_CLIENT_CERT_PATH: certs.clientPemPath })
        expect(releases.map(String)).toEqual(["1"])
        expect(front.handshakes().withClientCert).toBeGreaterThan(0)
        expect(emulator.requests().length).toBeGreaterThan(10)
        // a certificate path that does not exist is a typed error too
        const missing = yield* Effect.flip(
          lifecycleOver({ ...verified, MLFLOW_TRACKING_CLIENT_CERT_PATH: join(certs.dir, "nope.pem") })
        )
        expect(missing).toMatchObject({ _tag: "StorageError" })
      }).pipe(Effect.provide(NodeContext.layer)),
    30_000
  )

  it.scopedLive(
    "the CLI: verified over https with the CA from the environment, one line and exit 1 without it",
    () =>
      Effect.gen(function*() {
        const certs = yield* makeCertificates
        const emulator = yield* startEmulator()
        const front = yield* httpsFront(emulator.url, { identity: certs.server })
        const ok = yield* Effect.promise(() =>
          runCli(["--json", "push", helloworldZip], {
            MLFLOW_TRACKING_URI: front.url,
            MLFLOW_TRACKING_SERVER_CERT_PATH: certs.caPath
          })
        )
        expect(ok.code, ok.stderr).toBe(0)
        const refused = yield* Effect.promise(() =>
          runCli(["list"], { MLFLOW_TRACKING_URI: front.url, MLFLOW_HTTP_REQUEST_MAX_RETRIES: "0" })
        )
        expect(refused.code).toBe(1)
        expect(refused.stderr.trim().split("\n")).toHaveLength(1)
        expect(refused.stderr).toMatch(/^error: /)
      }).pipe(Effect.provide(NodeContext.layer)),
    60_000
  )
})

// ---------------------------------------------------------------------------------------------------------------
// The file store stays inside its root
// ---------------------------------------------------------------------------------------------------------------

describe("The file store never reads or writes outside its root", () => {
  it.scopedLive("whatever the names, and whatever symlinks lead out of it", () =>
    Effect.gen(function*() {
      const fs = yield* FileSystem.FileSystem
      const path = yield* Path.Path
      const base = yield* fs.makeTempDirectoryScoped({ prefix: "forml-confine-" })
      const outside = path.join(base, "outside")
      mkdirSync(path.join(outside, "artifacts"), { recursive: true })
      writeFileSync(path.join(outside, "secret.txt"), "OUTSIDE-SECRET")
      writeFileSync(path.join(outside, "meta.yaml"), "experiment_id: '666'\nname: planted\nlifecycle_stage: active\n")
      const root = path.join(base, "mlruns")
      const mlflow = yield* MlflowFileStore.make({ root })
      const experimentId = yield* mlflow.createExperiment("confined")
      const run = yield* mlflow.createRun({ experimentId })
      yield* mlflow.uploadArtifact(run.info, "inside.txt", bytes("inside"))
      // symlinks planted in the store, leading out of it: a run's artifact directory, its tags, a whole experiment
      const runDir = path.join(root, experimentId, run.runId)
      const other = yield* mlflow.createRun({ experimentId })
      const otherDir = path.join(root, experimentId, other.runId)
      yield* fs.remove(path.join(otherDir, "artifacts"), { recursive: true })
      symlinkSync(path.join(outside, "artifacts"), path.join(otherDir, "artifacts"))
      symlinkSync(outside, path.join(root, "777"))
      const outsideBefore = treeSnapshot(outside)

      const names = [
        "../secret.txt",
        "../../outside/secret.txt",
        "/etc/passwd",
        "a/../../secret.txt",
        "..\\..\\secret.txt",
        `${"../".repeat(20)}etc/passwd`,
        "./x",
        "a//b",
        "\u0000",
        "%2e%2e/secret.txt"
      ]
      const outcomes: Array<string> = []
      const record = (label: string, effect: Effect.Effect<unknown, unknown>) =>
        Effect.map(Effect.exit(effect), (exit) => {
          const text = Exit.isSuccess(exit) ? inspect(exit.value, { depth: 6 }) : Cause.pretty(exit.cause)
          outcomes.push(`${label}: ${text}`)
          return exit
        })
      const bytesOf = (root: { runId: string; artifactUri: string }, name: string) =>
        Effect.map(Stream.runCollect(mlflow.downloadArtifact(root, name)), (c) => Buffer.concat([...c]).toString())
      for (const name of names) {
        for (const target of [run.info, other.info]) {
          yield* record(`upload ${name}`, mlflow.uploadArtifact(target, name, bytes("escaped")))
          yield* record(`download ${name}`, bytesOf(target, name))
          yield* record(`list ${name}`, mlflow.listArtifacts(target, name))
          yield* record(`tag ${name}`, mlflow.setTag(target.runId, name, "escaped"))
        }
        yield* record(`run ${name}`, mlflow.getRun(name))
        yield* record(`experiment ${name}`, mlflow.getExperiment(name))
        yield* record(`create experiment ${name}`, mlflow.createExperiment(name))
        yield* record(
          `experiment tag ${name}`,
          mlflow.createExperiment(unique("e"), { tags: [{ key: name, value: "x" }] })
        )
        yield* record(`run tag ${name}`, mlflow.createRun({ experimentId, tags: [{ key: name, value: "x" }] }))
      }
      // through the symlinks that lead out: refused, never followed
      yield* record("upload via a linked artifacts dir", mlflow.uploadArtifact(other.info, "new.txt", bytes("escaped")))
      yield* record("download via a linked artifacts dir", bytesOf(other.info, "secret.txt"))
      yield* record("list via a linked artifacts dir", mlflow.listArtifacts(other.info))
      yield* record("linked experiment", mlflow.getExperiment("777"))
      yield* record("search", Stream.runCollect(mlflow.searchExperiments({ viewType: "ALL" })))
      yield* record("search runs", Stream.runCollect(mlflow.searchRuns({ experimentIds: [experimentId, "777"] })))

      expect(treeSnapshot(outside)).toBe(outsideBefore)
      expect(readFileSync(path.join(outside, "secret.txt"), "utf-8")).toBe("OUTSIDE-SECRET")
      expect(outcomes.filter((o) => o.includes("OUTSIDE-SECRET") || o.includes("planted"))).toEqual([])
      // the store itself kept working
      expect(yield* bytesOf(run.info, "inside.txt")).toBe("inside")
      expect(runDir.startsWith(root)).toBe(true)
    }).pipe(Effect.provide(NodeContext.layer)), 30_000)

  // A run's `tags` directory (or a tag file) that is a symlink leading out of the store: writes through it are refused,
  // and reads skip it (getRun and searchRuns never return an outside file's contents as a tag value).
  it.effect("reads no tag through a symlink leading out of the store", () =>
    Effect.gen(function*() {
      const fs = yield* FileSystem.FileSystem
      const path = yield* Path.Path
      const base = yield* fs.makeTempDirectoryScoped({ prefix: "forml-confine-" })
      const outside = path.join(base, "outside")
      mkdirSync(outside, { recursive: true })
      writeFileSync(path.join(outside, "secret.txt"), "OUTSIDE-SECRET")
      const root = path.join(base, "mlruns")
      const mlflow = yield* MlflowFileStore.make({ root })
      const experimentId = yield* mlflow.createExperiment("confined")
      const linkedDir = yield* mlflow.createRun({ experimentId })
      const tags = path.join(root, experimentId, linkedDir.runId, "tags")
      yield* fs.remove(tags, { recursive: true })
      symlinkSync(outside, tags)
      const linkedFile = yield* mlflow.createRun({ experimentId })
      symlinkSync(path.join(outside, "secret.txt"), path.join(root, experimentId, linkedFile.runId, "tags", "leak"))
      // a write through the link is refused
      expect(yield* Effect.flip(mlflow.setTag(linkedDir.runId, "new", "x"))).toMatchObject({ _tag: "StorageError" })
      const seen = [
        inspect(yield* Effect.either(mlflow.getRun(linkedDir.runId)), { depth: 6 }),
        inspect(yield* Effect.either(mlflow.getRun(linkedFile.runId)), { depth: 6 }),
        inspect(yield* Effect.either(Stream.runCollect(mlflow.searchRuns({ experimentIds: [experimentId] }))), {
          depth: 8
        })
      ]
      expect(seen.filter((s) => s.includes("OUTSIDE-SECRET"))).toEqual([])
      // both runs still read, without the linked tags; their other tags stay
      const [dirRun, fileRun] = [yield* mlflow.getRun(linkedDir.runId), yield* mlflow.getRun(linkedFile.runId)]
      expect(dirRun.tags).toEqual([])
      expect(fileRun.tags.map((t) => t.key)).toEqual(["mlflow.runName"])
    }).pipe(Effect.scoped, Effect.provide(NodeContext.layer)))
})

// Redacted values print as <redacted>: a guard that the config keeps them wrapped
it("Redacted hides its value in every form", () => {
  const r = Redacted.make("hidden-value")
  for (const s of shown(r)) expect(s).not.toContain("hidden-value")
  expect(Option.some(r).pipe(Option.map(Redacted.value))).toEqual(Option.some("hidden-value"))
})
