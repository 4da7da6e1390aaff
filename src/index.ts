/**
 * forml-mlflow: a ForML model registry (projects, releases, generations) on an MLflow tracking store, for Effect.
 * Domain assets and errors, the Mlflow service with its layers, the Registry service, MlflowRegistry and Directory.
 */
export * from "./asset/index.js"
export * from "./errors.js"
export * as ArtifactStore from "./mlflow/ArtifactStore.js"
export * as Filter from "./mlflow/Filter.js"
export * from "./mlflow/Mlflow.js"
export * as MlflowFileStore from "./mlflow/MlflowFileStore.js"
export * as MlflowHttp from "./mlflow/MlflowHttp.js"
export * as MlflowMemory from "./mlflow/MlflowMemory.js"
export { MlflowMemoryHandle } from "./mlflow/MlflowMemory.js"
export * as MlflowSql from "./mlflow/MlflowSql.js"
export * as Directory from "./registry/Directory.js"
export * as MlflowRegistry from "./registry/MlflowRegistry.js"
export * from "./registry/Registry.js"
