/**
 * MlflowFileStore: the Mlflow service over MLflow's own on-disk tracking format (`mlruns/`, as MLflow 2.17.2 writes
 * it), so no server is needed and `mlflow server --backend-store-uri <root>` serves what it wrote.
 *
 * Format and behaviour (see `shared/docs/MLFLOW-FILESTORE.md`):
 * - `<root>/<E>/meta.yaml`, `<E>/tags/<key>`, `<E>/<R>/{meta.yaml,tags/,params/,metrics/,artifacts/}`; a `/` in a tag
 *   key makes subdirectories; `.trash/<E>` holds a deleted experiment (moved whole, moved back on restore).
 * - meta.yaml as PyYAML's `safe_dump` writes it (keys sorted, its quoting: `experiment_id: '<E>'`), and read with
 *   PyYAML's type rules (YAML 1.1: `'yes'` and `'007'` are strings, plain `1` an int). Layout differs only for values
 *   PyYAML folds (over 80 columns, line breaks); both read back the same. A NEL or U+2028 inside a single-quoted
 *   value (never written here) is not read as PyYAML reads it.
 * - Every file is written to a temporary name in its directory, synced and renamed; experiments and runs are built
 *   in a temporary directory and renamed into place, so a reader never sees half of one. Readers skip temporary
 *   names. `setTags` checks every key before writing any file; each tag file is atomic, a batch is not (a crash in
 *   the middle of one leaves its first tags written); a batch is written in its order, so a reader seeing one of its
 *   tags sees those before it. A run is read as its `meta.yaml` and tags stood at one moment (meta.yaml is read again
 *   after the tags, and the run read again if it changed).
 * - An experiment's lifecycle is where it lives (`<root>` or `.trash/`), so a crash between the move and the
 *   `meta.yaml` rewrite still reads right; a run's lifecycle is its `meta.yaml`.
 * - Experiment creation is serialised by a lock file (`<root>/.forml-create.lock`, a file, which MLflow ignores): two
 *   processes of this library never create one name twice. MLflow itself does not take that lock, so an MLflow
 *   client creating the same name at the same moment can still make a duplicate (as two MLflow clients can).
 * - Metadata updates (`meta.yaml` read-modify-write) are serialised within a process only; two processes updating
 *   one run at the same moment can lose one of the two changes, as with MLflow's own file store.
 * - Artifacts of a run live in its recorded `file:` artifact URI when that is inside the store root and exists;
 *   otherwise (a store copied from elsewhere, such as the sample written at `/srv/forml-sample/mlruns`, or an
 *   experiment in `.trash/`) in `<run dir>/artifacts`. Nothing outside the root is ever read or written: no tag key,
 *   artifact path or id can name a place outside it; symlinks leading out are refused for artifacts and writes, and
 *   skipped when reading metadata (a `meta.yaml`, `tags/` directory or tag file leading out reads as absent).
 * - Deleting the Default experiment `0` fails as MLflow's file store does: MlflowApiError 500 INTERNAL_ERROR.
 */
import * as FileSystem from "@effect/platform/FileSystem"
import * as Path from "@effect/platform/Path"
import type { PlatformError } from "@effect/platform/Error"
import { Chunk, Clock, Effect, Either, Layer, Option, Stream } from "effect"
import { randomBytes } from "node:crypto"
import YAML from "yaml"
import { AlreadyExists, InvalidInput, MlflowApiError, NotFound, StorageError } from "../errors.js"
import type { MlflowFailure } from "../errors.js"
import { floatRepr } from "../asset/internal/pythonRepr.js"
import * as Confined from "./Confined.js"
import type * as Filter from "./Filter.js"
import * as ArtifactStore from "./ArtifactStore.js"
import * as LocalArtifacts from "./LocalArtifacts.js"
import { EntityTag, Experiment, Mlflow, Run, RunInfo, validateExtras, validateTagKey } from "./Mlflow.js"
import {
  checkExperimentsSearch,
  checkRunsSearch,
  compareStrings,
  DEFAULT_PAGE_SIZE,
  experimentAdmitted,
  MAX_PAGE_SIZE,
  newRunId,
  parseOrderBy,
  randomRunName,
  selectRuns,
  validateTags
} from "./semantics.js"
import type { RunAccess } from "./semantics.js"
import type {
  ArtifactRoot,
  ArtifactSource,
  CreateRunOptions,
  FileInfo,
  LogBatchExtras,
  RunStatus,
  SearchExperimentsOptions,
  SearchRunsOptions,
  UpdateRunOptions,
  ViewType
} from "./Mlflow.js"

export interface MlflowFileStoreOptions {
  /** The `mlruns` directory; created (with the Default experiment) when it does not exist. */
  readonly root: string
  /**
   * Settings of the object stores that runs may point to (a store written by a server run with
   * `--default-artifact-root s3://…`); each field wins over its environment variable (see `ArtifactStore`).
   */
  readonly artifactStores?: ArtifactStore.ObjectStoreOptions | undefined
}

export const DEFAULT_EXPERIMENT_ID = "0"
export { DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, parseOrderBy }

const META = "meta.yaml"
const TRASH = ".trash"
const MODELS = "models"
const TAGS = "tags"
const RUN_FOLDERS = ["artifacts", "metrics", "params", "tags"] as const
const LOCK = ".forml-create.lock"
const LOCK_STALE_MS = 30_000
const LOCK_TIMEOUT_MS = 60_000
const RUN_NAME_TAG = "mlflow.runName"
const SOURCE_TYPE_LOCAL = 4
/** How many times a run is read again while a writer keeps changing its meta.yaml under the reader. */
const RUN_READ_ATTEMPTS = 20

const STATUS_CODES: Readonly<Record<RunStatus, number>> = {
  RUNNING: 1,
  SCHEDULED: 2,
  FINISHED: 3,
  FAILED: 4,
  KILLED: 5
}
const STATUS_NAMES: ReadonlyArray<RunStatus> = ["RUNNING", "SCHEDULED", "FINISHED", "FAILED", "KILLED"]

/** Experiment directory names: MLflow's are decimal; any plain name is read, never one with `.`, `/` or `\`. */
const EXPERIMENT_ID = /^[A-Za-z0-9][A-Za-z0-9_-]*$/
/** MLflow's run id rule (`_validate_run_id`); it keeps ids to one plain path segment. */
const RUN_ID = /^[A-Za-z0-9][\w-]{0,255}$/

// ---------------------------------------------------------------------------------------------------------------
// YAML
// ---------------------------------------------------------------------------------------------------------------

type Meta = Record<string, unknown>

// A small emitter for meta.yaml, following PyYAML's `safe_dump(default_flow_style=False, allow_unicode=True)`
// (MLflow's `write_yaml`): sorted keys, and for each string the style PyYAML's `analyze_scalar` picks: plain when it
// reads back as the same string, else single-quoted, else (control characters, line breaks) double-quoted with
// PyYAML's escapes. Not reproduced: PyYAML folds long values at 80 columns, writes multi-line values single-quoted
// over several lines and keys over 128 characters as `? key`; the forms written here read back the same.

/** PyYAML's implicit resolvers (bool, float, int, merge, null, timestamp, value): such plain text is not a string. */
const PYYAML_IMPLICIT: ReadonlyArray<RegExp> = [
  /^(?:yes|Yes|YES|no|No|NO|true|True|TRUE|false|False|FALSE|on|On|ON|off|Off|OFF)$/,
  new RegExp(
    "^(?:[-+]?(?:[0-9][0-9_]*)\\.[0-9_]*(?:[eE][-+][0-9]+)?|\\.[0-9][0-9_]*(?:[eE][-+][0-9]+)?" +
      "|[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+\\.[0-9_]*|[-+]?\\.(?:inf|Inf|INF)|\\.(?:nan|NaN|NAN))$"
  ),
  /^(?:[-+]?0b[0-1_]+|[-+]?0[0-7_]+|[-+]?(?:0|[1-9][0-9_]*)|[-+]?0x[0-9a-fA-F_]+|[-+]?[1-9][0-9_]*(?::[0-5]?[0-9])+)$/,
  /^(?:<<|=|~|null|Null|NULL|)$/,
  new RegExp(
    "^(?:[0-9]{4}-[0-9]{2}-[0-9]{2}|[0-9]{4}-[0-9]{1,2}-[0-9]{1,2}(?:[Tt]|[ \\t]+)[0-9]{1,2}:[0-9]{2}:[0-9]{2}" +
      "(?:\\.[0-9]*)?(?:[ \\t]*(?:Z|[-+][0-9]{1,2}(?::[0-9]{2})?))?)$"
  )
]

