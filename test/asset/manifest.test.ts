/**
 * Manifest reading and writing against ForML's own `Manifest.write` / `Manifest.read` results (manifests.json),
 * plus the Python literal forms a hand-written `__4ml__.py` may use.
 */
import { Either, Equal, Hash } from "effect"
import { describe, expect, it } from "vitest"
import { Manifest } from "../../src/asset/Manifest.js"
import { readJson } from "../support/shared.js"

interface PyManifest {
  readonly name: string
  readonly version: string
  readonly package: string
  readonly modules: Record<string, unknown>
}
interface PyError {
  readonly type: string
  readonly message: string
}
interface WriteCase {
  readonly input: PyManifest
  readonly ok: boolean
  readonly text: string
  readonly bytesBase64: string
  readonly readBack: { readonly ok: boolean; readonly manifest: PyManifest | null; readonly equal: boolean }
}
interface ReadCase {
  readonly name: string
  readonly source: string
  readonly ok: boolean
  readonly manifest: PyManifest | null
  readonly error: PyError | null
}
interface Vectors {
  readonly template: string
  readonly write: ReadonlyArray<WriteCase>
  readonly read: ReadonlyArray<ReadCase>
}

const vectors = readJson<Vectors>("forml-vectors", "manifests.json")

const plain = (m: Manifest) => ({
  name: m.name,
  version: m.version.toString(),
  package: m.package,
  modules: { ...m.modules }
})

const mustMake = (input: PyManifest): Manifest =>
  Either.getOrThrow(Manifest.make({ ...input, modules: input.modules as Record<string, string> }))

const readOk = (source: string) => {
  const result = Manifest.read(source)
  if (Either.isLeft(result)) throw new Error(`expected a manifest, got: ${result.left.message}`)
  return plain(result.right)
}

const readError = (source: string): string => {
  const result = Manifest.read(source)
  if (Either.isRight(result)) throw new Error(`expected an error, got ${JSON.stringify(plain(result.right))}`)
  expect(result.left._tag).toBe("InvalidManifest")
  return result.left.reason
}

