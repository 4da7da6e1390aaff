/**
 * Database tracking URIs as MLflow (SQLAlchemy) writes them: `sqlite:///relative.db`, `sqlite:////abs/path.db`,
 * `postgresql://user:pass@host:port/db` (also `postgresql+psycopg2://…`), `mysql://…` (also `mysql+pymysql://…`,
 * `mariadb://…`). The password never leaves this module unredacted: `redactUri` is what messages show.
 * Hand-written because SQLAlchemy's URL rules (three or four slashes, `+driver` suffixes) are no WHATWG URL's.
 *
 * @internal
 */
import { Either, Redacted } from "effect"
import * as nodePath from "node:path"
import { InvalidInput } from "../../errors.js"
import * as Redact from "../../internal/redact.js"

export type Dialect = "sqlite" | "pg" | "mysql"

export type SqlTarget =
  | { readonly dialect: "sqlite"; readonly filename: string; readonly display: string }
  | { readonly dialect: "pg" | "mysql"; readonly url: Redacted.Redacted<string>; readonly display: string }

/** `scheme://user:password@host` → `scheme://user:***@host` (a user without a password is kept, it is no secret). */
export const redactUri = Redact.password

const SCHEME = /^([a-z][a-z0-9.-]*)(?:\+([a-z0-9_.-]+))?:\/\//i

/** Whether a tracking URI names a database (a scheme this module reads), rather than a path, file: or http(s):. */
export const isDatabaseUri = (uri: string): boolean => {
  const m = SCHEME.exec(uri.trim())
  return m !== null && ["sqlite", "postgresql", "postgres", "mysql", "mariadb", "mssql"].includes(m[1]!.toLowerCase())
}

/** Reads a database tracking URI; a relative sqlite path is relative to `cwd`, as in SQLAlchemy. */
export const parse = (uri: string, cwd: string = process.cwd()): Either.Either<SqlTarget, InvalidInput> => {
  const trimmed = uri.trim()
  const display = redactUri(trimmed)
  const bad = (reason: string) => Either.left(new InvalidInput({ kind: "TrackingUri", input: display, reason }))
  const m = SCHEME.exec(trimmed)
  if (m === null) return bad("not a database URI (sqlite:///…, postgresql://…, mysql://…)")
  const scheme = m[1]!.toLowerCase()
  const rest = trimmed.slice(m[0].length)
  switch (scheme) {
    case "sqlite": {
      // sqlite:///rel.db (three slashes, relative) and sqlite:////abs.db (four, absolute); no host
      if (!rest.startsWith("/")) return bad("a sqlite URI has no host: sqlite:///relative.db or sqlite:////abs/path.db")
      const path = rest.slice(1)
      if (path.includes("?")) return bad("query parameters are not supported on sqlite URIs")
      if (path === "" || path === ":memory:") return bad("an in-memory database keeps nothing; name a file")
      if (path.includes("\u0000")) return bad("holds a NUL character")
      const filename = nodePath.resolve(cwd, path)
      return Either.right({ dialect: "sqlite", filename, display })
    }
    case "postgresql":
    case "postgres":
    case "mysql":
    case "mariadb": {
      let url: URL
      try {
        url = new URL(`${scheme === "postgres" ? "postgresql" : scheme}://${rest}`)
      } catch {
        return bad("not a URL")
      }
      if (url.hostname === "") return bad("no host")
      const database = decodeURIComponent(url.pathname.replace(/^\//, ""))
      if (database === "" || database.includes("/")) return bad("no database name (…://host:port/<database>)")
      const dialect = scheme === "postgresql" || scheme === "postgres" ? "pg" : "mysql"
      // the driver takes the URL with its plain scheme (the SQLAlchemy `+driver` part names a Python driver)
      const normalised = `${dialect === "pg" ? "postgresql" : "mysql"}://${rest}`
      return Either.right({ dialect, url: Redacted.make(normalised), display })
    }
    case "mssql":
      return bad("SQL Server is not supported (sqlite, postgresql and mysql are)")
    default:
      return bad("not a database URI (sqlite:///…, postgresql://…, mysql://…)")
  }
}
