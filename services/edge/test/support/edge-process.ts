import { spawn, type ChildProcess } from "node:child_process";
import { eventually, freePort } from "@mcpq/testkit";
import { CLI } from "./stdio-bridge.js";

/** An edge running as its own process (`mcpq edge`), so a test can kill it with SIGKILL. */
export interface EdgeProcess {
  url: string;
  wsUrl: string;
  port: number;
  proc: ChildProcess;
  /** kill -9: no goodbye, no drained NATS connection, sockets reset by the kernel. */
  kill9(): Promise<void>;
}

/**
 * Spawns `node services/cli/dist/main.js edge --port <free port>` against `natsUrl` and waits
 * until it is ready (a worker registered). TCP and gRPC take random ports (MCPQ_PORT is fixed
 * here, so they are set to 0 explicitly).
 */
export async function spawnEdge(
  natsUrl: string,
  env: Record<string, string> = {},
): Promise<EdgeProcess> {
  // freePort() can race with other processes' ephemeral ports (parallel test files): when the
  // edge exits before it is ready (EADDRINUSE), try again on another port.
  for (let attempt = 1; ; attempt++) {
    const started = await trySpawnEdge(natsUrl, env);
    if (started) return started;
    if (attempt === 3) throw new Error("edge process did not start after 3 attempts");
  }
}

async function trySpawnEdge(
  natsUrl: string,
  env: Record<string, string>,
): Promise<EdgeProcess | null> {
  const port = await freePort();
  const proc = spawn(process.execPath, [CLI, "edge", "--port", String(port)], {
    env: {
      ...process.env,
      MCPQ_NATS_URL: natsUrl,
      MCPQ_LOG_LEVEL: "warn",
      MCPQ_REGISTRY_TTL_MS: "6000",
      MCPQ_TCP_PORT: "0",
      MCPQ_GRPC_PORT: "0",
      ...env,
    },
    stdio: ["ignore", "ignore", "inherit"],
  });
  const exited = new Promise<void>((r) => proc.once("exit", () => r()));
  const url = `http://127.0.0.1:${port}/mcp`;
  const ready = await eventually(
    async () => {
      if (proc.exitCode !== null) return "exited";
      return (await fetch(`http://127.0.0.1:${port}/readyz`)).status === 200 ? "ready" : null;
    },
    { what: `edge process on port ${port} ready`, timeoutMs: 20_000 },
  );
  if (ready === "exited") return null;
  return {
    url,
    wsUrl: `ws://127.0.0.1:${port}/ws`,
    port,
    proc,
    async kill9() {
      proc.kill("SIGKILL");
      await exited;
    },
  };
}
