/**
 * MLflow's credentials file (`~/.mlflow/credentials`): read as MLflow's Python client reads it (checked against
 * MLflow itself when MLFLOW_PYTHON names a Python with mlflow installed), used by the Http layer's settings and the
 * command with the variables winning per key, and never printed.
 */
import { NodeContext, NodeHttpClient } from "@effect/platform-node"
import { describe, expect, it } from "@effect/vitest"
import { ConfigProvider, Effect, Either, Layer, Redacted } from "effect"
import { execFileSync } from "node:child_process"
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { inspect } from "node:util"
import { startEmulator } from "../emulator/index.js"
import { CredentialsFileError } from "../src/errors.js"
import * as Credentials from "../src/mlflow/Credentials.js"
import { Mlflow } from "../src/mlflow/Mlflow.js"
import * as MlflowHttp from "../src/mlflow/MlflowHttp.js"
import { cli, isBuilt } from "./support/cli.js"

const platform = Layer.merge(NodeHttpClient.layerUndici, NodeContext.layer)

/** A temporary home directory, optionally with `.mlflow/credentials` holding `text` (or bytes). */
const tempHome = Effect.acquireRelease(
  Effect.sync(() => mkdtempSync(join(tmpdir(), "forml-home-"))),
  (dir) => Effect.sync(() => rmSync(dir, { recursive: true, force: true }))
)
const writeCredentials = (home: string, text: string | Uint8Array): string => {
  mkdirSync(join(home, ".mlflow"), { recursive: true })
  const file = join(home, ".mlflow", "credentials")
  writeFileSync(file, text)
  return file
}

const withEnv = (env: Record<string, string>) =>
  Effect.withConfigProvider(ConfigProvider.fromMap(new Map(Object.entries(env))))

const value = (r: Redacted.Redacted<string> | undefined): string | undefined =>
  r === undefined ? undefined : Redacted.value(r)

const parsed = (text: string) =>
  Either.map(Credentials.parse(text), (c) => ({ username: value(c.username), password: value(c.password) }))

const basic = (user: string, password: string) => `Basic ${Buffer.from(`${user}:${password}`).toString("base64")}`

// ---------------------------------------------------------------------------------------------------------------
// The file as configparser reads it
// ---------------------------------------------------------------------------------------------------------------

const NONE = { username: null, password: null }

/** Files and what MLflow 2.17.2 makes of them (`null`: no value; "error": its parser raises). */
const CASES: ReadonlyArray<{ readonly name: string; readonly text: string; readonly expected: unknown }> = [
  {
    name: "both keys",
    text: "[mlflow]\nmlflow_tracking_username = alice\nmlflow_tracking_password = s3cret\n",
    expected: { username: "alice", password: "s3cret" }
  },
  {
    name: "keys in any case, `:` as delimiter, CRLF lines, comments",
    text: "# mine\r\n[mlflow]\r\n; the user\r\nMLFLOW_TRACKING_USERNAME: bob\r\n" +
      "Mlflow_Tracking_Password=pw # not a comment\r\n",
    expected: { username: "bob", password: "pw # not a comment" }
  },
  { name: "no [mlflow] section", text: "[other]\nmlflow_tracking_username = x\n", expected: NONE },
  { name: "section names are case-sensitive", text: "[MLflow]\nmlflow_tracking_username = x\n", expected: NONE },
  { name: "an empty file", text: "", expected: NONE },
  {
    name: "[DEFAULT] values show through [mlflow]",
    text: "[DEFAULT]\nmlflow_tracking_username = d\nmlflow_tracking_password = dp\n" +
      "[mlflow]\nmlflow_tracking_password = p\n",
    expected: { username: "d", password: "p" }
  },
  {
    name: "[DEFAULT] alone gives nothing",
    text: "[DEFAULT]\nmlflow_tracking_username = d\n",
    expected: { username: null, password: null }
  },
  {
    name: "an empty value is no value",
    text: "[mlflow]\nmlflow_tracking_username =\nmlflow_tracking_password = p\n",
    expected: { username: null, password: "p" }
  },
  {
    name: "continuation lines and blank lines inside a value",
    text: "[mlflow]\nmlflow_tracking_password = a\n  b\n\n  c\n\n\nmlflow_tracking_username = u\n",
    expected: { username: "u", password: "a\nb\n\nc" }
  },
  {
    name: "%% and %(key)s",
    text: "[DEFAULT]\nbase = pa\n[mlflow]\nsuffix = %(base)s%%ss\nmlflow_tracking_password = %(SUFFIX)s!\n",
    expected: { username: null, password: "pa%ss!" }
  },
  {
    name: "a header with text after it, whitespace around keys",
    text: "  [mlflow] trailing\n\tmlflow_tracking_username   =   spaced out  \n",
    expected: { username: "spaced out", password: null }
  },
  { name: "a line before any section", text: "mlflow_tracking_username = x\n[mlflow]\n", expected: "error" },
  { name: "a byte order mark", text: "\uFEFF[mlflow]\nmlflow_tracking_username = x\n", expected: "error" },
  { name: "a section twice", text: "[mlflow]\n[other]\n[mlflow]\n", expected: "error" },
  {
    name: "a key twice",
    text: "[mlflow]\nmlflow_tracking_password = a\nMLFLOW_TRACKING_PASSWORD = b\n",
    expected: "error"
  },
  { name: "a line without a delimiter", text: "[mlflow]\nmlflow_tracking_password hunter2\n", expected: "error" },
  { name: "a key without a name", text: "[mlflow]\n= hunter2\n", expected: "error" },
  { name: "a bare % in the password", text: "[mlflow]\nmlflow_tracking_password = 100%sure\n", expected: "error" },
  {
    name: "a reference to a missing key",
    text: "[mlflow]\nmlflow_tracking_password = %(nope)s\n",
    expected: "error"
  },
  {
    name: "a bare % in another key is no error",
    text: "[mlflow]\nnote = 100%\nmlflow_tracking_username = u\n",
    expected: { username: "u", password: null }
  },
  {
    name: "references nested too deep",
    text: "[mlflow]\na = %(a)s\nmlflow_tracking_password = %(a)s\n",
    expected: "error"
  },
  {
    name: "two [DEFAULT] sections",
    text: "[DEFAULT]\nx = 1\n[DEFAULT]\n[mlflow]\nmlflow_tracking_username = %(x)s\n",
    expected: { username: "1", password: null }
  }
]

