export * from "./define.js";
export type { HandlerContext, AskOptions } from "./context.js";
export {
  Worker,
  DEFAULT_REQUEST_STATE_MAX_BYTES,
  DEFAULT_REQUEST_STATE_TTL_MS,
  type WorkerOptions,
  type WorkerMetrics,
  type WorkerTracing,
  type HandledDetail,
  type RecordEntry,
  type RequestStateOptions,
} from "./worker.js";
export {
  MIN_REQUEST_STATE_KEY_LENGTH,
  RequestStateError,
  createRequestStateSealer,
  paramsDigest,
  type RequestStateBinding,
  type RequestStateRefusal,
  type RequestStateSealer,
  type RequestStateSealerOptions,
} from "./request-state.js";
export { MRTR_METHODS, MISSING_REQUIRED_CLIENT_CAPABILITY, type InputMethod } from "./mrtr.js";
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
