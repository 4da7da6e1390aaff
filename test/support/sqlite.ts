/**
 * better-sqlite3 for tests that look inside sqlite files: an optional dependency (a native module npm may fail to
 * build), so tests needing it skip with `sqliteMissing` as their reason where it is absent.
 */
import type BetterSqlite3 from "better-sqlite3"
import { describe } from "vitest"

const loaded = await import("better-sqlite3").then((m) => m.default, () => undefined)

export type Database = BetterSqlite3.Database

/** Opens a sqlite file (only called by tests that did not skip for `sqliteMissing`). */
export const openDb = (file: string, options?: BetterSqlite3.Options): Database => {
  if (loaded === undefined) throw new Error("better-sqlite3 is not installed")
  return new loaded(file, options)
}

/** Why sqlite tests cannot run, or undefined when they can. */
export const sqliteMissing: string | undefined = loaded === undefined
  ? "better-sqlite3 (an optional dependency, a native module) is not installed: npm could not build it here"
  : undefined

/** `describe`, or `describe.skip` naming the reason where better-sqlite3 is missing. */
export const describeSqlite = (title: string, body: () => void): void => {
  if (sqliteMissing === undefined) describe(title, body)
  else describe.skip(`${title} (skipped: ${sqliteMissing})`, body)
}
