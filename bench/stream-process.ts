/**
 * Entry of the streaming scenario's own process: takes its settings as a JSON argument, prints its figures as one JSON
 * line on stdout.
 */
import { streamFigures, type StreamSettings } from "./stream.js"

const settings = JSON.parse(process.argv[2] ?? "{}") as StreamSettings
streamFigures(settings).then(
  (figures) => {
    process.stdout.write(`${JSON.stringify(figures)}\n`)
    process.exit(0)
  },
  (error: unknown) => {
    process.stderr.write(`${error instanceof Error ? error.stack ?? error.message : String(error)}\n`)
    process.exit(1)
  }
)
