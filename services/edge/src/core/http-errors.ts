import { ErrorCode, type McpError, type JsonRpcErrorObject } from "@mcpq/protocol";

/** An HTTP-level refusal with its status and JSON-RPC error body (id null). */
export interface HttpRefusal {
  status: number;
  headers: Record<string, string>;
  body: { jsonrpc: "2.0"; id: null; error: JsonRpcErrorObject };
}

export function refusal(
  status: number,
  code: number,
  message: string,
  headers: Record<string, string> = {},
  data?: unknown,
): HttpRefusal {
  return {
    status,
    headers,
    body: {
      jsonrpc: "2.0",
      id: null,
      error: data === undefined ? { code, message } : { code, message, data },
    },
  };
}

/**
 * The one table of HTTP statuses for JSON-RPC errors answered without a stream. Legacy era
 * (`statusFor`): 429/503 with Retry-After for refusals, 400 for malformed requests, else 200.
 * Stateless era (`modernStatus`, Streamable HTTP 2026-07-28) on top: -32601 is 404; header
 * mismatch, missing client capability and unsupported version are 400.
 */
export function modernStatus(code: number, fallback: number): number {
  switch (code) {
    case ErrorCode.MethodNotFound:
      return 404;
    case ErrorCode.HeaderMismatch:
    case ErrorCode.MissingRequiredClientCapability:
    case ErrorCode.UnsupportedProtocolVersion:
      return 400;
    default:
      return fallback;
  }
}

/** HTTP status for an error thrown before a request was accepted (legacy mapping; see `modernStatus`). */
export function statusFor(err: McpError): { status: number; headers: Record<string, string> } {
  const retryAfterMs = (err.data as { retryAfterMs?: number } | undefined)?.retryAfterMs;
  const retry: Record<string, string> =
    retryAfterMs !== undefined
      ? { "retry-after": String(Math.max(1, Math.ceil(retryAfterMs / 1000))) }
      : {};
  switch (err.code) {
    case ErrorCode.RateLimited:
      return { status: 429, headers: retry };
    case ErrorCode.Overloaded:
    case ErrorCode.Unavailable:
      return { status: 503, headers: retry };
    case ErrorCode.ParseError:
    case ErrorCode.InvalidRequest:
      return { status: 400, headers: {} };
    default:
      return { status: 200, headers: {} };
  }
}
