/**
 * What the command prints: aligned tables and JSON documents on stdout, one-line error messages on stderr,
 * with anything that looks like a credential taken out first.
 */
import { ValidationError } from "@effect/cli"
import { Cause, Effect, Option } from "effect"
import * as Redact from "../internal/redact.js"

/** Renders rows under headers as left-aligned columns separated by two spaces (no trailing blanks). */
export const table = (headers: ReadonlyArray<string>, rows: ReadonlyArray<ReadonlyArray<string>>): string => {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)))
  const line = (cells: ReadonlyArray<string>) =>
    cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]!))).join("  ").trimEnd()
  return [line(headers), ...rows.map(line)].join("\n")
}

/** Label/value lines, labels padded to one width. */
export const fields = (pairs: ReadonlyArray<readonly [string, string]>): string => {
  const width = Math.max(0, ...pairs.map(([k]) => k.length))
  return pairs.map(([k, v]) => `${k.padEnd(width)}  ${v}`.trimEnd()).join("\n")
}

/** Writes a line of text (or a JSON document) to stdout. */
export const printLine = (text: string): Effect.Effect<void> =>
  Effect.sync(() => void process.stdout.write(`${text}\n`))

/** Writes one JSON document to stdout. */
export const printJson = (value: unknown): Effect.Effect<void> => printLine(JSON.stringify(value, null, 2))

/** Writes one line to stderr. */
export const printError = (text: string): Effect.Effect<void> =>
  Effect.sync(() => void process.stderr.write(`${text}\n`))

// ---------------------------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------------------------

/** Environment variables whose values are secrets and must never be echoed. */
const SECRET_VARIABLES = ["MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_TOKEN", "MLFLOW_TRACKING_USERNAME"]

/**
 * Removes credentials from a text (see `Redact.text`), with the literal values of the MLflow credential variables.
 */
export const redact = (text: string, env: Readonly<Record<string, string | undefined>> = process.env): string =>
  Redact.text(text, SECRET_VARIABLES.map((name) => env[name]))

const firstLine = (s: string): string => (s.split("\n", 1)[0] ?? "").trim()

/** The one-line description of a failure value (a tagged error with a `message`, or anything else). */
export const describe = (error: unknown): string => {
  if (error instanceof Error || (typeof error === "object" && error !== null && "message" in error)) {
    const message = String((error as { message: unknown }).message)
    const tag = (error as { _tag?: unknown })._tag
    if (message !== "") return firstLine(message)
    if (typeof tag === "string") return tag
  }
  if (typeof error === "object" && error !== null && "_tag" in error) return String((error as { _tag: unknown })._tag)
  return firstLine(String(error))
}

/** Whether a failure is one of @effect/cli's own parse errors (already printed by the command line parser). */
export const isUsageError = (error: unknown): boolean => ValidationError.isValidationError(error)

/** Exit codes: 0 done, 1 failed, 2 bad usage, 130 interrupted. */
export const ExitCode = { ok: 0, failure: 1, usage: 2, interrupted: 130 } as const

/**
 * What a failed run prints (at most one line) and exits with. Usage errors were printed by the parser already;
 * an interruption prints nothing; a defect prints its message without a stack trace.
 */
export const report = (
  cause: Cause.Cause<unknown>
): { readonly line: Option.Option<string>; readonly code: number } => {
  const failure = Cause.failureOption(cause)
  if (Option.isSome(failure)) {
    if (isUsageError(failure.value)) return { line: Option.none(), code: ExitCode.usage }
    return { line: Option.some(`error: ${redact(describe(failure.value))}`), code: ExitCode.failure }
  }
  const defect = Cause.dieOption(cause)
  if (Option.isSome(defect)) {
    return { line: Option.some(`error: unexpected failure: ${redact(describe(defect.value))}`), code: ExitCode.failure }
  }
  if (Cause.isInterruptedOnly(cause)) return { line: Option.none(), code: ExitCode.interrupted }
  return { line: Option.some("error: unexpected failure"), code: ExitCode.failure }
}