const outcome = (text: string): unknown =>
  Either.match(parsed(text), {
    onLeft: () => "error",
    onRight: (c) => ({ username: c.username ?? null, password: c.password ?? null })
  })

describe("the credentials file, as MLflow's configparser reads it", () => {
  for (const c of CASES) {
    it(c.name, () => {
      expect(outcome(c.text)).toEqual(c.expected)
    })
  }

  it("says which line is wrong and why, never what the line holds", () => {
    const cases: ReadonlyArray<readonly [string, number, RegExp]> = [
      ["mlflow_tracking_password = hunter2\n", 1, /before the first \[section\]/],
      ["[mlflow]\nmlflow_tracking_username = u\nmlflow_tracking_password hunter2\n", 3, /not a `key = value` line/],
      ["[mlflow]\nmlflow_tracking_password = hunter2\nmlflow_tracking_password = hunter2\n", 3, /given a second time/],
      ["[mlflow]\n\nmlflow_tracking_password = hunter2%\n", 3, /mlflow_tracking_password .*% that is not followed/],
      ["\uFEFF[mlflow]\nmlflow_tracking_password = hunter2\n", 1, /byte order mark/]
    ]
    for (const [text, line, reason] of cases) {
      const result = Credentials.parse(text)
      expect(Either.isLeft(result), text).toBe(true)
      if (Either.isLeft(result)) {
        expect(result.left.line).toBe(line)
        expect(result.left.reason).toMatch(reason)
        expect(result.left.reason).not.toContain("hunter2")
      }
    }
  })

  it("finds the file under HOME as Python's expanduser does", () => {
    expect(Credentials.pathIn("/home/alice", "linux")).toBe("/home/alice/.mlflow/credentials")
    expect(Credentials.pathIn("/home/alice/", "linux")).toBe("/home/alice/.mlflow/credentials")
    expect(Credentials.pathIn("", "linux")).toBe("/.mlflow/credentials")
    expect(Credentials.pathIn("C:\\Users\\alice", "win32")).toBe("C:\\Users\\alice\\.mlflow\\credentials")
  })

  const python = process.env["MLFLOW_PYTHON"]
  it.skipIf(python === undefined)(
    python === undefined
      ? "agrees with MLflow's own reader on every case (skipped: MLFLOW_PYTHON, a Python with mlflow, is not set)"
      : "agrees with MLflow's own reader on every case",
    () => {
      // one Python process reads every case through mlflow.utils.credentials, each under its own HOME
      const dir = mkdtempSync(join(tmpdir(), "forml-mlflow-creds-"))
      try {
        const homes = CASES.map((c, i) => {
          const home = join(dir, String(i))
          writeCredentials(home, c.text)
          return home
        })
        const script = [
          "import json, os, sys",
          "from mlflow.utils import credentials",
          "out = []",
          "for home in json.loads(sys.argv[1]):",
          "    os.environ['HOME'] = home",
          "    try:",
          "        u, p = credentials._read_mlflow_creds_from_file()",
          "        out.append({'username': u or None, 'password': p or None})",
          "    except Exception:",
          "        out.append('error')",
          "print(json.dumps(out))"
        ].join("\n")
        const stdout = execFileSync(python!, ["-c", script, JSON.stringify(homes)], {
          encoding: "utf-8",
          env: { ...process.env, PYTHONUTF8: "1" }
        })
        const theirs = JSON.parse(stdout) as Array<unknown>
        CASES.forEach((c, i) =>
          expect({ case: c.name, outcome: theirs[i] }).toEqual({ case: c.name, outcome: c.expected })
        )
      } finally {
        rmSync(dir, { recursive: true, force: true })
      }
    },
    60_000
  )
})

