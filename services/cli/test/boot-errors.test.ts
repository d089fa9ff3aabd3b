import { createServer, type Server } from "node:net";
import { afterAll, describe, expect } from "vitest";
import { natsTest as it } from "@mcpq/testkit";
import { runCli } from "./support/replay-stack.js";

/** Holds a loopback port so the service under test finds it taken. */
async function holdPort(): Promise<{ port: number; server: Server }> {
  const server = createServer();
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return { port: (server.address() as { port: number }).port, server };
}

// A port already taken names the setting that chose it (real nats-server: the services connect
// to NATS before they listen).
describe("mcpq edge|worker on a taken port", () => {
  const held: Server[] = [];
  afterAll(async () => Promise.all(held.map((s) => new Promise((r) => s.close(r)))));

  it.for([
    [
      "the HTTP port",
      (p: number) => ({
        args: ["edge", "--port", String(p)],
        env: { MCPQ_TCP_PORT: "0", MCPQ_GRPC_PORT: "0" },
      }),
      /port \d+ is the HTTP port \(--port \/ MCPQ_PORT\)/,
    ],
    [
      "the TCP port",
      (p: number) => ({ args: ["edge", "--port", "0"], env: { MCPQ_TCP_PORT: String(p) } }),
      /port \d+ is the TCP port \(MCPQ_TCP_PORT/,
    ],
    [
      "the gRPC port",
      (p: number) => ({ args: ["edge", "--port", "0"], env: { MCPQ_GRPC_PORT: String(p) } }),
      /port \d+ is the gRPC port \(MCPQ_GRPC_PORT/,
    ],
    [
      "the worker's metrics port",
      (p: number) => ({ args: ["worker"], env: { MCPQ_WORKER_METRICS_PORT: String(p) } }),
      /port \d+ is the metrics port \(MCPQ_WORKER_METRICS_PORT\)/,
    ],
  ] as const)("%s: exits 1 naming it", async ([, call, message], { nats }) => {
    const { port, server } = await holdPort();
    held.push(server);
    const { args, env } = call(port);
    const r = await runCli(args, { ...env, MCPQ_NATS_URL: nats.url, MCPQ_LOG_LEVEL: "warn" });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(message);
    expect(r.stderr).toContain(`EADDRINUSE`);
  });
});
