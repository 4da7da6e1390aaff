/**
 * A throwaway PostgreSQL cluster for tests: Debian's binaries (`/usr/lib/postgresql/<v>/bin`), a data directory in a
 * temporary folder, password authentication, loopback only, on a port the OS picked. As root the server runs as the
 * `postgres` system user (PostgreSQL refuses root). Where it cannot start, `startPostgres` says why.
 */
import { spawnSync } from "node:child_process"
import { chownSync, existsSync, readdirSync, rmSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { freePort, lastLine, logTail, serverDir, serverOwner } from "./databases.js"

export const PG_USER = "forml"
export const PG_PASSWORD = "pg-Secret-4711"

export interface PgCluster {
  /** A `postgresql://` URI of a database of this cluster, with the user and password in it. */
  readonly uri: (database: string, scheme?: string) => string
  readonly createDatabase: (name: string) => void
  readonly stop: () => void
}

const findBin = (): string | undefined => {
  const base = "/usr/lib/postgresql"
  if (!existsSync(base)) return undefined
  for (const v of readdirSync(base).sort().reverse()) {
    const bin = join(base, v, "bin")
    if (existsSync(join(bin, "initdb")) && existsSync(join(bin, "pg_ctl"))) return bin
  }
  return undefined
}

/** Starts a cluster, or returns the reason it cannot. */
export const startPostgres = async (): Promise<PgCluster | string> => {
  const bin = findBin()
  if (bin === undefined) return "no PostgreSQL binaries under /usr/lib/postgresql/*/bin (apt-get install postgresql)"
  const owner = serverOwner("postgres")
  if (typeof owner === "string") return owner
  const dir = serverDir("forml-pg-")
  const data = join(dir, "data")
  const pwfile = join(dir, "pw")
  writeFileSync(pwfile, PG_PASSWORD)
  if (owner !== undefined) {
    chownSync(dir, owner.uid, owner.gid)
    chownSync(pwfile, owner.uid, owner.gid)
  }
  const run = (cmd: string, args: ReadonlyArray<string>, env: Record<string, string> = {}) => {
    const full = owner === undefined
      ? [join(bin, cmd), ...args]
      : ["runuser", "-u", "postgres", "--", join(bin, cmd), ...args]
    return spawnSync(full[0]!, full.slice(1), { env: { ...process.env, ...env }, encoding: "utf8", cwd: dir })
  }
  const init = run("initdb", [
    "-D",
    data,
    "-U",
    PG_USER,
    "-A",
    "scram-sha-256",
    `--pwfile=${pwfile}`,
    "--no-sync",
    "-E",
    "UTF8"
  ])
  if (init.status !== 0) {
    rmSync(dir, { recursive: true, force: true })
    return `initdb failed: ${lastLine(init.stderr || init.stdout)}`
  }
  const port = await freePort()
  const opts =
    `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off`
  const start = run("pg_ctl", ["-D", data, "-o", opts, "-l", join(dir, "log"), "-w", "-t", "30", "start"])
  if (start.status !== 0) {
    const log = logTail(join(dir, "log"))
    rmSync(dir, { recursive: true, force: true })
    return `PostgreSQL did not start: ${log ?? start.stderr.trim()}`
  }
  const stop = () => {
    run("pg_ctl", ["-D", data, "-m", "immediate", "-w", "stop"])
    rmSync(dir, { recursive: true, force: true })
  }
  return {
    uri: (database, scheme = "postgresql") =>
      `${scheme}://${PG_USER}:${encodeURIComponent(PG_PASSWORD)}@127.0.0.1:${port}/${database}`,
    createDatabase: (name) => {
      const made = spawnSync(join(bin, "createdb"), ["-h", "127.0.0.1", "-p", String(port), "-U", PG_USER, name], {
        env: { ...process.env, PGPASSWORD: PG_PASSWORD },
        encoding: "utf8"
      })
      if (made.status !== 0) throw new Error(`createdb ${name}: ${made.stderr.trim()}`)
    },
    stop
  }
}