describe("Manifest.write", () => {
  it("has ForML's file name", () => {
    expect(Manifest.FILENAME).toBe("__4ml__.py")
  })

  it("follows ForML's template", () => {
    const text = Manifest.write(mustMake({ name: "N", version: "1", package: "P", modules: {} }))
    expect(text).toBe(
      vectors.template.replace("$name", "N").replace("$version", "1").replace("$package", "P")
        .replace("$modules", "{}")
    )
  })

  // Every case where ForML's output reads back equal: the same text and bytes.
  const faithful = vectors.write.filter((c) => c.readBack.equal)
  it.each(faithful.map((c) => [c.input.name + " " + c.input.version, c] as const))(
    "writes %s as ForML does",
    (_, c) => {
      const m = mustMake(c.input)
      const text = Manifest.write(m)
      expect(text).toBe(c.text)
      expect(Buffer.from(text, "utf-8").toString("base64")).toBe(c.bytesBase64)
      const back = Either.getOrThrow(Manifest.read(text))
      expect(Equal.equals(back, m)).toBe(true)
      expect(plain(back)).toEqual(c.readBack.manifest)
    }
  )

  it("covers every ForML write case", () => {
    expect(faithful.length).toBe(8)
    expect(vectors.write.filter((c) => !c.readBack.equal).map((c) => c.input.name)).toEqual(["say \"hi\"", "a\\b"])
  })

  // ForML writes names raw: `"` gives a SyntaxError on read, `\b` reads back as a backspace. Escaping instead keeps
  // the file valid Python that reads back equal (in ForML too), while every other byte stays as ForML writes it.
  it.each(vectors.write.filter((c) => !c.readBack.equal).map((c) => [c.input.name, c] as const))(
    "escapes %s where ForML writes it raw",
    (_, c) => {
      const m = mustMake(c.input)
      const text = Manifest.write(m)
      expect(text).not.toBe(c.text)
      const [first, ...rest] = text.split("\n")
      expect(rest).toEqual(c.text.split("\n").slice(1))
      expect(first).toBe(`NAME = ${JSON.stringify(c.input.name)}`)
      expect(Equal.equals(Either.getOrThrow(Manifest.read(text)), m)).toBe(true)
    }
  )

  it("escapes control characters, quotes and backslashes in every field so they read back", () => {
    const m = Either.getOrThrow(Manifest.make({
      name: "a\"b\\c\nd\re\tf\u0000g",
      version: "1.0",
      package: "p\\kg\"",
      modules: { "sou\"rce": "x\\y\n", "é": "ünï\u007f\u0001", "emoji": "\u{1F600}.mod" }
    }))
    const text = Manifest.write(m)
    expect(text).toBe([
      "NAME = \"a\\\"b\\\\c\\nd\\re\tf\\x00g\"",
      "VERSION = \"1.0\"",
      "PACKAGE = \"p\\\\kg\\\"\"",
      "MODULES = {\"sou\\\"rce\": \"x\\\\y\\n\", \"\\u00e9\": \"\\u00fcn\\u00ef\\u007f\\u0001\", " +
      "\"emoji\": \"\\U0001f600.mod\"}"
    ].join("\n"))
    expect(Equal.equals(Either.getOrThrow(Manifest.read(text)), m)).toBe(true)
  })

  it("writes the normalised version", () => {
    const m = Either.getOrThrow(Manifest.make({ name: "x", version: "V1.0-RC1", package: "p" }))
    expect(Manifest.write(m).split("\n")[1]).toBe("VERSION = \"1.0rc1\"")
  })

  it("rejects a module that clashes with ForML's own keyword arguments", () => {
    for (const key of ["name", "version", "package"]) {
      const result = Manifest.make({ name: "x", version: "1", package: "p", modules: { [key]: "m" } })
      expect(Either.isLeft(result)).toBe(true)
    }
    expect(Either.isLeft(Manifest.make({ name: "x", version: "foobar", package: "p" }))).toBe(true)
  })

  it("is equal as ForML's manifests are: PEP 440 versions, modules in any order", () => {
    const a = mustMake({ name: "n", version: "1.0", package: "p", modules: { a: "x", b: "y" } })
    const b = mustMake({ name: "n", version: "1.0.0", package: "p", modules: { b: "y", a: "x" } })
    expect(Equal.equals(a, b)).toBe(true)
    expect(Hash.hash(a)).toBe(Hash.hash(b))
    for (
      const other of [
        { name: "m", version: "1", package: "p", modules: { a: "x", b: "y" } },
        { name: "n", version: "1.1", package: "p", modules: { a: "x", b: "y" } },
        { name: "n", version: "1", package: "q", modules: { a: "x", b: "y" } },
        { name: "n", version: "1", package: "p", modules: { a: "x" } },
        { name: "n", version: "1", package: "p", modules: { a: "x", b: "z" } },
        { name: "n", version: "1", package: "p", modules: { a: "x", c: "y" } }
      ]
    ) {
      expect(Equal.equals(a, mustMake(other)), JSON.stringify(other)).toBe(false)
    }
  })

  it("reads back what it writes, for random names and modules", () => {
    // A small seeded generator: the alphabet stresses quoting, escapes, Unicode and lone surrogates.
    let seed = 42
    const random = () => {
      seed = (seed * 1103515245 + 12345) % 2147483648
      return seed / 2147483648
    }
    const alphabet = [
      "a",
      "Z",
      "0",
      ".",
      "-",
      "_",
      " ",
      "\"",
      "'",
      "\\",
      "\n",
      "\r",
      "\t",
      "\u0000",
      "\u0007",
      "\u007f",
      "\u0085",
      "é",
      "ß",
      "€",
      "\u2028",
      "\u{1F600}",
      "\uD800",
      "\uDC00",
      "{",
      "}",
      "#",
      "$",
      "\\x",
      "\\N"
    ]
    const str = (max: number) => {
      let s = ""
      const n = Math.floor(random() * max)
      for (let k = 0; k < n; k++) s += alphabet[Math.floor(random() * alphabet.length)]
      return s
    }
    const versions = ["1", "1.0", "2!1.0rc1.post2.dev3+abc.7", "0.93"]
    for (let round = 0; round < 300; round++) {
      const modules: Record<string, string> = {}
      const count = Math.floor(random() * 4)
      for (let k = 0; k < count; k++) modules[`m${k}${str(4)}`] = str(12)
      const m = Either.getOrThrow(Manifest.make({
        name: str(16),
        version: versions[round % versions.length] as string,
        package: str(12),
        modules
      }))
      const back = Manifest.read(Manifest.write(m))
      expect(Either.isRight(back) && Equal.equals(back.right, m), JSON.stringify(Manifest.write(m))).toBe(true)
    }
  })
})

