export * from "./define.js";
export type { HandlerContext } from "./context.js";
export { Worker, type WorkerOptions, type WorkerMetrics, type RecordEntry } from "./worker.js";
export { z } from "zod";
