/**
 * The benchmark's helper processes: a node script that prints one JSON line once it is ready, and ends when its
 * stdin closes.
 */
import { spawn } from "node:child_process"

/** Starts a node script that prints one JSON line once ready; it ends when its stdin closes. */
export const startChild = <A>(script: string, env: NodeJS.ProcessEnv) =>
  new Promise<{ readonly info: A; readonly stop: () => Promise<void> }>((resolve, reject) => {
    const child = spawn(process.execPath, [script], { env, stdio: ["pipe", "pipe", "inherit"] })
    let buffer = ""
    const onData = (data: Buffer) => {
      buffer += data.toString("utf8")
      const line = buffer.indexOf("\n")
      if (line < 0) return
      child.stdout.off("data", onData)
      resolve({
        info: JSON.parse(buffer.slice(0, line)) as A,
        stop: () =>
          new Promise<void>((done) => {
            if (child.exitCode !== null) return done()
            child.once("exit", () => done())
            // closing its stdin ends the process; the kill is for one that does not listen
            child.stdin.end()
            setTimeout(() => child.kill(), 2000).unref()
          })
      })
    }
    child.stdout.on("data", onData)
    child.once("error", reject)
    child.once("exit", (code) => reject(new Error(`${script} exited (${code}) before it was ready`)))
  })