describe("Manifest.read: ForML's read cases", () => {
  // Where ForML's answer comes from executing Python, or from a value outside the manifest's types, this reader
  // rejects the manifest instead; each such case is listed here with the reason.
  const divergent: Record<string, { readonly reason: RegExp; readonly why: string }> = {
    "computed-values": {
      reason: /NAME \(line 1\) is computed by an expression \(\+ 'bar'\); only literal values can be read/,
      why: "values computed by Python code ('foo' + 'bar', str.join, f-strings, dict(...)) need an interpreter"
    },
    "modules-non-str-value": {
      reason: /MODULES\["source"\] must be a module name string, not a int/,
      why: "ForML keeps {'source': 1} but a module must be named by a string; 1 cannot be imported"
    }
  }
  const errors: Record<string, RegExp> = {
    "bad-version": /invalid VERSION "foobar": not PEP 440 compliant/,
    "missing-version": /^VERSION is not defined$/,
    "missing-modules": /^MODULES is not defined$/,
    "modules-none": /^MODULES must be a dict, not None$/,
    "empty-file": /^NAME is not defined$/,
    "syntax-error": /^syntax error: unterminated string literal \(detected at line 1\) \(line 1\)$/
  }

  it("has an expectation for every case", () => {
    for (const c of vectors.read) {
      const known = c.ok ? !(c.name in errors) : c.name in errors
      expect(known || c.name in divergent, c.name).toBe(true)
    }
    expect(vectors.read.length).toBe(18)
  })

  it.each(vectors.read.filter((c) => c.ok && !(c.name in divergent)).map((c) => [c.name, c] as const))(
    "reads %s",
    (_, c) => {
      expect(readOk(c.source)).toEqual(c.manifest)
    }
  )

  it.each(vectors.read.filter((c) => !c.ok).map((c) => [c.name, c] as const))("rejects %s", (_, c) => {
    expect(readError(c.source)).toMatch(errors[c.name] as RegExp)
  })

  it.each(Object.entries(divergent))("rejects %s where ForML runs Python (%o)", (name, d) => {
    const c = vectors.read.find((r) => r.name === name)
    expect(c?.ok).toBe(true)
    expect(readError((c as ReadCase).source)).toMatch(d.reason)
  })
})

/** A manifest source with the four fields, `lines` replacing the default values of some. */
const wrap = (lines: Record<string, string>) =>
  Object.entries({ NAME: "'n'", VERSION: "'1'", PACKAGE: "'p'", MODULES: "{}", ...lines })
    .map(([k, v]) => `${k} = ${v}`)
    .join("\n")

