/**
 * MlflowRegistry's bytes: the staging directory (pulled packages, mounted releases, spooled uploads), uploads that
 * report their sha256 and length, the check that a run stores what was sent, and downloads checked against their tags.
 *
 * @internal
 */
import { Effect, Option, Scope, Sink, Stream } from "effect"
import { createHash } from "node:crypto"
import { v4 } from "uuid"
import { IntegrityError } from "../../errors.js"
import type { InvalidInput, MlflowFailure } from "../../errors.js"
import type { ArtifactRoot, Run } from "../../mlflow/Mlflow.js"
import * as Layout from "../layout.js"
import { mismatch, sha256, verified } from "./digest.js"
import type { Instance } from "./instance.js"
import { memo } from "./memo.js"
import type { Written } from "./runs.js"
import { storage } from "./runs.js"

/** @internal */
export type Artifacts = Effect.Effect.Success<ReturnType<typeof make>>

/**
 * The artifacts of one instance. `staging`: the directory given, created if missing; or, when none is, a temporary
 * one removed when the scope (the layer's) closes.
 *
 * @internal
 */
export const make = (i: Instance, staging: string | undefined) =>
  Effect.gen(function*() {
    const { fs, mlflow, path } = i
    const layerScope = yield* Effect.scope

    const stagingRoot = yield* memo((_: "root") =>
      staging !== undefined
        ? Effect.as(
          Effect.mapError(fs.makeDirectory(staging, { recursive: true }), storage(staging)),
          path.resolve(staging)
        )
        : fs.makeTempDirectoryScoped({ prefix: "forml-mlflow-" }).pipe(
          Effect.mapError(storage("temporary staging directory")),
          Scope.extend(layerScope)
        )
    )

    /** A fresh path (not yet created) under the staging directory. */
    const stagingPath = Effect.map(stagingRoot.get("root"), (root) => path.join(root, v4()))

    const makeDirectory = (dir: string) => Effect.mapError(fs.makeDirectory(dir, { recursive: true }), storage(dir))

    /**
     * Uploads bytes or a stream and returns their sha256 and length. A stream is spooled to the staging directory
     * first (hashed and counted on the way, the file removed afterwards), so that every upload carries its length
     * (a chunked body is stored empty by MLflow 3.x) and a failed PUT can be sent again.
     */
    const upload = <E>(
      root: ArtifactRoot,
      name: string,
      data: Uint8Array | Stream.Stream<Uint8Array, E>
    ): Effect.Effect<Written, E | InvalidInput | MlflowFailure> => {
      if (data instanceof Uint8Array) {
        return Effect.as(mlflow.uploadArtifact(root, name, data), { sha256: sha256(data), size: data.length })
      }
      return Effect.scoped(Effect.gen(function*() {
        const file = yield* stagingPath
        yield* Effect.addFinalizer(() => Effect.ignore(fs.remove(file)))
        const hash = createHash("sha256")
        let size = 0
        yield* data.pipe(
          Stream.filter((chunk) => chunk.length > 0), // the file sink refuses an empty write
          Stream.map((chunk) => {
            hash.update(chunk)
            size += chunk.length
            return chunk
          }),
          Stream.run(Sink.mapError(fs.sink(file), storage(file)))
        )
        yield* mlflow.uploadArtifact(root, name, { file })
        return { sha256: hash.digest("hex"), size }
      }))
    }

    /**
     * Checks one listing of a run's artifacts against what was written: each artifact must be stored with the size
     * sent (a server can answer 200 and keep less); one never written is NotFound (`missing`).
     */
    const checkStored = <E>(
      root: ArtifactRoot,
      expected: ReadonlyArray<{ readonly name: string; readonly size: number | undefined }>,
      missing: (index: number) => E
    ) =>
      Effect.gen(function*() {
        const stored = new Map(
          (yield* mlflow.listArtifacts(root)).filter((f) => !f.isDir).map((f) => [f.path, f.fileSize ?? 0] as const)
        )
        for (const [index, { name, size }] of expected.entries()) {
          const actual = stored.get(name)
          if (actual === undefined) return yield* Effect.fail(missing(index))
          if (size !== undefined && actual !== size) {
            return yield* new IntegrityError({
              artifact: name,
              expected: String(size),
              actual: String(actual),
              measure: "size"
            })
          }
        }
      })

    /** An artifact of a run, verified against its `forml.sha256.<name>` tag when the run has one. */
    const download = (run: Run, name: string) =>
      verified(mlflow.downloadArtifact(run.info, name), name, run.tag(Layout.sha256Tag(name)))

    /** The same, read whole. */
    const readWhole = (run: Run, name: string) =>
      Effect.flatMap(mlflow.readArtifact(run.info, name), (bytes) =>
        Option.match(
          Option.flatMap(run.tag(Layout.sha256Tag(name)), (tag) => mismatch(name, tag, sha256(bytes))),
          {
            onNone: () => Effect.succeed(bytes),
            onSome: Effect.fail
          }
        ))

    return { stagingPath, makeDirectory, upload, checkStored, download, readWhole }
  })
