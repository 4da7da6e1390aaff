/**
 * MLflow's paging window and its offset tokens (base64 of Python-layout JSON `{"offset": N}`, as SearchUtils makes
 * them), for every in-process store and the test emulator.
 *
 * @internal
 */
import { Either } from "effect"
import { InvalidInput } from "../../errors.js"

/** The token of an offset. */
export const encodePageToken = (offset: number): string =>
  Buffer.from(`{"offset": ${offset}}`, "utf8").toString("base64")

/** The offset a token names (0 for none), or MLflow's reason for refusing it. */
export const decodePageToken = (token: string | undefined): Either.Either<number, InvalidInput> => {
  if (token === undefined || token === "") return Either.right(0)
  const bad = (reason: string) => Either.left(new InvalidInput({ kind: "PageToken", input: token, reason }))
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(token) || token.length % 4 !== 0) {
    return bad("Invalid page token, could not base64-decode")
  }
  const text = Buffer.from(token, "base64").toString("utf8")
  let parsed: unknown
  try {
    parsed = JSON.parse(text)
  } catch {
    return bad(`Invalid page token, decoded value=${text}`)
  }
  if (typeof parsed !== "object" || parsed === null || !("offset" in parsed)) {
    return bad("Invalid page token, it has no offset")
  }
  const offset = (parsed as { readonly offset: unknown }).offset
  if (typeof offset !== "number" || !Number.isInteger(offset)) {
    return bad("Invalid page token, the offset is not an integer")
  }
  return Either.right(offset)
}

/** One page of a search and the token of the next, absent on the last page. */
export interface Window<A> {
  readonly items: ReadonlyArray<A>
  readonly nextPageToken?: string
}

/**
 * A window of `items` as MLflow's sqlite store pages: a negative offset reads as 0, the next offset adds the size.
 * With `trailingToken` (2.17 sqlite's runs/search) a full page always has a next token, so an exact fit ends on an
 * empty page; otherwise the token is given only while items remain.
 */
export const window = <A>(
  items: ReadonlyArray<A>,
  offset: number,
  maxResults: number,
  trailingToken: boolean
): Window<A> => {
  const start = Math.max(0, offset)
  const page = items.slice(start, start + maxResults)
  const next = offset + maxResults
  const more = trailingToken ? page.length === maxResults : next < items.length
  return more ? { items: page, nextPageToken: encodePageToken(next) } : { items: page }
}
