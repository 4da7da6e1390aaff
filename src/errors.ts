/**
 * The typed failures shared by every layer (asset, mlflow, registry, cli).
 * Each error carries data and reads well as one line through `message`.
 */
import { Schema } from "effect"

/** The fields of an error about one entity: what kind of thing (`entity`) and which one (`key`). */
const EntityKey = { entity: Schema.String, key: Schema.String }

/** The thing asked for is not there: an experiment, run, artifact, project, release, generation or state. */
export class NotFound extends Schema.TaggedError<NotFound>()("NotFound", EntityKey) {
  override get message(): string {
    return `${this.entity} not found: ${this.key}`
  }
}

/** More than one entity matches where exactly one was expected. */
export class Ambiguous extends Schema.TaggedError<Ambiguous>()("Ambiguous", { ...EntityKey, count: Schema.Number }) {
  override get message(): string {
    return `${this.entity} is ambiguous: ${this.count} matches for ${this.key}`
  }
}

/** A listing has nothing in it, or a generation has no tag. */
export class Empty extends Schema.TaggedError<Empty>()("Empty", EntityKey) {
  override get message(): string {
    return this.key === "" ? `no ${this.entity}` : `no ${this.entity} in ${this.key}`
  }
}

/** An entity of that name already exists (an experiment name is taken, even by a deleted one). */
export class AlreadyExists extends Schema.TaggedError<AlreadyExists>()("AlreadyExists", EntityKey) {
  override get message(): string {
    return `${this.entity} already exists: ${this.key}`
  }
}

/**
 * Input rejected before anything was sent or written: a bad key, tag, manifest, package, filter value,
 * artifact path or option. `kind` names what was wrong ("ProjectKey", "Tag", "Filter", ...).
 */
export class InvalidInput extends Schema.TaggedError<InvalidInput>()("InvalidInput", {
  kind: Schema.String,
  input: Schema.String,
  reason: Schema.String
}) {
  override get message(): string {
    return `invalid ${this.kind} ${JSON.stringify(clip(this.input))}: ${this.reason}`
  }
}

/** A tag (TOML) that cannot be read as a ForML generation tag. */
export class InvalidTag extends Schema.TaggedError<InvalidTag>()("InvalidTag", {
  reason: Schema.String
}) {
  override get message(): string {
    return `invalid tag: ${this.reason}`
  }
}

/** A `__4ml__.py` manifest that cannot be read, or a manifest value that cannot be written. */
export class InvalidManifest extends Schema.TaggedError<InvalidManifest>()("InvalidManifest", {
  reason: Schema.String
}) {
  override get message(): string {
    return `invalid manifest: ${this.reason}`
  }
}

/** A package that is not a usable `.4ml` zip or package directory. */
export class InvalidPackage extends Schema.TaggedError<InvalidPackage>()("InvalidPackage", {
  path: Schema.String,
  reason: Schema.String
}) {
  override get message(): string {
    return `invalid package ${this.path}: ${this.reason}`
  }
}

/** An MLflow API error reply: HTTP status, MLflow `error_code` and message. */
export class MlflowApiError extends Schema.TaggedError<MlflowApiError>()("MlflowApiError", {
  status: Schema.Number,
  errorCode: Schema.String,
  detail: Schema.String
}) {
  override get message(): string {
    return `MLflow error ${this.status} ${this.errorCode}: ${firstLine(this.detail)}`
  }
}

/** The server could not be reached or the exchange broke off (connection refused, reset, timeout). */
export class TransportError extends Schema.TaggedError<TransportError>()("TransportError", {
  operation: Schema.String,
  reason: Schema.String
}) {
  override get message(): string {
    return `${this.operation} failed: ${firstLine(this.reason)}`
  }
}

/** A reply that is not what MLflow sends (not JSON, wrong types, missing fields). */
export class DecodeError extends Schema.TaggedError<DecodeError>()("DecodeError", {
  operation: Schema.String,
  reason: Schema.String
}) {
  override get message(): string {
    return `unexpected reply to ${this.operation}: ${firstLine(this.reason)}`
  }
}

/**
 * A run's artifact URI uses a scheme this client cannot reach (or one the layer cannot reach: `mlflow-artifacts:`
 * needs a tracking server's proxy). `reason` says which schemes the layer takes.
 */
export class UnsupportedArtifactStore extends Schema.TaggedError<UnsupportedArtifactStore>()(
  "UnsupportedArtifactStore",
  { uri: Schema.String, reason: Schema.optional(Schema.String) }
) {
  override get message(): string {
    return `unsupported artifact store: ${this.uri} (${
      this.reason ?? "supported: mlflow-artifacts:, file:, s3://, wasbs://, gs://"
    })`
  }
}

/**
 * An object store (S3 or S3-compatible, Azure Blob, GCS) refused or failed an operation after its retries: no
 * credentials, access denied, a missing bucket or container, a part refused, a connection dropped, its SDK not
 * installed. The message is one line and never holds a credential.
 */
export class ArtifactStoreError extends Schema.TaggedError<ArtifactStoreError>()("ArtifactStoreError", {
  /** `s3`, `azure` or `gcs`. */
  store: Schema.String,
  /** The object or container the operation was about (`s3://bucket/key`). */
  location: Schema.String,
  operation: Schema.String,
  reason: Schema.String
}) {
  override get message(): string {
    return `${this.store} ${this.operation} ${this.location} failed: ${firstLine(this.reason)}`
  }
}

/** Local storage failed (staging directory, file store, package file). */
export class StorageError extends Schema.TaggedError<StorageError>()("StorageError", {
  path: Schema.String,
  reason: Schema.String
}) {
  override get message(): string {
    return `storage error at ${this.path}: ${firstLine(this.reason)}`
  }
}

/** Downloaded bytes do not match the `forml.sha256.<name>` tag recorded when they were uploaded. */
export class IntegrityError extends Schema.TaggedError<IntegrityError>()("IntegrityError", {
  artifact: Schema.String,
  expected: Schema.String,
  actual: Schema.String,
  /** What differs: the bytes' sha256 (on a read, the default) or the stored size in bytes (before a commit). */
  measure: Schema.optional(Schema.Literal("sha256", "size"))
}) {
  override get message(): string {
    return this.measure === "size"
      ? `integrity check failed for ${this.artifact}: ${this.actual} bytes stored, ${this.expected} written`
      : `integrity check failed for ${this.artifact}: sha256 ${this.actual}, expected ${this.expected}`
  }
}

/**
 * MLflow's credentials file (`~/.mlflow/credentials`) cannot be read as MLflow reads it. The message names the file,
 * the line and what is wrong, never the line's text (it may hold the password).
 */
export class CredentialsFileError extends Schema.TaggedError<CredentialsFileError>()("CredentialsFileError", {
  path: Schema.String,
  line: Schema.optional(Schema.Number),
  reason: Schema.String
}) {
  override get message(): string {
    return `malformed MLflow credentials file ${this.path}${this.line === undefined ? "" : `, line ${this.line}`}: ${
      firstLine(this.reason)
    }`
  }
}

/** Every failure of talking to MLflow that is not a domain answer (NotFound, AlreadyExists). */
export type MlflowFailure =
  | MlflowApiError
  | TransportError
  | DecodeError
  | UnsupportedArtifactStore
  | StorageError
  | ArtifactStoreError

const clip = (s: string): string => (s.length > 120 ? `${s.slice(0, 117)}...` : s)
const firstLine = (s: string): string => {
  const line = s.split("\n", 1)[0] ?? ""
  return line.length > 300 ? `${line.slice(0, 297)}...` : line
}
