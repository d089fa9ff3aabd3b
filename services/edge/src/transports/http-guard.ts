import type { IncomingHttpHeaders } from "node:http";
import { ErrorCode } from "@mcpq/protocol";
import { refusal, type HttpRefusal } from "../core/http-errors.js";
import { hostAllowed, originAllowed, principalOf } from "../core/security.js";
import type { EdgeConfig } from "../env.js";

export { refusal, statusFor, type HttpRefusal } from "../core/http-errors.js";

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
