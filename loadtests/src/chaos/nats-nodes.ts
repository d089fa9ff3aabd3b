/**
 * NATS for the chaos scenarios, on the one launcher (@mcpq/nats-launcher): one node, or a
 * JetStream cluster of N nodes on loopback, each with its own ports and store, which a fault can
 * kill with SIGKILL and restart on the same ports and store.
 */
import { startLocalCluster, startLocalNats } from "@mcpq/nats-launcher";

export interface NatsNodes {
  /** Server names, by node index. */
  names: string[];
  /** Every client URL, comma-separated (what MCPQ_NATS_URL gets). */
  url: string;
  /** kill -9 one node (store kept). */
  kill(i: number): Promise<void>;
  /** Starts a killed node again on the same ports and store (a cluster node: until it rejoined). */
  restart(i: number): Promise<void>;
  stop(): Promise<void>;
}

const binOpts = () => ({
  bin: process.env.NATS_SERVER_BIN ?? process.env.MCPQ_NATS_SERVER_BIN,
  searchPath: process.env.PATH,
});

/** Starts `count` nodes (1 = a plain JetStream server; more = a cluster named mcpq). */
export async function startNatsNodes(count: number, logDir?: string): Promise<NatsNodes> {
  if (count === 1) {
    const n = await startLocalNats({
      ...binOpts(),
      serverName: "n0",
      logFile: logDir ? `${logDir}/nats-n0.log` : undefined,
    });
    return {
      names: ["n0"],
      url: n.url,
      kill: () => n.kill("SIGKILL"),
      restart: () => n.restart(),
      stop: () => n.stop(),
    };
  }
  const c = await startLocalCluster({ ...binOpts(), nodes: count, logDir });
  return {
    names: c.nodes.map((n) => n.serverName),
    url: c.url,
    kill: (i) => c.kill(i, "SIGKILL"),
    restart: (i) => c.restart(i),
    stop: () => c.stop(),
  };
}
