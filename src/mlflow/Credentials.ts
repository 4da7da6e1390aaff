/**
 * MLflow's credentials file, `~/.mlflow/credentials`, read as MLflow's Python client reads it (2.17.2,
 * `mlflow/utils/credentials.py`): an INI file parsed by Python's `configparser`, whose `[mlflow]` section may hold
 * `mlflow_tracking_username` and `mlflow_tracking_password`. The Http layer's settings fall back to it.
 */
import { Config, type ConfigError, Effect, Either, Option, Redacted } from "effect"
import * as NodeFs from "node:fs"
import * as NodeOs from "node:os"
import * as NodePath from "node:path"
import { CredentialsFileError } from "../errors.js"
import * as Ini from "./internal/configparser.js"

/** What the file gives; a key that is absent or empty in the file is absent here. */
export interface Credentials {
  readonly username?: Redacted.Redacted<string> | undefined
  readonly password?: Redacted.Redacted<string> | undefined
}

/** The keys MLflow looks up: its variables' names in lower case (`configparser` lowers every key). */
export const USERNAME_KEY = "mlflow_tracking_username"
export const PASSWORD_KEY = "mlflow_tracking_password"
export const SECTION = "mlflow"

/**
 * The file under a home directory, joined as Python's `os.path.expanduser("~/.mlflow/credentials")` joins it
 * (on POSIX an empty home gives `/.mlflow/credentials`). MLflow has no variable that moves the file.
 */
export const pathIn = (home: string, platform: NodeJS.Platform = process.platform): string =>
  platform === "win32"
    ? NodePath.win32.join(home, ".mlflow", "credentials")
    : `${home.replace(/\/+$/, "")}/.mlflow/credentials`

/**
 * The home directory as `expanduser` finds it: `HOME` (`USERPROFILE` on Windows) when set, else the user's account.
 * Read as a `Config`, so that a `ConfigProvider` (a test's temporary home) decides it like any other setting.
 */
export const home: Config.Config<string> = Config.string(process.platform === "win32" ? "USERPROFILE" : "HOME").pipe(
  Config.orElse(() => Config.sync(() => NodeOs.homedir()))
)

/** Where the file is for the home in the current `ConfigProvider`. */
export const path: Config.Config<string> = Config.map(home, (h) => pathIn(h))

/** A file MLflow's parser refuses: the line (1-based) and why, in words that never quote the file. */
export type Malformed = Ini.Malformed

/**
 * Reads the text of a credentials file. Either the credentials, or why MLflow's client would fail on it (Python's
 * `configparser` raises: a line before any section, a section or key given twice, a line that is no `key = value`,
 * a `%` that is not `%%` or `%(key)s` in one of the two values).
 */
export const parse = (text: string): Either.Either<Credentials, Malformed> =>
  Either.flatMap(Ini.read(text), (ini) => {
    const section = ini.sections.get(SECTION)
    if (section === undefined) return Either.right({})
    const values = new Map([...ini.defaults, ...section])
    const lookup = (key: string): Either.Either<Redacted.Redacted<string> | undefined, Malformed> => {
      const entry = values.get(key)
      if (entry === undefined) return Either.right(undefined)
      return Either.mapBoth(Ini.interpolate(entry.value, values), {
        onLeft: (reason) => ({ line: entry.line, reason: `the value of ${key} ${reason}` }),
        onRight: (value) => (value === "" ? undefined : Redacted.make(value))
      })
    }
    return Either.all({ username: lookup(USERNAME_KEY), password: lookup(PASSWORD_KEY) })
  })

/**
 * The credentials in the file at `file`. A file that is missing or cannot be opened gives none (as in MLflow,
 * whose parser skips a file it cannot open); a file MLflow's parser refuses is a `CredentialsFileError`.
 */
export const read = (file: string): Effect.Effect<Credentials, CredentialsFileError> =>
  Effect.suspend(() => {
    let bytes: Uint8Array
    try {
      bytes = NodeFs.readFileSync(file)
    } catch (e) {
      const code = typeof e === "object" && e !== null && "code" in e ? String(e.code) : "unreadable"
      return code === "ENOENT"
        ? Effect.succeed({})
        : Effect.as(Effect.logDebug(`MLflow credentials file ${file} not read (${code})`), {})
    }
    let text: string
    try {
      // MLflow opens it as UTF-8 text and keeps a byte order mark, which its parser then refuses
      text = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true }).decode(bytes)
    } catch {
      return Effect.fail(new CredentialsFileError({ path: file, reason: "not UTF-8 text" }))
    }
    return Either.match(parse(text), {
      onLeft: ({ line, reason }) => Effect.fail(new CredentialsFileError({ path: file, line, reason })),
      onRight: Effect.succeed
    })
  })

/** The credentials in the file under the home directory of the current `ConfigProvider`. */
export const fromHome: Effect.Effect<Credentials, ConfigError.ConfigError | CredentialsFileError> = Effect.flatMap(
  path,
  read
)

/**
 * The first credential set, in order of precedence, that is not empty (MLflow takes `env or file`, so an empty
 * variable lets the file's value through); when all are empty or absent, the first one given.
 */
export const firstOf = (
  ...candidates: ReadonlyArray<Redacted.Redacted<string> | undefined>
): Redacted.Redacted<string> | undefined =>
  Option.getOrElse(
    Option.fromNullable(candidates.find((c) => c !== undefined && Redacted.value(c) !== "")),
    () => candidates.find((c) => c !== undefined)
  )
