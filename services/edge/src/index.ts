export { startEdge, main, type RunningEdge } from "./server.js";
export { loadEdgeConfig, EdgeEnvSchema, type EdgeConfig } from "./env.js";
export { edgeApp } from "./app.js";
export type { EdgeRuntime } from "./runtime.js";
export { ResponseCache, type ResponseCacheConfig } from "./cache/response-cache.js";
export { CatalogView } from "./core/catalog.js";
