/**
 * Test access to the shared ground-truth folders next to the repository (`../shared/...`).
 */
import { readFileSync } from "node:fs"
import { fileURLToPath } from "node:url"

/** Absolute path of a file or folder under `../shared/`. */
export const sharedPath = (...p: Array<string>): string =>
  fileURLToPath(new URL("../../../shared/" + p.join("/"), import.meta.url))

/** The parsed JSON of a file under `../shared/`; the caller states the shape it expects. */
export const readJson = <A = unknown>(...p: Array<string>): A =>
  JSON.parse(readFileSync(sharedPath(...p), "utf-8")) as A
