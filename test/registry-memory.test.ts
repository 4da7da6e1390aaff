/**
 * MlflowRegistry on MlflowMemory: the registry contract, then what needs the in-process store's handle
 * (request counts for the performance targets, paging past 1000 runs, faults).
 */
import * as MlflowMemory from "../src/mlflow/MlflowMemory.js"
import { registryContract } from "./contract/registry.js"

registryContract("MlflowMemory", () => MlflowMemory.layer())
