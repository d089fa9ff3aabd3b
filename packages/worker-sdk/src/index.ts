export {
  defineCatalog,
  definePrompt,
  defineResource,
  defineResourceTemplate,
  defineTool,
  toolDescriptor,
  type CatalogDefinition,
} from "./define.js";
export type { HandlerContext } from "./context.js";
export { Worker, type WorkerMetrics, type RecordEntry } from "./worker.js";
export { createRecorder, parseSampleSpec, sampleRate, toRecord, type RecorderMetrics } from "./recorder.js";
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
