/**
 * A throwaway MariaDB server for tests: Debian's `mariadbd` and `mariadb-install-db`, a data directory in a temporary
 * folder, loopback only, a port the OS picked, one user with a password. As root it runs as the `mysql` system user.
 * Where it cannot start, `startMariadb` says why.
 */
import { type ChildProcess, execFileSync, spawn, spawnSync } from "node:child_process"
import { chmodSync, chownSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { createConnection, createServer } from "node:net"
import { tmpdir } from "node:os"
import { join } from "node:path"

export const MARIADB_USER = "forml"
export const MARIADB_PASSWORD = "my-Secret-4711"

export interface MariadbServer {
  readonly uri: (database: string, scheme?: string) => string
  readonly stop: () => Promise<void>
}

const freePort = (): Promise<number> =>
  new Promise((resolve, reject) => {
    const server = createServer()
    server.once("error", reject)
    server.listen(0, "127.0.0.1", () => {
      const address = server.address()
      const port = typeof address === "object" && address !== null ? address.port : 0
      server.close(() => resolve(port))
    })
  })

const answers = (port: number): Promise<boolean> =>
  new Promise((resolve) => {
    const socket = createConnection({ host: "127.0.0.1", port })
    socket.once("connect", () => {
      socket.destroy()
      resolve(true)
    })
    socket.once("error", () => resolve(false))
  })

/** Starts a server with `databases` created, or returns the reason it cannot. */
export const startMariadb = async (databases: ReadonlyArray<string>): Promise<MariadbServer | string> => {
  const daemon = ["/usr/sbin/mariadbd", "/usr/sbin/mysqld"].find(existsSync)
  const install = ["/usr/bin/mariadb-install-db", "/usr/bin/mysql_install_db"].find(existsSync)
  if (daemon === undefined || install === undefined) return "no MariaDB server binaries (apt-get install mariadb-server)"
  let owner: { uid: number; gid: number } | undefined
  if (process.getuid?.() === 0) {
    try {
      owner = {
        uid: Number(execFileSync("id", ["-u", "mysql"]).toString().trim()),
        gid: Number(execFileSync("id", ["-g", "mysql"]).toString().trim())
      }
    } catch {
      return "running as root and there is no 'mysql' system user to run the server as"
    }
  }
  const dir = mkdtempSync(join(tmpdir(), "forml-mariadb-"))
  chmodSync(dir, 0o755)
  const data = join(dir, "data")
  mkdirSync(data)
  const init = join(dir, "init.sql")
  writeFileSync(
    init,
    [
      `CREATE USER '${MARIADB_USER}'@'%' IDENTIFIED BY '${MARIADB_PASSWORD}';`,
      ...databases.map((d) => `CREATE DATABASE ${d} CHARACTER SET utf8mb4;`),
      `GRANT ALL ON *.* TO '${MARIADB_USER}'@'%';`
    ].join("\n")
  )
  if (owner !== undefined) for (const p of [dir, data, init]) chownSync(p, owner.uid, owner.gid)
  const user = owner === undefined ? [] : ["--user=mysql"]
  const made = spawnSync(install, ["--no-defaults", `--datadir=${data}`, ...user, "--skip-test-db", "--auth-root-authentication-method=normal"], {
    encoding: "utf8"
  })
  if (made.status !== 0) {
    rmSync(dir, { recursive: true, force: true })
    return `mariadb-install-db failed: ${(made.stderr || made.stdout).trim().split("\n").pop()}`
  }
  const port = await freePort()
  const child: ChildProcess = spawn(daemon, [
    "--no-defaults",
    `--datadir=${data}`,
    ...user,
    `--port=${port}`,
    "--bind-address=127.0.0.1",
    `--socket=${join(dir, "sock")}`,
    `--pid-file=${join(dir, "pid")}`,
    `--init-file=${init}`,
    `--log-error=${join(dir, "log")}`,
    "--innodb-buffer-pool-size=32M",
    "--innodb-flush-log-at-trx-commit=0",
    "--skip-log-bin"
  ], { stdio: "ignore" })
  let exited = false
  child.once("exit", () => (exited = true))
  for (let i = 0; i < 120 && !exited; i++) {
    if (await answers(port)) break
    await new Promise((r) => setTimeout(r, 250))
  }
  if (exited || !(await answers(port))) {
    const log = existsSync(join(dir, "log")) ? readFileSync(join(dir, "log"), "utf8").trim().split("\n").pop() : ""
    child.kill("SIGKILL")
    rmSync(dir, { recursive: true, force: true })
    return `MariaDB did not start: ${log}`
  }
  return {
    uri: (database, scheme = "mysql") =>
      `${scheme}://${MARIADB_USER}:${encodeURIComponent(MARIADB_PASSWORD)}@127.0.0.1:${port}/${database}`,
    stop: () =>
      new Promise((resolve) => {
        const done = () => {
          rmSync(dir, { recursive: true, force: true })
          resolve()
        }
        if (exited) return done()
        child.once("exit", done)
        child.kill("SIGKILL")
      })
  }
}
