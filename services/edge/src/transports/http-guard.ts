import type { IncomingHttpHeaders } from "node:http";
import { ErrorCode, McpError, type JsonRpcErrorObject } from "@mcpq/protocol";
import { hostAllowed, originAllowed, principalOf } from "../core/security.js";
import type { EdgeConfig } from "../env.js";

/** An HTTP-level refusal with its status and JSON-RPC error body (id null). */
export interface HttpRefusal {
  status: number;
  headers: Record<string, string>;
  body: { jsonrpc: "2.0"; id: null; error: JsonRpcErrorObject };
}

export function refusal(status: number, code: number, message: string, headers: Record<string, string> = {}, data?: unknown): HttpRefusal {
  return { status, headers, body: { jsonrpc: "2.0", id: null, error: data === undefined ? { code, message } : { code, message, data } } };
}

/**
 * Checks every HTTP-borne MCP request (Streamable HTTP, legacy SSE, WebSocket upgrade):
 * Host allow-list and Origin (403, DNS-rebinding protection), then the bearer token (401).
 * Returns the principal, or the refusal to send.
 */
export function guardHttp(headers: IncomingHttpHeaders, cfg: Pick<EdgeConfig, "allowedHosts" | "allowedOrigins" | "authTokens">): { principal: string } | HttpRefusal {
  if (!hostAllowed(headers.host, cfg.allowedHosts)) {
    return refusal(403, ErrorCode.Forbidden, "Forbidden: Host not allowed");
  }
  const origin = headers.origin;
  if (!originAllowed(origin, cfg.allowedOrigins)) {
    return refusal(403, ErrorCode.Forbidden, "Forbidden: Origin not allowed");
  }
  const principal = principalOf(headers.authorization, cfg.authTokens);
  if (principal === null) {
    return refusal(401, ErrorCode.Forbidden, "Unauthorized: a valid bearer token is required", {
      "www-authenticate": 'Bearer realm="mcpq"',
    });
  }
  return { principal };
}

/** HTTP status for an error thrown before a request was accepted. */
export function statusFor(err: McpError): { status: number; headers: Record<string, string> } {
  const retryAfterMs = (err.data as { retryAfterMs?: number } | undefined)?.retryAfterMs;
  const retry: Record<string, string> = retryAfterMs !== undefined ? { "retry-after": String(Math.max(1, Math.ceil(retryAfterMs / 1000))) } : {};
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
