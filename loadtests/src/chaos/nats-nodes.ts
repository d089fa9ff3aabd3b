/**
 * NATS for the chaos scenarios: one node, or a JetStream cluster of N nodes on loopback, each
 * with its own port, cluster port and store, which a fault can kill with SIGKILL and restart on
 * the same ports and store. Processes are owned by procs.ts (killed on exit).
 */
import { join } from "node:path";
import {
  findNatsServer,
  freePort,
  makeTempDir,
  removeTempDir,
  startProcess,
  tcpOpen,
  waitUntil,
  type Managed,
} from "../lib/procs.js";

export interface NatsNode {
  name: string;
  port: number;
  clusterPort: number;
  storeDir: string;
  proc: Managed | undefined;
}

export interface NatsNodes {
  nodes: NatsNode[];
  /** Every client URL, comma-separated (what MCPQ_NATS_URL gets). */
  url: string;
  /** kill -9 one node (store kept). */
  kill(i: number): Promise<void>;
  /** Starts a killed node again on the same ports and store. */
  restart(i: number): Promise<void>;
  stop(): Promise<void>;
}

/** Starts `count` nodes (1 = a plain JetStream server; more = a cluster named mcpq). */
export async function startNatsNodes(count: number, logDir?: string): Promise<NatsNodes> {
  const bin = findNatsServer();
  if (!bin) throw new Error("nats-server not found (looked at $NATS_SERVER_BIN, /usr/sbin/nats-server, PATH)");
  const nodes: NatsNode[] = [];
  for (let i = 0; i < count; i++) {
    nodes.push({ name: `n${i + 1}`, port: await freePort(), clusterPort: await freePort(), storeDir: makeTempDir(`mcpq-chaos-${i + 1}-`), proc: undefined });
  }
  const args = (n: NatsNode): string[] => {
    const base = ["-js", "-a", "127.0.0.1", "-p", String(n.port), "-sd", n.storeDir, "--server_name", n.name];
    if (count === 1) return base;
    const routes = nodes.filter((o) => o !== n).map((o) => `nats://127.0.0.1:${o.clusterPort}`).join(",");
    return [...base, "--cluster_name", "mcpq", "--cluster", `nats://127.0.0.1:${n.clusterPort}`, "--routes", routes];
  };
  const launch = async (n: NatsNode) => {
    n.proc = startProcess(`nats-${n.name}`, bin, args(n), { logFile: logDir ? join(logDir, `nats-${n.name}.log`) : undefined });
    await waitUntil(`nats ${n.name}`, () => tcpOpen(n.port), 15_000, n.proc);
  };
  await Promise.all(nodes.map(launch));
  return {
    nodes,
    url: nodes.map((n) => `nats://127.0.0.1:${n.port}`).join(","),
    async kill(i) {
      const n = nodes[i]!;
      n.proc?.child.kill("SIGKILL");
      await n.proc?.exited;
      n.proc = undefined;
    },
    async restart(i) {
      await launch(nodes[i]!);
    },
    async stop() {
      await Promise.all(nodes.map((n) => n.proc?.stop("SIGTERM")));
      for (const n of nodes) removeTempDir(n.storeDir);
    },
  };
}
