import { explainBootError, parseFlags, portFlag } from "../args.js";
import type { CliEnv } from "../env.js";

export const USAGE = `mcpq edge — an edge: Streamable HTTP, WebSocket, HTTP+SSE, TCP and gRPC on 127.0.0.1

Usage: mcpq edge [--port N] [--host ADDR]

  --port N      HTTP port for /mcp, /ws, /sse, /healthz, /readyz, /metrics (default MCPQ_PORT or 8080;
                0 = random). TCP and gRPC follow it (port+10, port+41971) unless MCPQ_TCP_PORT /
                MCPQ_GRPC_PORT are set
  --host ADDR   interface every listener binds (default MCPQ_HOST or 127.0.0.1)

Connects to MCPQ_NATS_URL (default nats://127.0.0.1:4222); every other setting is an MCPQ_*
variable (README, "Edge"). Runs until SIGINT/SIGTERM.`;

/** `mcpq edge`: the edge service in this process, with --port/--host over MCPQ_PORT/MCPQ_HOST. */
export async function run(argv: string[], env: Readonly<CliEnv>): Promise<void> {
  const v = parseFlags(argv, { port: { type: "string" }, host: { type: "string" } }, USAGE);
  if (!v) return;
  const overrides: { port?: number; host?: string } = {};
  if (v.port !== undefined) overrides.port = portFlag("--port", v.port);
  if (v.host !== undefined) overrides.host = v.host;
  const { main } = await import("@mcpq/edge");
  try {
    await main(overrides);
  } catch (err) {
    throw explainBootError(err, { natsUrl: env.MCPQ_NATS_URL, ports: "set --port / MCPQ_PORT, MCPQ_TCP_PORT or MCPQ_GRPC_PORT to a free port" });
  }
}
