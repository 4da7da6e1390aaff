/**
 * Transfer progress on a terminal: a Mlflow decorator that counts the bytes of artifact downloads and streamed
 * uploads and redraws one status line on stderr (only when stderr is a terminal and output is not JSON).
 */
import { Effect, Layer, Option, Stream } from "effect"
import { Mlflow } from "../mlflow/Mlflow.js"

/** Sizes as people read them: `512 B`, `1.5 KiB`, `12.3 MiB`. */
export const formatBytes = (n: number): string => {
  if (n < 1024) return `${n} B`
  const units = ["KiB", "MiB", "GiB", "TiB"]
  let value = n / 1024
  let unit = 0
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024
    unit++
  }
  return `${value.toFixed(value < 10 ? 2 : 1)} ${units[unit]}`
}

/** The status line of a transfer: label, bytes so far, of the total and percentage when known, and the rate. */
export const formatProgress = (
  label: string,
  done: number,
  total: Option.Option<number>,
  elapsedMs: number
): string => {
  const rate = elapsedMs > 0 ? `  ${formatBytes(Math.round((done * 1000) / elapsedMs))}/s` : ""
  const amount = Option.match(total, {
    onNone: () => formatBytes(done),
    onSome: (t) =>
      `${formatBytes(done)} / ${formatBytes(t)}  ${t > 0 ? Math.min(100, Math.floor((done * 100) / t)) : 100}%`
  })
  return `${label}  ${amount}${rate}`
}

/** Where the status line goes and how often it may be redrawn. */
export interface Screen {
  readonly write: (text: string) => void
  readonly now: () => number
  /** Nothing is drawn before a transfer has run this long (small transfers stay silent). */
  readonly delayMs: number
  readonly intervalMs: number
}

export const stderrScreen: Screen = {
  write: (text) => void process.stderr.write(text),
  now: () => Date.now(),
  delayMs: 300,
  intervalMs: 100
}

/** One transfer being counted. */
export interface Meter {
  readonly add: (bytes: number) => void
  readonly finish: () => void
}

/** A meter that redraws `screen`'s status line; `finish` clears it when something was drawn. */
export const meter = (screen: Screen, label: string, total: Option.Option<number>): Meter => {
  const started = screen.now()
  let done = 0
  let drawn = false
  let last = 0
  return {
    add: (bytes) => {
      done += bytes
      const now = screen.now()
      if (now - started < screen.delayMs || now - last < screen.intervalMs) return
      last = now
      drawn = true
      screen.write(`\r\x1b[2K${formatProgress(label, done, total, now - started)}`)
    },
    finish: () => {
      if (drawn) screen.write("\r\x1b[2K")
      drawn = false
    }
  }
}

const counted = <E, R>(
  stream: Stream.Stream<Uint8Array, E, R>,
  open: Effect.Effect<Meter>
): Stream.Stream<Uint8Array, E, R> =>
  Stream.unwrapScoped(
    Effect.map(
      Effect.acquireRelease(open, (m) => Effect.sync(m.finish)),
      (m) => Stream.tap(stream, (chunk) => Effect.sync(() => m.add(chunk.length)))
    )
  )

const baseName = (path: string): string => path.slice(path.lastIndexOf("/") + 1)

/**
 * Wraps the Mlflow service below it so that artifact transfers report to `screen`: downloads (with the size from
 * the artifact listing when it has one) and uploads from byte streams. Uploads of in-memory bytes and of files are
 * passed through untouched, so the layer below keeps its own way of sending them.
 */
export const layer = (screen: Screen): Layer.Layer<Mlflow, never, Mlflow> =>
  Layer.effect(
    Mlflow,
    Effect.map(Mlflow, (inner): Mlflow.Service => ({
      ...inner,
      downloadArtifact: (run, path) => {
        const slash = path.lastIndexOf("/")
        const size = inner.listArtifacts(run, slash < 0 ? undefined : path.slice(0, slash)).pipe(
          Effect.map((files) => Option.fromNullable(files.find((f) => f.path === path)?.fileSize)),
          Effect.orElseSucceed(() => Option.none<number>())
        )
        return counted(
          inner.downloadArtifact(run, path),
          Effect.map(size, (total) => meter(screen, `downloading ${baseName(path)}`, total))
        )
      },
      uploadArtifact: (run, path, source) =>
        Stream.StreamTypeId in source
          ? inner.uploadArtifact(
            run,
            path,
            counted(source, Effect.sync(() => meter(screen, `uploading ${baseName(path)}`, Option.none())))
          )
          : inner.uploadArtifact(run, path, source)
    }))
  )
