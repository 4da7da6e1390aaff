/**
 * The artifact methods of a layer whose runs keep their artifacts wherever their artifact URI points (a local
 * directory, the server's proxy, an object store): each call checks the path, resolves the run's store and hands the
 * call to it, in a span named after the layer.
 *
 * @internal
 */
import { Effect, Stream } from "effect"
import type { InvalidInput, MlflowFailure } from "../../errors.js"
import type { ArtifactStore } from "../ArtifactStore.js"
import type { ArtifactRoot, ArtifactSource, Mlflow } from "../Mlflow.js"
import { validateArtifactPath } from "../Mlflow.js"

/** @internal */
export type Locate = (run: ArtifactRoot) => Effect.Effect<ArtifactStore, InvalidInput | MlflowFailure>

/**
 * `uploadArtifact`, `downloadArtifact` and `readArtifact` over `locate`, in spans `<span>.uploadArtifact` and so on.
 *
 * @internal
 */
export const resolvedArtifacts = (
  span: string,
  locate: Locate
): Pick<Mlflow.Service, "uploadArtifact" | "downloadArtifact" | "readArtifact"> => ({
  uploadArtifact: <E = never>(run: ArtifactRoot, path: string, source: ArtifactSource<E>) =>
    Effect.gen(function*() {
      yield* validateArtifactPath(path)
      const store = yield* locate(run)
      yield* store.upload(path, source)
    }).pipe(Effect.withSpan(`${span}.uploadArtifact`, { attributes: { path } })),
  downloadArtifact: (run, path) =>
    Stream.unwrap(
      Effect.gen(function*() {
        yield* validateArtifactPath(path)
        const store = yield* locate(run)
        return store.download(path)
      })
    ).pipe(Stream.withSpan(`${span}.downloadArtifact`, { attributes: { path } })),
  readArtifact: (run, path) =>
    Effect.gen(function*() {
      yield* validateArtifactPath(path)
      const store = yield* locate(run)
      return yield* store.read(path)
    }).pipe(Effect.withSpan(`${span}.readArtifact`, { attributes: { path } }))
})
