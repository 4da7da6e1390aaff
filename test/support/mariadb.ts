/**
 * A throwaway MariaDB server for tests: Debian's `mariadbd` and `mariadb-install-db`, a data directory in a temporary
 * folder, loopback only, a port the OS picked, one user with a password. As root it runs as the `mysql` system user.
 * Where it cannot start, `startMariadb` says why.
 */
import { type ChildProcess, spawn, spawnSync } from "node:child_process"
import { chownSync, existsSync, mkdirSync, rmSync, writeFileSync } from "node:fs"
import { createConnection } from "node:net"
import { join } from "node:path"
import { freePort, lastLine, logTail, serverDir, serverOwner } from "./databases.js"

export const MARIADB_USER = "forml"
export const MARIADB_PASSWORD = "my-Secret-4711"

export interface MariadbServer {
  readonly uri: (database: string, scheme?: string) => string
  readonly stop: () => Promise<void>
}

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
  if (daemon === undefined || install === undefined) {
    return "no MariaDB server binaries (apt-get install mariadb-server)"
  }
  const owner = serverOwner("mysql")
  if (typeof owner === "string") return owner
  const dir = serverDir("forml-mariadb-")
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
  if (owner !== undefined) { for (const p of [dir, data, init]) chownSync(p, owner.uid, owner.gid) }
  const user = owner === undefined ? [] : ["--user=mysql"]
  const made = spawnSync(install, [
    "--no-defaults",
    `--datadir=${data}`,
    ...user,
    "--skip-test-db",
    "--auth-root-authentication-method=normal"
  ], {
    encoding: "utf8"
  })
  if (made.status !== 0) {
    rmSync(dir, { recursive: true, force: true })
    return `mariadb-install-db failed: ${lastLine(made.stderr || made.stdout)}`
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
    const log = logTail(join(dir, "log"))
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
