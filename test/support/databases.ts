/**
 * What the SQL tests share: the machinery of the throwaway servers (`postgres.ts`, `mariadb.ts`: a free loopback
 * port, the system user a server runs as under root, a data folder, the last line of a log) and an MlflowSql layer
 * whose artifacts live in a temporary directory removed with it.
 */
import { FileSystem } from "@effect/platform"
import { NodeContext } from "@effect/platform-node"
import { Effect, Layer } from "effect"
import { execFileSync } from "node:child_process"
import { chmodSync, existsSync, mkdtempSync, readFileSync } from "node:fs"
import { createServer } from "node:net"
import { tmpdir } from "node:os"
import { join } from "node:path"
import * as MlflowSql from "../../src/mlflow/MlflowSql.js"

/** A loopback port the OS picked (free when asked). */
export const freePort = (): Promise<number> =>
  new Promise((resolve, reject) => {
    const server = createServer()
    server.once("error", reject)
    server.listen(0, "127.0.0.1", () => {
      const address = server.address()
      const port = typeof address === "object" && address !== null ? address.port : 0
      server.close(() => resolve(port))
    })
  })

export interface Owner {
  readonly uid: number
  readonly gid: number
}

/**
 * The system user a server runs as when the tests run as root (database servers refuse root): undefined when not
 * root, the reason the server cannot start when there is no such user.
 */
export const serverOwner = (user: string): Owner | undefined | string => {
  if (process.getuid?.() !== 0) return undefined
  try {
    return {
      uid: Number(execFileSync("id", ["-u", user]).toString().trim()),
      gid: Number(execFileSync("id", ["-g", user]).toString().trim())
    }
  } catch {
    return `running as root and there is no '${user}' system user to run the server as`
  }
}

/** A temporary folder for a server, readable by its system user. */
export const serverDir = (prefix: string): string => {
  const dir = mkdtempSync(join(tmpdir(), prefix))
  chmodSync(dir, 0o755)
  return dir
}

/** The last line of a text (a failed command's output, a log). */
export const lastLine = (text: string): string | undefined => text.trim().split("\n").pop()

/** The last line of a server's log file, empty when it wrote none. */
export const logTail = (file: string): string | undefined =>
  existsSync(file) ? lastLine(readFileSync(file, "utf8")) : ""

/** MlflowSql on the database `uri` names, its artifact root in a temporary directory removed with the layer. */
export const sqlLayer = (prefix: string, uri: (dir: string) => string) =>
  Layer.unwrapScoped(
    Effect.map(
      Effect.flatMap(FileSystem.FileSystem, (fs) => fs.makeTempDirectoryScoped({ prefix })),
      (dir) => MlflowSql.layer({ uri: uri(dir), artifactRoot: `${dir}/mlruns` })
    )
  ).pipe(Layer.provide(NodeContext.layer))
