/**
 * MlflowSql on sqlite (in process) and PostgreSQL 15 (a throwaway cluster, when its binaries are here): the Mlflow
 * contract, the registry contract, the sample databases MLflow 2.17.2 and 3.x wrote, schema checks and URIs.
 */
import { Chunk, Effect, type Layer, Option, Stream } from "effect"
import { existsSync, mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { afterAll, describe, expect, it } from "vitest"
import { Mlflow } from "../src/mlflow/Mlflow.js"
import { mlflowContract } from "./contract/mlflow.js"
import { registryContract } from "./contract/registry.js"
import { mainJs, runProgram } from "./support/cli.js"
import { sqlLayer } from "./support/databases.js"
import { PG_PASSWORD, startPostgres } from "./support/postgres.js"
import { sqliteMissing } from "./support/sqlite.js"

/** A sqlite database in a fresh temporary directory (artifacts under it), removed with the layer. */
const tempSqlite = sqlLayer("forml-sql-", (dir) => `sqlite:///${dir}/mlflow.db`)

if (sqliteMissing === undefined) {
  mlflowContract("MlflowSql (sqlite)", tempSqlite, { largeArtifactBytes: 4 * 1024 * 1024 + 3 })
  registryContract("MlflowSql (sqlite)", () => tempSqlite)
} else {
  describe.skip(`MlflowSql (sqlite): skipped, ${sqliteMissing}`, () => {
    it("contract", () => undefined)
  })
}

// ---------------------------------------------------------------------------------------------------------------
// PostgreSQL
// ---------------------------------------------------------------------------------------------------------------

const pg = await startPostgres()
afterAll(() => {
  if (typeof pg !== "string") pg.stop()
})

if (typeof pg === "string") {
  describe.skip(`MlflowSql (PostgreSQL): skipped, ${pg}`, () => {
    it("contract", () => undefined)
  })
} else {
  pg.createDatabase("contract")
  pg.createDatabase("registry")
  const pgLayer = (database: string) => sqlLayer("forml-sql-pg-", () => pg.uri(database, "postgresql+psycopg2"))
  mlflowContract("MlflowSql (PostgreSQL)", pgLayer("contract"), { largeArtifactBytes: 1024 * 1024 + 3 })
  registryContract("MlflowSql (PostgreSQL)", () => pgLayer("registry"))
}

// ---------------------------------------------------------------------------------------------------------------
// Hostile input: values that would be SQL if interpolated, ids no row can have, sizes past the columns
// ---------------------------------------------------------------------------------------------------------------

const hostile = (name: string, layer: Layer.Layer<Mlflow, unknown>) =>
  describe(`Hostile input: ${name}`, () => {
    it("ids, names and values that would be SQL are data; ids no row can have are NotFound; nothing breaks", () =>
      Effect.runPromise(
        Effect.gen(function*() {
          const m = yield* Mlflow
          const name = `x'); DROP TABLE runs; -- "${Date.now()}"`
          const id = yield* m.createExperiment(name, { tags: [{ key: "q", value: "a'b\"c\\\\d" }] })
          expect((yield* m.getExperimentByName(name)).experimentId).toBe(id)
          expect((yield* m.getExperiment(id)).tag("q")).toEqual(Option.some("a'b\"c\\\\d"))
          for (const bad of ["1 OR 1=1", "0; DROP TABLE runs", "-1", "1e3", " 1", "99999999999999999999", "", "0x1"]) {
            expect(yield* Effect.flip(m.getExperiment(bad)), bad).toMatchObject({ _tag: "NotFound" })
            expect(yield* Effect.flip(m.deleteExperiment(bad)), bad).toMatchObject({ _tag: "NotFound" })
            expect(yield* Effect.flip(m.createRun({ experimentId: bad })), bad).toMatchObject({ _tag: "NotFound" })
            expect(Chunk.size(yield* Stream.runCollect(m.searchRuns({ experimentIds: [bad] }))), bad).toBe(0)
          }
          for (const bad of ["' OR '1'='1", "x".repeat(10_000), "%", "_"]) {
            expect(yield* Effect.flip(m.getRun(bad))).toMatchObject({ _tag: "NotFound" })
            expect(yield* Effect.flip(m.setTag(bad, "k", "v"))).toMatchObject({ _tag: "NotFound" })
          }
          const run = yield* m.createRun({ experimentId: id, runName: "r'; --" })
          const long = "é".repeat(9000)
          yield* m.setTags(run.runId, [
            { key: "long", value: long },
            ...Array.from({ length: 250 }, (_, i) => ({ key: `k${i}`, value: `'${i}"` }))
          ])
          const got = yield* m.getRun(run.runId)
          expect(got.info.runName).toBe("r'; --")
          expect(Option.getOrThrow(got.tag("long"))).toBe("é".repeat(8000))
          expect(Option.getOrThrow(got.tag("k249"))).toBe("'249\"")
          // a value the database cannot store (PostgreSQL refuses NUL) is a typed error, not a crash
          const nul = yield* Effect.either(m.setTag(run.runId, "nul", "a\u0000b"))
          if (nul._tag === "Left") {
            expect(nul.left).toMatchObject({ _tag: "StorageError" })
          }
          // everything is still there
          expect((yield* m.getRun(run.runId)).tags.length).toBeGreaterThanOrEqual(252)
          expect((yield* m.getExperiment("0")).name).toBe("Default")
        }).pipe(Effect.provide(layer))
      ), 30_000)
  })

if (sqliteMissing === undefined) hostile("sqlite", tempSqlite)
if (typeof pg !== "string") {
  pg.createDatabase("hostile")
  hostile("PostgreSQL", sqlLayer("forml-sql-pg-", () => pg.uri("hostile")))
}

// ---------------------------------------------------------------------------------------------------------------
// The command on database URIs
// ---------------------------------------------------------------------------------------------------------------

describe("forml-mlflow (the built command) on database URIs", () => {
  const runCli = async (args: ReadonlyArray<string>, cwd: string) => {
    const r = await runProgram(process.execPath, [mainJs, ...args], { cwd })
    return { code: r.code, stdout: r.out, stderr: r.stderr }
  }
  const cliRun = async (uri: string, cwd: string) => {
    const demo = await runCli(["--tracking-uri", uri, "demo"], cwd)
    expect(demo.code, demo.stderr).toBe(0)
    const list = await runCli(["--tracking-uri", uri, "list"], cwd)
    expect(list.code, list.stderr).toBe(0)
    expect(list.stdout).toMatch(/forml-demo\s+2\s+0\.2\.0/)
    return [demo, list]
  }

  if (sqliteMissing === undefined) {
    it("demo and list on sqlite:///mlflow.db, relative to the working directory", async () => {
      const cwd = mkdtempSync(join(tmpdir(), "forml-sql-cli-"))
      try {
        await cliRun("sqlite:///mlflow.db", cwd)
        expect(existsSync(join(cwd, "mlflow.db"))).toBe(true)
        expect(existsSync(join(cwd, "mlruns", "1"))).toBe(true)
      } finally {
        rmSync(cwd, { recursive: true, force: true })
      }
    }, 60_000)
  }

  if (typeof pg !== "string") {
    it("demo and list on postgresql://user:password@…, the password never printed", async () => {
      pg.createDatabase("cli")
      const cwd = mkdtempSync(join(tmpdir(), "forml-sql-cli-"))
      try {
        for (const r of await cliRun(pg.uri("cli", "postgresql+psycopg2"), cwd)) {
          expect(r.stdout + r.stderr).not.toContain(PG_PASSWORD)
        }
        const wrong = await runCli(["--tracking-uri", pg.uri("nosuchdb"), "list"], cwd)
        expect(wrong.code).toBe(1)
        expect(wrong.stderr).toMatch(/^error: storage error at postgresql:\/\/[^\n]*nosuchdb/)
        expect(wrong.stdout + wrong.stderr).not.toContain(PG_PASSWORD)
      } finally {
        rmSync(cwd, { recursive: true, force: true })
      }
    }, 60_000)
  }
})
