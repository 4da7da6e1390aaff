/**
 * The Registry service: ForML's nine registry operations (list projects/releases/generations, push, pull, mount,
 * write, read, close, open) as Effects with typed errors, independent of where the registry is stored.
 */
import type { Effect, Stream } from "effect"
import { Context } from "effect"
import type { GenerationKey } from "../asset/GenerationKey.js"
import type { Package } from "../asset/Package.js"
import type { ProjectKey } from "../asset/ProjectKey.js"
import type { ReleaseKey } from "../asset/ReleaseKey.js"
import type { StateId } from "../asset/StateId.js"
import type { Tag } from "../asset/Tag.js"
import type {
  Empty,
  IntegrityError,
  InvalidInput,
  InvalidPackage,
  InvalidTag,
  MlflowFailure,
  NotFound
} from "../errors.js"

/** Failures any registry operation can meet on its store. */
export type StoreFailure = MlflowFailure | IntegrityError | InvalidInput

export declare namespace Registry {
  export interface Service {
    /** Projects of this registry (repoid), each once, in the store's order (Directory sorts). */
    readonly projects: Stream.Stream<ProjectKey, StoreFailure>
    /** Releases of a project; NotFound if the project does not exist. */
    readonly releases: (project: ProjectKey) => Stream.Stream<ReleaseKey, NotFound | StoreFailure>
    /** Committed generations of a release; NotFound if the project or release does not exist. */
    readonly generations: (
      project: ProjectKey,
      release: ReleaseKey
    ) => Stream.Stream<GenerationKey, NotFound | StoreFailure>
    /** Publishes a package (zip or directory) under its manifest's name and version. */
    readonly push: (pkg: Package) => Effect.Effect<void, InvalidPackage | StoreFailure>
    /** Downloads a release's package as a zip into the staging directory and opens it. */
    readonly pull: (
      project: ProjectKey,
      release: ReleaseKey
    ) => Effect.Effect<Package, NotFound | InvalidPackage | StoreFailure>
    /** pull + unpack into the staging directory; returns the directory. */
    readonly mount: (
      project: ProjectKey,
      release: ReleaseKey
    ) => Effect.Effect<string, NotFound | InvalidPackage | StoreFailure>
    /** Writes one state blob of the training in progress (the unbound generation) of this registry instance. */
    readonly write: <E = never>(
      project: ProjectKey,
      release: ReleaseKey,
      sid: StateId,
      data: Uint8Array | Stream.Stream<Uint8Array, E>
    ) => Effect.Effect<void, E | NotFound | StoreFailure>
    /** Reads one state of a committed generation; NotFound if the generation or the state is absent. */
    readonly read: (
      project: ProjectKey,
      release: ReleaseKey,
      generation: GenerationKey,
      sid: StateId
    ) => Effect.Effect<Uint8Array, NotFound | StoreFailure>
    /** The same, as a byte stream (large states). */
    readonly readStream: (
      project: ProjectKey,
      release: ReleaseKey,
      generation: GenerationKey,
      sid: StateId
    ) => Stream.Stream<Uint8Array, NotFound | StoreFailure>
    /**
     * Commits the unbound generation as `generation` with `tag` (tag.toml, then the commit tag). Every state of the
     * tag must have been written; returns the generation number really used (the next free one after a race).
     */
    readonly close: (
      project: ProjectKey,
      release: ReleaseKey,
      generation: GenerationKey,
      tag: Tag
    ) => Effect.Effect<GenerationKey, NotFound | InvalidInput | StoreFailure>
    /** The tag of a committed generation; Empty if it has none. */
    readonly open: (
      project: ProjectKey,
      release: ReleaseKey,
      generation: GenerationKey
    ) => Effect.Effect<Tag, NotFound | Empty | InvalidTag | StoreFailure>
  }
}

export class Registry extends Context.Tag("forml-mlflow/Registry")<Registry, Registry.Service>() {}
