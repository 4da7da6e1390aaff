/**
 * The sha256 of the bytes MlflowRegistry writes and reads: digests of whole buffers, and streams hashed on the way
 * that fail at their end with IntegrityError when the bytes differ from their tag.
 *
 * @internal
 */
import { Option, Stream } from "effect"
import { createHash } from "node:crypto"
import { IntegrityError } from "../../errors.js"

/** @internal */
export const sha256 = (bytes: Uint8Array): string => createHash("sha256").update(bytes).digest("hex")

/** @internal */
export const utf8 = new TextEncoder()

/** The same bytes as a plain Uint8Array (a layer may hand out Node Buffers), without copying. @internal */
export const plain = (b: Uint8Array): Uint8Array =>
  b.constructor === Uint8Array ? b : new Uint8Array(b.buffer, b.byteOffset, b.byteLength)

/** The bytes of `stream`, then what `atEnd` makes of their sha256 (hex), computed afresh each time it runs. */
const digested = <E, E2>(
  stream: Stream.Stream<Uint8Array, E>,
  atEnd: (hex: string) => Stream.Stream<never, E2>
): Stream.Stream<Uint8Array, E | E2> =>
  Stream.suspend(() => {
    const hash = createHash("sha256")
    return stream.pipe(
      Stream.map((chunk) => {
        hash.update(chunk)
        return chunk
      }),
      Stream.concat(Stream.suspend(() => atEnd(hash.digest("hex"))))
    )
  })

/** The IntegrityError of bytes whose sha256 (`actual`) differs from their tag's, if it does. @internal */
export const mismatch = (artifact: string, expected: string, actual: string): Option.Option<IntegrityError> =>
  actual === expected.toLowerCase() ? Option.none() : Option.some(new IntegrityError({ artifact, expected, actual }))

/**
 * The bytes of `stream`, failing at the end with IntegrityError when their sha256 differs from `expected`.
 *
 * @internal
 */
export const verified = <E>(
  stream: Stream.Stream<Uint8Array, E>,
  artifact: string,
  expected: Option.Option<string>
): Stream.Stream<Uint8Array, E | IntegrityError> =>
  Option.isNone(expected) ?
    stream :
    digested(stream, (actual) =>
      Option.match(mismatch(artifact, expected.value, actual), {
        onNone: () => Stream.empty,
        onSome: Stream.fail
      }))
