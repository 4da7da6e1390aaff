/**
 * The file store service: its disk, records, creation lock and method groups (experiments, runs, artifacts), put
 * together over one root.
 *
 * @internal
 */
import type * as FileSystem from "@effect/platform/FileSystem"
import type * as Path from "@effect/platform/Path"
import { Effect } from "effect"
import type { StorageError } from "../../errors.js"
import * as ArtifactStore from "../ArtifactStore.js"
import { Mlflow } from "../Mlflow.js"
import type { MlflowFileStoreOptions } from "../MlflowFileStore.js"
import { makeArtifacts } from "./fileStoreArtifacts.js"
import { makeDisk } from "./fileStoreDisk.js"
import { makeExperiments } from "./fileStoreExperiments.js"
import { LOCK } from "./fileStoreLayout.js"
import { makeCreateLock } from "./fileStoreLock.js"
import { makeRecords } from "./fileStoreRecords.js"
import { makeRuns } from "./fileStoreRuns.js"

/** @internal */
export const make = (
  options: MlflowFileStoreOptions
): Effect.Effect<Mlflow.Service, StorageError, FileSystem.FileSystem | Path.Path> =>
  Effect.gen(function*() {
    const objectStores = yield* ArtifactStore.makeResolver(options.artifactStores ?? {})
    const disk = yield* makeDisk(options.root)
    const withCreateLock = yield* makeCreateLock(disk.path.join(disk.root, LOCK))
    const records = makeRecords(disk)
    return Mlflow.of({
      ...makeExperiments(disk, records, withCreateLock),
      ...makeRuns(disk, records),
      ...makeArtifacts(disk, records, objectStores)
    })
  })
