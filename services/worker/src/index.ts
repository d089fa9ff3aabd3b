export { startWorker, main, type RunningWorker } from "./server.js";
export { loadWorkerConfig, WorkerEnvSchema, type WorkerConfig } from "./env.js";
export { CATALOGS, resolveCatalogs } from "./catalogs/index.js";
