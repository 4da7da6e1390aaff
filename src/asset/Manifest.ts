/**
 * The package manifest `__4ml__.py`: ForML's exact writer template, and a reader for the literal subset of Python
 * that manifests are written in (ForML imports the module; this reader never runs Python: the tokenizer and the
 * literal evaluator are in `internal/pythonTokenizer.ts` and `internal/pythonLiteral.ts`).
 */
import { Data, Either, Equal, Hash } from "effect"
import { InvalidManifest } from "../errors.js"
import { describe, jsonDumps, pyString, readAssignments, type Value } from "./internal/pythonLiteral.js"
import { floatRepr } from "./internal/pythonRepr.js"
import { ReleaseKey } from "./ReleaseKey.js"

/** The fields a manifest module must define, in the order ForML reads them. */
const FIELDS = ["NAME", "VERSION", "PACKAGE", "MODULES"] as const

/** Module names ForML passes next to `**MODULES`, so a module of that name is a duplicate keyword argument. */
const RESERVED_MODULES: ReadonlySet<string> = new Set(["name", "version", "package"])

/**
 * A ForML package manifest: project name, release version, the Python package holding the project's principal
 * components, and components found in non-conventional modules (`{"source": "hello.world.source"}`).
 */
export class Manifest extends Data.Class<{
  readonly name: string
  readonly version: ReleaseKey
  readonly package: string
  readonly modules: Readonly<Record<string, string>>
}> implements Equal.Equal {
  /** The manifest's file name at the root of a package. */
  static readonly FILENAME = "__4ml__.py"

  /**
   * A manifest from its parts; the version is parsed as a release key (a number is read as Python's `str()` of it).
   * Fails for a bad version and for a module named `name`, `version` or `package` (ForML cannot read those back).
   */
  static make(input: {
    readonly name: string
    readonly version: string | number | ReleaseKey
    readonly package: string
    readonly modules?: Readonly<Record<string, string>> | undefined
  }): Either.Either<Manifest, InvalidManifest> {
    const version = ReleaseKey.is(input.version) ? Either.right(input.version) : release(input.version)
    return Either.flatMap(version, (v) => build(input.name, v, input.package, Object.entries(input.modules ?? {})))
  }

  /**
   * Reads a manifest source as ForML's `Manifest.read` would, without executing it. Literal assignments of the four
   * fields are evaluated (strings with every Python quoting and escape form, implicit concatenation, int and float
   * versions, dicts, None); other statements are tokenised and ignored unless they could change a field, in which
   * case the result would depend on running Python and the manifest is rejected.
   */
  static read(text: string): Either.Either<Manifest, InvalidManifest> {
    return Either.flatMap(
      Either.mapLeft(readAssignments(text, FIELDS), (reason) => new InvalidManifest({ reason })),
      fromValues
    )
  }

  /**
   * The manifest text in ForML's template: four lines joined by `\n`, no trailing newline, `MODULES` as Python's
   * `json.dumps`. Where ForML writes the name or package raw (and so writes broken Python for a `"` and a different
   * string for a `\`), this writer escapes them so that the file reads back equal, in ForML and here. Text that ForML
   * writes correctly is written byte for byte the same.
   */
  static write(m: Manifest): string {
    return [
      `NAME = ${pyString(m.name)}`,
      `VERSION = ${pyString(m.version.toString())}`,
      `PACKAGE = ${pyString(m.package)}`,
      `MODULES = ${jsonDumps(m.modules)}`
    ].join("\n")
  }

  /** Equal as ForML's manifests are: same name, PEP 440-equal version, same package and modules in any order. */
  [Equal.symbol](that: Equal.Equal): boolean {
    if (!(that instanceof Manifest)) return false
    const mine = Object.entries(this.modules)
    return this.name === that.name && Equal.equals(this.version, that.version) && this.package === that.package &&
      mine.length === Object.keys(that.modules).length &&
      mine.every(([k, v]) => Object.hasOwn(that.modules, k) && that.modules[k] === v)
  }

  [Hash.symbol](): number {
    const modules = Object.entries(this.modules).map(([k, v]) => Hash.string(`${k}\u0000${v}`))
      .reduce((a, b) => a ^ b, 0) // order-insensitive, as the equality
    return Hash.cached(
      this,
      Hash.combine(modules)(Hash.combine(Hash.hash(this.version))(Hash.string(`${this.name}\u0000${this.package}`)))
    )
  }
}

const build = (
  name: string,
  version: ReleaseKey,
  pkg: string,
  modules: ReadonlyArray<readonly [string, string]>
): Either.Either<Manifest, InvalidManifest> => {
  for (const [key] of modules) {
    if (RESERVED_MODULES.has(key)) {
      return Either.left(
        new InvalidManifest({ reason: `MODULES must not name a module ${JSON.stringify(key)} (clashes with ${key})` })
      )
    }
  }
  // fromEntries defines own properties, so even a "__proto__" module stays plain data.
  const record: Readonly<Record<string, string>> = Object.freeze(Object.fromEntries(modules))
  return Either.right(new Manifest({ name, version, package: pkg, modules: record }))
}

/** The release key of a manifest's version, or why it is not one. */
const release = (version: string | number): Either.Either<ReleaseKey, InvalidManifest> =>
  Either.mapLeft(
    ReleaseKey.parse(version),
    (e) => new InvalidManifest({ reason: `invalid VERSION ${JSON.stringify(e.input)}: ${e.reason}` })
  )

/** A manifest from the values the module assigns to its fields, checked as ForML's `Manifest` checks them. */
const fromValues = (values: ReadonlyMap<(typeof FIELDS)[number], Value>): Either.Either<Manifest, InvalidManifest> => {
  const invalid = (reason: string) => Either.left(new InvalidManifest({ reason }))
  const missing = FIELDS.find((field) => !values.has(field))
  if (missing !== undefined) return invalid(`${missing} is not defined`)
  // Every field is defined by now; the fallback only satisfies the type.
  const field = (key: (typeof FIELDS)[number]): Value => values.get(key) ?? { type: "none" }
  const name = field("NAME")
  const version = field("VERSION")
  const pkg = field("PACKAGE")
  const modules = field("MODULES")
  if (name.type !== "str") return invalid(`NAME must be a string, not ${describe(name)}`)
  if (pkg.type !== "str") return invalid(`PACKAGE must be a string, not ${describe(pkg)}`)
  if (modules.type !== "dict") return invalid(`MODULES must be a dict, not ${describe(modules)}`)
  const entries: Array<readonly [string, string]> = []
  for (const [k, v] of modules.entries) {
    if (k.type !== "str") return invalid(`MODULES keys must be strings, not ${describe(k)}`)
    if (v.type !== "str") {
      return invalid(`MODULES[${JSON.stringify(k.value)}] must be a module name string, not ${describe(v)}`)
    }
    entries.push([k.value, v.value])
  }
  // A repeated key keeps its first position and its last value, as in a Python dict.
  const deduplicated = [...new Map(entries)]
  const versionText = version.type === "str"
    ? version.value
    : version.type === "int"
    ? version.value.toString()
    : version.type === "float"
    ? floatRepr(version.value)
    : undefined
  if (versionText === undefined) return invalid(`VERSION must be a string or a number, not ${describe(version)}`)
  return Either.flatMap(release(versionText), (key) => build(name.value, key, pkg.value, deduplicated))
}
