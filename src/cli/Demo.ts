/**
 * The `demo` content: a small ForML package built in code (manifest + a few Python files, zipped with
 * Package.create), published as new releases with trained generations, so that every command has something to show.
 */
import * as FileSystem from "@effect/platform/FileSystem"
import * as Path from "@effect/platform/Path"
import { Effect, Either, Option } from "effect"
import type { GenerationKey } from "../asset/GenerationKey.js"
import { Manifest } from "../asset/Manifest.js"
import { Package } from "../asset/Package.js"
import type { ProjectKey } from "../asset/ProjectKey.js"
import { ReleaseKey } from "../asset/ReleaseKey.js"
import { Timestamp } from "../asset/Tag.js"
import { StorageError } from "../errors.js"
import * as Directory from "../registry/Directory.js"

export const PROJECT = "forml-demo" as ProjectKey

const PACKAGE = "forml_demo"

/** The package's files (besides the manifest), by path inside the package. */
const files = (version: string): ReadonlyArray<readonly [string, string]> => [
  [`${PACKAGE}/__init__.py`, `"""The forml-mlflow demo project, release ${version}."""\n`],
  [
    `${PACKAGE}/source.py`,
    [
      `"""Where the demo's data comes from."""`,
      "",
      "from forml import project",
      "from forml.pipeline import payload",
      "",
      "SOURCE = project.Source.query(None) >> payload.ToPandas()",
      "project.setup(SOURCE)",
      ""
    ].join("\n")
  ],
  [
    `${PACKAGE}/pipeline.py`,
    [
      `"""The demo's pipeline: one stateful node, so every generation has states to keep."""`,
      "",
      "from forml import project",
      "from forml.pipeline import wrap",
      "",
      "with wrap.importer():",
      "    from sklearn.linear_model import LogisticRegression",
      "",
      "PIPELINE = LogisticRegression(max_iter=50)",
      "project.setup(PIPELINE)",
      ""
    ].join("\n")
  ]
]

const MODULES = { pipeline: `${PACKAGE}.pipeline`, source: `${PACKAGE}.source` }

/** The first patch version above `latest` (`0.2.0` → `0.2.1`, `1!2.0rc1` → `1!2.0.1`). */
export const nextPatch = (latest: ReleaseKey): ReleaseKey => {
  const [major = 0n, minor = 0n, patch = 0n] = latest.release
  const text = `${latest.epoch === 0n ? "" : `${latest.epoch}!`}${major}.${minor}.${patch + 1n}`
  return Either.getOrThrow(ReleaseKey.parse(text))
}

/** One state blob of the demo: a small JSON document standing for a fitted model. */
const stateBytes = (release: ReleaseKey, generation: number, node: number): Uint8Array =>
  new TextEncoder().encode(
    JSON.stringify({
      model: "LogisticRegression",
      release: release.toString(),
      generation,
      node,
      coefficients: Array.from({ length: 8 }, (_, i) => Number(Math.sin(generation * 7 + node * 3 + i).toFixed(6)))
    })
  )

export interface DemoRelease {
  readonly release: ReleaseKey
  readonly generations: ReadonlyArray<GenerationKey>
}

/** The plan of one demo run: which releases to publish and how many generations each gets. */
export const plan = (latest: Option.Option<ReleaseKey>): ReadonlyArray<readonly [ReleaseKey, number]> =>
  Option.match(latest, {
    onNone:
      () => [[Either.getOrThrow(ReleaseKey.parse("0.1.0")), 1], [Either.getOrThrow(ReleaseKey.parse("0.2.0")), 2]],
    onSome: (l) => [[nextPatch(l), 2]]
  })

/** Writes the package of one release into `dir` and zips it next to it. */
const buildPackage = Effect.fn("Demo.buildPackage")(function*(scratch: string, release: ReleaseKey) {
  const fs = yield* FileSystem.FileSystem
  const path = yield* Path.Path
  const manifest = yield* Either.mapLeft(
    Manifest.make({ name: PROJECT, version: release, package: PACKAGE, modules: MODULES }),
    (e) => new StorageError({ path: scratch, reason: e.message })
  )
  const source = path.join(scratch, `src-${release}`)
  for (const [name, text] of files(release.toString())) {
    const target = path.join(source, name)
    yield* fs.makeDirectory(path.dirname(target), { recursive: true }).pipe(
      Effect.zipRight(fs.writeFileString(target, text)),
      Effect.mapError((e) => new StorageError({ path: target, reason: e.message }))
    )
  }
  return yield* Package.create(source, manifest, path.join(scratch, `${PROJECT}-${release}.4ml`))
})

/**
 * Fills the registry with the demo: on an empty project two releases (0.1.0 with one generation, 0.2.0 with two);
 * on later runs one more release (the next patch above the latest) with two generations. Never fails because the
 * demo ran before.
 */
export const run = Effect.fn("Demo.run")(function*() {
  const latest = yield* Directory.latestRelease(PROJECT).pipe(
    Effect.map(Option.some),
    Effect.catchTags({ NotFound: () => Effect.succeedNone, Empty: () => Effect.succeedNone })
  )
  const fs = yield* FileSystem.FileSystem
  const scratch = yield* fs.makeTempDirectoryScoped({ prefix: "forml-demo-" }).pipe(
    Effect.mapError((e) => new StorageError({ path: "temporary directory", reason: e.message }))
  )
  const done: Array<DemoRelease> = []
  for (const [release, count] of plan(latest)) {
    const pkg = yield* buildPackage(scratch, release)
    yield* Directory.publish(pkg, PROJECT)
    const generations: Array<GenerationKey> = []
    for (let n = 1; n <= count; n++) {
      const tuned = n === count
      const generation = yield* Directory.commit(
        PROJECT,
        release,
        [stateBytes(release, n, 0), stateBytes(release, n, 1)],
        {
          ordinal: BigInt(n * 100),
          ...(tuned ? { tuning: { timestamp: yield* Timestamp.now, score: 0.75 + n / 100 } } : {})
        }
      )
      generations.push(generation)
    }
    done.push({ release, generations })
  }
  return done
})
