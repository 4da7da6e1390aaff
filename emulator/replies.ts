/**
 * The emulator's replies: MLflow's JSON error bodies (in Python's `json.dumps` layout), the HTML pages Flask answers
 * for unknown routes, methods and crashes, and the mapping from the store's typed errors to MLflow's error codes.
 */
import { Data } from "effect"
import { AlreadyExists, InvalidInput, MlflowApiError, NotFound } from "../src/errors.js"
import type { MlflowFailure } from "../src/errors.js"

export interface Reply {
  readonly status: number
  readonly headers: Readonly<Record<string, string>>
  /** A string or bytes sent with Content-Length, or chunks sent chunked (no Content-Length). */
  readonly body: string | Uint8Array | { readonly chunks: ReadonlyArray<Uint8Array> }
}

export const HTML = "text/html; charset=utf-8"

export const jsonReply = (value: unknown): Reply => ({
  status: 200,
  headers: { "content-type": "application/json" },
  body: JSON.stringify(value, null, 2)
})

/** Python's `json.dumps` layout: `", "` and `": "` separators, non-ASCII as `\uXXXX`. */
export const pythonJson = (value: unknown): string => {
  if (value === null || typeof value !== "object") {
    return JSON.stringify(value).replace(
      /[\u007f-\uffff]/g,
      (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`
    )
  }
  if (Array.isArray(value)) return `[${value.map(pythonJson).join(", ")}]`
  return `{${Object.entries(value).map(([k, v]) => `${pythonJson(k)}: ${pythonJson(v)}`).join(", ")}}`
}

const htmlPage = (status: number, title: string, text: string): Reply => ({
  status,
  headers: { "content-type": HTML },
  body: `<!doctype html>\n<html lang=en>\n<title>${status} ${title}</title>\n<h1>${title}</h1>\n<p>${text}</p>\n`
})

export const notFoundPage = htmlPage(
  404,
  "Not Found",
  "The requested URL was not found on the server. If you entered the URL manually please check your spelling and try again."
)
export const methodNotAllowed = (allow: string): Reply => {
  const page = htmlPage(405, "Method Not Allowed", "The method is not allowed for the requested URL.")
  return { ...page, headers: { ...page.headers, allow } }
}
export const internalErrorPage = htmlPage(
  500,
  "Internal Server Error",
  "The server encountered an internal error and was unable to complete your request. Either the server is overloaded or there is an error in the application."
)

const STATUS_OF_CODE: Readonly<Record<string, number>> = {
  INVALID_PARAMETER_VALUE: 400,
  RESOURCE_ALREADY_EXISTS: 400,
  BAD_REQUEST: 400,
  RESOURCE_DOES_NOT_EXIST: 404,
  INTERNAL_ERROR: 500
}

/** An MLflow error reply, failing the handler's Effect so that the route code reads straight. */
export class ApiError extends Data.TaggedError("ApiError")<{
  readonly code: string
  readonly message: string
  readonly status: number
}> {}

export const apiError = (code: string, message: string, status = STATUS_OF_CODE[code] ?? 500) =>
  new ApiError({ code, message, status })

export const invalid = (message: string) => apiError("INVALID_PARAMETER_VALUE", message)

/** A reply other than an MLflow error (an HTML page), failing the handler's Effect. */
export class Page extends Data.TaggedError("Page")<{ readonly reply: Reply }> {}

/** What a handler fails with: a reply of its own, or an error of the store behind it. */
export type HandlerError = ApiError | Page | NotFound | AlreadyExists | InvalidInput | MlflowFailure

const notFoundMessage = (e: NotFound): string => {
  switch (e.entity.toLowerCase()) {
    case "experiment":
      return `No Experiment with id=${e.key} exists`
    case "run":
      return `Run with id=${e.key} not found`
    default:
      return `${e.entity} ${e.key} not found`
  }
}

/** The store's errors as the MLflow errors a server answers with. */
export const fromStore = (e: HandlerError): ApiError | Page => {
  if (e instanceof ApiError || e instanceof Page) return e
  if (e instanceof NotFound) return apiError("RESOURCE_DOES_NOT_EXIST", notFoundMessage(e))
  if (e instanceof AlreadyExists) {
    return apiError("RESOURCE_ALREADY_EXISTS", `Experiment(name=${e.key}) already exists.`)
  }
  if (e instanceof InvalidInput) return invalid(e.reason === "" ? e.message : `${e.message}`)
  if (e instanceof MlflowApiError) return apiError(e.errorCode, e.detail, e.status)
  return apiError("INTERNAL_ERROR", e.message)
}

/** MLflow's error JSON; 3.x adds `sqlstate` and `error_class`. */
export const errorReply = (e: ApiError, v3: boolean): Reply => ({
  status: e.status,
  headers: { "content-type": "application/json" },
  body: pythonJson({
    error_code: e.code,
    message: e.message,
    ...(v3
      ? {
        sqlstate: "KAM00",
        error_class: e.code === "RESOURCE_DOES_NOT_EXIST"
          ? "RESOURCE_NOT_FOUND"
          : e.code === "BAD_REQUEST"
          ? "INVALID_PARAMETER_VALUE"
          : e.code
      }
      : {})
  })
})
