export { ErrorCode, McpError, rejection, toWireError, type JsonRpcErrorObject } from "./errors.js";
export {
  classifyMessage,
  errorResponse,
  notification,
  resultResponse,
  parseJson,
  salvageId,
  type ClassifiedMessage,
  type JsonRpcNotification,
  type JsonRpcRequest,
  type JsonRpcResponse,
  type RequestId,
} from "./jsonrpc.js";
export {
  DEFAULT_HTTP_PROTOCOL_VERSION,
  allowsBatching,
  isModernEra,
  isSupportedProtocolVersion,
  negotiateProtocolVersion,
  type ProtocolVersion,
} from "./versions.js";
export {
  CallToolParamsSchema,
  CancelledParamsSchema,
  CompleteParamsSchema,
  GetPromptParamsSchema,
  InitializeParamsSchema,
  PaginatedParamsSchema,
  ReadResourceParamsSchema,
  SetLevelParamsSchema,
  SubscribeParamsSchema,
  TOOL_NAME_PATTERN,
  CLIENT_REQUEST_METHODS,
  logLevelPasses,
  matchUriTemplate,
  type Catalog,
  type Icon,
  type JsonSchemaObject,
  type LogLevel,
  type ProgressToken,
  type PromptArgumentDescriptor,
  type PromptDescriptor,
  type ResourceDescriptor,
  type ResourceTemplateDescriptor,
  type ToolDescriptor,
} from "./mcp.js";
export {
  DEFAULT_CACHE_HINT,
  assertCacheHintInput,
  cacheHintOf,
  combineCacheHints,
  isDefaultCacheHint,
  listCacheHint,
  resolveCacheHint,
  type CacheHint,
  type CacheHintInput,
  type CacheListKind,
  type CatalogCacheHints,
} from "./cache-hints.js";
export { silentLogger, type Logger } from "./logger.js";
export { GRPC_PROTO_URL, type JsonRpcFrame } from "./grpc.js";
export {
  EVENT_METHOD,
  RESUME_METHOD,
  ResumeParamsSchema,
  SESSION_ID_META_KEY,
  eventMarker,
  type ResumeResult,
} from "./socket-resume.js";
export { deepFreeze, type DeepReadonly } from "./freeze.js";
export * from "./modern.js";
export { type AnyProtocolVersion } from "./versions.js";
export { ALL_PROTOCOL_VERSIONS } from "./versions.js";
export { MCPQ_META } from "./mcp.js";
export { type EdgeCachePolicy } from "./cache-hints.js";
export { type EntryCacheInput } from "./cache-hints.js";
export { assertEntryCacheInput } from "./cache-hints.js";
