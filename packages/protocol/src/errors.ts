/**
 * JSON-RPC / MCP error codes that cross the wire. Codes in -32000..-32099 are mcpq's
 * server-defined codes; each one says whether a retry can help.
 */
export const ErrorCode = {
  /** Malformed JSON. */
  ParseError: -32700,
  /** Valid JSON, but not a JSON-RPC 2.0 message. */
  InvalidRequest: -32600,
  /** Unknown method. */
  MethodNotFound: -32601,
  /** Params fail the method's schema, unknown tool, bad cursor. */
  InvalidParams: -32602,
  /** Anything unexpected; never carries a stack or internals. */
  InternalError: -32603,
  /** The request's deadline passed before a response arrived (same code as the official SDK). */
  RequestTimeout: -32001,
  /** MCP: resource not found. */
  ResourceNotFound: -32002,
  /** Retryable: the edge, a stream or a worker pool is full. `data.retryAfterMs` says when to retry. */
  Overloaded: -32010,
  /** Retryable: the principal's tool-call rate limit is exhausted. `data.retryAfterMs` is set. */
  RateLimited: -32011,
  /** Retryable: no worker currently serves the target (pool down or circuit open). */
  Unavailable: -32012,
  /** The client is not allowed to perform the request (session of another principal, etc.). */
  Forbidden: -32013,
  /** MCP 2025-11-25: URL elicitation required. */
  UrlElicitationRequired: -32042,
  /** MCP 2026-07-28: a request metadata header is missing, malformed or does not match the body (HTTP 400). */
  HeaderMismatch: -32020,
  /** MCP 2026-07-28: the request needs a client capability its `_meta` did not declare (HTTP 400). */
  MissingRequiredClientCapability: -32021,
  /** MCP 2026-07-28: the request's protocol version is not one the server speaks; `data: {supported, requested}` (HTTP 400). */
  UnsupportedProtocolVersion: -32022,
} as const;
export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

/** Codes after which the same request may succeed if retried later. */
const RETRYABLE_CODES: ReadonlySet<number> = new Set([
  ErrorCode.Overloaded,
  ErrorCode.RateLimited,
  ErrorCode.Unavailable,
  ErrorCode.RequestTimeout,
]);

/** The wire form of a JSON-RPC error object. */
export interface JsonRpcErrorObject {
  code: number;
  message: string;
  data?: unknown;
}

/**
 * A protocol error: it carries a JSON-RPC code and is serialised onto the wire as-is.
 * Use it for anything the client should see; everything else becomes -32603.
 */
export class McpError extends Error {
  override readonly name = "McpError";
  constructor(
    readonly code: number,
    message: string,
    readonly data?: unknown,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }

  /** True when retrying the same request later can succeed. */
  get retryable(): boolean {
    return RETRYABLE_CODES.has(this.code);
  }

  toJSON(): JsonRpcErrorObject {
    return this.data === undefined
      ? { code: this.code, message: this.message }
      : { code: this.code, message: this.message, data: this.data };
  }
}

/** A retryable rejection with `data.retryAfterMs`, e.g. overload or rate limiting. */
export function rejection(
  code: typeof ErrorCode.Overloaded | typeof ErrorCode.RateLimited | typeof ErrorCode.Unavailable,
  reason: string,
  retryAfterMs: number,
): McpError {
  const label =
    code === ErrorCode.RateLimited
      ? "rate limited"
      : code === ErrorCode.Overloaded
        ? "overloaded"
        : "unavailable";
  // Refusals are the expected, high-rate answer under overload and never reach a log with their
  // stack; capturing one cost more than the rest of a refusal (8 % of an edge's CPU in a storm).
  const limit = Error.stackTraceLimit;
  Error.stackTraceLimit = 0;
  try {
    return new McpError(code, `${label}: ${reason}`, {
      reason,
      retryAfterMs: Math.max(0, Math.ceil(retryAfterMs)),
    });
  } finally {
    Error.stackTraceLimit = limit;
  }
}

/**
 * Maps any thrown value to a wire-safe error object: McpError passes through, anything else
 * becomes -32603 "Internal error" with no message, stack or cause from the original.
 */
export function toWireError(err: unknown): JsonRpcErrorObject {
  if (err instanceof McpError) return err.toJSON();
  if (isWireErrorLike(err))
    return {
      code: err.code,
      message: err.message,
      ...(err.data === undefined ? {} : { data: err.data }),
    };
  return { code: ErrorCode.InternalError, message: "Internal error" };
}

function isWireErrorLike(err: unknown): err is JsonRpcErrorObject & { name: string } {
  return (
    typeof err === "object" &&
    err !== null &&
    (err as { name?: unknown }).name === "McpError" &&
    typeof (err as { code?: unknown }).code === "number" &&
    typeof (err as { message?: unknown }).message === "string"
  );
}
