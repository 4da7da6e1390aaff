// import.meta.url for code bundled as CommonJS (injected by scripts/bundle.mjs): the URL of the bundle itself
export const import_meta_url = require("node:url").pathToFileURL(__filename).href
