/**
 * MlflowSql on MariaDB (Debian's server, started by the test on loopback; skipped, saying why, where it cannot start).
 * No MLflow-written MySQL schema exists to test against, and the layer does not create one on MySQL; so the database
 * holds MLflow's registry tables as SQLAlchemy renders MLflow's models for MySQL (written here by hand, with the
 * sqlite and PostgreSQL dumps as the model), its Default experiment and an alembic_version row. The Mlflow contract runs on it.
 */
import mysql from "mysql2/promise"
import { afterAll, describe, it } from "vitest"
import { mlflowContract } from "./contract/mlflow.js"
import { sqlLayer } from "./support/databases.js"
import { startMariadb } from "./support/mariadb.js"

const MLFLOW_REGISTRY_TABLES = [
  `CREATE TABLE experiments (
    experiment_id INTEGER NOT NULL AUTO_INCREMENT, name VARCHAR(256) NOT NULL, artifact_location VARCHAR(256),
    lifecycle_stage VARCHAR(32), creation_time BIGINT, last_update_time BIGINT,
    CONSTRAINT experiment_pk PRIMARY KEY (experiment_id), UNIQUE (name),
    CONSTRAINT experiments_lifecycle_stage CHECK (lifecycle_stage IN ('active', 'deleted')))`,
  "CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL, CONSTRAINT alembic_version_pkc PRIMARY KEY (version_num))",
  `CREATE TABLE experiment_tags (
    \`key\` VARCHAR(250) NOT NULL, value VARCHAR(5000), experiment_id INTEGER NOT NULL,
    CONSTRAINT experiment_tag_pk PRIMARY KEY (\`key\`, experiment_id),
    FOREIGN KEY(experiment_id) REFERENCES experiments (experiment_id))`,
  `CREATE TABLE runs (
    run_uuid VARCHAR(32) NOT NULL, name VARCHAR(250), source_type VARCHAR(20), source_name VARCHAR(500),
    entry_point_name VARCHAR(50), user_id VARCHAR(256), status VARCHAR(9), start_time BIGINT, end_time BIGINT,
    source_version VARCHAR(50), lifecycle_stage VARCHAR(20), artifact_uri VARCHAR(200), experiment_id INTEGER,
    deleted_time BIGINT,
    CONSTRAINT run_pk PRIMARY KEY (run_uuid),
    CONSTRAINT source_type CHECK (source_type IN ('NOTEBOOK', 'JOB', 'LOCAL', 'UNKNOWN', 'PROJECT')),
    CONSTRAINT runs_lifecycle_stage CHECK (lifecycle_stage IN ('active', 'deleted')),
    CHECK (status IN ('SCHEDULED', 'FAILED', 'FINISHED', 'RUNNING', 'KILLED')),
    FOREIGN KEY(experiment_id) REFERENCES experiments (experiment_id))`,
  `CREATE TABLE tags (
    \`key\` VARCHAR(250) NOT NULL, value VARCHAR(8000), run_uuid VARCHAR(32) NOT NULL,
    CONSTRAINT tag_pk PRIMARY KEY (\`key\`, run_uuid), FOREIGN KEY(run_uuid) REFERENCES runs (run_uuid))`,
  "CREATE INDEX index_tags_run_uuid ON tags (run_uuid)",
  `CREATE TABLE params (
    \`key\` VARCHAR(250) NOT NULL, value VARCHAR(8000) NOT NULL, run_uuid VARCHAR(32) NOT NULL,
    CONSTRAINT param_pk PRIMARY KEY (\`key\`, run_uuid), FOREIGN KEY(run_uuid) REFERENCES runs (run_uuid))`,
  `CREATE TABLE metrics (
    \`key\` VARCHAR(250) NOT NULL, value DOUBLE NOT NULL, timestamp BIGINT NOT NULL, run_uuid VARCHAR(32) NOT NULL,
    step BIGINT DEFAULT '0' NOT NULL, is_nan BOOL DEFAULT '0' NOT NULL,
    CONSTRAINT metric_pk PRIMARY KEY (\`key\`, timestamp, step, run_uuid, value, is_nan),
    FOREIGN KEY(run_uuid) REFERENCES runs (run_uuid))`,
  `CREATE TABLE latest_metrics (
    \`key\` VARCHAR(250) NOT NULL, value DOUBLE NOT NULL, timestamp BIGINT, step BIGINT NOT NULL, is_nan BOOL NOT NULL,
    run_uuid VARCHAR(32) NOT NULL, CONSTRAINT latest_metric_pk PRIMARY KEY (\`key\`, run_uuid),
    FOREIGN KEY(run_uuid) REFERENCES runs (run_uuid))`,
  "INSERT INTO alembic_version (version_num) VALUES ('f5a4f2784254')",
  // as MLflow makes the Default experiment on MySQL: id 0 needs NO_AUTO_VALUE_ON_ZERO
  "SET @@SESSION.sql_mode = 'NO_AUTO_VALUE_ON_ZERO'",
  "INSERT INTO experiments (experiment_id, name, artifact_location, lifecycle_stage, creation_time, last_update_time) VALUES (0, 'Default', '/tmp/mlruns/0', 'active', 0, 0)"
]

const server = await startMariadb(["contract"])
afterAll(async () => {
  if (typeof server !== "string") await server.stop()
})

if (typeof server === "string") {
  describe.skip(`MlflowSql (MariaDB): skipped, ${server}`, () => {
    it("contract", () => undefined)
  })
} else {
  for (const database of ["contract"]) {
    const connection = await mysql.createConnection(server.uri(database))
    for (const statement of MLFLOW_REGISTRY_TABLES) await connection.query(statement)
    await connection.end()
  }
  const layer = (database: string) => sqlLayer("forml-sql-maria-", () => server.uri(database, "mysql+pymysql"))
  // the registry contract, which stands on the Mlflow service alone, runs on sqlite and PostgreSQL (test time)
  mlflowContract("MlflowSql (MariaDB)", layer("contract"), { largeArtifactBytes: 1024 * 1024 + 3 })
}
