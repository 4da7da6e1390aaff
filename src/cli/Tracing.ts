/**
 * The command's span exporter: OTLP over HTTP with @effect/opentelemetry's OtlpTracer (no OpenTelemetry SDK needed).
 * Imported dynamically by main.ts, and only when tracing is on (see tracingConfig.ts).
 */
import * as OtlpSerialization from "@effect/opentelemetry/OtlpSerialization"
import * as OtlpTracer from "@effect/opentelemetry/OtlpTracer"
import * as FetchHttpClient from "@effect/platform/FetchHttpClient"
import { Layer } from "effect"
import type { TracingSettings } from "./tracingConfig.js"

/** The tracer of the command: spans are batched and sent every second, and flushed (2 s at most) when it ends. */
export const layer = (settings: TracingSettings, version: string): Layer.Layer<never> =>
  OtlpTracer.layer({
    url: settings.url,
    resource: { serviceName: settings.serviceName, serviceVersion: version, attributes: settings.attributes },
    headers: settings.headers,
    exportInterval: "1 second",
    shutdownTimeout: "2 seconds"
  }).pipe(
    Layer.provide(settings.protocol === "http/json" ? OtlpSerialization.layerJson : OtlpSerialization.layerProtobuf),
    Layer.provide(FetchHttpClient.layer)
  )
