import { z } from "zod";
import { ErrorCode, McpError, type JsonRpcErrorObject } from "./errors.js";

/** JSON-RPC ids: strings or integers (MCP forbids null ids on requests). */
const RequestIdSchema = z.union([z.string(), z.number().int()]);
export type RequestId = z.infer<typeof RequestIdSchema>;

const ParamsSchema = z.record(z.string(), z.unknown());

const JsonRpcRequestSchema = z.object({
  jsonrpc: z.literal("2.0"),
  id: RequestIdSchema,
  method: z.string().min(1),
  params: ParamsSchema.optional(),
});
const JsonRpcNotificationSchema = z.object({
  jsonrpc: z.literal("2.0"),
  method: z.string().min(1),
  params: ParamsSchema.optional(),
});
const JsonRpcErrorSchema = z.object({
  code: z.number().int(),
  message: z.string(),
  data: z.unknown().optional(),
});
const JsonRpcResultResponseSchema = z.object({
  jsonrpc: z.literal("2.0"),
  id: RequestIdSchema,
  result: z.record(z.string(), z.unknown()),
});
const JsonRpcErrorResponseSchema = z.object({
  jsonrpc: z.literal("2.0"),
  id: RequestIdSchema.nullable(),
  error: JsonRpcErrorSchema,
});

export type JsonRpcRequest = z.infer<typeof JsonRpcRequestSchema>;
export type JsonRpcNotification = z.infer<typeof JsonRpcNotificationSchema>;
type JsonRpcResultResponse = z.infer<typeof JsonRpcResultResponseSchema>;
type JsonRpcErrorResponse = z.infer<typeof JsonRpcErrorResponseSchema>;
export type JsonRpcResponse = JsonRpcResultResponse | JsonRpcErrorResponse;
/** A classified inbound message. */
export type ClassifiedMessage =
  | { kind: "request"; message: JsonRpcRequest }
  | { kind: "notification"; message: JsonRpcNotification }
  | { kind: "response"; message: JsonRpcResponse };

/**
 * Classifies one already-parsed JSON value as a JSON-RPC 2.0 message.
 * @throws McpError -32600 when it is not a valid JSON-RPC 2.0 message.
 */
export function classifyMessage(value: unknown): ClassifiedMessage {
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new McpError(ErrorCode.InvalidRequest, "Invalid Request: expected a JSON-RPC 2.0 object");
  }
  const v = value as Record<string, unknown>;
  if ("method" in v) {
    if ("id" in v) {
      const r = JsonRpcRequestSchema.safeParse(v);
      if (r.success) return { kind: "request", message: r.data };
      throw invalid(r.error);
    }
    const n = JsonRpcNotificationSchema.safeParse(v);
    if (n.success) return { kind: "notification", message: n.data };
    throw invalid(n.error);
  }
  if ("result" in v) {
    const r = JsonRpcResultResponseSchema.safeParse(v);
    if (r.success) return { kind: "response", message: r.data };
    throw invalid(r.error);
  }
  if ("error" in v) {
    const r = JsonRpcErrorResponseSchema.safeParse(v);
    if (r.success) return { kind: "response", message: r.data };
    throw invalid(r.error);
  }
  throw new McpError(
    ErrorCode.InvalidRequest,
    "Invalid Request: not a request, notification or response",
  );
}

function invalid(err: z.ZodError): McpError {
  const first = err.issues[0];
  const where = first && first.path.length > 0 ? ` at ${first.path.join(".")}` : "";
  return new McpError(
    ErrorCode.InvalidRequest,
    `Invalid Request${where}: ${first?.message ?? "malformed"}`,
  );
}

/**
 * Parses a JSON text body.
 * @throws McpError -32700 on malformed JSON.
 */
export function parseJson(text: string): unknown {
  // Deeper documents parse, but every recursive walk after (validation, serialisation) would
  // overflow the stack on them: a 10,000-level client answer was an HTTP 500.
  if (text.length > MAX_JSON_DEPTH && nestingExceeds(text, MAX_JSON_DEPTH)) {
    throw new McpError(
      ErrorCode.ParseError,
      `Parse error: JSON nested deeper than ${MAX_JSON_DEPTH} levels`,
    );
  }
  try {
    return JSON.parse(text) as unknown;
  } catch {
    throw new McpError(ErrorCode.ParseError, "Parse error: body is not valid JSON");
  }
}

/** Deepest object/array nesting `parseJson` accepts (-32700 beyond). */
const MAX_JSON_DEPTH = 512;

/** Whether `text` nests objects/arrays deeper than `max` (brackets inside strings ignored). */
function nestingExceeds(text: string, max: number): boolean {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 0x5c)
        i++; // backslash: skip the escaped character
      else if (c === 0x22) inString = false;
    } else if (c === 0x22) inString = true;
    else if (c === 0x7b || c === 0x5b) {
      if (++depth > max) return true;
    } else if (c === 0x7d || c === 0x5d) depth--;
  }
  return false;
}

/** Best-effort id of a message that failed validation, so the error can still be correlated. */
export function salvageId(value: unknown): RequestId | null {
  if (typeof value !== "object" || value === null) return null;
  const id = (value as { id?: unknown }).id;
  return typeof id === "string" || (typeof id === "number" && Number.isInteger(id)) ? id : null;
}

/** A JSON-RPC result response (the one place one is built). */
export function resultResponse(
  id: RequestId,
  result: Record<string, unknown>,
): JsonRpcResultResponse {
  return { jsonrpc: "2.0", id, result };
}

/** A JSON-RPC error response (the one place one is built; `error` is already a wire error). */
export function errorResponse(
  id: RequestId | null,
  error: JsonRpcErrorObject,
): JsonRpcErrorResponse {
  return { jsonrpc: "2.0", id, error };
}

export function notification(
  method: string,
  params?: Record<string, unknown>,
): JsonRpcNotification {
  return params === undefined ? { jsonrpc: "2.0", method } : { jsonrpc: "2.0", method, params };
}
