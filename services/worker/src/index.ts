export { startWorker, main, type RunningWorker } from "./server.js";
export { loadWorkerConfig, WorkerEnvSchema } from "./env.js";
/** The configuration `startWorker` takes. @public */
export type { WorkerConfig } from "./env.js";
export { CATALOGS, resolveCatalogs } from "./catalogs/index.js";
