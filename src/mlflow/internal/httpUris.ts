/**
 * Tracking and artifact URIs of the Http layer: the tracking URI split from its credentials, and a run's artifact
 * URI resolved to the server's proxy, a local directory or an object store.
 *
 * @internal
 */
import { Either, Redacted } from "effect"
import type { UnsupportedArtifactStore } from "../../errors.js"
import { InvalidInput } from "../../errors.js"
import * as Redact from "../../internal/redact.js"
import * as ArtifactStore from "../ArtifactStore.js"
import * as LocalArtifacts from "../LocalArtifacts.js"

/** Splits a tracking URI into a base URL without user info or trailing slash, and the credentials it held. */
export const parseTrackingUri = (
  uri: string
): Either.Either<
  { base: string; username?: Redacted.Redacted<string>; password?: Redacted.Redacted<string> },
  InvalidInput
> => {
  let url: URL
  try {
    url = new URL(uri)
  } catch {
    return Either.left(new InvalidInput({ kind: "TrackingUri", input: Redact.userInfo(uri), reason: "not a URL" }))
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    return Either.left(
      new InvalidInput({
        kind: "TrackingUri",
        input: Redact.userInfo(uri),
        reason: "the Http layer needs an http: or https: tracking URI"
      })
    )
  }
  const username = url.username === "" ? undefined : Redacted.make(decodeURIComponent(url.username))
  const password = url.password === "" ? undefined : Redacted.make(decodeURIComponent(url.password))
  url.username = ""
  url.password = ""
  url.search = ""
  url.hash = ""
  const base = url.href.replace(/\/+$/, "")
  return Either.right({
    base,
    ...(username === undefined ? {} : { username }),
    ...(password === undefined ? {} : { password })
  })
}

/** Where a run's artifacts live, resolved from its artifact URI. */
export type ArtifactLocation =
  | { readonly _tag: "Proxy"; readonly base: string; readonly root: ReadonlyArray<string> }
  | { readonly _tag: "Local"; readonly dir: string }
  | { readonly _tag: "ObjectStore"; readonly location: ArtifactStore.ObjectLocation }

/**
 * Resolves an artifact URI. `mlflow-artifacts:/<path>` goes through the tracking server's artifact proxy;
 * `mlflow-artifacts://host:port/<path>` through the proxy on that host (with the tracking URI's scheme and path
 * prefix, as MLflow's client does); `file:` URIs and bare absolute paths are local directories; `s3://`, `wasbs://`
 * and `gs://` are object stores reached directly (see `ArtifactStore`).
 */
export const resolveArtifactUri = (
  artifactUri: string,
  trackingUri: string
): Either.Either<ArtifactLocation, UnsupportedArtifactStore | InvalidInput> => {
  const proxy = /^mlflow-artifacts:(.*)$/i.exec(artifactUri)
  if (proxy !== null) {
    let rest = proxy[1]!
    let base = trackingUri
    if (rest.startsWith("//")) {
      const end = rest.indexOf("/", 2)
      const netloc = end < 0 ? rest.slice(2) : rest.slice(2, end)
      rest = end < 0 ? "" : rest.slice(end)
      if (netloc !== "") {
        const tracking = new URL(trackingUri)
        base = `${tracking.protocol}//${netloc}${tracking.pathname.replace(/\/+$/, "")}`
      }
    }
    const root = rest.split("/").filter((s) => s !== "")
    if (root.some((s) => s === "." || s === "..")) {
      return Either.left(
        new InvalidInput({ kind: "ArtifactUri", input: artifactUri, reason: "holds a '.' or '..' segment" })
      )
    }
    return Either.right({ _tag: "Proxy", base, root })
  }
  if (LocalArtifacts.isLocalUri(artifactUri)) {
    return Either.map(LocalArtifacts.fileUriToPath(artifactUri), (dir) => ({ _tag: "Local" as const, dir }))
  }
  return Either.map(
    ArtifactStore.parseObjectUri(artifactUri),
    (location) => ({ _tag: "ObjectStore" as const, location })
  )
}

export const encodePath = (segments: ReadonlyArray<string>): string => segments.map(encodeURIComponent).join("/")
