/**
 * The pure domain layer: keys, the generation tag and its TOML codec, manifests and packages.
 */
export * from "./GenerationKey.js"
export * from "./Manifest.js"
export * from "./Package.js"
export * from "./ProjectKey.js"
export * from "./ReleaseKey.js"
export * from "./StateId.js"
export * from "./Tag.js"
