/**
 * MlflowSql against what real MLflow wrote (shared/mlflow-sql-sample): ForML's lifecycle databases of MLflow 2.17.2
 * and 3.x read back as ForML read them, the migrated file store (18-digit ids), a new database created as MLflow
 * 2.17.2 creates it, the rows a lifecycle writes shaped as MLflow's, schemas refused with one line, tracking URIs.
 */
import { NodeContext } from "@effect/platform-node"
import { Cause, Chunk, Effect, Either, Exit, Layer, Option, Stream } from "effect"
import type { Scope } from "effect"
import { createHash } from "node:crypto"
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { afterAll, describe, expect, it } from "vitest"
import { Package } from "../src/asset/Package.js"
import { StateId } from "../src/asset/StateId.js"
import { describeTarget, parseTarget } from "../src/cli/Store.js"
import { Mlflow } from "../src/mlflow/Mlflow.js"
import * as MlflowSql from "../src/mlflow/MlflowSql.js"
import * as SqlUri from "../src/mlflow/sql/uri.js"
import { MlflowRegistry } from "../src/registry/MlflowRegistry.js"
import { Registry } from "../src/registry/Registry.js"
import { bytes, collect, helloworldZip, key, tagWith } from "./contract/registry.js"
import { sharedPath } from "./support/shared.js"
import { type Database, describeSqlite, openDb } from "./support/sqlite.js"

const SAMPLE = sharedPath("mlflow-sql-sample")
const sha256 = (b: Uint8Array) => createHash("sha256").update(b).digest("hex")

const temp = mkdtempSync(join(tmpdir(), "forml-sql-samples-"))
afterAll(() => rmSync(temp, { recursive: true, force: true }))
let counter = 0
const fresh = (label: string) => join(temp, `${label}-${++counter}`)

/** A copy of a sample database whose artifact paths (`/srv/forml-sample/<v>/…`) lead to the shared folder. */
const sampleCopy = (version: string, file: string, from: string, to: string): string => {
  const dir = fresh(version)
  mkdirSync(dir, { recursive: true })
  const db = join(dir, "copy.db")
  copyFileSync(join(SAMPLE, version, file), db)
  const handle = openDb(db)
  handle.prepare("UPDATE runs SET artifact_uri = replace(artifact_uri, ?, ?)").run(from, to)
  handle.prepare("UPDATE experiments SET artifact_location = replace(artifact_location, ?, ?)").run(from, to)
  handle.close()
  return db
}

const run = <A, E>(uri: string, body: Effect.Effect<A, E, Mlflow | NodeContext.NodeContext | Scope.Scope>) =>
  Effect.runPromise(
    body.pipe(
      Effect.scoped,
      Effect.provide(
        Layer.provideMerge(MlflowSql.layer({ uri, artifactRoot: join(temp, "artifacts") }), NodeContext.layer)
      )
    )
  )

/** The failure of a body on a fresh layer, as `_tag: message` (the text a user would see). */
const failure = async <A, E>(uri: string, body: Effect.Effect<A, E, Mlflow>): Promise<string> => {
  const exit = await Effect.runPromiseExit(
    body.pipe(Effect.provide(MlflowSql.layer({ uri })), Effect.provide(NodeContext.layer))
  )
  if (Exit.isSuccess(exit)) return "success"
  const error = Cause.failureOption(exit.cause)
  if (Option.isNone(error)) return `defect: ${Cause.pretty(exit.cause)}`
  const e = error.value as { readonly _tag: string; readonly message: string }
  return `${e._tag}: ${e.message}`
}

interface ReadJson {
  readonly projects: ReadonlyArray<{
    readonly name: string
    readonly releases: ReadonlyArray<{
      readonly version: string
      readonly package: {
        readonly manifest: {
          readonly name: string
          readonly version: string
          readonly package: string
          readonly modules: Readonly<Record<string, string>>
        }
      }
      readonly generations: ReadonlyArray<{
        readonly key: number
        readonly tag: { readonly training: { readonly ordinal: number | null }; readonly states: ReadonlyArray<string> }
        readonly states: ReadonlyArray<{ readonly id: string; readonly sha256: string; readonly size: number }>
      }>
    }>
  }>
}

