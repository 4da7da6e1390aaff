#!/usr/bin/env node
/**
 * The `forml-mlflow` executable: runs the command on Node and turns its outcome into one line on stderr and an exit
 * code (0 done, 1 failed, 2 bad usage), never a stack trace.
 */
import * as NodeFileSystem from "@effect/platform-node/NodeFileSystem"
import * as NodePath from "@effect/platform-node/NodePath"
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import * as NodeTerminal from "@effect/platform-node/NodeTerminal"
import { Effect, Either, Exit, Layer, Logger, LogLevel, Option } from "effect"
import { run, version } from "./Cli.js"
import { withHelpConsole } from "./Help.js"
import { ExitCode, printError, report } from "./Output.js"
import { fromEnv } from "./tracingConfig.js"

/**
 * Spans go to an OTLP/HTTP collector when OTEL_EXPORTER_OTLP_(TRACES_)ENDPOINT is set; the exporter's module is
 * loaded only then, so a start without tracing costs nothing more.
 */
const tracing = Either.match(fromEnv(process.env), {
  onLeft: (e) => Layer.fail(e),
  onRight: Option.match({
    onNone: () => Layer.empty,
    onSome: (settings) =>
      Layer.unwrapEffect(Effect.map(Effect.promise(() => import("./Tracing.js")), (m) => m.layer(settings, version())))
  })
})

/** The root span's name: `forml-mlflow <command>` (never the other arguments: they may hold credentials). */
const COMMANDS = new Set(["list", "push", "pull", "show", "state", "commit", "demo", "gc"])
const spanName = ["forml-mlflow", ...process.argv.slice(2).filter((a) => COMMANDS.has(a)).slice(0, 1)].join(" ")

const main = run(process.argv).pipe(
  Effect.withSpan(spanName),
  Effect.provide(tracing),
  // @effect/cli's help and errors: colour only on a terminal, never with NO_COLOR
  withHelpConsole,
  Effect.as(ExitCode.ok),
  Effect.catchAllCause((cause) => {
    const { code, line } = report(cause)
    return Effect.as(Option.match(line, { onNone: () => Effect.void, onSome: printError }), code)
  }),
  // what @effect/cli needs of the platform; NodeContext would also load the process and worker modules at start
  Effect.provide(Layer.mergeAll(NodeFileSystem.layer, NodePath.layer, NodeTerminal.layer)),
  // logs go to stderr (stdout carries the output, possibly JSON or raw bytes), warnings and above unless
  // --log-level asks for more
  Effect.provide(Logger.replace(Logger.defaultLogger, Logger.withConsoleError(Logger.logfmtLogger))),
  Logger.withMinimumLogLevel(LogLevel.Warning)
)

NodeRuntime.runMain(main, {
  disableErrorReporting: true,
  teardown: (exit, onExit) => {
    if (Exit.isSuccess(exit)) onExit(typeof exit.value === "number" ? exit.value : ExitCode.ok)
    else onExit(ExitCode.interrupted)
  }
})
