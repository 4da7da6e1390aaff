/**
 * Builds the `forml-mlflow` command in dist/cli/ (a CommonJS package: src/cli/ is not compiled to dist/ otherwise):
 * the program (src/cli/main.ts and everything it imports) as one CommonJS file, forml-mlflow.cjs, its first lines
 * naming the build; the executable, main.js (src/cli/launch.ts, CommonJS as well), which runs it through V8's code
 * cache; that cache, forml-mlflow.cache, made by running the command once; and forml-mlflow.help.json, what the
 * program prints for `--help` and each `COMMAND --help`, which the executable prints without loading the program.
 * See the README's Performance section.
 */
import { build } from "esbuild"
import { execFile, execFileSync } from "node:child_process"
import { randomBytes } from "node:crypto"
import { chmodSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import * as path from "node:path"
import { fileURLToPath } from "node:url"

const root = path.dirname(path.dirname(fileURLToPath(import.meta.url)))
const out = path.join(root, "dist", "cli")
const common = { bundle: true, platform: "node", target: "node20", logLevel: "warning", absWorkingDir: root }

/**
 * `import { Effect, Option } from "effect"` loads effect's index module, which loads every one of effect's modules
 * (fast-check included) at start; so does @effect/cli's index. In the bundle each such import is made an import of
 * the modules it names (`import * as Effect from "effect/Effect"`), so a start initialises only what the program
 * uses. The names come from the index modules themselves; a name not found there keeps its import from the index.
 */
const directImports = () => {
  const indexes = ["effect", "@effect/cli", "@effect/platform"].map((pkg) => {
    const index = readFileSync(path.join(root, "node_modules", pkg, "dist", "esm", "index.js"), "utf8")
    const modules = new Map()
    for (const [, name, file] of index.matchAll(/^export \* as (\w+) from "\.\/(\w+)\.js";$/gm)) modules.set(name, file)
    const members = new Map()
    for (const [, names, file] of index.matchAll(/^export \{([^}]*)\} from "\.\/(\w+)\.js";$/gm)) {
      for (const name of names.split(",").map((n) => n.trim()).filter((n) => n !== "")) members.set(name, file)
    }
    return [pkg, { modules, members }]
  })
  const byPackage = new Map(indexes)
  const pattern = /^import (type )?\{([^}]*)\} from "(effect|@effect\/cli|@effect\/platform)"$/gm
  const rewrite = (_all, typeOnly, list, pkg) => {
    const { modules, members } = byPackage.get(pkg)
    const kept = []
    const direct = []
    for (const item of list.split(",").map((n) => n.trim()).filter((n) => n !== "")) {
      const [, inlineType, name, alias] = item.match(/^(type )?(\w+)(?: as (\w+))?$/) ?? []
      const type = typeOnly !== undefined || inlineType !== undefined ? "type " : ""
      const local = alias ?? name
      const from = (file) => `"${pkg}/${file}"`
      if (modules.has(name)) direct.push(`import ${type}* as ${local} from ${from(modules.get(name))}`)
      else if (members.has(name)) direct.push(`import ${type}{ ${name} as ${local} } from ${from(members.get(name))}`)
      else kept.push(item)
    }
    if (kept.length > 0) direct.push(`import ${typeOnly ?? ""}{ ${kept.join(", ")} } from "${pkg}"`)
    return direct.join("; ")
  }
  return {
    name: "direct-imports",
    setup(build) {
      build.onLoad({ filter: /[\\/]src[\\/].*\.ts$/ }, (args) => ({
        contents: readFileSync(args.path, "utf8").replace(pattern, rewrite),
        loader: "ts"
      }))
    }
  }
}

// CommonJS, because Node 20 keeps a code cache for scripts only (not ES modules); the program's only use of
// import.meta is the URL it finds package.json from, given here from the bundle's own place
// everything in dist/cli/ is this script's
rmSync(out, { recursive: true, force: true })

