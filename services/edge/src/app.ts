import type { FastifyInstance, FastifyPluginAsync } from "fastify";
import { ErrorCode, errorResponse, salvageId } from "@mcpq/protocol";
import { isUnexpected, statusFor, wireError } from "./core/http-errors.js";
import type { EdgeRuntime } from "./runtime.js";
import { httpFallbacks } from "./transports/http-fallbacks.js";
import { oauthMetadata } from "./transports/oauth-metadata.js";
import { limitHttpConnections } from "./transports/http-limits.js";
import { legacySse } from "./transports/legacy-sse.js";
import { streamableHttp } from "./transports/streamable-http.js";
import { websocketTransport } from "./transports/websocket.js";

export interface EdgeAppOptions {
  runtime: EdgeRuntime;
}

/** The JSON-RPC id of a single-request body, when it can be read (null otherwise). */
function bodyId(body: unknown): string | number | null {
  if (typeof body !== "string") return null;
  try {
    const v = JSON.parse(body) as unknown;
    return Array.isArray(v) ? null : salvageId(v);
  } catch {
    return null;
  }
}

/**
 * The edge as a fastify plugin (no listen): MCP transports plus /healthz, /readyz, /metrics.
 * One error handler hides 5xx details; every MCP error body is JSON-RPC.
 */
export const edgeApp: FastifyPluginAsync<EdgeAppOptions> = async (
  app: FastifyInstance,
  { runtime },
) => {
  // Bodies stay raw strings: we parse once ourselves to answer -32700 precisely, and forward
  // the original text to workers without re-serialising.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser("application/json", { parseAs: "string" }, (_req, body, done) =>
    done(null, body),
  );

  app.setErrorHandler((err: Error & { statusCode?: number; code?: string }, req, reply) => {
    // A retryable refusal thrown before dispatch (broker unavailable during a session lookup):
    // the documented 503/429 + Retry-After with the request's id, never a 500.
    if (!isUnexpected(err)) {
      const { status, headers } = statusFor(err);
      return reply
        .code(status)
        .headers(headers)
        .type("application/json")
        .send(errorResponse(bodyId(req.body), wireError(err).toJSON()));
    }
    const status = err.statusCode ?? 500;
    if (status >= 500) {
      req.log.error({ err, reqId: req.id }, "request failed");
      // E.g. the session lookup failed while the broker is down: answered -32603, counted once.
      runtime.telemetry.transportError(methodOf(req.body), err);
    }
    const message =
      status === 413
        ? "Payload Too Large"
        : status === 415
          ? "Unsupported Media Type: Content-Type must be application/json"
          : status < 500
            ? "Bad Request"
            : "Internal error";
    const code =
      status === 400 && err.code === "FST_ERR_CTP_EMPTY_JSON_BODY"
        ? ErrorCode.ParseError
        : status >= 500
          ? ErrorCode.InternalError
          : ErrorCode.InvalidRequest;
    return reply
      .code(status)
      .type("application/json")
      .send({ jsonrpc: "2.0", id: null, error: { code, message } });
  });

  // Refusals before any JSON-RPC processing (bad token, Host or Origin) get an access log line.
  app.addHook("onResponse", async (req, reply) => {
    if (reply.statusCode === 401 || reply.statusCode === 403) {
      runtime.telemetry.httpRefusal(reply.statusCode, {
        method: req.method,
        path: req.routeOptions.url ?? "",
      });
    }
  });
  httpFallbacks(app, {
    sse: runtime.config.enableSse,
    virtualServers: [...(runtime.core.policy?.servers.keys() ?? [])],
  });

  app.get("/healthz", async () => ({ status: "ok" }));

  app.get("/readyz", async (_req, reply) => {
    const natsOk = !runtime.bus.nc.isClosed() && runtime.bus.nc.info !== undefined;
    // Streams, buckets and the pool consumers as the last self-heal round found them on the
    // broker (every MCPQ_HEAL_CHECK_MS and after reconnects), not as this process created them.
    const broker = runtime.healing.readiness();
    const checks = {
      nats: natsOk && broker.broker,
      streams: broker.streams,
      consumers: broker.consumers,
      registry: runtime.catalog.ready,
      workers: runtime.catalog.workerCount,
    };
    const ready =
      checks.nats &&
      broker.streams &&
      broker.consumers &&
      runtime.catalog.ready &&
      runtime.catalog.workerCount > 0;
    return reply.code(ready ? 200 : 503).send({ status: ready ? "ready" : "not ready", checks });
  });

  app.get("/metrics", async (_req, reply) => {
    return reply.type(runtime.registry.contentType).send(await runtime.registry.metrics());
  });

  // Every MCP HTTP request counts against MCPQ_MAX_CONNECTIONS while in flight (503 beyond).
  const virtualServers = runtime.core.policy?.servers ?? new Map();
  limitHttpConnections(
    app,
    runtime.connections,
    new Map([
      ["/mcp", "http"],
      ["/sse", "sse"],
      ["/messages", "http"],
      ...[...virtualServers.keys()].map((n): [string, "http"] => [`/mcp/${n}`, "http"]),
    ]),
  );
  await oauthMetadata(app, runtime);
  const { edge, config } = runtime;
  await streamableHttp(app, { edge, config });
  // Virtual servers: named subsets of the catalog, each at its own path (MCPQ_POLICY_FILE `servers`).
  for (const [name, view] of virtualServers) {
    await streamableHttp(app, { edge, config, path: `/mcp/${name}`, view });
  }
  if (config.enableSse) await legacySse(app, { edge, config });
  if (config.enableWs) await websocketTransport(app, { edge, config });
};

/** The JSON-RPC method of a raw request body, for counting a request that failed before dispatch. */
function methodOf(body: unknown): string | undefined {
  if (typeof body !== "string") return undefined;
  try {
    const m = (JSON.parse(body) as { method?: unknown }).method;
    return typeof m === "string" ? m : undefined;
  } catch {
    return undefined;
  }
}
