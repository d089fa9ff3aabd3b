import type { IncomingHttpHeaders } from "node:http";
import { ErrorCode } from "@mcpq/protocol";
import { isAuthFailure, resourceMetadataUrl, type Caller, type EdgeAuth } from "../core/auth.js";
import { refusal, type HttpRefusal } from "../core/http-errors.js";
import { duplicateHost, hostAllowed, originAllowed } from "../core/security.js";
import type { EdgeConfig } from "../env.js";

export { refusal, type HttpRefusal } from "../core/http-errors.js";

/** What `guardHttp` reads of a request (a fastify request or a raw upgrade request). */
export interface GuardedRequest {
  headers: IncomingHttpHeaders;
  rawHeaders?: string[];
  /** A fastify request's Node request (its rawHeaders). */
  raw?: { rawHeaders?: string[] };
  socket?: { remoteAddress?: string | undefined } | null;
}

/** The parts of the runtime `guardHttp` uses. */
export interface GuardRuntime {
  config: Pick<EdgeConfig, "allowedHosts" | "allowedOrigins">;
  auth: EdgeAuth;
}

/**
 * Checks every HTTP-borne MCP request (Streamable HTTP, legacy SSE, WebSocket upgrade): one
 * Host header on the allow-list and Origin (403, DNS-rebinding protection), then the bearer
 * credential (EdgeAuth): 401 with `WWW-Authenticate` (naming the protected-resource metadata
 * when OAuth is on), or 403 `insufficient_scope`. Returns the caller, or the refusal to send.
 */
export async function guardHttp(
  req: GuardedRequest,
  rt: GuardRuntime,
): Promise<{ principal: string; caller: Caller } | HttpRefusal> {
  const headers = req.headers;
  if (duplicateHost(req.rawHeaders ?? req.raw?.rawHeaders)) {
    return refusal(400, ErrorCode.InvalidRequest, "Bad Request: more than one Host header");
  }
  if (!hostAllowed(headers.host, rt.config.allowedHosts)) {
    return refusal(403, ErrorCode.Forbidden, "Forbidden: Host not allowed");
  }
  const origin = headers.origin;
  if (!originAllowed(origin, rt.config.allowedOrigins)) {
    return refusal(403, ErrorCode.Forbidden, "Forbidden: Origin not allowed");
  }
  const r = await rt.auth.authenticate(headers.authorization, req.socket?.remoteAddress);
  if (isAuthFailure(r)) {
    const meta = rt.auth.oauth ? resourceMetadataUrl(rt.auth.oauth.resource) : undefined;
    const message =
      r.status === 403 ? `Forbidden: ${r.description}` : `Unauthorized: ${r.description}`;
    return refusal(r.status, ErrorCode.Forbidden, message, {
      "www-authenticate": rt.auth.challenge(r, meta),
    });
  }
  return { principal: r.principal, caller: r };
}
