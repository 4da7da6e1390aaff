/**
 * MlflowRegistry's releases as packages: push (zip, digest, upload, check, publish), pull and mount.
 *
 * @internal
 */
import * as FileSystem from "@effect/platform/FileSystem"
import { Clock, Effect, Stream } from "effect"
import { createHash } from "node:crypto"
import { Package } from "../../asset/Package.js"
import { ProjectKey } from "../../asset/ProjectKey.js"
import { IntegrityError, NotFound } from "../../errors.js"
import * as Layout from "../layout.js"
import type { Registry } from "../Registry.js"
import type { Artifacts } from "./artifacts.js"
import type { Instance } from "./instance.js"
import type { Releases } from "./releases.js"
import { orVanished, releaseName, releaseNotFound, releaseRef, storage } from "./runs.js"

/** @internal */
export const make = (
  i: Instance,
  { createdReleases, releases }: Releases,
  { checkStored, download, makeDirectory, stagingPath }: Artifacts
): Pick<Registry.Service, "push" | "pull" | "mount"> => {
  const { fs, mlflow, path } = i

  const push: Registry.Service["push"] = Effect.fn("MlflowRegistry.push")(function*(pkg) {
    yield* i.ready
    const project = yield* ProjectKey.parse(pkg.manifest.name)
    const release = pkg.manifest.version
    yield* Effect.scoped(Effect.gen(function*() {
      // a directory package is zipped into a scratch directory that goes away with the push
      const scratch = yield* stagingPath
      yield* Effect.acquireRelease(makeDirectory(scratch), () => Effect.ignore(fs.remove(scratch, { recursive: true })))
      const zip = yield* Effect.provideService(Package.toZip(pkg, scratch), FileSystem.FileSystem, fs)
      // the sha256 in one streamed pass over the local zip; the upload then reads the file itself, so that the
      // Mlflow layer can send it again when a PUT fails half-way
      let size = 0
      const digest = yield* fs.stream(zip).pipe(
        Stream.runFold(createHash("sha256"), (hash, chunk) => {
          size += chunk.length
          return hash.update(chunk)
        }),
        Effect.map((hash) => hash.digest("hex")),
        Effect.mapError(storage(zip))
      )
      const ref = releaseRef(project, release)
      const rel = yield* createdReleases.get(ref)
      const run = rel.canonical
      yield* mlflow.uploadArtifact(run.info, Layout.ARTIFACT.package, { file: zip })
      // nothing lists that is not stored whole
      yield* checkStored(
        run.info,
        [{ name: Layout.ARTIFACT.package, size }],
        () =>
          new IntegrityError({
            artifact: Layout.ARTIFACT.package,
            expected: String(size),
            actual: "0",
            measure: "size"
          })
      )
      // published: the sha256 replaces the empty tag the run was created with, and the release lists from now on;
      // beside it (one round trip) the run is marked FINISHED, as MLflow's UI shows a run that is done
      const endTime = yield* Clock.currentTimeMillis
      yield* orVanished(Effect.all([
        mlflow.setTags(run.runId, [
          { key: Layout.TAG.note, value: Layout.releaseNote(project, release.toString()) },
          { key: Layout.sha256Tag(Layout.ARTIFACT.package), value: digest }
        ]),
        mlflow.updateRun(run.runId, { status: "FINISHED", endTime })
      ], { concurrency: 2, discard: true }))
      yield* releases.set(ref, rel)
    }))
  })

  const pull: Registry.Service["pull"] = Effect.fn("MlflowRegistry.pull")(function*(project, release) {
    yield* i.ready
    const rel = yield* releases.get(releaseRef(project, release))
    // the run is read afresh: a push of the same version since may have replaced the package and its sha256 tag
    const run = yield* Effect.catchTag(
      mlflow.getRun(rel.canonical.runId),
      "NotFound",
      () => Effect.fail(releaseNotFound(project, release))
    )
    const dir = yield* stagingPath
    yield* makeDirectory(dir)
    const target = path.join(dir, Layout.ARTIFACT.package)
    yield* download(run, Layout.ARTIFACT.package).pipe(
      Stream.catchTag(
        "NotFound",
        () => Stream.fail(new NotFound({ entity: "package", key: releaseName(project, release) }))
      ),
      Stream.run(fs.sink(target)),
      Effect.catchTags({ SystemError: storage(target), BadArgument: storage(target) }),
      Effect.tapError(() => Effect.ignore(fs.remove(dir, { recursive: true })))
    )
    return yield* Effect.provideService(Package.open(target), FileSystem.FileSystem, fs)
  })

  const mount: Registry.Service["mount"] = Effect.fn("MlflowRegistry.mount")(function*(project, release) {
    const pkg = yield* pull(project, release)
    const dir = yield* stagingPath
    yield* Effect.provideService(Package.unpack(pkg.path, dir), FileSystem.FileSystem, fs)
    return dir
  })

  return { push, pull, mount }
}
