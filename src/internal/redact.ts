/**
 * The one redaction rule: what could be a credential is replaced by one mask, `***`, before a text reaches a
 * message. Every layer that shows a URI or a foreign message (the HTTP and SQL layers, the object stores, the
 * command) uses these functions. Hand-written, because effect's `Redacted` keeps a secret it was given but cannot
 * find one inside a foreign text, and no library knows MLflow's and the object stores' credential shapes.
 *
 * @internal
 */

/** What a secret is replaced with, everywhere. */
export const MASK = "***"

/**
 * The user info of every URL in a text: `https://user:pass@host` → `https://***@host`. Everything from `//` to the
 * last `@` before the path is masked, so that a password holding an `@` is masked whole.
 */
export const userInfo = (text: string): string => text.replace(/\/\/[^/]*@/g, `//${MASK}@`)

/**
 * The password of one URI, keeping its user name (no secret): `postgresql://me:pass@host` → `postgresql://me:***@host`.
 */
export const password = (uri: string): string =>
  uri.replace(/^([a-z][a-z0-9+.-]*:\/\/)([^/?#]*)@/i, (_m, scheme: string, info: string) => {
    const colon = info.indexOf(":")
    return `${scheme}${colon < 0 ? info : `${info.slice(0, colon)}:${MASK}`}@`
  })

/** Query and connection-string parameters whose values are keys or signatures (Azure, S3 presigned URLs). */
const SECRET_PARAMETERS =
  /(AccountKey|SharedAccessSignature|SharedAccessKey|sig|Signature|X-Amz-Signature|X-Amz-Credential|X-Amz-Security-Token)=[^;&\s"']*/gi

/**
 * Credentials in a free text (an error message): URL user info, `Basic`/`Bearer` values, key and signature
 * parameters, and the given secret values themselves (each of at least 3 characters, so that a one-letter value
 * does not mask the whole text).
 */
export const text = (message: string, secrets: Iterable<string | undefined> = []): string => {
  let out = userInfo(message)
    .replace(/\b(Basic|Bearer)\s+[A-Za-z0-9._~+/=-]+/g, `$1 ${MASK}`)
    .replace(SECRET_PARAMETERS, `$1=${MASK}`)
  for (const value of secrets) {
    if (value !== undefined && value.length >= 3) out = out.split(value).join(MASK)
  }
  return out
}

/** A foreign message (an SDK's) on one line, with its credentials masked as by `text`. */
export const line = (message: string): string => text(message).replace(/\s+/g, " ").trim()
