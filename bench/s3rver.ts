/// <reference path="../test/support/s3rver.d.ts" />
/**
 * s3rver for the benchmark, as its own process (what it stores is not counted in the client's memory), with one bucket
 * `bench` over FORML_BENCH_S3RVER_DIR. Prints `{"endpoint"}` as one line once listening; ends when its stdin closes.
 */
import S3rver from "s3rver"

const server = new S3rver({
  address: "127.0.0.1",
  port: 0,
  silent: true,
  directory: process.env["FORML_BENCH_S3RVER_DIR"] ?? "",
  configureBuckets: [{ name: "bench", configs: [] }]
})
const address = await server.run()
process.stdout.write(`${JSON.stringify({ endpoint: `http://127.0.0.1:${address.port}` })}\n`)
process.stdin.resume()
process.stdin.on("end", () => {
  void server.close().then(() => process.exit(0))
})
