import { join, resolve } from "node:path";
import type { ServerVersion } from "./binary.js";
import { NatsLaunchError } from "./errors.js";
import {
  prepareLaunch,
  removeWorkDir,
  DEFAULT_MAX_PAYLOAD,
  type LaunchOptions,
} from "./local-server.js";
import { freePort } from "./ports.js";
import { jetStreamReady, monitorJson, ServerProcess, type ReadyCheck } from "./server-process.js";

export interface LocalClusterOptions extends LaunchOptions {
  /** Number of nodes (2-9; 3 or 5 keep a quorum when one dies). Default 3. */
  nodes?: number | undefined;
  /** The cluster's `name`. Default "mcpq". */
  name?: string | undefined;
  /** Client port of node 0; node i listens on port + i. Random free ports when omitted. */
  port?: number | undefined;
  /** Parent of the per-node stores (`<storeRoot>/<serverName>`, kept); temp dirs when omitted. */
  storeRoot?: string | undefined;
  /** Directory for per-node log files (`<serverName>.log`); logs are only captured when omitted. */
  logDir?: string | undefined;
}

/** One node of a {@link LocalCluster}; ports and store stay the same across restarts. */
export interface ClusterNode {
  readonly index: number;
  readonly serverName: string;
  readonly url: string;
  readonly port: number;
  readonly clusterPort: number;
  readonly monitorUrl: string;
  readonly storeDir: string;
  readonly pid: number | undefined;
  readonly running: boolean;
  /** The last lines it logged. */
  readonly logTail: string;
  /** Resolves when its running process exits. */
  exited(): Promise<void>;
}

/** A JetStream cluster of local nats-server processes (loopback routes, one store per node). */
export interface LocalCluster {
  readonly name: string;
  readonly version: ServerVersion;
  readonly nodes: readonly ClusterNode[];
  /** Every node's client URL. */
  readonly urls: readonly string[];
  /** The URLs joined with commas: the form MCPQ_NATS_URL takes. */
  readonly url: string;
  /**
   * Sends `signal` (default SIGKILL) to node `i` and waits for it to exit; its store stays.
   * SIGSTOP/SIGCONT (freeze and thaw a node) return once sent.
   */
  kill(i: number, signal?: NodeJS.Signals): Promise<void>;
  /** Starts node `i` again on the same ports and store; resolves once it has rejoined (routes up, meta leader known, /healthz ok). */
  restart(i: number): Promise<void>;
  /** Resolves once every running node sees its peers and a JetStream meta leader. */
  waitReady(): Promise<void>;
  /** Stops every node (graceful), then removes temp stores and configs. */
  stop(): Promise<void>;
}

/** Node ready inside a cluster: JetStream ready, routes to every other node up, meta leader known. */
function clusterReady(size: number): ReadyCheck {
  // Cheap, silent checks first: a failing /healthz logs a warning on the server at every poll.
  return async (base) => {
    const routez = await monitorJson(`${base}/routez`);
    if (Number(routez?.["num_routes"] ?? 0) < size - 1) return false;
    const jsz = await monitorJson(`${base}/jsz`);
    const meta = jsz?.["meta_cluster"] as { leader?: string; cluster_size?: number } | undefined;
    if (!meta?.leader || (meta.cluster_size ?? 0) < size) return false;
    return jetStreamReady(base);
  };
}

/**
 * Starts an N-node JetStream cluster on loopback: cluster name, server names `n0..n{N-1}`,
 * explicit routes between all nodes, a store per node. Resolves when every node is ready.
 * @throws NatsLaunchError naming the port or store at fault.
 */
export async function startLocalCluster(opts: LocalClusterOptions = {}): Promise<LocalCluster> {
  const size = opts.nodes ?? 3;
  if (!Number.isInteger(size) || size < 2 || size > 9)
    throw new RangeError(`a local cluster has 2-9 nodes, not ${size}`);
  const { bin, version, workDir } = await prepareLaunch(opts);
  const host = opts.host ?? "127.0.0.1";
  const name = opts.name ?? "mcpq";
  const timeout = opts.readyTimeoutMs ?? 60_000;
  const ready = clusterReady(size);
  let procs: ServerProcess[] = [];
  try {
    for (let attempt = 1; ; attempt++) {
      const ports = await Promise.all(
        Array.from({ length: size }, async (_, i) => ({
          client: opts.port !== undefined ? opts.port + i : await freePort(host),
          route: await freePort(host),
          http: await freePort(host),
        })),
      );
      const routes = ports.map((p) => p.route);
      procs = ports.map((p, i) => {
        const serverName = `n${i}`;
        const storeDir =
          opts.storeRoot !== undefined
            ? resolve(opts.storeRoot, serverName)
            : join(workDir, serverName);
        return new ServerProcess(
          bin,
          {
            serverName,
            host,
            port: p.client,
            httpPort: p.http,
            storeDir,
            maxPayload: opts.maxPayload ?? DEFAULT_MAX_PAYLOAD,
            settings: opts.settings,
            cluster: { name, port: p.route, routes },
          },
          join(workDir, `${serverName}.conf`),
          {
            echo: opts.echo,
            env: opts.env,
            logFile: opts.logDir ? join(opts.logDir, `${serverName}.log`) : undefined,
          },
        );
      });
      try {
        // All nodes must be up before any is ready (it waits for routes and a meta leader).
        for (const p of procs) await p.spawn();
        await Promise.all(procs.map((p) => p.waitReady(ready, timeout)));
        break;
      } catch (err) {
        await Promise.all(procs.map((p) => p.stop()));
        const retry =
          err instanceof NatsLaunchError &&
          err.code === "port-in-use" &&
          opts.port === undefined &&
          attempt < 3;
        if (!retry) throw err;
      }
    }
  } catch (err) {
    await removeWorkDir(workDir);
    throw err;
  }
  const node = (i: number): ServerProcess => {
    const p = procs[i];
    if (!p) throw new RangeError(`no node ${i} in a ${size}-node cluster`);
    return p;
  };
  const nodes: ClusterNode[] = procs.map((p, index) => ({
    index,
    serverName: p.config.serverName,
    url: `nats://${host}:${p.config.port}`,
    port: p.config.port,
    clusterPort: p.config.cluster?.port ?? 0,
    monitorUrl: p.monitorUrl,
    storeDir: p.config.storeDir,
    get pid() {
      return p.pid;
    },
    get running() {
      return p.running;
    },
    get logTail() {
      return p.logTail;
    },
    exited: () => p.exited(),
  }));
  const urls = nodes.map((n) => n.url);
  return {
    name,
    version,
    nodes,
    urls,
    url: urls.join(","),
    kill: (i, signal) => node(i).kill(signal),
    async restart(i) {
      const p = node(i);
      await p.kill("SIGKILL");
      await p.start(ready, timeout);
    },
    async waitReady() {
      await Promise.all(procs.filter((p) => p.running).map((p) => p.waitReady(ready, timeout)));
    },
    async stop() {
      await Promise.all(procs.map((p) => p.stop()));
      await removeWorkDir(workDir);
    },
  };
}
