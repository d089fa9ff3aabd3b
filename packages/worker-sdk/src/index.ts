export {
  catalogOf,
  defineCatalog,
  definePrompt,
  defineResource,
  defineResourceTemplate,
  defineTool,
  toolDescriptor,
  entryCacheHint,
  type CatalogDefinition,
} from "./define.js";
export type { HandlerContext } from "./context.js";
export {
  Worker,
  DEFAULT_REQUEST_STATE_MAX_BYTES,
  type WorkerMetrics,
  type RecordEntry,
} from "./worker.js";
export {
  MIN_REQUEST_STATE_KEY_LENGTH,
  createRequestStateSealer,
  paramsDigest,
} from "./request-state.js";
export {
  createRecorder,
  parseSampleSpec,
  sampleRate,
  toRecord,
  type RecorderMetrics,
} from "./recorder.js";
/**
 * Types of the SDK's public signatures (handler results, options), for worker authors to name;
 * nothing in this repository needs to import them by name. @public
 */
export type {
  AnyPromptDefinition,
  AnyToolDefinition,
  CallToolResult,
  CompletionResult,
  ContentBlock,
  PromptDefinition,
  ResourceDefinition,
  ResourceReadOutput,
  ResourceTemplateDefinition,
  ToolDefinition,
  ResourceContents,
  PromptMessage,
  GetPromptResult,
  Completer,
} from "./define.js";
/** @public */
export type { WorkerOptions } from "./worker.js";
/** @public */
export type { Recorder, RecorderOptions, RecordResult, SampleRule } from "./recorder.js";
export { z } from "zod";
/** Options of `ctx.elicit()` / `ctx.sample()` / `ctx.listRoots()` and of the worker's request state. @public */
export type { AskOptions } from "./context.js";
/** @public */
export type { RequestStateOptions } from "./worker.js";
/** Types of `createRequestStateSealer`'s options and result. @public */
export type {
  RequestStateBinding,
  RequestStateRefusal,
  RequestStateSealer,
  RequestStateSealerOptions,
} from "./request-state.js";