/** What the registry reads of every project (as ForML's reading script lists it). */
const readAll = Effect.gen(function*() {
  const registry = yield* Registry
  const projects = []
  for (const project of yield* collect(registry.projects)) {
    const releases = []
    for (const release of yield* collect(registry.releases(project))) {
      const pkg = yield* registry.pull(project, release)
      const generations = []
      for (const generation of yield* collect(registry.generations(project, release))) {
        const tag = yield* registry.open(project, release, generation)
        const states = []
        for (const sid of tag.states) {
          const data = yield* registry.read(project, release, generation, sid)
          states.push({ id: String(sid), sha256: sha256(data), size: data.length })
        }
        generations.push({
          key: Number(generation),
          tag: {
            training: { ordinal: Option.getOrNull(Option.map(tag.training.ordinal, Number)) },
            states: tag.states.map(String)
          },
          states
        })
      }
      releases.push({
        version: String(release),
        package: {
          manifest: {
            name: pkg.manifest.name,
            version: String(pkg.manifest.version),
            package: pkg.manifest.package,
            modules: pkg.manifest.modules
          }
        },
        generations
      })
    }
    projects.push({ name: String(project), releases })
  }
  return projects
})

describeSqlite("The sample databases read back as ForML wrote them", () => {
  for (const version of ["2.17.2", "3.11.2.dev0"]) {
    it(`ForML's lifecycle written by MLflow ${version}`, async () => {
      const db = sampleCopy(version, "forml-lifecycle.db", `/srv/forml-sample/${version}/`, `${SAMPLE}/${version}/`)
      const expected = JSON.parse(readFileSync(join(SAMPLE, version, "forml-lifecycle.read.json"), "utf8")) as ReadJson
      const got = await run(
        `sqlite:///${db}`,
        Effect.flatMap(
          MlflowRegistry.make({ repoid: "" }),
          (registry) => Effect.provideService(readAll, Registry, registry)
        )
      )
      // ForML's script lists every experiment (Default too, with no release), the registry ForML's projects only;
      // every field it printed is compared but the training timestamps (their text is Python's, not a key)
      const withoutTimestamps = expected.projects.filter((p) => p.releases.length > 0).map((p) => ({
        ...p,
        releases: p.releases.map((r) => ({
          ...r,
          generations: r.generations.map((g) => ({
            ...g,
            tag: { training: { ordinal: g.tag.training.ordinal }, states: g.tag.states }
          }))
        }))
      }))
      expect(got).toEqual(withoutTimestamps)
      expect(got[0]!.releases[0]!.generations).toHaveLength(2)
    })
  }

  it("the file store migrated by `mlflow migrate-filestore` (18-digit experiment ids)", async () => {
    const db = sampleCopy(
      "migrate-filestore",
      "filestore-migrated.db",
      "file:///srv/forml-sample/mlruns/",
      `file://${sharedPath("mlflow-filestore-sample", "mlruns")}/`
    )
    const got = await run(
      `sqlite:///${db}`,
      Effect.gen(function*() {
        const mlflow = yield* Mlflow
        const experiments = Chunk.toReadonlyArray(
          yield* Stream.runCollect(mlflow.searchExperiments({ viewType: "ALL" }))
        )
        const big = experiments.filter((e) => e.experimentId.length >= 18)
        // ids beyond 2^53 keep every digit, and find their experiment again
        for (const e of big) expect((yield* mlflow.getExperiment(e.experimentId)).name).toBe(e.name)
        const registry = yield* MlflowRegistry.make({ repoid: "" })
        const projects = yield* Effect.provideService(readAll, Registry, registry)
        return { ids: big.map((e) => e.experimentId), projects }
      })
    )
    expect(got.ids).toContain("943519852629867517")
    const hello = got.projects.find((p) => p.name === "helloworld")!
    expect(hello.releases[0]!.generations.map((g) => g.key)).toEqual([1, 2])
    for (const g of hello.releases[0]!.generations) {
      expect(g.states.length).toBeGreaterThan(0)
      for (const s of g.states) expect(s.sha256).toMatch(/^[0-9a-f]{64}$/)
    }
  })
})

