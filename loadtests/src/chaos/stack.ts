/**
 * The mcpq processes of a chaos scenario: edges and workers as child processes (`mcpq edge`,
 * `mcpq worker`), so a fault can kill any of them with SIGKILL, and a TCP balancer in front of
 * the edges that sends each new connection to the first edge that accepts it (clients fail
 * over by reconnecting).
 */
import { startProxy } from "@mcpq/testkit/net";
import { join } from "node:path";
import { mcpqCliPath, REPO_DIR } from "../lib/stack.js";
import { freePort, httpOk, startProcess, waitUntil, type Managed } from "../lib/procs.js";

interface ChaosProc {
  name: string;
  proc: Managed;
  /** HTTP port (edges). */
  port?: number;
}

export interface ChaosStack {
  edges: ChaosProc[];
  workers: ChaosProc[];
  /** The balancer's MCP URL (what clients use). */
  url: string;
  startEdge(): Promise<ChaosProc>;
  startWorker(): Promise<ChaosProc>;
  kill9(p: ChaosProc): Promise<void>;
  stop(): Promise<void>;
}

/** Settings every chaos process gets (short TTLs so the scenario is brief; same on all). */
const CHAOS_ENV: Record<string, string> = {
  MCPQ_LOG_LEVEL: "warn",
  MCPQ_REGISTRY_TTL_MS: "3000",
  MCPQ_SSE_RETRY_MS: "100",
  MCPQ_TCP_PORT: "0",
  MCPQ_GRPC_PORT: "0",
  MCPQ_BUS_STATS_MS: "0",
  MCPQ_RECORD: "off",
  // A fault refuses many requests at once; the chaos load wants the broker's answers, not a breaker.
  MCPQ_CIRCUIT_FAILURES: "0",
  MCPQ_TOOL_RATE_PER_SEC: "0",
};

export async function startChaosStack(
  natsUrl: string,
  opts: { edges: number; workers: number; env?: Record<string, string>; logDir?: string },
): Promise<ChaosStack> {
  const cli = mcpqCliPath();
  const env = { ...process.env, ...CHAOS_ENV, ...opts.env, MCPQ_NATS_URL: natsUrl };
  const edges: ChaosProc[] = [];
  const workers: ChaosProc[] = [];
  let n = 0;
  const log = (name: string) => (opts.logDir ? join(opts.logDir, `${name}.log`) : undefined);
  const startEdge = async (): Promise<ChaosProc> => {
    const port = await freePort();
    const name = `edge-${++n}`;
    const proc = startProcess(name, process.execPath, [cli, "edge", "--port", String(port)], {
      env,
      cwd: REPO_DIR,
      logFile: log(name),
    });
    await waitUntil(name, () => httpOk(`http://127.0.0.1:${port}/readyz`), 60_000, proc);
    const e = { name, proc, port };
    edges.push(e);
    return e;
  };
  const startWorker = async (): Promise<ChaosProc> => {
    const name = `worker-${++n}`;
    const proc = startProcess(name, process.execPath, [cli, "worker", "--catalog", "example"], {
      env,
      cwd: REPO_DIR,
      logFile: log(name),
    });
    const w = { name, proc };
    workers.push(w);
    return w;
  };
  for (let i = 0; i < opts.workers; i++) await startWorker();
  for (let i = 0; i < opts.edges; i++) await startEdge();
  const lb = await startProxy(() =>
    edges
      .filter((e) => e.proc.child.exitCode === null && e.proc.child.signalCode === null)
      .map((e) => e.port!),
  );
  return {
    edges,
    workers,
    url: `http://127.0.0.1:${lb.port}/mcp`,
    startEdge,
    startWorker,
    async kill9(p) {
      p.proc.child.kill("SIGKILL");
      await p.proc.exited;
    },
    async stop() {
      await lb.close();
      await Promise.all([...edges, ...workers].map((p) => p.proc.stop("SIGTERM", 5_000)));
    },
  };
}
