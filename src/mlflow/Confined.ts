/**
 * Reading under a root that nothing may lead out of (the file store, a run's artifacts): the real path of a name in
 * one native call, directory listings that carry each entry's type, and files read without following a symlink.
 * A name whose real path is outside the root is never read; callers read plain entries of a directory whose real
 * path they know directly, and resolve only the entries that are symlinks.
 * Node's `fs` is called directly, not the platform's `FileSystem`: that has no listing with entry types and no
 * `O_NOFOLLOW` open, which confinement rests on.
 */
import { Effect } from "effect"
import * as nfs from "node:fs"
import type { Dirent } from "node:fs"
import { sep } from "node:path"
import { StorageError } from "../errors.js"

const codeOf = (e: unknown): string | undefined =>
  typeof e === "object" && e !== null && "code" in e && typeof e.code === "string" ? e.code : undefined

const reasonOf = (e: unknown): string => (e instanceof Error ? e.message : String(e))

type Callback<A> = (error: NodeJS.ErrnoException | null, value: A) => void

/**
 * A Node fs call (callback style: lighter than the promise API, which wraps every call in a FileHandle or a promise)
 * whose failures with one of `absent` codes read as undefined; any other is a StorageError.
 */
const call = <A>(
  path: string,
  run: (callback: Callback<A>) => void,
  absent: ReadonlyArray<string>
): Effect.Effect<A | undefined, StorageError> =>
  Effect.async<A | undefined, StorageError>((resume) => {
    run((e, value) => {
      if (e === null) return resume(Effect.succeed(value))
      const code = codeOf(e)
      resume(
        code !== undefined && absent.includes(code)
          ? Effect.succeed(undefined)
          : Effect.fail(new StorageError({ path, reason: reasonOf(e) }))
      )
    })
  })

/** Whether `candidate` is `base` or below it (both real, absolute paths). */
export const inside = (base: string, candidate: string): boolean =>
  candidate === base || candidate.startsWith(base.endsWith(sep) ? base : base + sep)

/**
 * The real path of `path`, or undefined when it does not exist. One call of the C library's `realpath` (Node's
 * `fs.realpath` in JavaScript takes one `lstat` per component of the path, each a round trip to the thread pool).
 */
export const realPath = (path: string): Effect.Effect<string | undefined, StorageError> =>
  call(path, (callback: Callback<string>) => nfs.realpath.native(path, callback), ["ENOENT"])

/** The entries of a directory with their types; a missing directory, or one that is not a directory, lists empty. */
export const entries = (dir: string): Effect.Effect<ReadonlyArray<Dirent>, StorageError> =>
  Effect.map(
    call(
      dir,
      (callback: Callback<Array<Dirent>>) => nfs.readdir(dir, { withFileTypes: true }, callback),
      ["ENOENT", "ENOTDIR", "ELOOP"]
    ),
    (found): ReadonlyArray<Dirent> => found ?? []
  )

/** Whether the listing knew an entry's type (some file systems leave it unknown: then it must be stat'ed). */
export const typeKnown = (entry: Dirent): boolean =>
  entry.isFile() || entry.isDirectory() || entry.isSymbolicLink() || entry.isFIFO() || entry.isSocket() ||
  entry.isBlockDevice() || entry.isCharacterDevice()

// O_NONBLOCK: a FIFO planted in a file's place fails the read instead of blocking a thread of the pool for good
const NO_FOLLOW = nfs.constants.O_RDONLY | nfs.constants.O_NOFOLLOW | nfs.constants.O_NONBLOCK

// decoded as the platform's `readFileString` decodes (a leading BOM dropped, bad bytes as U+FFFD)
const decoder = new TextDecoder()

/** What reading a file without following a final symlink found. */
export type NoFollow =
  | { readonly _tag: "Text"; readonly text: string }
  | { readonly _tag: "Missing" }
  | { readonly _tag: "Symlink" }

const MISSING: NoFollow = { _tag: "Missing" }
const SYMLINK: NoFollow = { _tag: "Symlink" }

/**
 * A file's text, the file opened with `O_NOFOLLOW`: a symlink in the last place is not followed (the caller resolves
 * and checks it). Only call it in a directory whose real path is known to be inside the root.
 */
export const readTextNoFollow = (file: string): Effect.Effect<NoFollow, StorageError> =>
  Effect.async<NoFollow, StorageError>((resume) => {
    const failed = (e: NodeJS.ErrnoException) =>
      resume(Effect.fail(new StorageError({ path: file, reason: reasonOf(e) })))
    nfs.open(file, NO_FOLLOW, (e, fd) => {
      if (e !== null) {
        const code = codeOf(e)
        return code === "ENOENT"
          ? resume(Effect.succeed(MISSING))
          : code === "ELOOP"
          ? resume(Effect.succeed(SYMLINK))
          : failed(e)
      }
      nfs.readFile(fd, (readError, bytes) =>
        nfs.close(fd, (closeError) => {
          const error = readError ?? closeError
          if (error !== null) return failed(error)
          resume(Effect.succeed<NoFollow>({ _tag: "Text", text: decoder.decode(bytes) }))
        }))
    })
  })

/** A file's text, or undefined when it does not exist (symlinks followed: call it on a real path). */
export const readText = (file: string): Effect.Effect<string | undefined, StorageError> =>
  Effect.map(
    call(file, (callback: Callback<Buffer>) => nfs.readFile(file, callback), ["ENOENT"]),
    (bytes) => (bytes === undefined ? undefined : decoder.decode(bytes))
  )

/** The type of what `path` names (symlinks followed), or undefined when it does not exist. */
export const statType = (path: string): Effect.Effect<"File" | "Directory" | "Other" | undefined, StorageError> =>
  Effect.map(
    call(path, (callback: Callback<nfs.Stats>) => nfs.stat(path, callback), ["ENOENT"]),
    (s) => (s === undefined ? undefined : s.isFile() ? "File" : s.isDirectory() ? "Directory" : "Other")
  )
