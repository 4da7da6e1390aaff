/**
 * Request parameters (the JSON body of a POST, the query of a GET) read as MLflow's protobuf JSON reader reads them,
 * with the 400 INVALID_PARAMETER_VALUE messages the recorded servers give for missing and mistyped values.
 */
import { Effect, Either } from "effect"
import { InvalidInput } from "../src/errors.js"
import { decodePageToken } from "../src/mlflow/internal/paging.js"
import type { KeyValue, ViewType } from "../src/mlflow/Mlflow.js"
import { type ApiError, invalid } from "./replies.js"

export type Params = Readonly<Record<string, unknown>>

const pyType = (v: unknown): string =>
  Array.isArray(v)
    ? "list"
    : typeof v === "number"
    ? (Number.isInteger(v) ? "int" : "float")
    : typeof v === "string"
    ? "str"
    : typeof v === "boolean"
    ? "bool"
    : v === null
    ? "NoneType"
    : "dict"

const missing = (name: string) =>
  invalid(
    `Missing value for required parameter '${name}'. See the API docs for more information about request parameters.`
  )

export const badValue = (name: string, value: unknown) =>
  invalid(
    `Invalid value ${JSON.stringify(value)} for parameter '${name}' supplied:  Hint: Value was of type '${
      pyType(value)
    }'. ` +
      "See the API docs for more information about request parameters."
  )

export const reqString = (p: Params, name: string): Either.Either<string, ApiError> => {
  const v = p[name]
  if (v === undefined || v === null || v === "") return Either.left(missing(name))
  return typeof v === "string" ? Either.right(v) : Either.left(badValue(name, v))
}

export const optString = (p: Params, name: string): Either.Either<string | undefined, ApiError> => {
  const v = p[name]
  if (v === undefined || v === null) return Either.right(undefined)
  return typeof v === "string" ? Either.right(v) : Either.left(badValue(name, v))
}

/** An int64 as protobuf's JSON reader takes it: a whole number or a decimal string; anything else reads as absent. */
export const intLike = (v: unknown): number | undefined => {
  if (typeof v === "number" && Number.isInteger(v)) return v
  if (typeof v === "string" && /^-?\d+$/.test(v.trim())) return Number(v)
  return undefined
}

export const stringList = (p: Params, name: string): Either.Either<ReadonlyArray<string>, ApiError> => {
  const v = p[name]
  if (v === undefined || v === null) return Either.right([])
  if (typeof v === "string") return Either.right([v])
  if (!Array.isArray(v) || v.some((s) => typeof s !== "string")) return Either.left(badValue(name, v))
  return Either.right(v as ReadonlyArray<string>)
}

export const keyValues = (p: Params, name: string): Either.Either<ReadonlyArray<KeyValue>, ApiError> => {
  const v = p[name]
  if (v === undefined || v === null) return Either.right([])
  if (!Array.isArray(v)) return Either.left(badValue(name, v))
  const out: Array<KeyValue> = []
  for (const item of v as ReadonlyArray<unknown>) {
    if (typeof item !== "object" || item === null) return Either.left(badValue(name, v))
    const { key, value } = item as { key?: unknown; value?: unknown }
    if (typeof key !== "string") return Either.left(badValue(`${name}.key`, key))
    out.push({ key, value: value === undefined || value === null ? "" : String(value) })
  }
  return Either.right(out)
}

/** The run id of a request, under its name or the older `run_uuid`. */
export const runIdOf = (p: Params) =>
  p.run_id === undefined && p.run_uuid !== undefined ? reqString(p, "run_uuid") : reqString(p, "run_id")

/** The `page_token` of a request, checked as the server checks it (the offset is read where it is used). */
export const pageTokenOf = (p: Params): Effect.Effect<string | undefined, ApiError> =>
  Effect.mapError(
    Effect.flatMap(optString(p, "page_token"), (t) => Effect.map(decodePageToken(t), () => t)),
    (e) => (e instanceof InvalidInput ? invalid(e.reason) : e)
  )

/**
 * Protobuf's JSON reader stops at the first field it cannot convert (an unknown enum name): that field and the
 * ones after it keep their defaults. The recorded servers show it for `run_view_type` and `status`.
 */
export const stopAtBadEnum = (p: Params, enums: Readonly<Record<string, ReadonlyArray<string>>>): Params => {
  const out: Record<string, unknown> = {}
  for (const [key, value] of Object.entries(p)) {
    const values = enums[key]
    if (values !== undefined) {
      const index = typeof value === "number" ? value - 1 : typeof value === "string" ? values.indexOf(value) : -1
      if (!Number.isInteger(index) || index < 0 || index >= values.length) break
      out[key] = values[index]
      continue
    }
    out[key] = value
  }
  return out
}

export const VIEW_TYPES: ReadonlyArray<ViewType> = ["ACTIVE_ONLY", "DELETED_ONLY", "ALL"]
export const RUN_STATUSES = ["RUNNING", "SCHEDULED", "FINISHED", "FAILED", "KILLED"] as const