// ---------------------------------------------------------------------------------------------------------------
// The Http layer's settings
// ---------------------------------------------------------------------------------------------------------------

describe("MlflowHttp.config with a credentials file", () => {
  const FILE = "[mlflow]\nmlflow_tracking_username = file-user\nmlflow_tracking_password = file-pw-7Qx\n"

  it.scoped("reads the file under HOME; the variables win per key; the URI's user info comes before the file", () =>
    Effect.gen(function*() {
      const home = yield* tempHome
      writeCredentials(home, FILE)
      const settings = (env: Record<string, string>) =>
        MlflowHttp.config.pipe(withEnv({ MLFLOW_TRACKING_URI: "http://h:5000", HOME: home, ...env }))
      const pair = (c: MlflowHttp.MlflowHttpConfig) => [value(c.username), value(c.password)]

      expect(pair(yield* settings({}))).toEqual(["file-user", "file-pw-7Qx"])
      expect(pair(yield* settings({ MLFLOW_TRACKING_USERNAME: "env-user" }))).toEqual(["env-user", "file-pw-7Qx"])
      expect(pair(yield* settings({ MLFLOW_TRACKING_PASSWORD: "env-pw" }))).toEqual(["file-user", "env-pw"])
      // as in MLflow (`env or file`), an empty variable lets the file's value through
      expect(pair(yield* settings({ MLFLOW_TRACKING_USERNAME: "" }))).toEqual(["file-user", "file-pw-7Qx"])
      const fromUri = yield* settings({ MLFLOW_TRACKING_URI: "http://uri-user:uri-pw@h:5000" })
      expect(pair(fromUri)).toEqual(["uri-user", "uri-pw"])

      // no file, no credentials
      const other = yield* tempHome
      const none = yield* MlflowHttp.config.pipe(withEnv({ MLFLOW_TRACKING_URI: "http://h", HOME: other }))
      expect(none.username).toBeUndefined()
      expect(none.password).toBeUndefined()

      // never printed
      const c = yield* settings({})
      for (const shown of [String(c), JSON.stringify(c), inspect(c, { depth: 5 }), String(c.password)]) {
        expect(shown).not.toContain("file-pw-7Qx")
      }
    }))

  it.scoped("a malformed file is a one-line CredentialsFileError naming the file and the line, not the password", () =>
    Effect.gen(function*() {
      const home = yield* tempHome
      const file = writeCredentials(
        home,
        "[mlflow]\nmlflow_tracking_username = u\nmlflow_tracking_password hunter2-secret\n"
      )
      const error = yield* Effect.flip(MlflowHttp.config.pipe(withEnv({ MLFLOW_TRACKING_URI: "http://h", HOME: home })))
      expect(error).toBeInstanceOf(CredentialsFileError)
      if (!(error instanceof CredentialsFileError)) return
      expect(error.path).toBe(file)
      expect(error.line).toBe(3)
      expect(error.message).toBe(
        `malformed MLflow credentials file ${file}, line 3: ` +
          "not a `key = value` line, a [section] header, an indented continuation or a comment"
      )
      for (const shown of [error.message, String(error), JSON.stringify(error), inspect(error, { depth: 5 })]) {
        expect(shown).not.toContain("hunter2-secret")
      }
      // not UTF-8: refused as MLflow refuses it
      writeCredentials(home, new Uint8Array([0x5b, 0x6d, 0xff, 0x5d]))
      const bytes = yield* Effect.flip(MlflowHttp.config.pipe(withEnv({ MLFLOW_TRACKING_URI: "http://h", HOME: home })))
      expect(bytes.message).toBe(`malformed MLflow credentials file ${file}: not UTF-8 text`)
    }))

  it.scoped("a file that cannot be opened is no credentials, as in MLflow", () =>
    Effect.gen(function*() {
      const home = yield* tempHome
      mkdirSync(join(home, ".mlflow", "credentials"), { recursive: true })
      const c = yield* MlflowHttp.config.pipe(withEnv({ MLFLOW_TRACKING_URI: "http://h", HOME: home }))
      expect(c.username).toBeUndefined()
    }))

  it.scoped("layerConfig and layerConfigNode send the file's credentials to the server", () =>
    Effect.gen(function*() {
      const emulator = yield* startEmulator()
      const home = yield* tempHome
      writeCredentials(home, FILE)
      const env = { MLFLOW_TRACKING_URI: emulator.url, HOME: home, MLFLOW_HTTP_REQUEST_MAX_RETRIES: "0" }
      const probe = Effect.flatMap(Mlflow, (mlflow) => Effect.either(mlflow.getExperimentByName("nothing-here")))
      const lastAuthorization = () => emulator.requests().at(-1)?.headers["authorization"]

      yield* probe.pipe(Effect.provide(MlflowHttp.layerConfig().pipe(Layer.provide(platform))), withEnv(env))
      expect(lastAuthorization()).toBe(basic("file-user", "file-pw-7Qx"))

      yield* probe.pipe(
        Effect.provide(MlflowHttp.layerConfigNode().pipe(Layer.provide(NodeContext.layer))),
        withEnv({ ...env, MLFLOW_TRACKING_PASSWORD: "env-pw" })
      )
      expect(lastAuthorization()).toBe(basic("file-user", "env-pw"))

      yield* probe.pipe(
        Effect.provide(MlflowHttp.layerConfig().pipe(Layer.provide(platform))),
        withEnv({ ...env, MLFLOW_TRACKING_USERNAME: "env-user", MLFLOW_TRACKING_PASSWORD: "env-pw" })
      )
      expect(lastAuthorization()).toBe(basic("env-user", "env-pw"))

      // without the file, no Authorization header at all
      rmSync(join(home, ".mlflow"), { recursive: true })
      yield* probe.pipe(Effect.provide(MlflowHttp.layerConfig().pipe(Layer.provide(platform))), withEnv(env))
      expect(lastAuthorization()).toBeUndefined()
    }))
})

