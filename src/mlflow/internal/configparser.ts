/**
 * Python's `configparser` as MLflow's client uses it (`ConfigParser()` with its defaults), for the one file it reads
 * that way: MLflow's credentials file (see `Credentials.ts`).
 *
 * @internal
 */
import { Either } from "effect"

/** Why a file is refused: the line (1-based) and a reason that never quotes the file. */
export interface Malformed {
  readonly line?: number | undefined
  readonly reason: string
}

export interface Entry {
  readonly value: string
  readonly line: number
}
export interface File {
  readonly defaults: ReadonlyMap<string, Entry>
  readonly sections: ReadonlyMap<string, ReadonlyMap<string, Entry>>
}

// Python's whitespace (str.isspace, and `\s` in its regular expressions): JavaScript's `\s` without U+FEFF, with
// U+001C–U+001F and U+0085
const WS = "\\t\\n\\v\\f\\r\\x1c-\\x1f \\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000"
const STRIP = new RegExp(`^[${WS}]+|[${WS}]+$`, "g")
const RSTRIP = new RegExp(`[${WS}]+$`)
const NON_SPACE = new RegExp(`[^${WS}]`)
const strip = (s: string): string => s.replace(STRIP, "")
const rstrip = (s: string): string => s.replace(RSTRIP, "")
// SECTCRE and OPTCRE with the default delimiters `=` and `:`; a line holds no line break, so `.` is any character
const SECTION_HEADER = /^\[([\s\S]+)\]/
const OPTION = new RegExp(`^([\\s\\S]*?)[${WS}]*(=|:)[${WS}]*([\\s\\S]*)$`)
const DEFAULT_SECTION = "DEFAULT"
const MAX_INTERPOLATION_DEPTH = 10
const NOT_AN_OPTION = "not a `key = value` line, a [section] header, an indented continuation or a comment"

interface Pending {
  readonly lines: Array<string>
  readonly line: number
}

/**
 * `RawConfigParser._read`: comments are whole lines starting with `#` or `;` (no inline comments); a line indented
 * deeper than its key continues the value; blank lines inside a value are kept, trailing ones dropped; keys are
 * lower-cased, section names are not. A repeated section or key, or a line before any section, stops the read at
 * once; other bad lines are reported after the whole file is read (the first of them here).
 */
export const read = (text: string): Either.Either<File, Malformed> => {
  const defaults = new Map<string, Pending>()
  const sections = new Map<string, Map<string, Pending>>()
  const seen = new Set<string>()
  let current: Map<string, Pending> | undefined
  let sectionName = ""
  let option: string | undefined
  let indent = 0
  const bad: Array<number> = []
  const lines = text.split(/\r\n|\r|\n/)
  for (let i = 0; i < lines.length; i++) {
    const raw = lines[i]!
    const number = i + 1
    const comment = /^[#;]/.test(strip(raw))
    const value = comment ? "" : strip(raw)
    if (value === "") {
      if (!comment && current !== undefined && option) current.get(option)?.lines.push("")
      continue
    }
    const level = raw.search(NON_SPACE)
    if (current !== undefined && option && level > indent) {
      current.get(option)?.lines.push(value)
      continue
    }
    indent = level
    const header = SECTION_HEADER.exec(value)
    if (header !== null) {
      sectionName = header[1]!
      if (sections.has(sectionName)) {
        return Either.left({ line: number, reason: `the section [${sectionName}] is given a second time` })
      }
      if (sectionName === DEFAULT_SECTION) {
        current = defaults
      } else {
        current = new Map()
        sections.set(sectionName, current)
      }
      option = undefined
      continue
    }
    if (current === undefined) {
      return Either.left({
        line: number,
        reason: number === 1 && value.startsWith("\uFEFF")
          ? "it starts with a byte order mark (save it as UTF-8 without one)"
          : "a line before the first [section] header"
      })
    }
    const match = OPTION.exec(value)
    if (match === null) {
      bad.push(number)
      continue
    }
    const key = rstrip(match[1]!).toLowerCase()
    if (key === "") bad.push(number)
    const id = `${sectionName}\u0000${key}`
    if (seen.has(id)) {
      return Either.left({ line: number, reason: `a key of [${sectionName}] is given a second time` })
    }
    seen.add(id)
    current.set(key, { lines: [strip(match[3]!)], line: number })
    option = key
  }
  if (bad.length > 0) {
    return Either.left({
      line: bad[0]!,
      reason: bad.length === 1 ? NOT_AN_OPTION : `${NOT_AN_OPTION} (and ${bad.length - 1} more such lines)`
    })
  }
  const join = (m: ReadonlyMap<string, Pending>): ReadonlyMap<string, Entry> =>
    new Map([...m].map(([k, p]) => [k, { value: rstrip(p.lines.join("\n")), line: p.line }]))
  return Either.right({
    defaults: join(defaults),
    sections: new Map([...sections].map(([name, m]) => [name, join(m)]))
  })
}

/**
 * `BasicInterpolation.before_get`: `%%` is a percent sign, `%(key)s` the value of another key of the section or
 * of [DEFAULT] (expanded in turn, at most 10 levels deep); any other `%` is an error. The reasons never quote the
 * value.
 */
export const interpolate = (
  value: string,
  values: ReadonlyMap<string, Entry>,
  depth = 1
): Either.Either<string, string> => {
  if (depth > MAX_INTERPOLATION_DEPTH) {
    return Either.left("holds %(key)s references nested too deep (write %% for a percent sign)")
  }
  let out = ""
  let rest = value
  while (rest !== "") {
    const p = rest.indexOf("%")
    if (p < 0) return Either.right(out + rest)
    out += rest.slice(0, p)
    rest = rest.slice(p)
    const next = rest.charAt(1)
    if (next === "%") {
      out += "%"
      rest = rest.slice(2)
    } else if (next === "(") {
      const reference = /^%\(([^)]+)\)s/.exec(rest)
      if (reference === null) return Either.left("holds a malformed %(key)s reference (write %% for a percent sign)")
      rest = rest.slice(reference[0].length)
      const target = values.get(reference[1]!.toLowerCase())
      if (target === undefined) {
        return Either.left("refers with %(key)s to a key that is not set (write %% for a percent sign)")
      }
      if (target.value.includes("%")) {
        const inner = interpolate(target.value, values, depth + 1)
        if (Either.isLeft(inner)) return inner
        out += inner.right
      } else {
        out += target.value
      }
    } else {
      return Either.left("holds a % that is not followed by % or ( (write %% for a percent sign)")
    }
  }
  return Either.right(out)
}
