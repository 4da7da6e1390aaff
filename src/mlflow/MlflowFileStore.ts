/**
 * MlflowFileStore: the Mlflow service over MLflow's own on-disk tracking format (`mlruns/`, as MLflow 2.17.2 writes
 * it), so no server is needed and `mlflow server --backend-store-uri <root>` serves what it wrote.
 *
 * Format and behaviour (see `shared/docs/MLFLOW-FILESTORE.md`):
 * - `<root>/<E>/meta.yaml`, `<E>/tags/<key>`, `<E>/<R>/{meta.yaml,tags/,params/,metrics/,artifacts/}`; a `/` in a tag
 *   key makes subdirectories; `.trash/<E>` holds a deleted experiment (moved whole, moved back on restore).
 * - meta.yaml as PyYAML's `safe_dump` writes it (keys sorted, its quoting: `experiment_id: '<E>'`), and read with
 *   PyYAML's type rules (YAML 1.1: `'yes'` and `'007'` are strings, plain `1` an int). Layout differs only for values
 *   PyYAML folds (over 80 columns, line breaks); both read back the same. A NEL or U+2028 inside a single-quoted
 *   value (never written here) is not read as PyYAML reads it.
 * - Every file is written to a temporary name in its directory, synced and renamed; experiments and runs are built
 *   in a temporary directory and renamed into place, so a reader never sees half of one. Readers skip temporary
 *   names. `setTags` checks every key before writing any file; each tag file is atomic, a batch is not (a crash in
 *   the middle of one leaves its first tags written); a batch is written in its order, so a reader seeing one of its
 *   tags sees those before it. A run is read as its `meta.yaml` and tags stood at one moment (meta.yaml is read again
 *   after the tags, and the run read again if it changed).
 * - An experiment's lifecycle is where it lives (`<root>` or `.trash/`), so a crash between the move and the
 *   `meta.yaml` rewrite still reads right; a run's lifecycle is its `meta.yaml`.
 * - Experiment creation is serialised by a lock file (`<root>/.forml-create.lock`, a file, which MLflow ignores): two
 *   processes of this library never create one name twice. MLflow itself does not take that lock, so an MLflow
 *   client creating the same name at the same moment can still make a duplicate (as two MLflow clients can).
 * - Metadata updates (`meta.yaml` read-modify-write) are serialised within a process only; two processes updating
 *   one run at the same moment can lose one of the two changes, as with MLflow's own file store.
 * - Artifacts of a run live in its recorded `file:` artifact URI when that is inside the store root and exists;
 *   otherwise (a store copied from elsewhere, such as the sample written at `/srv/forml-sample/mlruns`, or an
 *   experiment in `.trash/`) in `<run dir>/artifacts`. Nothing outside the root is ever read or written: no tag key,
 *   artifact path or id can name a place outside it; symlinks leading out are refused for artifacts and writes, and
 *   skipped when reading metadata (a `meta.yaml`, `tags/` directory or tag file leading out reads as absent).
 * - Deleting the Default experiment `0` fails as MLflow's file store does: MlflowApiError 500 INTERNAL_ERROR.
 */
import type * as FileSystem from "@effect/platform/FileSystem"
import type * as Path from "@effect/platform/Path"
import { type Effect, Layer } from "effect"
import type { StorageError } from "../errors.js"
import type * as ArtifactStore from "./ArtifactStore.js"
import * as internal from "./internal/fileStore.js"
import { Mlflow } from "./Mlflow.js"

export interface MlflowFileStoreOptions {
  /** The `mlruns` directory; created (with the Default experiment) when it does not exist. */
  readonly root: string
  /**
   * Settings of the object stores that runs may point to (a store written by a server run with
   * `--default-artifact-root s3://…`); each field wins over its environment variable (see `ArtifactStore`).
   */
  readonly artifactStores?: ArtifactStore.ObjectStoreOptions | undefined
}

/** The id of the Default experiment that MLflow creates with a new store. */
export { DEFAULT_EXPERIMENT_ID } from "./internal/fileStoreLayout.js"
export { DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, parseOrderBy } from "./semantics.js"
/** The meta.yaml codec: PyYAML's layout written, PyYAML's types read (`parseYaml`: the fast reader, else the full). */
export { parseSimpleYaml, parseYaml, parseYamlDocument, renderYaml } from "./internal/metaYaml.js"

/** Builds the service over a store root, creating the root, the Default experiment and `.trash/` as MLflow does. */
export const make: (
  options: MlflowFileStoreOptions
) => Effect.Effect<Mlflow.Service, StorageError, FileSystem.FileSystem | Path.Path> = internal.make

/** The Mlflow service over an `mlruns/` directory; the application provides the platform (`NodeContext.layer`). */
export const layer = (
  options: MlflowFileStoreOptions
): Layer.Layer<Mlflow, StorageError, FileSystem.FileSystem | Path.Path> => Layer.effect(Mlflow, make(options))