describe("Manifest.read: Python literal forms", () => {
  it.each([
    ["double quotes", "\"a b\"", "a b"],
    ["implicit concatenation", "'foo' \"bar\" '''baz'''", "foobarbaz"],
    ["parenthesised concatenation over lines", "(\n  'foo'  # part one\n  'bar'\n)", "foobar"],
    ["escapes", "'\\t\\n\\\\\\'\\\"\\a\\b\\f\\v\\r'", "\t\n\\'\"\x07\b\f\v\r"],
    ["octal and hex escapes", "'\\101\\0\\x41\\u00e9\\U0001F600'", "A\u0000A\u00e9\u{1F600}"],
    ["an unknown escape kept as is", "'\\d\\q'", "\\d\\q"],
    ["a backslash-newline inside a string", "'ab\\\ncd'", "abcd"],
    ["a raw string", "r'a\\nb\\''", "a\\nb\\'"],
    ["a raw triple-quoted string", "R\"\"\"a\\\"\"\"\"", "a\\\""],
    ["a u prefix", "u'x'", "x"],
    ["a triple-quoted string over lines", "'''a\nb'''", "a\nb"],
    ["an f-string without fields", "f'a{{b}}c'", "a{b}c"],
    ["a hash inside a string", "'a # b'  # comment 'c'", "a # b"],
    ["Unicode", "'Ünïcode €'", "Ünïcode €"]
  ])("reads %s", (_, literal, expected) => {
    expect(readOk(wrap({ NAME: literal })).name).toBe(expected)
  })

  it.each([
    ["1", "1"],
    ["1.10", "1.1"],
    ["1.0", "1.0"],
    ["2.", "2.0"],
    ["0x10", "16"],
    ["1_0", "10"],
    ["(3)", "3"],
    ["0.93", "0.93"],
    ["+1", "1"]
  ])("reads VERSION = %s as %s", (literal, expected) => {
    expect(readOk(wrap({ VERSION: literal })).version).toBe(expected)
  })

  it.each([
    ["1e16", /invalid VERSION "1e\+16"/],
    ["-1", /invalid VERSION "-1"/],
    ["None", /VERSION must be a string or a number, not None/],
    ["True", /VERSION must be a string or a number, not True/],
    ["{}", /VERSION must be a string or a number, not a dict/],
    ["1j", /VERSION \(line 2\) is a complex number/],
    ["01", /leading zeros/]
  ])("rejects VERSION = %s", (literal, reason) => {
    expect(readError(wrap({ VERSION: literal }))).toMatch(reason)
  })

  it("reads MODULES with comments, trailing commas, lines and repeated keys", () => {
    const source = wrap({
      MODULES: "{\n  'source': 'p.source',  # the source\n  \"pipeline\": ('p.' 'pipeline'),\n  'source': 'p.src',\n}"
    })
    const modules = readOk(source).modules
    expect(modules).toEqual({ source: "p.src", pipeline: "p.pipeline" })
    expect(Object.keys(modules)).toEqual(["source", "pipeline"])
  })

  it("keeps a module named __proto__ as data", () => {
    const m = Either.getOrThrow(Manifest.read(wrap({ MODULES: "{'__proto__': 'x.y'}" })))
    expect(Object.keys(m.modules)).toEqual(["__proto__"])
    expect(Object.getPrototypeOf(m.modules)).toBe(Object.prototype)
  })

  it("takes the last of repeated assignments, annotated assignments and semicolon-separated statements", () => {
    const source = "NAME = 'a'\nNAME: str = 'b'\nVERSION = '1'; PACKAGE = 'p'\nMODULES: dict[str, str] = {}\n"
    expect(readOk(source)).toEqual({ name: "b", version: "1", package: "p", modules: {} })
  })

  it("ignores docstrings, imports, comments, other assignments and code that does not touch the fields", () => {
    const source = [
      "#!/usr/bin/env python3",
      "# -*- coding: utf-8 -*-",
      "\"\"\"Manifest.",
      "",
      "NAME = 'inside a docstring'",
      "\"\"\"",
      "import os, sys",
      "from typing import Dict",
      "OTHER = os.path.join('a', 'b')  # not a field",
      "if sys.version_info > (3,):",
      "    X = 1",
      "def helper(y):",
      "    return y.NAME  # an attribute, not the field",
      "NAME = \\",
      "    'foo'",
      "VERSION = '1.0'",
      "PACKAGE = 'bar'",
      "MODULES = {}",
      "EXTRA = [1, 2, {'a': (3, 4)}]",
      ""
    ].join("\n")
    expect(readOk(source)).toEqual({ name: "foo", version: "1.0", package: "bar", modules: {} })
  })

  it("reads CRLF line endings, a byte order mark and full-width identifiers", () => {
    expect(readOk("\uFEFFNAME = 'a'\r\nVERSION = '1'\r\nPACKAGE = '''p\r\nq'''\r\nMODULES = {}\r\n"))
      .toEqual({ name: "a", version: "1", package: "p\nq", modules: {} })
    expect(readOk(wrap({}).replace("NAME", "ＮＡＭＥ")).name).toBe("n")
  })
})

