/**
 * Which store the command works on: the tracking URI (option, else MLFLOW_TRACKING_URI, else ./mlruns) turned
 * into the Mlflow layer for it (MlflowFileStore for paths and `file:` URIs, MlflowHttp for http(s) servers,
 * MlflowSql for `sqlite:`, `postgresql:` and `mysql:` databases).
 */
import * as NodeFileSystem from "@effect/platform-node/NodeFileSystem"
import * as NodePath from "@effect/platform-node/NodePath"
import { ConfigProvider, Effect, Either, Layer } from "effect"
import type { ConfigError } from "effect"
import * as nodePath from "node:path"
import { fileURLToPath } from "node:url"
import { InvalidInput } from "../errors.js"
import type { CredentialsFileError, StorageError } from "../errors.js"
import * as Redact from "../internal/redact.js"
import type { Mlflow } from "../mlflow/Mlflow.js"
import * as MlflowFileStore from "../mlflow/MlflowFileStore.js"
import * as SqlUri from "../mlflow/sql/uri.js"

/** Where the registry lives. */
export type Target =
  | { readonly _tag: "FileStore"; readonly root: string }
  | { readonly _tag: "Http"; readonly uri: string }
  | { readonly _tag: "Sql"; readonly uri: string }

export const DEFAULT_ROOT = "./mlruns"

/**
 * Reads a tracking URI: `http:`/`https:` is a server; `sqlite:`, `postgresql:` and `mysql:` URIs (as SQLAlchemy
 * writes them) are databases; `file:` URIs (`file:///abs`, `file:rel`) and plain paths are file stores (relative to
 * `cwd`). Any other scheme is refused.
 */
export const parseTarget = (uri: string, cwd: string = process.cwd()): Either.Either<Target, InvalidInput> => {
  const bad = (reason: string) =>
    Either.left(new InvalidInput({ kind: "TrackingUri", input: Redact.userInfo(uri), reason }))
  const trimmed = uri.trim()
  if (trimmed === "") return bad("empty")
  if (/^https?:\/\//i.test(trimmed)) return Either.right({ _tag: "Http", uri: trimmed })
  if (SqlUri.isDatabaseUri(trimmed)) {
    return Either.map(SqlUri.parse(trimmed, cwd), (): Target => ({ _tag: "Sql", uri: trimmed }))
  }
  if (/^file:/i.test(trimmed)) {
    if (/^file:\/\//i.test(trimmed)) {
      try {
        return Either.right({ _tag: "FileStore", root: fileURLToPath(trimmed) })
      } catch (e) {
        return bad(e instanceof Error ? e.message : "not a file URI")
      }
    }
    const rest = decodeURIComponent(trimmed.slice("file:".length))
    return rest === "" ? bad("no path") : Either.right({ _tag: "FileStore", root: nodePath.resolve(cwd, rest) })
  }
  // a Windows drive letter is a path, any other `scheme:` is not something this command can reach
  if (/^[a-z][a-z0-9+.-]+:/i.test(trimmed)) {
    return bad("only http:, https:, file:, sqlite:, postgresql:, mysql: URIs and local paths are supported")
  }
  return Either.right({ _tag: "FileStore", root: nodePath.resolve(cwd, trimmed) })
}

/** The tracking URI in effect: the option when given, else MLFLOW_TRACKING_URI, else ./mlruns. */
export const trackingUri = (
  option: string | undefined,
  env: Readonly<Record<string, string | undefined>> = process.env
): string =>
  option ??
    (env.MLFLOW_TRACKING_URI !== undefined && env.MLFLOW_TRACKING_URI !== "" ? env.MLFLOW_TRACKING_URI : DEFAULT_ROOT)

/** How a target reads in messages, without credentials. */
export const describeTarget = (target: Target): string =>
  target._tag === "FileStore"
    ? target.root
    : target._tag === "Sql"
    ? SqlUri.redactUri(target.uri)
    : Redact.userInfo(target.uri)

/** What the stores need of the platform (not all of NodeContext: its process and worker modules cost a start). */
const platform = Layer.merge(NodeFileSystem.layer, NodePath.layer)

/**
 * The Mlflow layer for a target. The Http layer takes every other setting (credentials, TLS, timeouts, retries)
 * from MLflow's environment variables and credentials file, with the URI given here in place of MLFLOW_TRACKING_URI.
 */
export const layer = (
  target: Target
): Layer.Layer<Mlflow, StorageError | InvalidInput | ConfigError.ConfigError | CredentialsFileError> => {
  if (target._tag === "FileStore") {
    return MlflowFileStore.layer({ root: target.root }).pipe(Layer.provide(platform))
  }
  if (target._tag === "Sql") {
    // loaded on demand, and with it the one database driver the URI names
    const uri = target.uri
    return Layer.unwrapEffect(
      Effect.map(Effect.promise(() => import("../mlflow/MlflowSql.js")), (MlflowSql) => MlflowSql.layer({ uri }))
    ).pipe(Layer.provide(platform))
  }
  const provider = ConfigProvider.fromMap(new Map([["MLFLOW_TRACKING_URI", target.uri]])).pipe(
    ConfigProvider.orElse(() => ConfigProvider.fromEnv())
  )
  // loaded on demand: the HTTP client stack is not needed for a file store
  return Layer.unwrapEffect(
    Effect.gen(function*() {
      const MlflowHttp = yield* Effect.promise(() => import("../mlflow/MlflowHttp.js"))
      const settings = yield* Effect.withConfigProvider(MlflowHttp.config, provider)
      return MlflowHttp.layerConfigNode(Effect.succeed(settings))
    })
  ).pipe(Layer.provide(platform))
}
