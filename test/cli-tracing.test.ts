/**
 * The command's spans over OTLP/HTTP: with OTEL_EXPORTER_OTLP_ENDPOINT set, `forml-mlflow demo` sends its spans to a
 * small local receiver (JSON and protobuf); with a bad setting it fails in one line; the settings are read as
 * OpenTelemetry defines them.
 */
import { Either, Option } from "effect"
import { createServer } from "node:http"
import type { AddressInfo } from "node:net"
import * as path from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { fromEnv } from "../src/cli/tracingConfig.js"
import { cli, isBuilt, tempDir } from "./support/cli.js"

interface Received {
  readonly path: string
  readonly contentType: string
  readonly headers: Readonly<Record<string, string | Array<string> | undefined>>
  readonly body: Buffer
}

/** A local OTLP/HTTP receiver that keeps every request and answers 200. */
const receiver = async () => {
  const received: Array<Received> = []
  const server = createServer((req, res) => {
    const chunks: Array<Buffer> = []
    req.on("data", (c: Buffer) => chunks.push(c))
    req.on("end", () => {
      received.push({
        path: req.url ?? "",
        contentType: req.headers["content-type"] ?? "",
        headers: req.headers,
        body: Buffer.concat(chunks)
      })
      res.writeHead(200, { "content-type": "application/json" })
      res.end("{}")
    })
  })
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve))
  const port = (server.address() as AddressInfo).port
  return {
    url: `http://127.0.0.1:${port}`,
    received,
    close: () => new Promise<void>((resolve) => server.close(() => resolve()))
  }
}

interface OtlpSpan {
  readonly name: string
  readonly spanId: string
  readonly parentSpanId?: string
  readonly traceId: string
}
interface OtlpJson {
  readonly resourceSpans: ReadonlyArray<{
    readonly resource: { readonly attributes: ReadonlyArray<{ key: string; value: { stringValue?: string } }> }
    readonly scopeSpans: ReadonlyArray<{ readonly spans: ReadonlyArray<OtlpSpan> }>
  }>
}

describe("the command exports its spans over OTLP/HTTP", () => {
  const scratch = tempDir("forml-tracing-")
  let collector: Awaited<ReturnType<typeof receiver>>
  beforeAll(async () => {
    if (!isBuilt()) throw new Error("dist/ is missing: run `npm run build` before these tests")
    collector = await receiver()
  })
  afterAll(async () => {
    await collector.close()
    scratch.remove()
  })

  it(
    "as JSON to OTEL_EXPORTER_OTLP_ENDPOINT/v1/traces: the command's root span, the registry's and the store's",
    async () => {
      collector.received.length = 0
      const result = await cli(["--tracking-uri", path.join(scratch.dir, "json"), "demo"], {
        cwd: scratch.dir,
        env: {
          OTEL_EXPORTER_OTLP_ENDPOINT: `${collector.url}/`,
          OTEL_EXPORTER_OTLP_PROTOCOL: "http/json",
          OTEL_EXPORTER_OTLP_HEADERS: "x-api-key=s%3Dcret",
          OTEL_SERVICE_NAME: "demo-trainer"
        }
      })
      expect(result.code, result.stderr).toBe(0)
      expect(collector.received.length).toBeGreaterThan(0)
      const spans: Array<OtlpSpan> = []
      for (const r of collector.received) {
        expect(r.path).toBe("/v1/traces")
        expect(r.contentType).toContain("application/json")
        expect(r.headers["x-api-key"]).toBe("s=cret")
        const body = JSON.parse(r.body.toString("utf-8")) as OtlpJson
        for (const rs of body.resourceSpans) {
          const service = rs.resource.attributes.find((a) => a.key === "service.name")?.value.stringValue
          expect(service).toBe("demo-trainer")
          for (const ss of rs.scopeSpans) spans.push(...ss.spans)
        }
      }
      const names = new Set(spans.map((s) => s.name))
      for (
        const name of [
          "forml-mlflow demo",
          "Demo.run",
          "Directory.publish",
          "MlflowRegistry.push",
          "MlflowRegistry.close"
        ]
      ) {
        expect(names, name).toContain(name)
      }
      expect([...names].some((n) => n.startsWith("MlflowFileStore."))).toBe(true)
      // one trace: every span descends from the command's root span
      const byId = new Map(spans.map((s) => [s.spanId, s]))
      const root = spans.find((s) => s.name === "forml-mlflow demo")!
      expect(root.parentSpanId ?? "").toBe("")
      for (const span of spans) {
        let at: OtlpSpan | undefined = span
        for (let hops = 0; at !== undefined && at !== root && hops < 50; hops++) at = byId.get(at.parentSpanId ?? "")
        expect(at, `${span.name} descends from the root span`).toBe(root)
        expect(span.traceId).toBe(root.traceId)
      }
      const push = spans.find((s) => s.name === "MlflowRegistry.push")!
      expect(byId.get(push.parentSpanId!)!.name).toBe("Directory.publish")
    },
    60_000
  )

  it("as protobuf (the default) to OTEL_EXPORTER_OTLP_TRACES_ENDPOINT, used as given", async () => {
    collector.received.length = 0
    const result = await cli(["--tracking-uri", path.join(scratch.dir, "protobuf"), "demo"], {
      cwd: scratch.dir,
      env: {
        OTEL_EXPORTER_OTLP_ENDPOINT: "http://127.0.0.1:9/unused",
        OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: `${collector.url}/custom/traces`
      }
    })
    expect(result.code, result.stderr).toBe(0)
    expect(collector.received.length).toBeGreaterThan(0)
    const all = Buffer.concat(collector.received.map((r) => r.body))
    for (const r of collector.received) {
      expect(r.path).toBe("/custom/traces")
      expect(r.contentType).toBe("application/x-protobuf")
    }
    // protobuf keeps strings as UTF-8 bytes
    for (const name of ["forml-mlflow demo", "MlflowRegistry.push", "forml-mlflow"]) {
      expect(all.includes(Buffer.from(name)), name).toBe(true)
    }
  }, 60_000)

  it("a bad setting is one line and exit 1, naming the variable, not its value", async () => {
    const result = await cli(["--tracking-uri", path.join(scratch.dir, "bad"), "list"], {
      cwd: scratch.dir,
      env: { OTEL_EXPORTER_OTLP_ENDPOINT: "grpc://secret-host:4317" }
    })
    expect(result.code).toBe(1)
    expect(result.stderr.trim().split("\n")).toHaveLength(1)
    expect(result.stderr).toContain("OTEL_EXPORTER_OTLP_ENDPOINT")
    expect(result.stderr).not.toContain("secret-host")
  }, 30_000)
})

