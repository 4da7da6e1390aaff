/**
 * Whether and where the command exports its spans: OpenTelemetry's own environment variables, read without loading
 * any exporter (the exporter module is imported only when tracing is on, so a start without it pays nothing).
 */
import { Either, Option } from "effect"
import { InvalidInput } from "../errors.js"

export interface TracingSettings {
  /** Where spans are POSTed (OTLP/HTTP). */
  readonly url: string
  readonly protocol: "http/protobuf" | "http/json"
  /** Extra request headers (`OTEL_EXPORTER_OTLP_HEADERS`): may hold a collector's API key, never printed. */
  readonly headers: Readonly<Record<string, string>>
  readonly serviceName: string
  readonly attributes: Readonly<Record<string, string>>
}

type Env = Readonly<Record<string, string | undefined>>

const given = (env: Env, name: string): string | undefined => {
  const v = env[name]?.trim()
  return v === undefined || v === "" ? undefined : v
}

// the variable's name only: a value may hold a key or a password
const invalid = (name: string, reason: string) => new InvalidInput({ kind: "setting", input: name, reason })

/** OpenTelemetry's `key=value,key=value` lists (values URL-encoded), as in OTEL_EXPORTER_OTLP_HEADERS. */
const keyValues = (env: Env, name: string): Either.Either<Record<string, string>, InvalidInput> => {
  const text = given(env, name)
  const out: Record<string, string> = {}
  if (text === undefined) return Either.right(out)
  for (const item of text.split(",")) {
    if (item.trim() === "") continue
    const eq = item.indexOf("=")
    if (eq <= 0) return Either.left(invalid(name, "expected key=value pairs separated by commas"))
    try {
      out[decodeURIComponent(item.slice(0, eq).trim())] = decodeURIComponent(item.slice(eq + 1).trim())
    } catch {
      return Either.left(invalid(name, "a key or value is not valid URL encoding"))
    }
  }
  return Either.right(out)
}

/**
 * The tracing settings of `env`, or none when tracing is off: no `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` (used as
 * given) nor `OTEL_EXPORTER_OTLP_ENDPOINT` (`/v1/traces` appended), or `OTEL_SDK_DISABLED=true`, or
 * `OTEL_TRACES_EXPORTER` naming no `otlp` exporter. Protocols: `http/protobuf` (the default) and `http/json`.
 */
export const fromEnv = (env: Env): Either.Either<Option.Option<TracingSettings>, InvalidInput> =>
  Either.gen(function*() {
    if (given(env, "OTEL_SDK_DISABLED")?.toLowerCase() === "true") return Option.none()
    const exporters = given(env, "OTEL_TRACES_EXPORTER")
    if (exporters !== undefined && !exporters.split(",").some((e) => e.trim() === "otlp")) return Option.none()
    const traces = given(env, "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    const base = given(env, "OTEL_EXPORTER_OTLP_ENDPOINT")
    const variable = traces !== undefined ? "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT" : "OTEL_EXPORTER_OTLP_ENDPOINT"
    const endpoint = traces ?? (base === undefined ? undefined : `${base.replace(/\/+$/, "")}/v1/traces`)
    if (endpoint === undefined) return Option.none()
    let url: URL
    try {
      url = new URL(endpoint)
    } catch {
      return yield* Either.left(invalid(variable, "not a URL"))
    }
    if (url.protocol !== "http:" && url.protocol !== "https:") {
      return yield* Either.left(invalid(variable, "not an http(s) URL (OTLP over HTTP)"))
    }
    const protocol = given(env, "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") ?? given(env, "OTEL_EXPORTER_OTLP_PROTOCOL") ??
      "http/protobuf"
    if (protocol !== "http/protobuf" && protocol !== "http/json") {
      return yield* Either.left(
        invalid("OTEL_EXPORTER_OTLP_PROTOCOL", `${protocol} is not supported (http/protobuf or http/json)`)
      )
    }
    const headers = {
      ...(yield* keyValues(env, "OTEL_EXPORTER_OTLP_HEADERS")),
      ...(yield* keyValues(env, "OTEL_EXPORTER_OTLP_TRACES_HEADERS"))
    }
    const attributes = yield* keyValues(env, "OTEL_RESOURCE_ATTRIBUTES")
    const serviceName = given(env, "OTEL_SERVICE_NAME") ?? attributes["service.name"] ?? "forml-mlflow"
    return Option.some<TracingSettings>({ url: url.href, protocol, headers, serviceName, attributes })
  })
