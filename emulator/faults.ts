/**
 * The emulator's HTTP-level faults and request log: which queued fault a request takes, and the reply of an
 * injected status.
 */
import type { FaultMatch, HttpFault, RequestRecord } from "./index.js"
import { HTML, pythonJson } from "./replies.js"
import type { Reply } from "./replies.js"

/** Whether a request matches (everything matches no match). */
export const matches = (match: FaultMatch | undefined, record: RequestRecord): boolean =>
  (match?.method === undefined || match.method.toUpperCase() === record.method) &&
  (match?.path === undefined ||
    (typeof match.path === "string" ? record.path.includes(match.path) : match.path.test(record.path)))

/** Faults in the order they were queued, each for its remaining number of requests. */
export class FaultQueue {
  private entries: Array<{ readonly fault: HttpFault; remaining: number }> = []

  push(fault: HttpFault): void {
    this.entries.push({ fault, remaining: fault.times ?? 1 })
  }

  clear(): void {
    this.entries = []
  }

  /** The first queued fault the request matches, used up once. */
  take(record: RequestRecord): HttpFault | undefined {
    for (const entry of this.entries) {
      if (!matches(entry.fault.match, record)) continue
      entry.remaining -= 1
      this.entries = this.entries.filter((f) => f.remaining > 0)
      return entry.fault
    }
    return undefined
  }
}

/** An injected status: MLflow's error JSON (`HTTP_<status>` unless a code is given) or the given body. */
export const statusReply = (fault: Extract<HttpFault, { readonly status: number }>): Reply => {
  const headers: Record<string, string> = {
    "content-type": fault.contentType ?? (fault.body === undefined ? "application/json" : HTML)
  }
  if (fault.retryAfter !== undefined) headers["retry-after"] = String(fault.retryAfter)
  const body = fault.body ??
    pythonJson({ error_code: fault.errorCode ?? `HTTP_${fault.status}`, message: `injected ${fault.status}` })
  return { status: fault.status, headers, body }
}