describe("tracing settings from OpenTelemetry's variables", () => {
  const settings = (env: Record<string, string>) => Either.getOrThrow(fromEnv(env))

  it("off without an endpoint, with OTEL_SDK_DISABLED=true, or with OTEL_TRACES_EXPORTER=none", () => {
    expect(Option.isNone(settings({}))).toBe(true)
    expect(Option.isNone(settings({ OTEL_EXPORTER_OTLP_ENDPOINT: "" }))).toBe(true)
    expect(Option.isNone(settings({ OTEL_EXPORTER_OTLP_ENDPOINT: "http://c:4318", OTEL_SDK_DISABLED: "true" }))).toBe(
      true
    )
    expect(Option.isNone(settings({ OTEL_EXPORTER_OTLP_ENDPOINT: "http://c:4318", OTEL_TRACES_EXPORTER: "none" })))
      .toBe(true)
  })

  it("the endpoint gets /v1/traces; the traces endpoint is used as given; headers and attributes are decoded", () => {
    const s = Option.getOrThrow(settings({
      OTEL_EXPORTER_OTLP_ENDPOINT: "https://c.example:4318/otel/",
      OTEL_EXPORTER_OTLP_HEADERS: "a=1, b=x%20y",
      OTEL_EXPORTER_OTLP_TRACES_HEADERS: "b=2",
      OTEL_RESOURCE_ATTRIBUTES: "service.name=from-attributes,deployment.environment=test"
    }))
    expect(s.url).toBe("https://c.example:4318/otel/v1/traces")
    expect(s.protocol).toBe("http/protobuf")
    expect(s.headers).toEqual({ a: "1", b: "2" })
    expect(s.serviceName).toBe("from-attributes")
    expect(s.attributes["deployment.environment"]).toBe("test")
    expect(Option.getOrThrow(settings({ OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: "http://c:1/x" })).url).toBe("http://c:1/x")
  })

  it("refuses what it cannot do: a non-HTTP endpoint, grpc, a malformed header list", () => {
    for (
      const env of [
        { OTEL_EXPORTER_OTLP_ENDPOINT: "not a url" },
        { OTEL_EXPORTER_OTLP_ENDPOINT: "grpc://c:4317" },
        { OTEL_EXPORTER_OTLP_ENDPOINT: "http://c:4317", OTEL_EXPORTER_OTLP_PROTOCOL: "grpc" },
        { OTEL_EXPORTER_OTLP_ENDPOINT: "http://c:4318", OTEL_EXPORTER_OTLP_HEADERS: "novalue" }
      ]
    ) {
      const r = fromEnv(env)
      expect(Either.isLeft(r), JSON.stringify(env)).toBe(true)
    }
  })
})
