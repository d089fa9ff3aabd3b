import { explainBootError, parseFlags, portFlag } from "../args.js";
import {
  clusterIndex,
  isClusterWorker,
  processesFlag,
  runPrimary,
  shareMetrics,
} from "../cluster.js";
import type { CliEnv } from "../env.js";

export const USAGE = `mcpq edge — an edge: Streamable HTTP, WebSocket, HTTP+SSE, TCP and gRPC on 127.0.0.1

Usage: mcpq edge [--port N] [--host ADDR] [--processes N]

  --port N      HTTP port for /mcp, /ws, /sse, /healthz, /readyz, /metrics (default MCPQ_PORT or 8080;
                0 = random). TCP and gRPC follow it (port+10, port+41971) unless MCPQ_TCP_PORT /
                MCPQ_GRPC_PORT are set
  --host ADDR   interface every listener binds (default MCPQ_HOST or 127.0.0.1)
  --processes N  run N edge processes (node:cluster; "auto" = one per CPU) sharing every port;
                /metrics then answers for all of them. HTTP+SSE (2024-11-05) is sticky to one
                process, so use it with 1 process only (Streamable HTTP, WebSocket, TCP and gRPC
                work with any number)

Connects to MCPQ_NATS_URL (default nats://127.0.0.1:4222); every other setting is an MCPQ_*
variable (README, "Edge"). Runs until SIGINT/SIGTERM.`;

/** `mcpq edge`: the edge service in this process, with --port/--host over MCPQ_PORT/MCPQ_HOST. */
export async function run(argv: string[], env: Readonly<CliEnv>): Promise<void> {
  const v = parseFlags(
    argv,
    { port: { type: "string" }, host: { type: "string" }, processes: { type: "string" } },
    USAGE,
  );
  if (!v) return;
  const overrides: { port?: number; host?: string; edgeId?: string } = {};
  if (v.port !== undefined) overrides.port = portFlag("--port", v.port);
  if (v.host !== undefined) overrides.host = v.host;
  const processes = v.processes !== undefined ? processesFlag(v.processes) : 1;
  const { main, loadEdgeConfig } = await import("@mcpq/edge");
  const config = loadEdgeConfig(process.env, overrides);
  if (processes > 1 && !isClusterWorker()) return runPrimary("edge", processes);
  // Every process of a cluster needs its own edge id (replies and claims are addressed by it).
  if (isClusterWorker() && process.env["MCPQ_EDGE_ID"])
    overrides.edgeId = `${config.edgeId}-${clusterIndex()}`;
  let running;
  try {
    running = await main(overrides);
  } catch (err) {
    const ports = {
      [config.grpcPort]: "the gRPC port (MCPQ_GRPC_PORT, default HTTP port + 41971)",
      [config.tcpPort]: "the TCP port (MCPQ_TCP_PORT, default HTTP port + 10)",
      [config.port]: "the HTTP port (--port / MCPQ_PORT)",
    };
    throw explainBootError(err, { natsUrl: env.MCPQ_NATS_URL, ports });
  }
  if (isClusterWorker()) shareMetrics(running.runtime.registry);
}
