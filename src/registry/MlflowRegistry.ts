/**
 * MlflowRegistry: the Registry service on an MLflow tracking server (any Mlflow layer), in ForML's wire layout
 * (see layout.ts), with cached get-or-create, converging races, sha256 integrity tags and typed errors.
 *
 * The machinery is in `internal/`: the memo (memo.ts), the instance's settings and searches (instance.ts), projects
 * and release runs (releases.ts), committed generations (generations.ts), the training in progress (training.ts),
 * staging and artifacts (artifacts.ts), and the operations: listings, packages, states, and the commit.
 */
import type * as FileSystem from "@effect/platform/FileSystem"
import type * as Path from "@effect/platform/Path"
import { Effect, Layer } from "effect"
import type { Duration, Scope } from "effect"
import type { Mlflow } from "../mlflow/Mlflow.js"
import * as Artifacts from "./internal/artifacts.js"
import * as Commit from "./internal/commit.js"
import * as Generations from "./internal/generations.js"
import * as Instance from "./internal/instance.js"
import * as Listing from "./internal/listing.js"
import * as Packages from "./internal/packages.js"
import * as Releases from "./internal/releases.js"
import * as States from "./internal/states.js"
import * as Training from "./internal/training.js"
import { Registry } from "./Registry.js"

export interface MlflowRegistryOptions {
  /** The virtual repository: experiments are named `<project>@<repoid>`; "" (the default) is the plain namespace. */
  readonly repoid?: string | undefined
  /**
   * Where pulled packages and mounted releases go (a directory shared by runner nodes, as in ForML). Default: a
   * temporary directory removed when the layer is released. A given directory is created if missing, never removed.
   */
  readonly staging?: string | undefined
  /**
   * The `forml.session` tag of this instance's training runs. Default: a fresh uuid4, so no other instance shares
   * it. Passing the session of an earlier instance resumes its unfinished training (its states can be closed).
   */
  readonly session?: string | undefined
  /** How many searches one listing may run at once. Default 4. */
  readonly concurrency?: number | undefined
  /**
   * How long a close waits for another writer's commit of the same generation number to finish before taking it
   * as abandoned (a crashed writer). Default 10 seconds.
   */
  readonly commitWait?: Duration.DurationInput | undefined
  /**
   * Who writes the releases and generations this instance writes. `"many"` (the default): other processes or
   * instances may push the same version or close generations of the same release at the same time, and every writer
   * converges (a push searches the release runs again after creating one; a close searches for other runs committed
   * with its number, and moves to the next free one when it lost).
   *
   * `"one"`: nobody else does, so those searches are skipped, a round trip less for each push of a new release and
   * for each close. Racing writers in this mode can leave two runs holding one version or one generation number;
   * readers then show one of them (the first by start or by commit), and the other's package or states are not
   * listed. Reads, listings and the integrity checks are the same in both modes.
   */
  readonly writers?: "many" | "one" | undefined
}

/**
 * A Registry over the Mlflow service in scope; resources (the default staging directory) live in the Scope. Lookups
 * of experiments and runs are cached per instance (concurrent callers share one; a failure is not kept).
 */
export const make = (
  options: MlflowRegistryOptions = {}
): Effect.Effect<Registry.Service, never, Mlflow | FileSystem.FileSystem | Path.Path | Scope.Scope> =>
  Effect.gen(function*() {
    const instance = yield* Instance.make(options)
    const releases = yield* Releases.make(instance)
    const generations = yield* Generations.make(instance, releases)
    const training = yield* Training.make(instance, releases)
    const artifacts = yield* Artifacts.make(instance, options.staging)
    return Registry.of({
      ...Listing.make(instance, releases, generations),
      ...Packages.make(instance, releases, artifacts),
      ...States.make(instance, training, generations, artifacts),
      close: Commit.make(instance, releases, training, generations, artifacts)
    })
  })

/** The Registry layer over the Mlflow layer in the context (a staging directory lives as long as the layer). */
export const layer = (
  options: MlflowRegistryOptions = {}
): Layer.Layer<Registry, never, Mlflow | FileSystem.FileSystem | Path.Path> => Layer.scoped(Registry, make(options))

/**
 * `make` and `layer` as one object.
 *
 * @deprecated Use the module's `make` and `layer` (`import * as MlflowRegistry`, or `MlflowRegistry` from the package).
 */
export const MlflowRegistry = { make, layer } as const
