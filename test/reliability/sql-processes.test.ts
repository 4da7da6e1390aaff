/**
 * MlflowSql across OS processes (test/support/worker.ts): 8 processes pushing, writing and closing at once on one
 * sqlite file, and on one PostgreSQL database, converge (one release, generations 1..8, every state readable with
 * its sha256); a process SIGKILLed inside its write transactions leaves the sqlite file consistent, every batch of
 * tags whole or absent.
 */
import { NodeContext } from "@effect/platform-node"
import { Effect, Layer } from "effect"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { afterAll, describe, expect, it } from "vitest"
import { Mlflow } from "../../src/mlflow/Mlflow.js"
import * as MlflowSql from "../../src/mlflow/MlflowSql.js"
import { startPostgres } from "../support/postgres.js"
import { type Event, type Plan, startWorker, workerScript } from "../support/processes.js"
import { describeSqlite, openDb, sqliteMissing } from "../support/sqlite.js"
import { expectConvergedWriters, helloworldZip, readBack, unique } from "./support.js"

type Committed = Extract<Event, { event: "committed" }>
type Batch = Extract<Event, { event: "batch" }>

const WRITERS = 8
const temp = mkdtempSync(join(tmpdir(), "forml-sql-processes-"))
const pg = await startPostgres()
afterAll(() => {
  if (typeof pg !== "string") pg.stop()
  rmSync(temp, { recursive: true, force: true })
})

it("bundles the worker", async () => {
  expect(await workerScript()).toMatch(/worker-[0-9a-f]{16}\.mjs$/)
}, 60_000)

const converge = async (uri: string) => {
  const repoid = unique("race")
  const plan: Plan = {
    store: { kind: "sql", uri },
    repoid,
    project: "helloworld",
    release: "1",
    steps: [{ op: "push", package: helloworldZip }, { op: "train", states: 2, size: 1024 }]
  }
  const workers = await Promise.all(Array.from({ length: WRITERS }, () => startWorker(plan)))
  const exits = await Promise.all(workers.map((w) => w.exited))
  for (const [i, exit] of exits.entries()) expect(exit.code, workers[i]!.output()).toBe(0)
  const reported = workers.flatMap((w) => w.events.filter((e): e is Committed => e.event === "committed"))
  const back = await Effect.runPromise(
    readBack(repoid).pipe(Effect.provide(Layer.provideMerge(MlflowSql.layer({ uri }), NodeContext.layer)))
  )
  expectConvergedWriters(back, reported, WRITERS)
}

describe("Concurrent writers on one database", () => {
  if (sqliteMissing !== undefined) {
    it.skip(`${WRITERS} processes at once (sqlite): skipped, ${sqliteMissing}`, () => undefined)
  } else {
    it(
      `${WRITERS} processes push one release, write states and close generations at once (sqlite)`,
      () => converge(`sqlite:///${join(temp, "race.db")}`),
      90_000
    )
  }

  if (typeof pg === "string") {
    it.skip(`${WRITERS} processes at once (PostgreSQL): skipped, ${pg}`, () => undefined)
  } else {
    it(`${WRITERS} processes push one release, write states and close generations at once (PostgreSQL)`, () => {
      pg.createDatabase("race")
      return converge(pg.uri("race"))
    }, 90_000)
  }
})

describeSqlite("Crashes", () => {
  it("a process SIGKILLed inside its write transactions leaves the sqlite file consistent", async () => {
    const file = join(temp, "kill.db")
    const worker = await startWorker({
      store: { kind: "sql", uri: `sqlite:///${file}` },
      repoid: "",
      project: "helloworld",
      release: "1",
      steps: [{ op: "batches" }]
    })
    await worker.waitFor((e) => e.event === "batch" && e.batch >= 20, 30_000)
    // a moment later, in the middle of some batch's transaction
    await new Promise((r) => setTimeout(r, 7 + Math.floor(Math.random() * 20)))
    worker.child.kill("SIGKILL")
    expect((await worker.exited).signal).toBe("SIGKILL")
    const reported = worker.events.filter((e): e is Batch => e.event === "batch")
    const runId = reported[0]!.runId

    // the journal left by the kill is rolled back by the next opening; MLflow's own tables check clean
    const db = openDb(file)
    expect(db.pragma("integrity_check", { simple: true })).toBe("ok")
    expect(db.pragma("foreign_key_check")).toEqual([])
    const counts = db.prepare(
      "SELECT substr(key, 1, instr(key, '.') - 1) AS batch, count(*) AS n FROM tags WHERE run_uuid = ? AND key LIKE 'b%' GROUP BY 1"
    )
      .all(runId) as Array<{ batch: string; n: number }>
    db.close()
    for (const { batch, n } of counts) expect(n, batch).toBe(50)
    const stored = new Set(counts.map((c) => c.batch))
    for (const e of reported) expect(stored.has(`b${e.batch}`), `batch ${e.batch}`).toBe(true)
    expect(stored.size - reported.length).toBeLessThanOrEqual(1)

    // and the layer opens it and goes on writing
    const run = await Effect.runPromise(
      Effect.gen(function*() {
        const mlflow = yield* Mlflow
        yield* mlflow.setTag(runId, "after", "kill")
        return yield* mlflow.getRun(runId)
      }).pipe(Effect.provide(MlflowSql.layer({ uri: `sqlite:///${file}` })), Effect.provide(NodeContext.layer))
    )
    expect(run.tags.find((t) => t.key === "after")?.value).toBe("kill")
  }, 60_000)
})
