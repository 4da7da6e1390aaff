/**
 * The streaming scenario with artifacts straight in S3 or Azure Blob: s3rver or azurite, and the test server (run as `--no-serve-artifacts`
 * with an `s3://` or `wasbs://` artifact root) each in a process of their own, the library side of `stream.ts` in a third,
 * reaching the store through MLflow's variables (MLFLOW_S3_ENDPOINT_URL and the AWS keys, or
 * AZURE_STORAGE_CONNECTION_STRING). Its figure is that process's peak RSS.
 */
import { spawn } from "node:child_process"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { dirname, join } from "node:path"
import { fileURLToPath } from "node:url"
import { startChild } from "./child.js"
import type { StreamFigures, StreamSettings } from "./stream.js"
import { EMULATOR_ENV } from "./target.js"

const here = dirname(fileURLToPath(import.meta.url))

/** Azurite's development account (public, documented by Microsoft). */
const AZURITE_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="

/** Runs the library side of the streaming scenario against S3 (s3rver) or Azure Blob (azurite) in direct mode. */
export const streamS3Figures = async (
  settings: Omit<StreamSettings, "side">,
  store: "s3" | "azure" = "s3"
): Promise<StreamFigures> => {
  const directory = mkdtempSync(join(tmpdir(), `forml-bench-${store}-`))
  const s3 = await startChild<{ endpoint: string }>(join(here, store === "s3" ? "s3rver.js" : "azurite.js"), {
    ...process.env,
    FORML_BENCH_S3RVER_DIR: directory
  })
  const storeEnv: NodeJS.ProcessEnv = store === "s3"
    ? {
      MLFLOW_S3_ENDPOINT_URL: s3.info.endpoint,
      AWS_ACCESS_KEY_ID: "S3RVER",
      AWS_SECRET_ACCESS_KEY: "S3RVER",
      AWS_DEFAULT_REGION: "us-east-1",
      // s3rver stores aws-chunked framing as part of an object: plain bodies for it (never needed for S3 itself)
      AWS_REQUEST_CHECKSUM_CALCULATION: "WHEN_REQUIRED"
    }
    : {
      AZURE_STORAGE_CONNECTION_STRING:
        `DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=${AZURITE_KEY};BlobEndpoint=${s3.info.endpoint}/devstoreaccount1;`
    }
  try {
    const server = await startChild<{ url: string; control: string }>(join(here, "server.js"), {
      ...process.env,
      FORML_BENCH_ARTIFACT_ROOT: store === "s3"
        ? "s3://bench/mlruns"
        : "wasbs://bench@devstoreaccount1.blob.core.windows.net/mlruns"
    })
    try {
      return await new Promise<StreamFigures>((done, reject) => {
        const env: NodeJS.ProcessEnv = {
          ...process.env,
          [EMULATOR_ENV.url]: server.info.url,
          [EMULATOR_ENV.control]: server.info.control,
          ...storeEnv
        }
        const child = spawn(
          process.execPath,
          [join(here, "stream-process.js"), JSON.stringify({ side: "library", ...settings })],
          { env, stdio: ["ignore", "pipe", "inherit"] }
        )
        let out = ""
        child.stdout.on("data", (d: Buffer) => {
          out += d.toString("utf8")
        })
        child.once("error", reject)
        child.once("exit", (code) => {
          if (code !== 0) return reject(new Error(`the ${store} streaming process failed (${code})`))
          done(JSON.parse(out.trim().split("\n").pop()!) as StreamFigures)
        })
      })
    } finally {
      await server.stop()
    }
  } finally {
    await s3.stop()
    rmSync(directory, { recursive: true, force: true })
  }
}