/** Characters that only a double-quoted scalar can hold: non-printable ones, line breaks, U+FEFF. */
const SPECIAL = /[^\x20-\x7E\xA0-\uD7FF\uE000-\uFEFE\uFF00-\uFFFD\u{10000}-\u{10FFFF}]|[\u2028\u2029]/u

const ESCAPES: Readonly<Record<string, string>> = {
  "\0": "0",
  "\x07": "a",
  "\b": "b",
  "\t": "t",
  "\n": "n",
  "\v": "v",
  "\f": "f",
  "\r": "r",
  "\x1b": "e",
  "\"": "\"",
  "\\": "\\",
  "\x85": "N",
  "\u2028": "L",
  "\u2029": "P"
}

const doubleQuoted = (s: string): string => {
  let out = "\""
  for (const ch of s) {
    const cp = ch.codePointAt(0)!
    const printable = (cp >= 0x20 && cp <= 0x7e) || (cp >= 0xa0 && cp <= 0xd7ff) ||
      (cp >= 0xe000 && cp <= 0xfffd && cp !== 0xfeff)
    const escape = ESCAPES[ch]
    if (escape !== undefined) out += `\\${escape}`
    else if (printable) out += ch
    else if (cp <= 0xff) out += `\\x${cp.toString(16).toUpperCase().padStart(2, "0")}`
    else if (cp <= 0xffff) out += `\\u${cp.toString(16).toUpperCase().padStart(4, "0")}`
    else out += `\\U${cp.toString(16).toUpperCase().padStart(8, "0")}`
  }
  return `${out}"`
}

