/**
 * azurite's blob service for the benchmark, as its own process, with one container `bench` over
 * FORML_BENCH_S3RVER_DIR. Prints `{"endpoint"}` as one line once the container exists; ends when its stdin closes.
 */
import { BlobServiceClient } from "@azure/storage-blob"
import { spawn } from "node:child_process"
import * as Net from "node:net"
import { join } from "node:path"

const KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
const port = await new Promise<number>((resolve) => {
  const probe = Net.createServer()
  probe.listen(0, "127.0.0.1", () => {
    const p = (probe.address() as Net.AddressInfo).port
    probe.close(() => resolve(p))
  })
})
const main = join(process.cwd(), "node_modules", "azurite", "dist", "src", "blob", "main.js")
const child = spawn(process.execPath, [
  main,
  "--blobHost",
  "127.0.0.1",
  "--blobPort",
  String(port),
  "--location",
  process.env["FORML_BENCH_S3RVER_DIR"] ?? "",
  "--silent",
  "--disableTelemetry"
], { stdio: ["ignore", "pipe", "inherit"] })
await new Promise<void>((resolve) => {
  let out = ""
  child.stdout.on("data", (d: Buffer) => {
    out += d.toString()
    if (/successfully listen/.test(out)) resolve()
  })
})
const endpoint = `http://127.0.0.1:${port}`
await BlobServiceClient.fromConnectionString(
  `DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=${KEY};BlobEndpoint=${endpoint}/devstoreaccount1;`
).getContainerClient("bench").createIfNotExists()
process.stdout.write(`${JSON.stringify({ endpoint })}\n`)
process.stdin.resume()
process.stdin.on("end", () => {
  child.kill()
  process.exit(0)
})