// each build's own id, on the bundle's first lines: the executable keeps a code cache for this bundle alone
const buildId = randomBytes(8).toString("hex")
await build({
  ...common,
  entryPoints: ["src/cli/main.ts"],
  outfile: path.join(out, "forml-mlflow.cjs"),
  format: "cjs",
  banner: { js: `// forml-mlflow build ${buildId}` },
  minify: true,
  keepNames: true,
  define: { "import.meta.url": "import_meta_url" },
  inject: ["scripts/import-meta-url.js"],
  plugins: [directImports()],
  // The database drivers are loaded from node_modules, and only when a URI asks for one: inside the bundle they
  // would double its size and with it every start's parse time (better-sqlite3 is native and cannot be bundled).
  // The object stores' SDKs stay out too: they are optional peer dependencies, required from node_modules only when a
  // run's artifact URI is s3://, wasbs:// or gs:// (their modules are lazily initialised in the bundle).
  external: [
    "better-sqlite3",
    "pg",
    "pg-native",
    "pg-cursor",
    "pg-pool",
    "pg-types",
    "pg-connection-string",
    "mysql2",
    "@aws-sdk/*",
    "@azure/*",
    "@google-cloud/*"
  ]
})

// the executable is CommonJS too (dist/cli/ is a CommonJS package of its own): Node starts a script without its
// ES module loader
writeFileSync(path.join(out, "package.json"), `${JSON.stringify({ type: "commonjs" })}\n`)
await build({
  ...common,
  entryPoints: ["src/cli/launch.ts"],
  outfile: path.join(out, "main.js"),
  format: "cjs",
  define: { "import.meta.url": "import_meta_url" },
  inject: ["scripts/import-meta-url.js"]
})
chmodSync(path.join(out, "main.js"), 0o755)

// the help texts: the program itself (the bundle, not the executable) run for each in colour, a few at a time while
// the cache below is made; the plain text is the coloured one without its escape sequences (the program's plain
// output is exactly that: Help.ts decides colour on the text alone, with the same pattern), written once all are in
const help = path.join(out, "forml-mlflow.help.json")
rmSync(help, { force: true })
const COMMANDS = ["", "list", "push", "pull", "show", "state", "commit", "demo", "gc"]
const ESCAPE = /\u001b\[[0-?]*[ -/]*[@-~]/g
const coloured = (args) =>
  new Promise((resolve, reject) => {
    const env = { ...process.env, FORCE_COLOR: "1" }
    execFile(process.execPath, [path.join(out, "forml-mlflow.cjs"), ...args], { env }, (error, stdout, stderr) => {
      if (error !== null || stderr !== "") reject(new Error(`forml-mlflow ${args.join(" ")}: ${error ?? stderr}`))
      else resolve(stdout)
    })
  })
const jobs = [...COMMANDS]
const texts = {}
const helpDone = Promise.all(Array.from({ length: 3 }, async () => {
  for (let command = jobs.shift(); command !== undefined; command = jobs.shift()) {
    const colour = await coloured(command === "" ? ["--help"] : [command, "--help"])
    texts[command] = { plain: colour.replace(ESCAPE, ""), colour }
  }
}))

// the cache: one run of the command, on an example store, leaves it in the (here temporary) user cache directory
const cache = path.join(out, "forml-mlflow.cache")
rmSync(cache, { force: true })
const tmp = mkdtempSync(path.join(tmpdir(), "forml-mlflow-bundle-"))
try {
  const run = (...args) =>
    execFileSync(process.execPath, [path.join(out, "main.js"), "--tracking-uri", path.join(tmp, "mlruns"), ...args], {
      env: { ...process.env, XDG_CACHE_HOME: path.join(tmp, "cache") },
      stdio: "ignore"
    })
  run("demo")
  rmSync(path.join(tmp, "cache"), { recursive: true, force: true })
  run("list")
  const made = path.join(tmp, "cache", "forml-mlflow")
  renameSync(path.join(made, readdirSync(made)[0]), cache)
} finally {
  rmSync(tmp, { recursive: true, force: true })
}

await helpDone
writeFileSync(help, JSON.stringify(texts))
