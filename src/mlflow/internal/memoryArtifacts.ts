/**
 * MlflowMemory's artifact operations: the Mlflow service's (paths under a run's root), and the artifact proxy's view
 * for the emulator (locations relative to the `mlflow-artifacts:/` root).
 *
 * @internal
 */
import { Effect, Stream } from "effect"
import type { InvalidInput, MlflowFailure } from "../../errors.js"
import { NotFound } from "../../errors.js"
import { validateArtifactPath } from "../Mlflow.js"
import type { ArtifactRoot, ArtifactSource } from "../Mlflow.js"
import type { MlflowMemoryHandle } from "../MlflowMemory.js"
import { DOWNLOAD_CHUNK, joinKey, listLevel, putArtifact, readSource, rootKey, toFileInfo } from "./memoryStore.js"
import type { Memory, Store } from "./memoryStore.js"

export const uploadArtifact = (m: Memory) =>
<E = never>(
  run: ArtifactRoot,
  path: string,
  source: ArtifactSource<E>
): Effect.Effect<void, E | InvalidInput | MlflowFailure> =>
  Effect.gen(function*() {
    yield* m.enter("uploadArtifact")
    yield* validateArtifactPath(path)
    const bytes = yield* readSource(source)
    yield* putArtifact(m.store, joinKey(rootKey(run.artifactUri), path), bytes)
  }).pipe(Effect.withSpan("MlflowMemory.uploadArtifact"))

export const downloadArtifact = (m: Memory) => (run: ArtifactRoot, path: string) =>
  Stream.unwrap(
    Effect.gen(function*() {
      yield* m.enter("downloadArtifact")
      yield* validateArtifactPath(path)
      const bytes = m.store.artifacts.get(joinKey(rootKey(run.artifactUri), path))
      if (bytes === undefined) return yield* new NotFound({ entity: "artifact", key: path })
      const chunks: Array<Uint8Array> = []
      for (let i = 0; i < bytes.length; i += DOWNLOAD_CHUNK) chunks.push(bytes.slice(i, i + DOWNLOAD_CHUNK))
      return Stream.fromIterable(chunks)
    })
  ).pipe(Stream.withSpan("MlflowMemory.downloadArtifact"))

export const readArtifact = (m: Memory) =>
  Effect.fn("MlflowMemory.readArtifact")(function*(run: ArtifactRoot, path: string) {
    yield* m.enter("readArtifact")
    yield* validateArtifactPath(path)
    const bytes = m.store.artifacts.get(joinKey(rootKey(run.artifactUri), path))
    if (bytes === undefined) return yield* new NotFound({ entity: "artifact", key: path })
    return bytes.slice()
  })

export const listArtifacts = (m: Memory) =>
  Effect.fn("MlflowMemory.listArtifacts")(function*(run: ArtifactRoot, path?: string) {
    yield* m.enter("listArtifacts")
    const dir = path === undefined || path === "" ? "" : yield* validateArtifactPath(path)
    const root = rootKey(run.artifactUri)
    return listLevel(m.store, dir === "" ? root : joinKey(root, dir)).map(([name, size]) =>
      toFileInfo(dir === "" ? name : `${dir}/${name}`, size)
    )
  })

/** The handle's view of the artifact proxy: locations relative to its root; calls are not counted. */
export type ProxyHandle = Pick<
  MlflowMemoryHandle.Service,
  "putArtifactAt" | "getArtifactAt" | "listArtifactsAt" | "deleteArtifactAt"
>

export const proxyArtifacts = (store: Store): ProxyHandle => ({
  putArtifactAt: (location, bytes) =>
    Effect.flatMap(validateArtifactPath(location), (loc) => putArtifact(store, loc, bytes.slice())),
  getArtifactAt: (location) =>
    Effect.flatMap(validateArtifactPath(location), (loc) => {
      const bytes = store.artifacts.get(loc)
      return bytes === undefined ? Effect.fail(new NotFound({ entity: "artifact", key: loc })) : Effect.succeed(bytes)
    }),
  listArtifactsAt: (location) =>
    Effect.map(
      validateArtifactPath(location),
      (loc) => listLevel(store, loc).map(([name, size]) => toFileInfo(name, size))
    ),
  deleteArtifactAt: (location) =>
    Effect.map(validateArtifactPath(location), (loc) => {
      store.artifacts.delete(loc)
    })
})