describeSqlite("A new database", () => {
  it("is created as MLflow 2.17.2 creates it: every table, index and row of its empty.db", async () => {
    const dir = fresh("new")
    mkdirSync(dir, { recursive: true })
    const file = join(dir, "mlflow.db")
    await run(`sqlite:///${file}`, Effect.void)
    const ours = openDb(file, { readonly: true })
    const theirs = openDb(join(SAMPLE, "2.17.2", "empty.db"), { readonly: true })
    const schema = (d: Database) =>
      d.prepare("SELECT type, name, tbl_name, sql FROM sqlite_master ORDER BY type, name").all()
    expect(schema(ours)).toEqual(schema(theirs))
    expect(ours.prepare("SELECT * FROM alembic_version").all()).toEqual([{ version_num: "f5a4f2784254" }])
    expect(ours.prepare("SELECT experiment_id, name, artifact_location, lifecycle_stage FROM experiments").all())
      .toEqual([
        {
          experiment_id: 0,
          name: "Default",
          artifact_location: `${join(temp, "artifacts")}/0`,
          lifecycle_stage: "active"
        }
      ])
    expect(ours.pragma("journal_mode", { simple: true })).toBe("delete")
    ours.close()
    theirs.close()
  })

  it("holds the rows of a ForML lifecycle in MLflow's shape (as ForML's provider wrote them through MLflow)", async () => {
    const dir = fresh("shape")
    mkdirSync(dir, { recursive: true })
    const file = join(dir, "mlflow.db")
    await run(
      `sqlite:///${file}`,
      Effect.gen(function*() {
        const registry = yield* MlflowRegistry.make({ repoid: "" })
        yield* registry.push(yield* Package.open(helloworldZip))
        const project = key.project("helloworld")
        const release = key.release("1")
        const sid = StateId.random()
        yield* registry.write(project, release, sid, bytes("state"))
        yield* registry.close(project, release, key.generation(1), tagWith(sid))
      })
    )
    const ours = openDb(file, { readonly: true })
    const sample = openDb(join(SAMPLE, "2.17.2", "forml-lifecycle.db"), { readonly: true })
    const columns = "source_type, source_name, entry_point_name, source_version, user_id, lifecycle_stage, deleted_time"
    const shape = (d: Database) => new Set(d.prepare(`SELECT ${columns} FROM runs`).all().map((r) => JSON.stringify(r)))
    expect(shape(ours)).toEqual(shape(sample))
    const runs = ours.prepare(
      "SELECT r.run_uuid, r.name, r.artifact_uri, e.artifact_location FROM runs r JOIN experiments e USING (experiment_id)"
    ).all() as Array<{ run_uuid: string; name: string; artifact_uri: string; artifact_location: string }>
    expect(runs.length).toBeGreaterThanOrEqual(2)
    for (const r of runs) {
      expect(r.run_uuid).toMatch(/^[0-9a-f]{32}$/)
      expect(r.artifact_uri).toBe(`${r.artifact_location}/${r.run_uuid}/artifacts`)
      const tag = ours.prepare("SELECT value FROM tags WHERE run_uuid = ? AND key = 'mlflow.runName'").get(
        r.run_uuid
      ) as { value: string }
      expect(tag.value).toBe(r.name)
    }
    const experiment = ours.prepare(
      "SELECT experiment_id, artifact_location FROM experiments WHERE name = 'helloworld'"
    ).get() as {
      experiment_id: number
      artifact_location: string
    }
    expect(experiment).toEqual({ experiment_id: 1, artifact_location: `${join(temp, "artifacts")}/1` })
    // the release run carries the tags ForML's provider gave it
    const keys = (d: Database, level: string) =>
      (d.prepare(
        "SELECT t.key FROM tags t JOIN tags l ON l.run_uuid = t.run_uuid AND l.key = 'forml.level' AND l.value = ? ORDER BY t.key"
      ).all(level) as Array<{ key: string }>)
        .map((r) => r.key)
    for (const k of keys(sample, "release")) expect(keys(ours, "release")).toContain(k)
    ours.close()
    sample.close()
  })

  it("eight layers opening one new file at once create it once", async () => {
    const dir = fresh("race")
    mkdirSync(dir, { recursive: true })
    const uri = `sqlite:///${join(dir, "mlflow.db")}`
    const names = await Promise.all(
      Array.from({ length: 8 }, (_, i) => run(uri, Effect.flatMap(Mlflow, (m) => m.createExperiment(`e${i}`))))
    )
    expect(new Set(names).size).toBe(8)
    const db = openDb(join(dir, "mlflow.db"), { readonly: true })
    expect(db.prepare("SELECT count(*) AS n FROM alembic_version").get()).toEqual({ n: 1 })
    expect(db.prepare("SELECT count(*) AS n FROM experiments").get()).toEqual({ n: 9 })
    db.close()
  })
})

