/**
 * `forml-mlflow gc`: lists the orphaned trainings of a repository older than --older-than, and deletes them unless it
 * is a dry run (the default).
 */
import { Command, HelpDoc, Options, ValidationError } from "@effect/cli"
import { Effect, Either, Option } from "effect"
import { type Orphan, orphans, parseDuration, remove } from "../gc.js"
import { printJson, printLine, table } from "../Output.js"
import { globalOptions, provideStore, Settings } from "../Shell.js"

const olderThan = Options.text("older-than").pipe(
  Options.withDescription("Only trainings started at least this long ago: 90s, 30m, 12h, 7d, 2w (default 1d)"),
  Options.withDefault("1d"),
  Options.mapEffect((s) =>
    Either.match(parseDuration(s), {
      onLeft: (e) => Effect.fail(ValidationError.invalidValue(HelpDoc.p(e.message))),
      onRight: Effect.succeed
    })
  )
)

export const gc = Command.make(
  "gc",
  {
    ...globalOptions,
    olderThan,
    dryRun: Options.boolean("dry-run").pipe(Options.withDescription("Only print what would be deleted (the default)")),
    noDryRun: Options.boolean("no-dry-run").pipe(Options.withDescription("Delete the orphaned trainings found"))
  },
  (a) =>
    Effect.gen(function*() {
      const { json, repoid } = yield* Settings
      const dryRun = a.dryRun || !a.noDryRun
      const found = yield* orphans(Option.getOrElse(repoid, () => ""), a.olderThan)
      const deleted: Array<Orphan> = []
      if (!dryRun) { for (const o of found) if (yield* remove(o)) deleted.push(o) }
      const row = (o: Orphan) => ({
        project: o.project,
        release: Option.getOrNull(o.release),
        runId: o.run.runId,
        started: new Date(o.run.info.startTime).toISOString()
      })
      if (json) return yield* printJson({ dryRun, orphans: found.map(row), deleted: deleted.map((o) => o.run.runId) })
      if (found.length === 0) return yield* printLine("no orphaned trainings")
      yield* printLine(table(
        ["PROJECT", "RELEASE", "RUN", "STARTED"],
        found.map(row).map((r) => [r.project, r.release ?? "-", r.runId, r.started])
      ))
      yield* printLine(
        dryRun
          ? `${found.length} orphaned training(s) would be deleted (dry run; --no-dry-run deletes them)`
          : `deleted ${deleted.length} orphaned training(s)`
      )
    })
).pipe(
  Command.withDescription(
    "List orphaned trainings (generation runs never committed) older than --older-than, and delete them with " +
      "--no-dry-run; a committed generation is never touched"
  ),
  provideStore
)
