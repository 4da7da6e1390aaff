/**
 * The id of a generation state blob: a UUID in lower-case 8-4-4-4-12 form, read from any form Python's
 * `uuid.UUID(str)` accepts (upper case, 32 hex digits, `{...}`, `urn:uuid:...`).
 */
import type { Brand } from "effect"
import { Either, ParseResult, Schema } from "effect"
import { v4 } from "uuid"
import { InvalidInput } from "../errors.js"

export type StateId = string & Brand.Brand<"StateId">

const HEX32 = /^[0-9a-fA-F]{32}$/

/** A state id, or `InvalidInput` (kind "StateId"). */
const parse = (s: string): Either.Either<StateId, InvalidInput> => {
  // The same steps as uuid.UUID(hex=...): drop every 'urn:' and 'uuid:', strip braces at both ends, drop hyphens.
  // Python's int(hex, 16) would also take a sign, '0x', underscores or spaces; those are refused here.
  const hex = s.replaceAll("urn:", "").replaceAll("uuid:", "").replace(/^[{}]+|[{}]+$/g, "").replaceAll("-", "")
  if (!HEX32.test(hex)) {
    return Either.left(new InvalidInput({ kind: "StateId", input: s, reason: "badly formed hexadecimal UUID string" }))
  }
  const h = hex.toLowerCase()
  return Either.right(
    `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}` as StateId
  )
}

const schema: Schema.Schema<StateId, string> = Schema.transformOrFail(
  Schema.String,
  Schema.String.pipe(Schema.brand("StateId")),
  {
    strict: true,
    decode: (s, _, ast) => Either.mapLeft(parse(s), (e) => new ParseResult.Type(ast, s, e.message)),
    encode: (id) => ParseResult.succeed(id)
  }
)

export const StateId = {
  parse,
  /** A fresh random (version 4) state id. */
  random: (): StateId => v4() as StateId,
  schema
} as const
