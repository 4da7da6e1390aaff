/**
 * MlflowSql on sqlite (in process) and PostgreSQL 15 (a throwaway cluster, when its binaries are here): the Mlflow
 * contract, the registry contract, the sample databases MLflow 2.17.2 and 3.x wrote, schema checks and URIs.
 */
import { FileSystem } from "@effect/platform"
import { NodeContext } from "@effect/platform-node"
import { Effect, Layer } from "effect"
import { afterAll, describe, it } from "vitest"
import * as MlflowSql from "../src/mlflow/MlflowSql.js"
import { mlflowContract } from "./contract/mlflow.js"
import { registryContract } from "./contract/registry.js"
import { startPostgres } from "./support/postgres.js"
import { sqliteMissing } from "./support/sqlite.js"

/** A sqlite database in a fresh temporary directory (artifacts under it), removed with the layer. */
const tempSqlite = Layer.unwrapScoped(
  Effect.map(
    Effect.flatMap(FileSystem.FileSystem, (fs) => fs.makeTempDirectoryScoped({ prefix: "forml-sql-" })),
    (dir) => MlflowSql.layer({ uri: `sqlite:///${dir}/mlflow.db`, artifactRoot: `${dir}/mlruns` })
  )
).pipe(Layer.provide(NodeContext.layer))

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
  const pgLayer = (database: string) =>
    Layer.unwrapScoped(
      Effect.map(
        Effect.flatMap(FileSystem.FileSystem, (fs) => fs.makeTempDirectoryScoped({ prefix: "forml-sql-pg-" })),
        (dir) => MlflowSql.layer({ uri: pg.uri(database, "postgresql+psycopg2"), artifactRoot: `${dir}/mlruns` })
      )
    ).pipe(Layer.provide(NodeContext.layer))
  mlflowContract("MlflowSql (PostgreSQL)", pgLayer("contract"), { largeArtifactBytes: 1024 * 1024 + 3 })
  registryContract("MlflowSql (PostgreSQL)", () => pgLayer("registry"))
}