describeSqlite("Schemas this layer cannot use are refused with one line naming the revision", () => {
  const refused = async (prepare: (db: Database) => void) => {
    const dir = fresh("refused")
    mkdirSync(dir, { recursive: true })
    const file = join(dir, "mlflow.db")
    copyFileSync(join(SAMPLE, "2.17.2", "empty.db"), file)
    const db = openDb(file)
    prepare(db)
    db.close()
    const before = readFileSync(file)
    const message = await failure(`sqlite:///${file}`, Effect.flatMap(Mlflow, (m) => m.getExperiment("0")))
    expect(Buffer.compare(readFileSync(file), before)).toBe(0)
    return message
  }

  it("a run table without deleted_time (an old revision)", async () => {
    const message = await refused((db) => {
      db.exec("UPDATE alembic_version SET version_num = 'a8c4a736bde6'; ALTER TABLE runs DROP COLUMN deleted_time")
    })
    expect(message).toContain("alembic revision a8c4a736bde6")
    expect(message).toContain("runs lacks deleted_time")
    expect(message).toMatch(/^StorageError: [^\n]+$/)
  })

  it("a database of something else", async () => {
    const message = await refused((db) => {
      db.exec("DROP TABLE experiment_tags")
    })
    expect(message).toContain("no experiment_tags table")
  })

  it("a file that is not a database fails with StorageError, and is left as it was", async () => {
    const file = join(fresh("garbage"), "")
    mkdirSync(file, { recursive: true })
    const db = join(file, "junk.db")
    writeFileSync(db, "this is not a sqlite file, only text that is long enough to be read as a header".repeat(20))
    const before = readFileSync(db)
    expect(await failure(`sqlite:///${db}`, Effect.flatMap(Mlflow, (m) => m.getExperiment("0")))).toMatch(
      /^StorageError: /
    )
    expect(Buffer.compare(readFileSync(db), before)).toBe(0)
  })

  it("a 3.x database opens as it is: its workspace column keeps 'default', its revision stays", async () => {
    const dir = fresh("v3")
    mkdirSync(dir, { recursive: true })
    const file = join(dir, "mlflow.db")
    copyFileSync(join(SAMPLE, "3.11.2.dev0", "empty.db"), file)
    const id = await run(`sqlite:///${file}`, Effect.flatMap(Mlflow, (m) => m.createExperiment("third")))
    const db = openDb(file, { readonly: true })
    expect(db.prepare("SELECT name, workspace FROM experiments WHERE experiment_id = ?").get(Number(id))).toEqual({
      name: "third",
      workspace: "default"
    })
    expect(db.prepare("SELECT version_num FROM alembic_version").get()).toEqual({ version_num: "7d34483879f0" })
    db.close()
  })
})

describe("Database tracking URIs", () => {
  it("reads sqlite, PostgreSQL and MySQL URIs as SQLAlchemy writes them", () => {
    expect(SqlUri.parse("sqlite:///mlflow.db", "/work/x")).toEqual(
      Either.right({ dialect: "sqlite", filename: "/work/x/mlflow.db", display: "sqlite:///mlflow.db" })
    )
    expect(Either.getOrThrow(SqlUri.parse("sqlite:////abs/path.db"))).toMatchObject({ filename: "/abs/path.db" })
    for (const uri of ["postgresql://u:p@h:5432/db", "postgresql+psycopg2://u:p@h/db", "postgres://u@h/db"]) {
      expect(Either.getOrThrow(SqlUri.parse(uri)).dialect, uri).toBe("pg")
    }
    for (const uri of ["mysql://u:p@h:3306/db", "mysql+pymysql://u:p@h/db", "mariadb://u:p@h/db"]) {
      expect(Either.getOrThrow(SqlUri.parse(uri)).dialect, uri).toBe("mysql")
    }
    for (
      const bad of ["sqlite://host/x.db", "sqlite:///", "sqlite:///:memory:", "postgresql://u:p@h", "mssql://u:p@h/db"]
    ) {
      expect(Either.isLeft(SqlUri.parse(bad)), bad).toBe(true)
    }
  })

  it("never shows a password: parse errors, descriptions, connection failures", async () => {
    const secret = "Sup3r-S3cret"
    expect(SqlUri.redactUri(`postgresql://me:${secret}@h/db`)).toBe("postgresql://me:***@h/db")
    const bad = SqlUri.parse(`postgresql://me:${secret}@h`)
    expect(Either.isLeft(bad) && bad.left.message).not.toContain(secret)
    const target = Either.getOrThrow(parseTarget(`mysql+pymysql://me:${secret}@127.0.0.1:1/db`))
    expect(target._tag).toBe("Sql")
    expect(describeTarget(target)).not.toContain(secret)
    const text = await failure(
      `postgresql://me:${secret}@127.0.0.1:1/db`,
      Effect.flatMap(Mlflow, (m) => m.getExperiment("0"))
    )
    expect(text).toMatch(/^StorageError: /)
    expect(text).not.toContain(secret)
  })
})
