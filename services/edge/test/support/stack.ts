import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { startStack, type NatsHandle, type StackOptions } from "@mcpq/testkit";
import { loadEdgeConfig, startEdge, type RunningEdge } from "@mcpq/edge";
import { loadWorkerConfig, startWorker, type RunningWorker } from "@mcpq/worker";

/**
 * Settings of in-process test edges unless a test sets them: these edges share their event loop
 * with the test's own clients on a loaded 2-core machine, so the loop lag and queue times they
 * see are the test process's, not an edge's (a 500-call test lagged 1.7 s). The tests of these
 * checks (overload-loop-lag, overload-queue-time) set them explicitly.
 */
/** Off in tests: agents share the cores, and a stalled loop must not turn calls into refusals. */
export const SHARED_LOOP_ENV = { MCPQ_MAX_EVENT_LOOP_LAG_MS: "0", MCPQ_MAX_QUEUE_MS: "0" };

/** In-process edges and workers against a real NATS (the factories testkit's startStack takes). */
export const factories = {
  startEdge: (natsUrl: string, env: Record<string, string>): Promise<RunningEdge> =>
    startEdge(
      loadEdgeConfig({
        MCPQ_NATS_URL: natsUrl,
        MCPQ_PORT: "0",
        MCPQ_LOG_LEVEL: "silent",
        MCPQ_REGISTRY_TTL_MS: "6000",
        ...SHARED_LOOP_ENV,
        ...env,
      }),
    ),
  startWorker: (
    natsUrl: string,
    catalogs: string[],
    env: Record<string, string>,
  ): Promise<RunningWorker> =>
    startWorker(
      loadWorkerConfig({
        MCPQ_NATS_URL: natsUrl,
        MCPQ_CATALOGS: catalogs.join(","),
        MCPQ_LOG_LEVEL: "silent",
        MCPQ_REGISTRY_TTL_MS: "6000",
        ...env,
      }),
    ),
};

export function stack(nats: NatsHandle, opts: StackOptions = {}) {
  return startStack(nats, factories, opts);
}

/** The official SDK client over Streamable HTTP. */
export async function sdkClient(
  url: string,
  opts: {
    sessionId?: string;
    name?: string;
    capabilities?: Record<string, unknown>;
    headers?: Record<string, string>;
    fetch?: typeof fetch;
  } = {},
) {
  const client = new Client(
    { name: opts.name ?? "mcpq-test", version: "1.0.0" },
    { capabilities: opts.capabilities ?? {} },
  );
  const transportOpts: ConstructorParameters<typeof StreamableHTTPClientTransport>[1] = {};
  if (opts.sessionId) transportOpts.sessionId = opts.sessionId;
  if (opts.headers) transportOpts.requestInit = { headers: opts.headers };
  if (opts.fetch) transportOpts.fetch = opts.fetch;
  const transport = new StreamableHTTPClientTransport(new URL(url), transportOpts);
  await client.connect(transport);
  return { client, transport };
}
