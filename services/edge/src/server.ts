import { setFlagsFromString } from "node:v8";
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance } from "fastify";
import { createLogger } from "@mcpq/observability";
import type { Logger } from "@mcpq/protocol";
import { edgeApp } from "./app.js";
import { loadEdgeConfig, type EdgeConfig } from "./env.js";
import { createEdgeRuntime, type EdgeRuntime } from "./runtime.js";
import { startGrpcTransport } from "./transports/grpc.js";
import type { ListeningTransport } from "./transports/socket-common.js";
import { startTcpTransport } from "./transports/tcp.js";

/** A logger both the edge (`Logger`) and fastify can use; a pino logger is one. */
export type EdgeLogger = FastifyBaseLogger & Logger;

/** A running edge: its URL and a graceful stop. */
export interface RunningEdge {
  url: string;
  port: number;
  /** `ws://HOST:PORT/ws` when WebSocket is enabled. */
  wsUrl: string | undefined;
  /** `http://HOST:PORT/sse` when the legacy HTTP+SSE transport is enabled. */
  sseUrl: string | undefined;
  /** Bound port of the raw TCP transport (MCPQ_TCP_PORT; random when configured 0), if enabled. */
  tcpPort: number | undefined;
  /** Bound port of the gRPC transport (MCPQ_GRPC_PORT), if enabled. */
  grpcPort: number | undefined;
  runtime: EdgeRuntime;
  app: FastifyInstance;
  close(): Promise<void>;
}

/**
 * Builds the runtime, mounts the app and listens (127.0.0.1 unless configured). `close()` stops
 * accepting, ends open streams and drains the NATS connection.
 */
export async function startEdge(
  config: Readonly<EdgeConfig>,
  logger?: EdgeLogger,
): Promise<RunningEdge> {
  const log: EdgeLogger = logger ?? createLogger({ name: "mcpq-edge", level: config.logLevel });
  const runtime = await createEdgeRuntime(config, log.child({ edge: config.edgeId }));
  const app = Fastify({
    loggerInstance: log,
    // Per-request access logs would dominate the hot path; metrics carry that information.
    logController: new LogController({ disableRequestLogging: true }),
    // No per-request child logger (a pino child per request was ~2 % of the edge's CPU): the
    // few request-scoped lines name the request id themselves.
    childLoggerFactory: (logger) => logger,
    // A whole body (a batch may hold several messages); each message is held to maxMessageBytes.
    bodyLimit: runtime.config.maxBodyBytes,
    forceCloseConnections: true,
    // Large accept backlog: refuse at the application level (503) rather than in the kernel.
    return503OnClosing: true,
    // A client must send its headers, then its whole request, in bounded time (slowloris: a
    // half-sent chunked POST or a Content-Length larger than the body held a slot forever).
    requestTimeout: config.httpRequestTimeoutMs,
    keepAliveTimeout: config.httpKeepAliveTimeoutMs,
    http: {
      headersTimeout:
        config.httpRequestTimeoutMs > 0
          ? Math.min(config.httpHeadersTimeoutMs, config.httpRequestTimeoutMs)
          : config.httpHeadersTimeoutMs,
      // How often Node looks for connections past those timeouts.
      connectionsCheckingInterval: Math.max(
        100,
        Math.min(1_000, config.httpHeadersTimeoutMs || 1_000, config.httpRequestTimeoutMs || 1_000),
      ),
    },
  });
  await app.register(edgeApp, { runtime });
  await app.listen({ host: config.host, port: config.port, backlog: 4096 });
  const addr = app.server.address();
  const port = typeof addr === "object" && addr ? addr.port : config.port;
  const host = config.host.includes(":") ? `[${config.host}]` : config.host;
  const listeners: ListeningTransport[] = [];
  let tcp: ListeningTransport | undefined;
  let grpc: ListeningTransport | undefined;
  try {
    if (config.enableTcp) listeners.push((tcp = await startTcpTransport(runtime.edge, config)));
    if (config.enableGrpc) listeners.push((grpc = await startGrpcTransport(runtime.edge, config)));
  } catch (err) {
    await Promise.allSettled(listeners.map((l) => l.close()));
    await app.close();
    await runtime.close();
    throw err;
  }
  const wsUrl = config.enableWs ? `ws://${host}:${port}/ws` : undefined;
  const sseUrl = config.enableSse ? `http://${host}:${port}/sse` : undefined;
  log.info(
    {
      url: `http://${host}:${port}/mcp`,
      wsUrl,
      sseUrl,
      tcpPort: tcp?.port,
      grpcPort: grpc?.port,
      edgeId: config.edgeId,
    },
    "edge listening",
  );
  return {
    url: `http://${host}:${port}/mcp`,
    port,
    wsUrl,
    sseUrl,
    tcpPort: tcp?.port,
    grpcPort: grpc?.port,
    runtime,
    app,
    async close() {
      // Listen streams end with their SubscriptionsListenResult before the connections close.
      runtime.core.endListeners();
      await Promise.allSettled(listeners.map((l) => l.close()));
      await app.close();
      await runtime.close();
    },
  };
}

/** Runs an edge from the environment until SIGINT/SIGTERM. */
export async function main(overrides: Partial<EdgeConfig> = {}): Promise<RunningEdge> {
  const config = loadEdgeConfig(process.env, overrides);
  // A process-wide V8 setting, so the service entry sets it (never startEdge, which tests embed).
  if (config.heapGrowingPercent > 0)
    setFlagsFromString(`--heap-growing-percent=${config.heapGrowingPercent}`);
  const edge = await startEdge(config);
  const stop = async () => {
    await edge.close().catch(() => undefined);
    process.exit(0);
  };
  process.once("SIGINT", () => void stop());
  process.once("SIGTERM", () => void stop());
  return edge;
}
