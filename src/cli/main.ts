#!/usr/bin/env node
/**
 * The `forml-mlflow` executable: runs the command on Node and turns its outcome into one line on stderr and an exit
 * code (0 done, 1 failed, 2 bad usage), never a stack trace.
 */
import * as NodeFileSystem from "@effect/platform-node/NodeFileSystem"
import * as NodePath from "@effect/platform-node/NodePath"
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import * as NodeTerminal from "@effect/platform-node/NodeTerminal"
import { Effect, Exit, Layer, Logger, LogLevel, Option } from "effect"
import { run } from "./Cli.js"
import { withHelpConsole } from "./Help.js"
import { ExitCode, printError, report } from "./Output.js"

const main = run(process.argv).pipe(
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