describe("Manifest.read: what needs Python, and syntax errors", () => {
  it.each([
    ["a concatenation", "NAME = 'a' + 'b'", /NAME \(line 1\) is computed by an expression/],
    ["a call", "MODULES = dict(source='x')", /MODULES \(line 4\) is computed from the name dict/],
    ["a method call", "VERSION = '.'.join(['1'])", /VERSION \(line 2\) is computed by an expression/],
    ["another name", "PACKAGE = NAME", /PACKAGE \(line 3\) is computed from the name NAME/],
    ["an f-string with a field", "PACKAGE = f'{NAME}.pkg'", /PACKAGE .* f-string with a replacement field/],
    ["a \\N escape", "NAME = '\\N{BULLET}'", /\\N\{\.\.\.\} escape/],
    ["bytes", "NAME = b'x'", /NAME must be a string, not a bytes/],
    ["a tuple", "NAME = ('a', 'b')", /NAME \(line 1\) is computed by an expression \(, 'b' \)/],
    ["a nested dict value", "MODULES = {'a': {'b': 'c'}}", /MODULES\["a"\] must be a module name string, not a dict/],
    ["a non-string key", "MODULES = {1: 'x'}", /MODULES keys must be strings, not a int/],
    ["a reserved module", "MODULES = {'name': 'x'}", /must not name a module "name"/]
  ])("rejects %s", (_, line, reason) => {
    const field = line.split(" ")[0] as string
    expect(readError(wrap({ [field]: line.slice(field.length + 3) }))).toMatch(reason)
  })

  it.each([
    ["an augmented assignment", "NAME += 'x'"],
    ["a tuple assignment", "NAME, OTHER = 'a', 'b'"],
    ["a chained assignment", "OTHER = NAME = 'a'"],
    ["a conditional assignment", "if True:\n    NAME = 'x'"],
    ["a one-line conditional", "if True: NAME = 'x'"],
    ["an import of a field", "from config import NAME"],
    ["a deletion", "del MODULES"],
    ["a walrus", "print(VERSION := '2')"]
  ])("rejects %s of a field", (_, line) => {
    expect(readError(`${wrap({})}\n${line}\n`)).toMatch(/is used on line \d+ by a statement that is not a literal/)
  })

  it.each([
    ["a star import", "from config import *", /imports \*/],
    ["exec", "exec('NAME = 1')", /uses exec/],
    ["globals()", "globals()['NAME'] = 'x'", /uses globals/],
    ["setattr", "import sys; setattr(sys.modules[__name__], 'NAME', 'x')", /uses setattr/]
  ])("rejects %s, which may set fields unseen", (_, line, reason) => {
    expect(readError(`${wrap({})}\n${line}\n`)).toMatch(reason)
  })

  it.each([
    ["an unterminated string", "NAME = 'abc", /unterminated string literal \(detected at line 1\)/],
    ["an unterminated triple-quoted string", "NAME = '''abc\n", /unterminated triple-quoted string literal/],
    ["a newline in a single-quoted string", "NAME = 'a\nb'", /unterminated string literal/],
    ["an unclosed bracket", "MODULES = {'a': 'b'", /'\{' was never closed/],
    ["an unmatched bracket", "MODULES = {'a': 'b'}}", /unmatched '\}'/],
    ["a truncated hex escape", "NAME = '\\x4'", /truncated \\xXX escape/],
    ["a truncated unicode escape", "NAME = '\\u12'", /truncated \\uXXXX escape/],
    ["an illegal code point", "NAME = '\\U00110000'", /illegal Unicode character/],
    ["an invalid character", "NAME = 'a' $", /invalid syntax '\$'/],
    ["a stray backslash", "NAME = 'a' \\ 'b'", /unexpected character after line continuation/],
    ["a non-ASCII bytes literal", "X = b'é'", /bytes can only contain ASCII/],
    ["an invalid decimal literal", "X = 1abc", /invalid decimal literal/]
  ])("reports %s as a syntax error", (_, source, reason) => {
    const text = source.startsWith("X") ? `${wrap({})}\n${source}` : source
    const message = readError(text)
    expect(message).toMatch(/^syntax error: /)
    expect(message).toMatch(reason)
  })

  it("rejects a non-UTF-8 source encoding declaration when the text is not ASCII", () => {
    expect(readError(`# -*- coding: latin-1 -*-\n${wrap({ NAME: "'é'" })}`)).toMatch(/encoding latin-1/)
    expect(readOk(`# -*- coding: latin-1 -*-\n${wrap({})}`).name).toBe("n")
  })

  it("reads the manifest ForML writes for helloworld", () => {
    const source = vectors.read.find((c) => c.name === "helloworld-source")?.source as string
    const m = Either.getOrThrow(Manifest.read(source))
    expect(Manifest.write(m)).toBe(vectors.write[0]?.text)
  })
})
