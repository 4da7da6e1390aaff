/**
 * The artifact methods of the file store: a run's artifacts live in its object store (`s3://`, `wasbs://`, `gs://`),
 * or in a local directory inside the store root (see `artifactDir`), read and written through `LocalArtifacts`.
 *
 * @internal
 */
import { Effect, Stream } from "effect"
import { type InvalidInput, type MlflowFailure, NotFound } from "../../errors.js"
import * as ArtifactStore from "../ArtifactStore.js"
import * as Confined from "../Confined.js"
import * as LocalArtifacts from "../LocalArtifacts.js"
import type { ArtifactRoot, Mlflow } from "../Mlflow.js"
import type { Disk } from "./fileStoreDisk.js"
import { apiError } from "./fileStoreLayout.js"
import type { Records } from "./fileStoreRecords.js"

/** The artifact methods over one store; `objectStores` resolves the object store of a run that has one. */
export const makeArtifacts = (disk: Disk, records: Records, objectStores: ArtifactStore.Resolver) => {
  const { artifacts, confined, path, root } = disk
  const { locateRun } = records

  /** The object store of a run whose artifact URI is `s3://`, `wasbs://` or `gs://`; none for a local one. */
  const objectStore = (run: ArtifactRoot) =>
    ArtifactStore.isObjectStoreUri(run.artifactUri)
      ? Effect.map(objectStores.resolve(run.artifactUri), (store) => store as ArtifactStore.ArtifactStore | undefined)
      : Effect.succeed(undefined)

  /**
   * The artifact directory of a run: its recorded `file:` location when that is inside the store and exists,
   * else `<run dir>/artifacts` (a copied store, or an experiment in `.trash/`).
   */
  const artifactDir = (run: ArtifactRoot): Effect.Effect<string, NotFound | InvalidInput | MlflowFailure> =>
    Effect.gen(function*() {
      const recorded = path.resolve(yield* LocalArtifacts.fileUriToPath(run.artifactUri))
      if (Confined.inside(root, recorded)) {
        const real = yield* confined(recorded)
        if (real !== undefined) return real
      }
      const loc = yield* locateRun(run.runId)
      if (loc === undefined) return yield* new NotFound({ entity: "run", key: run.runId })
      const dir = yield* confined(loc.dir)
      if (dir === undefined) return yield* new NotFound({ entity: "run", key: run.runId })
      const artifactsDir = path.join(dir, "artifacts")
      yield* confined(artifactsDir)
      return artifactsDir
    })

  const runNotFound = (e: NotFound) => apiError(404, "RESOURCE_DOES_NOT_EXIST", `Run '${e.key}' not found`)

  const uploadArtifact: Mlflow.Service["uploadArtifact"] = (run, artifactPath, source) =>
    Effect.gen(function*() {
      yield* LocalArtifacts.validatePath(artifactPath)
      const store = yield* objectStore(run)
      if (store !== undefined) return yield* store.upload(artifactPath, source)
      const dir = yield* artifactDir(run).pipe(Effect.catchTag("NotFound", (e) => Effect.fail(runNotFound(e))))
      yield* artifacts.upload(dir, artifactPath, source)
    }).pipe(Effect.withSpan("MlflowFileStore.uploadArtifact", { attributes: { path: artifactPath } }))

  const downloadArtifact = (run: ArtifactRoot, artifactPath: string) =>
    Stream.unwrap(
      Effect.gen(function*() {
        yield* LocalArtifacts.validatePath(artifactPath)
        const store = yield* objectStore(run)
        if (store !== undefined) return store.download(artifactPath)
        const dir = yield* artifactDir(run)
        return artifacts.download(dir, artifactPath)
      })
    ).pipe(Stream.withSpan("MlflowFileStore.downloadArtifact", { attributes: { path: artifactPath } }))

  const listArtifacts: Mlflow.Service["listArtifacts"] = (run, artifactPath) =>
    Effect.gen(function*() {
      if (artifactPath !== undefined && artifactPath !== "") yield* LocalArtifacts.validatePath(artifactPath)
      const store = yield* objectStore(run)
      if (store !== undefined) return yield* store.list(artifactPath === "" ? undefined : artifactPath)
      const dir = yield* artifactDir(run).pipe(Effect.catchTag("NotFound", (e) => Effect.fail(runNotFound(e))))
      return yield* artifacts.list(dir, artifactPath)
    }).pipe(Effect.withSpan("MlflowFileStore.listArtifacts", { attributes: { path: artifactPath ?? "" } }))

  const readArtifact = (run: ArtifactRoot, artifactPath: string) =>
    Effect.gen(function*() {
      yield* LocalArtifacts.validatePath(artifactPath)
      const store = yield* objectStore(run)
      if (store !== undefined) return yield* store.read(artifactPath)
      const dir = yield* artifactDir(run)
      return yield* artifacts.read(dir, artifactPath)
    }).pipe(Effect.withSpan("MlflowFileStore.readArtifact", { attributes: { path: artifactPath } }))

  return { uploadArtifact, downloadArtifact, readArtifact, listArtifacts }
}
