/**
 * A TOML writer that lays a document out byte for byte as ForML's writer (toml 0.10.2 `dumps`) does, minus its
 * string-escaping bugs: where toml 0.10.2 corrupts a string (`\xNN` escapes), this writes a correct TOML escape.
 * Hand-written because a tag's bytes must match Python's `toml` exactly (its table order, spacing, float and
 * microsecond date-time forms), which no JavaScript TOML writer lays out.
 *
 * @internal
 */
import { floatRepr, hex } from "./pythonRepr.js"
import { LocalDate, LocalTime, Timestamp, TomlTable, type TomlValue } from "./tomlValue.js"

// Python's str.isprintable() is false for these categories (the space excepted); repr() escapes them.
const NON_PRINTABLE = /[\p{Cc}\p{Cf}\p{Cs}\p{Co}\p{Cn}\p{Zl}\p{Zp}\p{Zs}]/u

/**
 * A TOML basic string escaped the way Python's `repr()` (which toml 0.10.2 starts from) escapes it: `\\`, `\"`, `\n`,
 * `\r`, `\t`, and other unprintable characters as `\u00NN` / `\uNNNN` / `\UNNNNNNNN` (toml 0.10.2 would write
 * `\xNN` with its backslash lost). A lone surrogate cannot be written in UTF-8 TOML and becomes U+FFFD.
 */
export const dumpString = (s: string): string => {
  let out = "\""
  for (const ch of s) {
    const cp = ch.codePointAt(0) as number
    if (ch === "\\") out += "\\\\"
    else if (ch === "\"") out += "\\\""
    else if (ch === "\n") out += "\\n"
    else if (ch === "\r") out += "\\r"
    else if (ch === "\t") out += "\\t"
    else if (cp >= 0xd800 && cp <= 0xdfff) out += "\\ufffd"
    else if (ch !== " " && NON_PRINTABLE.test(ch)) out += cp > 0xffff ? `\\U${hex(cp, 8)}` : `\\u${hex(cp, 4)}`
    else out += ch
  }
  return `${out}"`
}

const BARE_KEY = /^[A-Za-z0-9_-]+$/

const dumpKey = (k: string): string => (BARE_KEY.test(k) ? k : dumpString(k))

const isArray = (v: TomlValue): v is ReadonlyArray<TomlValue> => Array.isArray(v)

/** A value on the right of `=` (toml 0.10.2 `dump_value`). */
export const dumpValue = (v: TomlValue): string => {
  switch (typeof v) {
    case "string":
      return dumpString(v)
    case "boolean":
      return v ? "true" : "false"
    case "bigint":
      return v.toString()
    case "number":
      return floatRepr(v).replace("e+0", "e+").replace("e-0", "e-")
    default:
      if (isArray(v)) return v.length === 0 ? "[]" : `[${v.map((x) => ` ${dumpValue(x)},`).join("")}]`
      if (v instanceof Timestamp) return v.toString()
      if (v instanceof LocalDate || v instanceof LocalTime) return v.toString()
      // A table nested in an array that cannot be an array of tables: toml 0.10.2 writes garbage here, so an
      // inline table is written instead.
      return v.size === 0 ? "{}" : `{ ${v.entries.map(([k, x]) => `${dumpKey(k)} = ${dumpValue(x)}`).join(", ")} }`
  }
}

type Sections = Array<readonly [string, TomlTable]>

const isArrayOfTables = (v: TomlValue): v is ReadonlyArray<TomlTable> =>
  isArray(v) && v.length > 0 && v.every((x) => x instanceof TomlTable)

/** toml 0.10.2 `dump_sections`: the `key = value` lines of a table, and its sub-tables still to write. */
const dumpSections = (o: TomlTable, supIn: string): readonly [string, Sections] => {
  const sup = supIn !== "" && !supIn.endsWith(".") ? `${supIn}.` : supIn
  let retstr = ""
  let arraystr = ""
  const retdict: Sections = []
  for (const [section, value] of o.entries) {
    const qsection = dumpKey(section)
    if (value instanceof TomlTable) {
      retdict.push([qsection, value])
    } else if (isArrayOfTables(value)) {
      for (const a of value) {
        let arraytabstr = "\n"
        arraystr += `[[${sup}${qsection}]]\n`
        const [s, dIn] = dumpSections(a, sup + qsection)
        if (s !== "") {
          if (s[0] === "[") arraytabstr += s
          else arraystr += s
        }
        let d = dIn
        while (d.length > 0) {
          const newd: Sections = []
          for (const [dsec, table] of d) {
            const [s1, d1] = dumpSections(table, `${sup}${qsection}.${dsec}`)
            if (s1 !== "") arraytabstr += `[${sup}${qsection}.${dsec}]\n${s1}`
            for (const [k, t] of d1) newd.push([`${dsec}.${k}`, t])
          }
          d = newd
        }
        arraystr += arraytabstr
      }
    } else {
      retstr += `${qsection} = ${dumpValue(value)}\n`
    }
  }
  return [retstr + arraystr, retdict]
}

/** toml 0.10.2 `dumps`: top-level values first, then each table breadth-first under its `[dotted.name]`. */
export const dumps = (root: TomlTable): string => {
  const [first, firstSections] = dumpSections(root, "")
  let retval = first
  let sections = firstSections
  while (sections.length > 0) {
    const newsections: Sections = []
    for (const [section, table] of sections) {
      const [add, addSections] = dumpSections(table, section)
      if (add !== "" || addSections.length === 0) {
        if (retval !== "" && !retval.endsWith("\n\n")) retval += "\n"
        retval += `[${section}]\n${add}`
      }
      for (const [k, t] of addSections) newsections.push([`${section}.${k}`, t])
    }
    sections = newsections
  }
  return retval
}
