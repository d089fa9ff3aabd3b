import type { FastifyInstance } from "fastify";
import { ErrorCode } from "@mcpq/protocol";
import type { ConnectionKind } from "../core/connection-limiter.js";
import type { ConnectionLimiter } from "../core/connection-limiter.js";

/**
 * Counts every MCP HTTP request while it is in flight (a long-lived SSE stream for its whole
 * life) against the edge's connection limit; beyond it the request gets **503** with
 * `Retry-After` and a JSON-RPC -32010 body. `routes` maps route paths to their counted kind;
 * other routes (/healthz, /metrics) are never refused.
 */
export function limitHttpConnections(
  app: FastifyInstance,
  connections: ConnectionLimiter,
  routes: ReadonlyMap<string, ConnectionKind>,
): void {
  app.addHook("onRequest", async (req, reply) => {
    const path = req.routeOptions.url;
    const kind = path === undefined ? undefined : routes.get(path);
    if (!kind) return;
    const release = connections.tryAcquire(kind, req.socket.remoteAddress);
    if (!release) {
      const retryAfterMs = connections.retryAfterMs;
      return reply
        .code(503)
        .header("retry-after", String(Math.max(1, Math.ceil(retryAfterMs / 1000))))
        .type("application/json")
        .send({
          jsonrpc: "2.0",
          id: null,
          error: {
            code: ErrorCode.Overloaded,
            message: "Overloaded: too many connections",
            data: { retryAfterMs },
          },
        });
    }
    reply.raw.once("close", release);
  });
}