/** Whether PyYAML writes `s` plain in a block mapping (and reads it back as the same string). */
const plainAllowed = (s: string): boolean =>
  !PYYAML_IMPLICIT.some((re) => re.test(s)) &&
  !s.startsWith(" ") && !s.endsWith(" ") &&
  !/^[#,[\]{}&*!|>'"%@`]/.test(s) &&
  !/^[-?:]( |$)/.test(s) &&
  !s.startsWith("---") && !s.startsWith("...") &&
  !/:( |$)/.test(s) &&
  !s.includes(" #")

const yamlString = (s: string): string =>
  SPECIAL.test(s) ? doubleQuoted(s) : plainAllowed(s) ? s : `'${s.replace(/'/g, "''")}'`

const yamlScalar = (v: unknown): string => {
  if (v === null || v === undefined) return "null"
  if (typeof v === "string") return yamlString(v)
  if (typeof v === "number" || typeof v === "bigint") return String(v)
  if (typeof v === "boolean") return v ? "true" : "false"
  if (v instanceof PlainText) return v.text
  return yamlString(JSON.stringify(v) ?? "")
}

const isMapping = (v: unknown): v is Meta =>
  typeof v === "object" && v !== null && !Array.isArray(v) && !(v instanceof PlainText)

const sortedKeys = (m: Meta): ReadonlyArray<string> => Object.keys(m).sort((a, b) => (a < b ? -1 : a > b ? 1 : 0))

/** `meta.yaml` text as MLflow writes it (see above). */
export const renderYaml = (data: Meta): string => {
  const lines: Array<string> = []
  const block = (m: Meta, indent: string) => {
    for (const key of sortedKeys(m)) {
      const v = m[key]
      const head = `${indent}${yamlString(key)}:`
      if (isMapping(v)) {
        if (Object.keys(v).length === 0) lines.push(`${head} {}`)
        else {
          lines.push(head)
          block(v, `${indent}  `)
        }
      } else if (Array.isArray(v)) {
        if (v.length === 0) lines.push(`${head} []`)
        else {
          lines.push(head)
          for (const item of v) lines.push(`${indent}- ${yamlScalar(item)}`)
        }
      } else lines.push(`${head} ${yamlScalar(v)}`)
    }
  }
  block(data, "")
  return lines.map((l) => `${l}\n`).join("")
}

/**
 * A plain scalar that PyYAML resolves to a type kept here only as text (a float, a timestamp, a non-decimal int):
 * written back verbatim, so a read-modify-write of meta.yaml leaves it as it was.
 */
class PlainText {
  constructor(readonly text: string) {}
}

const [PY_BOOL, PY_FLOAT, PY_INT, PY_NULL_MERGE_VALUE, PY_TIMESTAMP] = PYYAML_IMPLICIT

/** A plain scalar as PyYAML's SafeLoader resolves it; only what meta.yaml holds gets a JS type. */
const resolvePlain = (text: string): unknown => {
  if (/^(?:~|null|Null|NULL|)$/.test(text)) return null
  if (PY_BOOL!.test(text)) return /^(?:yes|Yes|YES|true|True|TRUE|on|On|ON)$/.test(text)
  if (/^[-+]?(?:0|[1-9][0-9_]*)$/.test(text)) {
    const n = Number(text.replace(/_/g, ""))
    if (Number.isSafeInteger(n)) return n
  }
  if (PY_INT!.test(text) || PY_FLOAT!.test(text) || PY_TIMESTAMP!.test(text) || PY_NULL_MERGE_VALUE!.test(text)) {
    return new PlainText(text)
  }
  return text
}

/** Converts a node read with the failsafe schema (every scalar a string) the way PyYAML's SafeLoader types it. */
const fromNode = (node: unknown): unknown => {
  if (YAML.isMap(node)) {
    const out: Meta = {}
    for (const pair of node.items) {
      const key = fromNode(pair.key)
      out[key instanceof PlainText ? key.text : String(key)] = fromNode(pair.value)
    }
    return out
  }
  if (YAML.isSeq(node)) return node.items.map(fromNode)
  if (YAML.isScalar(node)) {
    const text = String(node.value)
    return node.type === "PLAIN" ? resolvePlain(text) : text
  }
  return null
}

/** meta.yaml as the `yaml` package's full parser reads it, typed as PyYAML's SafeLoader types it. */
export const parseYamlDocument = (file: string, text: string): Either.Either<Meta, StorageError> => {
  const bad = (reason: string) => Either.left(new StorageError({ path: file, reason }))
  const doc = YAML.parseDocument(text, { schema: "failsafe", logLevel: "silent", uniqueKeys: false })
  if (doc.errors.length > 0) return bad(`malformed YAML: ${doc.errors[0]!.message}`)
  const value = fromNode(doc.contents)
  return isMapping(value) ? Either.right(value) : bad("meta.yaml is not a mapping")
}

// A reader for the one-line-per-value layout PyYAML writes for meta.yaml (and `renderYaml` writes): a block mapping
// of scalars, one nested mapping level, sequences of scalars, `[]` and `{}`, plain and single-quoted scalars on one
// line. It reads a meta.yaml in a fraction of the full parser's time; anything else (double quotes, folded or
// multi-line values, comments, anchors, flow collections, blank lines, CR, deeper nesting) is left to the full
// parser, so what is read and what is refused stay the same.

/** A plain scalar taken here: no indicator first (a `-` only before a non-space), no `: `, ` #`, tab, `:` last. */
const SIMPLE_PLAIN = /^(?!.*(?::\s| #))(?:[^\s\-?:,[\]{}#&*!|>'"%@`]|-[^\s\-])[^\t]*(?<![\s:])$/
/** Characters left to the full parser: those PyYAML double-quotes, and BOM, NEL, line and paragraph separators. */
const SIMPLE_REFUSED = /[^\x20-\x7E\xA0-\uD7FF\uE000-\uFEFE\uFF00-\uFFFD\u{10000}-\u{10FFFF}]|[\u2028\u2029]/u

/** One scalar at the start of `s`: its value, as the node it would be, and the rest of `s` after it. */
const simpleScalar = (
  s: string,
  asKey: boolean
): { readonly quoted: boolean; readonly text: string; readonly rest: string } | undefined => {
  if (s.startsWith("'")) {
    let text = ""
    let i = 1
    for (;;) {
      const close = s.indexOf("'", i)
      if (close < 0) return undefined
      text += s.slice(i, close)
      if (s[close + 1] === "'") {
        text += "'"
        i = close + 2
      } else return { quoted: true, text, rest: s.slice(close + 1) }
    }
  }
  const end = asKey ? s.search(/:(?: |$)/) : s.length
  if (end <= 0) return undefined
  const text = s.slice(0, end)
  return SIMPLE_PLAIN.test(text) && !text.startsWith("---") && !text.startsWith("...")
    ? { quoted: false, text, rest: s.slice(end) }
    : undefined
}

const simpleValue = (s: string): unknown => {
  const scalar = simpleScalar(s, false)
  if (scalar === undefined || scalar.rest !== "") return NOT_SIMPLE
  return scalar.quoted ? scalar.text : resolvePlain(scalar.text)
}

/** `key:` at the start of a line: the key as `fromNode` names it, and what follows the colon (trimmed of one space). */
const simpleKey = (line: string): { readonly key: string; readonly rest: string } | undefined => {
  const scalar = simpleScalar(line, true)
  if (scalar === undefined || !scalar.rest.startsWith(":")) return undefined
  const after = scalar.rest.slice(1)
  if (after !== "" && !after.startsWith(" ")) return undefined
  const resolved = scalar.quoted ? scalar.text : resolvePlain(scalar.text)
  return { key: resolved instanceof PlainText ? resolved.text : String(resolved), rest: after.slice(1) }
}

const NOT_SIMPLE = Symbol("not simple")

/** meta.yaml in PyYAML's one-line layout; undefined when it is not (the full parser reads it then). */
export const parseSimpleYaml = (text: string): Meta | undefined => {
  if (!text.endsWith("\n") || text.includes("\r") || SIMPLE_REFUSED.test(text.replace(/\n/g, ""))) return undefined
  const lines = text.slice(0, -1).split("\n")
  const out: Meta = {}
  let i = 0
  while (i < lines.length) {
    const head = simpleKey(lines[i]!)
    if (head === undefined) return undefined
    i++
    let value: unknown
    if (head.rest === "[]") value = []
    else if (head.rest === "{}") value = {}
    else if (head.rest !== "") value = simpleValue(head.rest)
    else if (lines[i]?.startsWith("- ") || lines[i]?.startsWith("  - ")) {
      // a sequence of scalars, at the key's indentation (PyYAML's) or two spaces in
      const prefix = lines[i]!.startsWith("- ") ? "- " : "  - "
      const items: Array<unknown> = []
      for (; i < lines.length && lines[i]!.startsWith(prefix); i++) {
        const item = simpleValue(lines[i]!.slice(prefix.length))
        if (item === NOT_SIMPLE) return undefined
        items.push(item)
      }
      value = items
    } else if (lines[i]?.startsWith("  ")) {
      const nested: Meta = {}
      for (; i < lines.length && lines[i]!.startsWith("  "); i++) {
        const pair = simpleKey(lines[i]!.slice(2))
        if (pair === undefined || pair.rest === "") return undefined
        const v = pair.rest === "[]" ? [] : pair.rest === "{}" ? {} : simpleValue(pair.rest)
        if (v === NOT_SIMPLE) return undefined
        nested[pair.key] = v
      }
      value = nested
    } else value = null
    if (value === NOT_SIMPLE) return undefined
    out[head.key] = value
  }
  return i === 0 ? undefined : out
}

/** meta.yaml as MLflow's `read_yaml` (PyYAML, YAML 1.1) reads it. */
export const parseYaml = (file: string, text: string): Either.Either<Meta, StorageError> => {
  const simple = parseSimpleYaml(text)
  return simple === undefined ? parseYamlDocument(file, text) : Either.right(simple)
}

const str = (v: unknown): string | undefined => {
  if (v === null || v === undefined) return undefined
  if (typeof v === "string") return v
  if (v instanceof PlainText) return v.text
  if (typeof v === "number" || typeof v === "bigint" || typeof v === "boolean") return String(v)
  return undefined
}

const num = (v: unknown): number | undefined => {
  if (typeof v === "number") return v
  if (typeof v === "bigint") return Number(v)
  if (typeof v === "string" && /^-?\d+$/.test(v)) return Number(v)
  return undefined
}

const statusOf = (v: unknown): RunStatus => {
  const n = num(v)
  if (n !== undefined && n >= 1 && n <= 5) return STATUS_NAMES[n - 1]!
  const s = str(v)
  return s !== undefined && (STATUS_NAMES as ReadonlyArray<string>).includes(s) ? (s as RunStatus) : "RUNNING"
}

// ---------------------------------------------------------------------------------------------------------------
// Pure helpers
// ---------------------------------------------------------------------------------------------------------------

/** A random 18-digit decimal id, as MLflow's file store makes them. */
const randomExperimentId = (): string => {
  const n = BigInt(`0x${randomBytes(8).toString("hex")}`) % 900_000_000_000_000_000n + 100_000_000_000_000_000n
  return n.toString()
}

/** `validateTagKey`, and no segment named as a temporary file (a tag key is a path under `tags/`). */
const checkTags = (tags: ReadonlyArray<{ readonly key: string; readonly value: string }>) =>
  validateTags(tags, (key) =>
    Either.flatMap(validateTagKey(key), () =>
      key.split("/").some(LocalArtifacts.isTempName)
        ? Either.left(new InvalidInput({ kind: "TagKey", input: key, reason: "a segment uses a reserved name" }))
        : Either.void))

/** The last value of each key, in first-seen key order (MLflow's log-batch: the last value wins). */
const lastWins = (
  tags: ReadonlyArray<{ readonly key: string; readonly value: string }>
): ReadonlyArray<{ readonly key: string; readonly value: string }> => {
  const map = new Map<string, string>()
  for (const t of tags) map.set(t.key, t.value)
  return [...map].map(([key, value]) => ({ key, value }))
}

const runAccess: RunAccess<Run> = { fields: (r) => r.info, tag: (r, key) => Option.getOrUndefined(r.tag(key)) }

/** A snapshot as a stream of pages of `size`. */
const paged = <A>(items: ReadonlyArray<A>, size: number): Stream.Stream<A> =>
  Stream.paginateChunk(0, (offset) => {
    const next = offset + size
    return [Chunk.fromIterable(items.slice(offset, next)), next < items.length ? Option.some(next) : Option.none()]
  })

const apiError = (status: number, errorCode: string, detail: string) =>
  new MlflowApiError({ status, errorCode, detail })

const notActiveRun = (runId: string) =>
  apiError(400, "INVALID_PARAMETER_VALUE", `The run ${runId} must be in 'active' lifecycle_stage.`)

/** Waits on the wall clock (a test clock must not stall a wait for another process's lock). */
const wallSleep = (ms: number): Effect.Effect<void> =>
  Effect.async<void>((resume) => {
    const timer = setTimeout(() => resume(Effect.void), ms)
    return Effect.sync(() => clearTimeout(timer))
  })

// ---------------------------------------------------------------------------------------------------------------
// The store
// ---------------------------------------------------------------------------------------------------------------

interface ExperimentLoc {
  readonly experimentId: string
  readonly dir: string
  readonly deleted: boolean
}

interface RunLoc {
  readonly runId: string
  readonly experiment: ExperimentLoc
  readonly dir: string
}

/** Builds the service over a store root, creating the root, the Default experiment and `.trash/` as MLflow does. */
export const make = (
  options: MlflowFileStoreOptions
): Effect.Effect<Mlflow.Service, StorageError, FileSystem.FileSystem | Path.Path> =>
  Effect.gen(function*() {
    const fs = yield* FileSystem.FileSystem
    const path = yield* Path.Path
    const artifacts = yield* LocalArtifacts.make
    const objectStores = yield* ArtifactStore.makeResolver(options.artifactStores ?? {})
    /** The object store of a run whose artifact URI is `s3://`, `wasbs://` or `gs://`; none for a local one. */
    const objectStore = (run: ArtifactRoot) =>
      ArtifactStore.isObjectStoreUri(run.artifactUri)
        ? Effect.map(objectStores.resolve(run.artifactUri), (store) => store as ArtifactStore.ArtifactStore | undefined)
        : Effect.succeed(undefined)
    const root = path.resolve(options.root)
    const rootUri = LocalArtifacts.pathToFileUri(root)
    const trash = path.join(root, TRASH)
    const storage = LocalArtifacts.storageError
    const isNotFound = (e: PlatformError) => e._tag === "SystemError" && e.reason === "NotFound"
    const metaLock = yield* Effect.makeSemaphore(1)
    const createLock = yield* Effect.makeSemaphore(1)
    /** Run id → experiment id, learnt from reads: a hint that spares a scan of every experiment. */
    const runIndex = new Map<string, string>()
    const encoder = new TextEncoder()

    // -- file system helpers ----------------------------------------------------------------------------------------

    const exists = (p: string) => fs.exists(p).pipe(Effect.mapError(storage(p)))

    const readDir = (p: string): Effect.Effect<ReadonlyArray<string>, StorageError> =>
      fs.readDirectory(p).pipe(
        Effect.catchAll((e) =>
          isNotFound(e) || (e._tag === "SystemError" && e.reason === "BadResource")
            ? Effect.succeed([])
            : Effect.fail(storage(p)(e))
        )
      )

    const readText = (p: string): Effect.Effect<string | undefined, StorageError> =>
      fs.readFileString(p).pipe(
        Effect.map((s): string | undefined => s),
        Effect.catchAll((e) => (isNotFound(e) ? Effect.succeed(undefined) : Effect.fail(storage(p)(e))))
      )

    const mkdir = (p: string) => fs.makeDirectory(p, { recursive: true }).pipe(Effect.mapError(storage(p)))

    const writeYaml = (file: string, data: Meta) => artifacts.writeAtomic(file, encoder.encode(renderYaml(data)))

    const removeQuietly = (p: string) => Effect.ignore(fs.remove(p, { recursive: true }))

    const inside = Confined.inside

    // -- initialisation (MLflow's FileStore.__init__) ---------------------------------------------------------------

    /** A new experiment's meta.yaml: no `tags` key until a delete or restore rewrites it, as in MLflow. */
    const experimentMeta = (experimentId: string, name: string, now: number): Meta => ({
      artifact_location: `${rootUri}/${experimentId}`,
      creation_time: now,
      experiment_id: experimentId,
      last_update_time: now,
      lifecycle_stage: "active",
      name
    })

    if (!(yield* exists(root))) {
      yield* mkdir(root)
      const staged = path.join(root, LocalArtifacts.tempName())
      yield* mkdir(staged)
      const now = yield* Clock.currentTimeMillis
      yield* writeYaml(path.join(staged, META), experimentMeta(DEFAULT_EXPERIMENT_ID, "Default", now))
      // Another process initialising the same root at once wins the rename; its Default is as good as ours.
      yield* fs.rename(staged, path.join(root, DEFAULT_EXPERIMENT_ID)).pipe(
        Effect.catchAll(() => removeQuietly(staged))
      )
    }
    yield* mkdir(trash)
    // Resolved once: every confinement check compares real paths with it.
    const rootReal = yield* Effect.flatMap(
      Confined.realPath(root),
      (real) => real === undefined ? Effect.fail(new StorageError({ path: root, reason: "the store root is missing" })) : Effect.succeed(real)
    )

    /** The real path of an existing directory in the store; one whose real path is outside it is refused. */
    const confined = (p: string): Effect.Effect<string | undefined, StorageError> =>
      Confined.realPath(p).pipe(
        Effect.flatMap((real) =>
          real === undefined || inside(rootReal, real)
            ? Effect.succeed(real)
            : Effect.fail(new StorageError({ path: p, reason: "resolves outside the store root" }))
        )
      )

    // -- reading ----------------------------------------------------------------------------------------------------

    /** The real path of `p` when it exists inside the store; undefined when it is missing or leads out of it. */
    const realInside = (p: string): Effect.Effect<string | undefined, StorageError> =>
      Effect.map(Confined.realPath(p), (real) => (real !== undefined && inside(rootReal, real) ? real : undefined))

    /** A metadata file's text; one that is missing or is a symlink leading out of the store reads as missing. */
    const readInside = (p: string): Effect.Effect<string | undefined, StorageError> =>
      Effect.flatMap(realInside(p), (real) => (real === undefined ? Effect.succeed(undefined) : Confined.readText(real)))

    /**
     * `readInside` for a file `name` of a directory whose real path (`realDir`) is inside the store: read without
     * resolving the directory again; only a symlink in its place is resolved (and checked).
     */
    const readInDir = (realDir: string, name: string): Effect.Effect<string | undefined, StorageError> => {
      const file = path.join(realDir, name)
      return Effect.flatMap(Confined.readTextNoFollow(file), (read) =>
        read._tag === "Text" ? Effect.succeed(read.text) : read._tag === "Missing" ? Effect.succeed(undefined) : readInside(file))
    }

    // Entities read from disk are built from values already coerced to their types (`str`, `num`, `statusOf`), so
    // their constructors skip validation (`true`), as `wire.ts` does for decoded replies.
    // A tags directory or tag file that is a symlink leading out of the store is skipped: it reads as absent.
    // The listing carries each entry's type: plain files and directories under a real directory of the store are
    // inside it and read directly; only symlinks (and entries of unknown type) are resolved and checked.
    const readTags = (dir: string): Effect.Effect<ReadonlyArray<EntityTag>, StorageError> => {
      const none: ReadonlyArray<EntityTag> = []
      const walk = (real: string, rel: string, depth: number): Effect.Effect<ReadonlyArray<EntityTag>, StorageError> =>
        Effect.gen(function*() {
          const listed = yield* Confined.entries(real)
          const found = yield* Effect.forEach(
            listed.filter((entry) => !LocalArtifacts.isTempName(entry.name)),
            (entry): Effect.Effect<ReadonlyArray<EntityTag>, StorageError> => {
              const key = rel === "" ? entry.name : `${rel}/${entry.name}`
              const at = path.join(real, entry.name)
              const tag = (value: string | undefined) => (value === undefined ? none : [new EntityTag({ key, value }, true)])
              if (entry.isFile()) return Effect.map(readInDir(real, entry.name), tag)
              if (entry.isDirectory()) return depth < 32 ? walk(at, key, depth + 1) : Effect.succeed(none)
              if (!entry.isSymbolicLink() && Confined.typeKnown(entry)) return Effect.succeed(none)
              return Effect.gen(function*() {
                const target = yield* realInside(at)
                if (target === undefined) return none
                const type = yield* Confined.statType(target)
                if (type === "Directory") return depth < 32 ? yield* walk(target, key, depth + 1) : none
                if (type !== "File") return none
                return tag(yield* Confined.readText(target))
              })
            },
            { concurrency: 8 }
          )
          return found.flat()
        })
      return Effect.gen(function*() {
        const real = yield* realInside(dir)
        if (real === undefined) return []
        const tags = yield* walk(real, "", 0)
        return [...tags].sort((a, b) => compareStrings(a.key, b.key))
      })
    }

    const readMeta = (dir: string): Effect.Effect<Meta | undefined, StorageError> =>
      Effect.gen(function*() {
        const file = path.join(dir, META)
        const real = yield* realInside(dir)
        const text = real === undefined ? undefined : yield* readInDir(real, META)
        if (text === undefined) return undefined
        // A malformed meta.yaml is skipped, as MLflow skips it with a warning.
        return Either.getOrUndefined(parseYaml(file, text))
      })

    /**
     * A run's meta.yaml and tags as they stood at one moment: meta.yaml is read again after the tags and the pair
     * taken only when it did not change meanwhile (a writer moving a commit rewrites both, one after the other).
     */
    const readRunFiles = (dir: string) =>
      Effect.gen(function*() {
        const file = path.join(dir, META)
        const real = yield* realInside(dir)
        if (real === undefined) return undefined
        let text = yield* readInDir(real, META)
        for (let attempt = 0;; attempt++) {
          if (text === undefined) return undefined
          const tags = yield* readTags(path.join(real, TAGS))
          const again = yield* readInDir(real, META)
          if (again === text || attempt >= RUN_READ_ATTEMPTS) {
            // A malformed meta.yaml is skipped, as MLflow skips it with a warning.
            const meta = Either.getOrUndefined(parseYaml(file, text))
            return meta === undefined ? undefined : { meta, tags }
          }
          text = again
        }
      })

    const experimentLoc = (experimentId: string, deleted: boolean): ExperimentLoc => ({
      experimentId,
      dir: path.join(deleted ? trash : root, experimentId),
      deleted
    })

    const locateExperiment = (experimentId: string): Effect.Effect<ExperimentLoc | undefined, StorageError> =>
      Effect.gen(function*() {
        if (!EXPERIMENT_ID.test(experimentId)) return undefined
        for (const deleted of [false, true]) {
          const loc = experimentLoc(experimentId, deleted)
          if (yield* exists(path.join(loc.dir, META))) return loc
        }
        return undefined
      })

    const experimentLocs = (viewType: ViewType | undefined): Effect.Effect<ReadonlyArray<ExperimentLoc>, StorageError> =>
      Effect.gen(function*() {
        const view = viewType ?? "ACTIVE_ONLY"
        const ids = (names: ReadonlyArray<string>) => names.filter((n) => EXPERIMENT_ID.test(n) && n !== MODELS)
        const active = view === "DELETED_ONLY" ? [] : ids(yield* readDir(root)).map((id) => experimentLoc(id, false))
        const deleted = view === "ACTIVE_ONLY" ? [] : ids(yield* readDir(trash)).map((id) => experimentLoc(id, true))
        return [...active, ...deleted]
      })

    const readExperiment = (loc: ExperimentLoc): Effect.Effect<Experiment | undefined, StorageError> =>
      Effect.gen(function*() {
        const meta = yield* readMeta(loc.dir)
        if (meta === undefined) return undefined
        const name = str(meta.name)
        const recordedId = str(meta.experiment_id)
        if (name === undefined || (recordedId !== undefined && recordedId !== loc.experimentId)) return undefined
        const creationTime = num(meta.creation_time)
        const lastUpdateTime = num(meta.last_update_time)
        return new Experiment({
          experimentId: loc.experimentId,
          name,
          artifactLocation: str(meta.artifact_location) ?? "",
          lifecycleStage: loc.deleted ? "deleted" : "active",
          ...(creationTime === undefined ? {} : { creationTime }),
          ...(lastUpdateTime === undefined ? {} : { lastUpdateTime }),
          tags: yield* readTags(path.join(loc.dir, TAGS))
        }, true)
      })

    const allExperiments = (viewType: ViewType | undefined) =>
      Effect.flatMap(experimentLocs(viewType), (locs) =>
        Effect.map(
          Effect.forEach(locs, readExperiment, { concurrency: 16 }),
          (es) => es.filter((e): e is Experiment => e !== undefined)
        ))

    /** The experiments (active or deleted) recorded under `name`: only their meta.yaml files are read. */
    const locsNamed = (name: string): Effect.Effect<ReadonlyArray<ExperimentLoc>, StorageError> =>
      Effect.flatMap(experimentLocs("ALL"), (locs) =>
        Effect.map(
          Effect.forEach(
            locs,
            (loc) => Effect.map(readMeta(loc.dir), (meta) => (str(meta?.name) === name ? loc : undefined)),
            { concurrency: 16 }
          ),
          (found) => found.filter((loc): loc is ExperimentLoc => loc !== undefined)
        ))

    const findExperiment = (experimentId: string) =>
      Effect.gen(function*() {
        const loc = yield* locateExperiment(experimentId)
        const experiment = loc === undefined ? undefined : yield* readExperiment(loc)
        if (loc === undefined || experiment === undefined) {
          return yield* new NotFound({ entity: "experiment", key: experimentId })
        }
        return { loc, experiment }
      })

    const runDirs = (loc: ExperimentLoc) =>
      Effect.map(readDir(loc.dir), (names) => names.filter((n) => RUN_ID.test(n) && n !== TAGS))

    const readRun = (loc: RunLoc): Effect.Effect<Run | undefined, StorageError> =>
      Effect.gen(function*() {
        const files = yield* readRunFiles(loc.dir)
        if (files === undefined) return undefined
        const { meta, tags } = files
        const runId = str(meta.run_id) ?? str(meta.run_uuid)
        const experimentId = str(meta.experiment_id)
        // MLflow reads a run whose recorded ids differ from its place as "metadata in invalid state".
        if (runId !== loc.runId || (experimentId !== undefined && experimentId !== loc.experiment.experimentId)) {
          return undefined
        }
        runIndex.set(loc.runId, loc.experiment.experimentId)
        const endTime = num(meta.end_time)
        return new Run({
          info: new RunInfo({
            runId,
            experimentId: loc.experiment.experimentId,
            runName: str(meta.run_name) ?? tags.find((t) => t.key === RUN_NAME_TAG)?.value ?? "",
            userId: str(meta.user_id) ?? "",
            status: statusOf(meta.status),
            startTime: num(meta.start_time) ?? 0,
            ...(endTime === undefined ? {} : { endTime }),
            artifactUri: str(meta.artifact_uri) ?? "",
            lifecycleStage: str(meta.lifecycle_stage) === "deleted" ? "deleted" : "active"
          }, true),
          tags
        }, true)
      })

    /**
     * Whether a run may pass the tag clauses of a search, judged from its tag files named by them alone: a clause
     * that one read of one tag file shows failing rules the run out (the run did not match at that moment, as a whole
     * read at that moment would show). Undecided cases (a symlink, a key below a `/`) are left to the whole read.
     */
    const mayMatch = (dir: string, clauses: ReadonlyArray<Filter.Clause>): Effect.Effect<boolean, StorageError> =>
      Effect.gen(function*() {
        if (clauses.length === 0) return true
        const tagsDir = yield* realInside(path.join(dir, TAGS))
        const listed = new Map(
          tagsDir === undefined ? [] : (yield* Confined.entries(tagsDir)).map((entry) => [entry.name, entry] as const)
        )
        // absent tags rule a run out before any file is read; then values, last clause first (filters are built
        // from the general to the particular: `forml.repoid` matches every run of a repository, a parent id few)
        if (clauses.some((c) => !listed.has(c.key))) return false
        for (const clause of [...clauses].reverse()) {
          const entry = listed.get(clause.key)
          let value: string | undefined
          if (entry !== undefined && tagsDir !== undefined) {
            if (entry.isFile()) {
              const read = yield* Confined.readTextNoFollow(path.join(tagsDir, clause.key))
              if (read._tag === "Symlink") return true
              value = read._tag === "Text" ? read.text : undefined
            } else if (entry.isSymbolicLink() || !Confined.typeKnown(entry)) return true
          }
          // MLflow's semantics: a run without the tag matches neither `=` nor `!=`
          if (value === undefined || (clause.comparator === "=") !== (value === clause.value)) return false
        }
        return true
      })

    /** The runs of an experiment; with clauses, only those that `mayMatch` them are read whole. */
    const runsIn = (loc: ExperimentLoc, clauses: ReadonlyArray<Filter.Clause> = []) =>
      Effect.flatMap(runDirs(loc), (ids) =>
        Effect.map(
          Effect.forEach(ids, (runId) => {
            const dir = path.join(loc.dir, runId)
            return Effect.flatMap(
              mayMatch(dir, clauses),
              (may) => may ? readRun({ runId, experiment: loc, dir }) : Effect.succeed(undefined)
            )
          }, { concurrency: 16 }),
          (runs) => runs.filter((r): r is Run => r !== undefined)
        ))

    const locateRun = (runId: string): Effect.Effect<RunLoc | undefined, StorageError> =>
      Effect.gen(function*() {
        if (!RUN_ID.test(runId) || runId === TAGS) return undefined
        const at = (experiment: ExperimentLoc): RunLoc => ({ runId, experiment, dir: path.join(experiment.dir, runId) })
        const hint = runIndex.get(runId)
        if (hint !== undefined) {
          for (const deleted of [false, true]) {
            const loc = at(experimentLoc(hint, deleted))
            if (yield* exists(path.join(loc.dir, META))) return loc
          }
        }
        const locs = yield* experimentLocs("ALL")
        const found = yield* Effect.forEach(
          locs,
          (e) => Effect.map(exists(path.join(e.dir, runId, META)), (ok) => (ok ? at(e) : undefined)),
          { concurrency: 16 }
        )
        const loc = found.find((l): l is RunLoc => l !== undefined)
        if (loc !== undefined) runIndex.set(runId, loc.experiment.experimentId)
        return loc
      })

    const findRun = (runId: string) =>
      Effect.gen(function*() {
        const loc = yield* locateRun(runId)
        const run = loc === undefined ? undefined : yield* readRun(loc)
        if (loc === undefined || run === undefined) return yield* new NotFound({ entity: "run", key: runId })
        return { loc, run }
      })

    // -- writing ----------------------------------------------------------------------------------------------------

    /**
     * One file per tag (a `/` in a key makes subdirectories), each written atomically, never outside the store. On a
     * visible run the files are written in the batch's order, as MLflow writes a batch, so a reader that sees a tag
     * sees the ones before it (a commit tag sent last lands last); a directory still staged takes them all at once.
     */
    const writeTags = (
      tagsDir: string,
      tags: ReadonlyArray<{ readonly key: string; readonly value: string }>,
      staged = false
    ) =>
      Effect.zipRight(
        confined(tagsDir),
        Effect.forEach(tags, (t) => artifacts.upload(tagsDir, t.key, encoder.encode(t.value)), {
          discard: true,
          concurrency: staged ? 8 : 1
        })
      )

    /** Reads a `meta.yaml`, changes it and writes it back (atomically), one update at a time in this process. */
    const updateMeta = (dir: string, change: (meta: Meta) => Meta) =>
      metaLock.withPermits(1)(
        Effect.gen(function*() {
          yield* confined(dir)
          const file = path.join(dir, META)
          const text = yield* readText(file)
          if (text === undefined) return yield* new StorageError({ path: file, reason: "meta.yaml is missing" })
          const meta = yield* parseYaml(file, text)
          const changed = change({ ...meta })
          yield* writeYaml(file, changed)
          return changed
        })
      )

    const withoutKey = (meta: Meta, key: string): Meta => {
      const { [key]: _dropped, ...rest } = meta
      return rest
    }

    /** Holds the cross-process creation lock (an exclusive lock file) around `effect`. */
    const withCreateLock = <A, E>(effect: Effect.Effect<A, E>): Effect.Effect<A, E | StorageError> => {
      const lockPath = path.join(root, LOCK)
      const acquire: Effect.Effect<void, StorageError> = Effect.gen(function*() {
        const deadline = Date.now() + LOCK_TIMEOUT_MS
        while (true) {
          const taken = yield* fs.writeFile(lockPath, encoder.encode(`${process.pid} ${Date.now()}\n`), { flag: "wx" })
            .pipe(
              Effect.as(true),
              Effect.catchAll((e) =>
                e._tag === "SystemError" && e.reason === "AlreadyExists"
                  ? Effect.succeed(false)
                  : Effect.fail(storage(lockPath)(e))
              )
            )
          if (taken) return
          // A lock left by a crashed process is broken once it is old enough.
          const age = yield* fs.stat(lockPath).pipe(
            Effect.map((i) => Option.match(i.mtime, { onNone: () => 0, onSome: (d) => Date.now() - d.getTime() })),
            Effect.orElseSucceed(() => 0)
          )
          if (age > LOCK_STALE_MS) {
            yield* Effect.ignore(fs.remove(lockPath))
            continue
          }
          if (Date.now() > deadline) {
            return yield* new StorageError({ path: lockPath, reason: "timed out waiting for another process's lock" })
          }
          yield* wallSleep(5 + Math.floor(Math.random() * 20))
        }
      })
      return createLock.withPermits(1)(
        Effect.acquireUseRelease(acquire, () => effect, () => Effect.ignore(fs.remove(lockPath)))
      )
    }

    // -- experiments ------------------------------------------------------------------------------------------------

    const getExperiment = Effect.fn("MlflowFileStore.getExperiment")(function*(experimentId: string) {
      return (yield* findExperiment(experimentId)).experiment
    })

    const getExperimentByName = Effect.fn("MlflowFileStore.getExperimentByName")(function*(name: string) {
      for (const loc of yield* locsNamed(name)) {
        const found = yield* readExperiment(loc)
        if (found !== undefined && found.name === name) return found
      }
      return yield* new NotFound({ entity: "experiment", key: name })
    })

    const createExperiment = Effect.fn("MlflowFileStore.createExperiment")(function*(
      name: string,
      options?: { readonly tags?: ReadonlyArray<{ readonly key: string; readonly value: string }> }
    ) {
      if (name === "") return yield* new InvalidInput({ kind: "ExperimentName", input: name, reason: "empty" })
      const tags = lastWins(options?.tags ?? [])
      yield* checkTags(tags)
      const now = yield* Clock.currentTimeMillis
      // Built whole under a temporary name, then renamed into place: no reader sees half an experiment.
      const staged = path.join(root, LocalArtifacts.tempName())
      const stage = (experimentId: string) => writeYaml(path.join(staged, META), experimentMeta(experimentId, name, now))
      const build = Effect.gen(function*() {
        yield* mkdir(staged)
        if (tags.length > 0) yield* writeTags(path.join(staged, TAGS), tags, true)
        let experimentId = randomExperimentId()
        yield* stage(experimentId)
        return yield* withCreateLock(
          Effect.gen(function*() {
            if ((yield* locsNamed(name)).length > 0) {
              return yield* new AlreadyExists({ entity: "experiment", key: name })
            }
            while ((yield* exists(path.join(root, experimentId))) || (yield* exists(path.join(trash, experimentId)))) {
              experimentId = randomExperimentId()
              yield* stage(experimentId)
            }
            const target = path.join(root, experimentId)
            yield* fs.rename(staged, target).pipe(Effect.mapError(storage(target)))
            return experimentId
          })
        )
      })
      return yield* build.pipe(Effect.onError(() => removeQuietly(staged)))
    })

    const deleteExperiment = Effect.fn("MlflowFileStore.deleteExperiment")(function*(experimentId: string) {
      if (experimentId === DEFAULT_EXPERIMENT_ID) {
        return yield* apiError(
          500,
          "INTERNAL_ERROR",
          `Cannot delete the default experiment '${DEFAULT_EXPERIMENT_ID}'. This is an internally reserved experiment.`
        )
      }
      const { experiment, loc } = yield* findExperiment(experimentId)
      if (loc.deleted) return yield* new NotFound({ entity: "experiment", key: experimentId })
      const target = experimentLoc(experimentId, true)
      if (yield* exists(target.dir)) {
        return yield* apiError(500, "INTERNAL_ERROR", `Destination path '${target.dir}' already exists`)
      }
      const now = yield* Clock.currentTimeMillis
      // The move is the deletion (one rename); the meta.yaml rewrites that follow only record it.
      yield* fs.rename(loc.dir, target.dir).pipe(Effect.mapError(storage(target.dir)))
      yield* updateMeta(target.dir, (meta) => ({
        ...meta,
        lifecycle_stage: "deleted",
        last_update_time: now,
        tags: Object.fromEntries(experiment.tags.map((t) => [t.key, t.value]))
      }))
      const runs = yield* runsIn(target)
      yield* Effect.forEach(
        runs.filter((r) => r.info.lifecycleStage === "active"),
        (r) =>
          updateMeta(path.join(target.dir, r.runId), (meta) => ({
            ...meta,
            lifecycle_stage: "deleted",
            deleted_time: now
          })),
        { discard: true }
      )
    })

    const restoreExperiment = Effect.fn("MlflowFileStore.restoreExperiment")(function*(experimentId: string) {
      const { experiment, loc } = yield* findExperiment(experimentId)
      if (!loc.deleted) return yield* new NotFound({ entity: "experiment", key: experimentId })
      const target = experimentLoc(experimentId, false)
      if (yield* exists(target.dir)) {
        return yield* apiError(
          500,
          "INTERNAL_ERROR",
          `Cannot restore experiment with ID ${experimentId}. An experiment with same ID already exists.`
        )
      }
      const now = yield* Clock.currentTimeMillis
      yield* fs.rename(loc.dir, target.dir).pipe(Effect.mapError(storage(target.dir)))
      yield* updateMeta(target.dir, (meta) => ({
        ...meta,
        lifecycle_stage: "active",
        last_update_time: now,
        tags: Object.fromEntries(experiment.tags.map((t) => [t.key, t.value]))
      }))
      // As MLflow does, every deleted run of the experiment comes back with it.
      const runs = yield* runsIn(target)
      yield* Effect.forEach(
        runs.filter((r) => r.info.lifecycleStage === "deleted"),
        (r) =>
          updateMeta(
            path.join(target.dir, r.runId),
            (meta) => withoutKey({ ...meta, lifecycle_stage: "active" }, "deleted_time")
          ),
        { discard: true }
      )
    })

    const searchExperiments = (options: SearchExperimentsOptions = {}) =>
      Stream.unwrap(
        Effect.gen(function*() {
          const { filter, maxResults } = yield* checkExperimentsSearch(options.pageSize ?? DEFAULT_PAGE_SIZE, options)
          const experiments = (yield* allExperiments(options.viewType)).filter((e) =>
            experimentAdmitted({ viewType: options.viewType, filter }, e, (key) => Option.getOrUndefined(e.tag(key)))
          )
          // MLflow's file store order: creation_time DESC, then experiment_id ASC.
          experiments.sort((a, b) =>
            (b.creationTime ?? 0) - (a.creationTime ?? 0) || compareStrings(a.experimentId, b.experimentId)
          )
          return paged(experiments, maxResults)
        })
      ).pipe(Stream.withSpan("MlflowFileStore.searchExperiments"))

    // -- runs -------------------------------------------------------------------------------------------------------

    const runMeta = (info: RunInfo): Meta => ({
      artifact_uri: info.artifactUri,
      end_time: info.endTime ?? null,
      entry_point_name: "",
      experiment_id: info.experimentId,
      lifecycle_stage: info.lifecycleStage,
      run_id: info.runId,
      run_name: info.runName,
      run_uuid: info.runId,
      source_name: "",
      source_type: SOURCE_TYPE_LOCAL,
      source_version: "",
      start_time: info.startTime,
      status: STATUS_CODES[info.status],
      tags: [],
      user_id: info.userId
    })

    const createRun = Effect.fn("MlflowFileStore.createRun")(function*(options: CreateRunOptions) {
      const { experiment, loc } = yield* findExperiment(options.experimentId)
      if (loc.deleted) {
        return yield* apiError(
          400,
          "INVALID_PARAMETER_VALUE",
          `Could not create run under non-active experiment with ID ${options.experimentId}.`
        )
      }
      const given = lastWins(options.tags ?? [])
      yield* checkTags(given)
      const nameTag = given.find((t) => t.key === RUN_NAME_TAG)?.value
      const requested = options.runName === undefined || options.runName === "" ? undefined : options.runName
      if (requested !== undefined && nameTag !== undefined && requested !== nameTag) {
        return yield* new InvalidInput({
          kind: "RunName",
          input: requested,
          reason: `the run name differs from the ${RUN_NAME_TAG} tag '${nameTag}'`
        })
      }
      const runName = requested ?? nameTag ?? (yield* randomRunName)
      const tags = nameTag === undefined ? [...given, { key: RUN_NAME_TAG, value: runName }] : given
      const runId = newRunId()
      const info = new RunInfo({
        runId,
        experimentId: experiment.experimentId,
        runName,
        userId: options.userId ?? "",
        status: "RUNNING",
        startTime: options.startTime ?? (yield* Clock.currentTimeMillis),
        artifactUri: `${experiment.artifactLocation.replace(/\/+$/, "")}/${runId}/artifacts`,
        lifecycleStage: "active"
      })
      // Built whole in a temporary directory of the experiment, then renamed into place.
      const staged = path.join(loc.dir, LocalArtifacts.tempName())
      yield* Effect.gen(function*() {
        yield* confined(loc.dir)
        for (const folder of RUN_FOLDERS) yield* mkdir(path.join(staged, folder))
        yield* writeTags(path.join(staged, TAGS), tags, true)
        yield* writeYaml(path.join(staged, META), runMeta(info))
        const target = path.join(loc.dir, runId)
        yield* fs.rename(staged, target).pipe(Effect.mapError(storage(target)))
      }).pipe(Effect.onError(() => removeQuietly(staged)))
      runIndex.set(runId, experiment.experimentId)
      return new Run({ info, tags: [...tags].sort((a, b) => compareStrings(a.key, b.key)).map((t) => new EntityTag(t)) })
    })

    const getRun = Effect.fn("MlflowFileStore.getRun")(function*(runId: string) {
      return (yield* findRun(runId)).run
    })

    const searchRuns = (options: SearchRunsOptions) =>
      Stream.unwrap(
        Effect.gen(function*() {
          const { filter, maxResults, order } = yield* checkRunsSearch(options.pageSize ?? DEFAULT_PAGE_SIZE, options)
          // tag clauses on plain keys (one file right under `tags/`) are checked before a run is read whole
          const clauses = filter.clauses.filter((c) =>
            c.kind === "tag" && !c.key.includes("/") && Either.isRight(checkTags([{ key: c.key, value: "" }]))
          )
          const runs: Array<Run> = []
          for (const experimentId of new Set(options.experimentIds)) {
            const loc = yield* locateExperiment(experimentId)
            if (loc !== undefined) runs.push(...(yield* runsIn(loc, clauses)))
          }
          return paged(selectRuns(runs, runAccess, { ...options, filter, order }), maxResults)
        })
      ).pipe(Stream.withSpan("MlflowFileStore.searchRuns"))

    /** Writes tags on an active run; `mlflow.runName` also renames the run in its meta.yaml, as MLflow does. */
    const writeRunTags = (
      runId: string,
      tags: ReadonlyArray<{ readonly key: string; readonly value: string }>
    ) =>
      Effect.gen(function*() {
        const { loc, run } = yield* findRun(runId)
        if (run.info.lifecycleStage !== "active") return yield* notActiveRun(runId)
        yield* confined(loc.dir)
        yield* writeTags(path.join(loc.dir, TAGS), tags)
        const name = [...tags].reverse().find((t) => t.key === RUN_NAME_TAG)
        if (name !== undefined) yield* updateMeta(loc.dir, (meta) => ({ ...meta, run_name: name.value }))
      })

    const setTag = Effect.fn("MlflowFileStore.setTag")(function*(runId: string, key: string, value: string) {
      if ((yield* locateRun(runId)) === undefined) return yield* new NotFound({ entity: "run", key: runId })
      yield* checkTags([{ key, value }])
      yield* writeRunTags(runId, [{ key, value }])
    })

    const setTags = Effect.fn("MlflowFileStore.setTags")(function*(
      runId: string,
      tags: ReadonlyArray<{ readonly key: string; readonly value: string }>,
      extras?: LogBatchExtras
    ) {
      const metrics = extras?.metrics ?? []
      const params = extras?.params ?? []
      if (tags.length === 0 && metrics.length === 0 && params.length === 0) return
      // Every key is checked before any file is written, so a rejected call changes nothing.
      yield* checkTags(tags)
      yield* validateExtras(extras)
      yield* checkTags([...metrics, ...params].map((x) => ({ key: x.key, value: "" })))
      if (metrics.length > 0 || params.length > 0) {
        const { loc, run } = yield* findRun(runId)
        if (run.info.lifecycleStage !== "active") return yield* notActiveRun(runId)
        yield* confined(loc.dir)
        // as MLflow's file store logs a batch: params, then metrics, then tags
        const paramsDir = path.join(loc.dir, "params")
        const logged = yield* Effect.forEach(params, (p) => readText(path.join(paramsDir, p.key)))
        const changed = params.findIndex((p, i) => logged[i] !== undefined && logged[i] !== p.value)
        if (changed >= 0) {
          // MLflow's file store raises this without an error code: a server over it answers 500 INTERNAL_ERROR
          return yield* apiError(
            500,
            "INTERNAL_ERROR",
            `Changing param values is not allowed. Param with key='${params[changed]!.key}' was already logged.`
          )
        }
        yield* writeTags(paramsDir, params.filter((_, i) => logged[i] === undefined))
        // one line a point, "<timestamp> <value> <step>", the value as Python prints a float
        const metricsDir = path.join(loc.dir, "metrics")
        const lines = new Map<string, string>()
        for (const m of metrics) {
          lines.set(m.key, `${lines.get(m.key) ?? ""}${m.timestamp} ${floatRepr(m.value)} ${m.step}\n`)
        }
        yield* Effect.forEach(lines, ([key, added]) =>
          Effect.flatMap(readText(path.join(metricsDir, key)), (before) =>
            artifacts.upload(metricsDir, key, encoder.encode(`${before ?? ""}${added}`))), { discard: true })
      }
      if (tags.length > 0) yield* writeRunTags(runId, lastWins(tags))
    })

    const deleteRun = Effect.fn("MlflowFileStore.deleteRun")(function*(runId: string) {
      const { loc } = yield* findRun(runId)
      const now = yield* Clock.currentTimeMillis
      yield* updateMeta(loc.dir, (meta) => ({ ...meta, lifecycle_stage: "deleted", deleted_time: now }))
    })

    const restoreRun = Effect.fn("MlflowFileStore.restoreRun")(function*(runId: string) {
      const { loc } = yield* findRun(runId)
      yield* updateMeta(loc.dir, (meta) => withoutKey({ ...meta, lifecycle_stage: "active" }, "deleted_time"))
    })

    const updateRun = Effect.fn("MlflowFileStore.updateRun")(function*(runId: string, options: UpdateRunOptions) {
      const { loc, run } = yield* findRun(runId)
      if (run.info.lifecycleStage !== "active") return yield* notActiveRun(runId)
      const runName = options.runName === undefined || options.runName === "" ? undefined : options.runName
      if (runName !== undefined) {
        yield* confined(loc.dir)
        yield* writeTags(path.join(loc.dir, TAGS), [{ key: RUN_NAME_TAG, value: runName }])
      }
      yield* updateMeta(loc.dir, (meta) => ({
        ...meta,
        ...(options.status === undefined ? {} : { status: STATUS_CODES[options.status] }),
        ...(options.endTime === undefined ? {} : { end_time: options.endTime }),
        ...(runName === undefined ? {} : { run_name: runName })
      }))
      const updated = yield* findRun(runId)
      return updated.run.info
    })

    // -- artifacts --------------------------------------------------------------------------------------------------

    /**
     * The artifact directory of a run: its recorded `file:` location when that is inside the store and exists,
     * else `<run dir>/artifacts` (a copied store, or an experiment in `.trash/`).
     */
    const artifactDir = (run: ArtifactRoot): Effect.Effect<string, NotFound | InvalidInput | MlflowFailure> =>
      Effect.gen(function*() {
        const recorded = path.resolve(yield* LocalArtifacts.fileUriToPath(run.artifactUri))
        if (inside(root, recorded)) {
          const real = yield* confined(recorded)
          if (real !== undefined) return real
        }
        const loc = yield* locateRun(run.runId)
        if (loc === undefined) return yield* new NotFound({ entity: "run", key: run.runId })
        const dir = yield* confined(loc.dir)
        if (dir === undefined) return yield* new NotFound({ entity: "run", key: run.runId })
        const artifactsDir = path.join(dir, "artifacts")
        yield* confined(artifactsDir)
        return artifactsDir
      })

    const runNotFound = (e: NotFound) =>
      apiError(404, "RESOURCE_DOES_NOT_EXIST", `Run '${e.key}' not found`)

    const uploadArtifact = <E = never>(
      run: ArtifactRoot,
      artifactPath: string,
      source: ArtifactSource<E>
    ): Effect.Effect<void, E | InvalidInput | MlflowFailure> =>
      Effect.gen(function*() {
        yield* LocalArtifacts.validatePath(artifactPath)
        const store = yield* objectStore(run)
        if (store !== undefined) return yield* store.upload(artifactPath, source)
        const dir = yield* artifactDir(run).pipe(Effect.catchTag("NotFound", (e) => Effect.fail(runNotFound(e))))
        yield* artifacts.upload(dir, artifactPath, source)
      }).pipe(Effect.withSpan("MlflowFileStore.uploadArtifact", { attributes: { path: artifactPath } }))

    const downloadArtifact = (run: ArtifactRoot, artifactPath: string) =>
      Stream.unwrap(
        Effect.gen(function*() {
          yield* LocalArtifacts.validatePath(artifactPath)
          const store = yield* objectStore(run)
          if (store !== undefined) return store.download(artifactPath)
          const dir = yield* artifactDir(run)
          return artifacts.download(dir, artifactPath)
        })
      ).pipe(Stream.withSpan("MlflowFileStore.downloadArtifact", { attributes: { path: artifactPath } }))

    const listArtifacts = (
      run: ArtifactRoot,
      artifactPath?: string
    ): Effect.Effect<ReadonlyArray<FileInfo>, InvalidInput | MlflowFailure> =>
      Effect.gen(function*() {
        if (artifactPath !== undefined && artifactPath !== "") yield* LocalArtifacts.validatePath(artifactPath)
        const store = yield* objectStore(run)
        if (store !== undefined) return yield* store.list(artifactPath === "" ? undefined : artifactPath)
        const dir = yield* artifactDir(run).pipe(Effect.catchTag("NotFound", (e) => Effect.fail(runNotFound(e))))
        return yield* artifacts.list(dir, artifactPath)
      }).pipe(Effect.withSpan("MlflowFileStore.listArtifacts", { attributes: { path: artifactPath ?? "" } }))

    const readArtifact = (run: ArtifactRoot, artifactPath: string) =>
      Effect.gen(function*() {
        yield* LocalArtifacts.validatePath(artifactPath)
        const store = yield* objectStore(run)
        if (store !== undefined) return yield* store.read(artifactPath)
        const dir = yield* artifactDir(run)
        return yield* artifacts.read(dir, artifactPath)
      }).pipe(Effect.withSpan("MlflowFileStore.readArtifact", { attributes: { path: artifactPath } }))

    return Mlflow.of({
      getExperiment,
      getExperimentByName,
      createExperiment,
      deleteExperiment,
      restoreExperiment,
      searchExperiments,
      createRun,
      getRun,
      searchRuns,
      setTag,
      setTags,
      deleteRun,
      restoreRun,
      updateRun,
      uploadArtifact,
      downloadArtifact,
      readArtifact,
      listArtifacts
    })
  })

/** The Mlflow service over an `mlruns/` directory; the application provides the platform (`NodeContext.layer`). */
export const layer = (
  options: MlflowFileStoreOptions
): Layer.Layer<Mlflow, StorageError, FileSystem.FileSystem | Path.Path> => Layer.effect(Mlflow, make(options))
