/**
 * The benchmark's default server, run as its own process: the test emulator (MLflow's REST API and artifact proxy over
 * MlflowMemory), so that what it stores is not counted in the client's memory, plus a control port that seeds its store.
 * Prints `{"url", "control"}` as one line once listening; ends when its stdin closes.
 */
import { Effect, Exit, Scope } from "effect"
import * as Http from "node:http"
import type { AddressInfo } from "node:net"
import { startEmulator } from "../emulator/index.js"
import type { Seed } from "../src/mlflow/MlflowMemory.js"

const scope = Effect.runSync(Scope.make())
// FORML_BENCH_ARTIFACT_ROOT: an `s3://` root makes the server hand out object-store artifact URIs (direct mode)
const emulator = await Effect.runPromise(
  Scope.extend(startEmulator({ artifactRoot: process.env["FORML_BENCH_ARTIFACT_ROOT"] }), scope)
)
const handle = emulator.handle

const actions: Record<string, (body: unknown) => Effect.Effect<unknown, unknown>> = {
  "/load": (body) => handle.load(body as Seed),
  "/drop": (body) =>
    Effect.gen(function*() {
      const location = (body as { location: string }).location
      for (const file of yield* handle.listArtifactsAt(location)) {
        if (!file.isDir) yield* handle.deleteArtifactAt(`${location}/${file.path}`)
      }
    })
}

const control = Http.createServer((req, res) => {
  const chunks: Array<Buffer> = []
  req.on("data", (c: Buffer) => chunks.push(c))
  req.on("end", () => {
    const action = actions[req.url ?? ""]
    if (action === undefined) {
      res.writeHead(404).end()
      return
    }
    const body: unknown = JSON.parse(Buffer.concat(chunks).toString("utf8") || "null")
    void Effect.runPromise(Effect.either(action(body))).then((result) => {
      if (result._tag === "Right") res.writeHead(200).end("{}")
      else res.writeHead(500).end(String(result.left))
    })
  })
})

control.listen(0, "127.0.0.1", () => {
  const port = (control.address() as AddressInfo).port
  process.stdout.write(`${JSON.stringify({ url: emulator.url, control: `http://127.0.0.1:${port}` })}\n`)
})

const stop = () => {
  control.close()
  void Effect.runPromise(Scope.close(scope, Exit.void)).then(() => process.exit(0))
}
process.stdin.on("end", stop)
process.stdin.on("close", stop)
process.stdin.resume()
