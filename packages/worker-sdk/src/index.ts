export * from "./define.js";
export type { HandlerContext } from "./context.js";
export { Worker, type WorkerOptions, type WorkerMetrics, type WorkerTracing, type HandledDetail, type RecordEntry } from "./worker.js";
export {
  createRecorder,
  parseSampleSpec,
  sampleRate,
  toRecord,
  type Recorder,
  type RecorderOptions,
  type RecorderMetrics,
  type RecordResult,
  type SampleRule,
} from "./recorder.js";
export { z } from "zod";