// ---------------------------------------------------------------------------------------------------------------
// The command
// ---------------------------------------------------------------------------------------------------------------

describe("forml-mlflow with a credentials file", () => {
  // fail, not skip, when the command is not built: a missing build must not pass for a green run
  if (!isBuilt()) throw new Error("dist/cli/main.js is missing: run `npm run build` before these tests")
  it.scoped(
    "sends the file's credentials, variables win per key; a malformed file: one line, no password",
    () =>
      Effect.gen(function*() {
        const emulator = yield* startEmulator()
        const home = yield* tempHome
        const run = (args: ReadonlyArray<string>, env: Record<string, string> = {}) =>
          Effect.promise(() =>
            cli(args, {
              cwd: home,
              env: { HOME: home, MLFLOW_TRACKING_URI: emulator.url, MLFLOW_HTTP_REQUEST_MAX_RETRIES: "0", ...env }
            })
          )
        const authorizations = () => new Set(emulator.requests().map((r) => r.headers["authorization"]))
        const password = "file-pw-Zr8"
        writeCredentials(
          home,
          `[mlflow]\nmlflow_tracking_username = file-user\nmlflow_tracking_password = ${password}\n`
        )

        const listed = yield* run(["--json", "list"])
        expect(listed.code, listed.stderr).toBe(0)
        expect(authorizations()).toEqual(new Set([basic("file-user", password)]))

        emulator.clearRequests()
        const mixed = yield* run(["list"], { MLFLOW_TRACKING_USERNAME: "env-user" })
        expect(mixed.code, mixed.stderr).toBe(0)
        expect(authorizations()).toEqual(new Set([basic("env-user", password)]))

        // malformed: the second assignment of the password is refused, as MLflow refuses it
        const file = writeCredentials(
          home,
          `[mlflow]\nmlflow_tracking_password = ${password}\nmlflow_tracking_password = ${password}\n`
        )
        emulator.clearRequests()
        const outputs: Array<string> = []
        for (const args of [["list"], ["--json", "list"], ["--log-level", "all", "show", "some-project"]]) {
          const r = yield* run(args)
          outputs.push(r.out, r.stderr)
          expect(r.code, r.stderr).toBe(1)
          expect(r.out).toBe("")
          const line = `error: malformed MLflow credentials file ${file}, line 3: ` +
            "a key of [mlflow] is given a second time"
          // with --log-level all the log lines come first; the failure is one line whatever the level
          const lines = r.stderr.trim().split("\n")
          expect(args.includes("--log-level") ? lines.filter((l) => l.startsWith("error:")) : lines).toEqual([line])
          expect(r.stderr).not.toMatch(/\n\s+at |FiberFailure/)
        }
        expect(emulator.requests()).toHaveLength(0)
        for (const text of outputs) expect(text).not.toContain(password)
      }),
    60_000
  )
})
