/**
 * TLS for tests: a certificate authority, server and client certificates made with `openssl` in a temporary
 * directory, and an HTTPS front (TLS terminated here, bytes passed on) for an http:// server such as the emulator.
 */
import { Effect } from "effect"
import type { Scope } from "effect"
import { execFileSync } from "node:child_process"
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import * as Net from "node:net"
import type { AddressInfo } from "node:net"
import { tmpdir } from "node:os"
import { join } from "node:path"
import * as Tls from "node:tls"

/** Whether `openssl` can be run here (the TLS tests are skipped, and say so, without it). */
export const hasOpenssl: boolean = (() => {
  try {
    execFileSync("openssl", ["version"], { stdio: "ignore" })
    return true
  } catch {
    return false
  }
})()

export interface Certificates {
  readonly dir: string
  /** The CA certificate (PEM): what MLFLOW_TRACKING_SERVER_CERT_PATH points to. */
  readonly caPath: string
  /** The server's certificate and key, for 127.0.0.1 (and `localhost`), signed by the CA. */
  readonly server: { readonly cert: string; readonly key: string }
  /** A certificate signed by the CA for another host name only (`other.example`). */
  readonly otherHost: { readonly cert: string; readonly key: string }
  /** A self-signed certificate for 127.0.0.1 that no CA vouches for. */
  readonly selfSigned: { readonly cert: string; readonly key: string }
  /** The client's certificate and key in one PEM file: what MLFLOW_TRACKING_CLIENT_CERT_PATH points to. */
  readonly clientPemPath: string
  /** A client certificate and key signed by no trusted CA, in one PEM file. */
  readonly strangerPemPath: string
}

const openssl = (args: ReadonlyArray<string>) => execFileSync("openssl", args, { stdio: "pipe" })

const newKey = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]

/** Makes the certificates in a temporary directory, removed with the scope. */
export const makeCertificates: Effect.Effect<Certificates, never, Scope.Scope> = Effect.acquireRelease(
  Effect.sync((): Certificates => {
    const dir = mkdtempSync(join(tmpdir(), "forml-tls-"))
    const at = (name: string) => join(dir, name)
    openssl([
      "req",
      "-x509",
      ...newKey,
      "-keyout",
      at("ca.key"),
      "-out",
      at("ca.crt"),
      "-days",
      "2",
      "-subj",
      "/CN=forml-test-ca",
      "-addext",
      "basicConstraints=critical,CA:TRUE",
      "-addext",
      "keyUsage=critical,keyCertSign,cRLSign"
    ])
    const signed = (name: string, subject: string, extensions: string) => {
      writeFileSync(at(`${name}.ext`), extensions)
      openssl(["req", ...newKey, "-keyout", at(`${name}.key`), "-out", at(`${name}.csr`), "-subj", subject])
      openssl([
        "x509",
        "-req",
        "-in",
        at(`${name}.csr`),
        "-CA",
        at("ca.crt"),
        "-CAkey",
        at("ca.key"),
        "-CAcreateserial",
        "-out",
        at(`${name}.crt`),
        "-days",
        "2",
        "-extfile",
        at(`${name}.ext`)
      ])
      return { cert: readFileSync(at(`${name}.crt`), "utf-8"), key: readFileSync(at(`${name}.key`), "utf-8") }
    }
    const server = signed(
      "server",
      "/CN=127.0.0.1",
      "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n"
    )
    const otherHost = signed(
      "other",
      "/CN=other.example",
      "subjectAltName=DNS:other.example\nextendedKeyUsage=serverAuth\n"
    )
    const client = signed("client", "/CN=forml-client", "extendedKeyUsage=clientAuth\n")
    openssl([
      "req",
      "-x509",
      ...newKey,
      "-keyout",
      at("self.key"),
      "-out",
      at("self.crt"),
      "-days",
      "2",
      "-subj",
      "/CN=127.0.0.1",
      "-addext",
      "subjectAltName=IP:127.0.0.1"
    ])
    const selfSigned = { cert: readFileSync(at("self.crt"), "utf-8"), key: readFileSync(at("self.key"), "utf-8") }
    writeFileSync(at("client.pem"), client.cert + client.key)
    writeFileSync(at("stranger.pem"), selfSigned.cert + selfSigned.key)
    return {
      dir,
      caPath: at("ca.crt"),
      server,
      otherHost,
      selfSigned,
      clientPemPath: at("client.pem"),
      strangerPemPath: at("stranger.pem")
    }
  }),
  (c) => Effect.sync(() => rmSync(c.dir, { recursive: true, force: true }))
)

export interface HttpsFrontOptions {
  /** The certificate the front presents. */
  readonly identity: { readonly cert: string; readonly key: string }
  /** The CA whose client certificates are accepted; with `requireClientCert`, a client without one is refused. */
  readonly caPath?: string | undefined
  readonly requireClientCert?: boolean | undefined
}

export interface HttpsFront {
  /** `https://127.0.0.1:<port>`, to use as MLFLOW_TRACKING_URI. */
  readonly url: string
  /** How many TLS handshakes completed, and how many of those presented a trusted client certificate. */
  readonly handshakes: () => { readonly total: number; readonly withClientCert: number }
}

/** An HTTPS front on 127.0.0.1 for the http:// server at `target`, for the scope. */
export const httpsFront = (target: string, options: HttpsFrontOptions): Effect.Effect<HttpsFront, never, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.async<{ readonly front: HttpsFront; readonly server: Tls.Server; readonly sockets: Set<Net.Socket> }>(
      (resume) => {
        const upstream = new URL(target)
        const sockets = new Set<Net.Socket>()
        let total = 0
        let withClientCert = 0
        const server = Tls.createServer(
          {
            cert: options.identity.cert,
            key: options.identity.key,
            ...(options.caPath === undefined ? {} : { ca: [readFileSync(options.caPath, "utf-8")] }),
            requestCert: options.requireClientCert === true,
            rejectUnauthorized: options.requireClientCert === true
          },
          (socket) => {
            total++
            if (socket.authorized) withClientCert++
            const back = Net.connect(Number(upstream.port), upstream.hostname)
            sockets.add(socket)
            sockets.add(back)
            const close = () => {
              socket.destroy()
              back.destroy()
            }
            socket.on("error", close).on("close", close)
            back.on("error", close).on("close", close)
            socket.pipe(back).pipe(socket)
          }
        )
        server.on("tlsClientError", () => undefined)
        server.listen(0, "127.0.0.1", () => {
          const port = (server.address() as AddressInfo).port
          resume(Effect.succeed({
            front: { url: `https://127.0.0.1:${port}`, handshakes: () => ({ total, withClientCert }) },
            server,
            sockets
          }))
        })
      }
    ),
    ({ server, sockets }) =>
      Effect.async<void>((resume) => {
        for (const s of sockets) s.destroy()
        server.close(() => resume(Effect.void))
      })
  ).pipe(Effect.map(({ front }) => front))
