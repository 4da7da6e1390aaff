/**
 * What the SQL drivers' failures mean to `MlflowSql`: which ones a retry can cure, which one is a unique violation,
 * and the one redacted line a `StorageError` shows for any of them (sqlite, pg and mysql2 each name them their way).
 *
 * @internal
 */
import type { SqlError } from "@effect/sql/SqlError"
import { StorageError } from "../../errors.js"
import { redactUri } from "./uri.js"
import type { SqlTarget } from "./uri.js"

interface DriverError {
  readonly code?: unknown
  readonly errno?: unknown
  readonly message?: unknown
}

const driverError = (e: SqlError): DriverError =>
  typeof e.cause === "object" && e.cause !== null ? (e.cause as DriverError) : {}

/** @internal */
export const isSqlError = (e: unknown): e is SqlError =>
  typeof e === "object" && e !== null && "_tag" in e && (e as { readonly _tag: unknown })._tag === "SqlError"

/** @internal */
export const isUniqueViolation = (e: SqlError): boolean => {
  const { code, errno } = driverError(e)
  return code === "SQLITE_CONSTRAINT_UNIQUE" || code === "SQLITE_CONSTRAINT_PRIMARYKEY" || code === "23505" ||
    code === "ER_DUP_ENTRY" || errno === 1062
}

/**
 * A failure that running the transaction again can cure: a busy sqlite file, a deadlock, a serialization failure.
 *
 * @internal
 */
export const isTransient = (e: SqlError): boolean => {
  const { code, errno } = driverError(e)
  return (typeof code === "string" && (code.startsWith("SQLITE_BUSY") || code.startsWith("SQLITE_LOCKED"))) ||
    code === "40001" || code === "40P01" || errno === 1213 || errno === 1205
}

/** @internal */
export const firstLine = (s: string): string => (s.split("\n")[0] ?? "").trim()

/** The message of a failure's cause (a driver's own error), else of the failure. @internal */
export const causeText = (e: unknown): string => {
  if (typeof e === "object" && e !== null) {
    const cause = (e as { readonly cause?: unknown }).cause
    if (cause instanceof Error && cause.message !== "") return cause.message
    if (e instanceof Error && e.message !== "") return e.message
  }
  return String(e)
}

/** @internal */
export const storageError = (target: SqlTarget, reason: string): StorageError =>
  new StorageError({ path: target.display, reason })

/** A statement's failure as one line, any URI in it redacted. @internal */
export const dbError = (target: SqlTarget) => (e: SqlError): StorageError => {
  const { message } = driverError(e)
  const detail = typeof message === "string" && message !== "" ? message : e.message
  return storageError(target, firstLine(redactUri(String(detail))))
}
