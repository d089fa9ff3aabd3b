export { startEdge, main, type RunningEdge } from "./server.js";
export { loadEdgeConfig, EdgeEnvSchema } from "./env.js";
/** The configuration `startEdge` takes and the runtime its app is built on. @public */
export type { EdgeConfig } from "./env.js";
/** @public */
export type { EdgeRuntime } from "./runtime.js";
export { ResponseCache, type ResponseCacheConfig } from "./cache/response-cache.js";
export { CatalogView } from "./core/catalog.js";
