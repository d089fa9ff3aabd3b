/**
 * Chaos faults under load, shared by the benchmark (`pnpm --filter @mcpq/loadtests chaos`) and
 * the chaos tests (loadtests/test/chaos.test.ts): each starts its own NATS node(s) and mcpq
 * processes, runs the load, injects one fault, repairs it, lets the load run on, stops the
 * load and returns the ledger with the fault's timestamps.
 */
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { ResourceUpdatedNotificationSchema } from "@modelcontextprotocol/sdk/types.js";
import { connect } from "@nats-io/transport-node";
import { jetstreamManager } from "@nats-io/jetstream";
import { startNatsNodes, type NatsNodes } from "./nats-nodes.js";
import { startNetnsCluster, type NetnsCluster } from "./netns.js";
import { startChaosStack, type ChaosStack } from "./stack.js";
import { longestAcross, recoveryMs, startLoad, type Ledger } from "./load.js";

export type FaultName =
  "broker-restart" | "node-kill" | "leader-kill" | "partition" | "worker-kill" | "edge-kill";

export const FAULTS: Record<FaultName, string> = {
  "broker-restart": "single NATS node killed -9 and restarted (memory streams lost; self-heal)",
  "node-kill": "3-node cluster: a follower node killed -9, restarted",
  "leader-kill": "3-node cluster: the MCPQ_REQ stream leader killed -9, restarted",
  partition:
    "3-node cluster in network namespaces: the MCPQ_REQ leader cut off from its peers (its clients still reach it), then reconnected",
  "worker-kill": "one of two workers of the pool killed -9",
  "edge-kill": "one of two edges killed -9 (clients fail over through the balancer)",
};

interface FaultTiming {
  /** Load before the fault (ms). */
  beforeMs: number;
  /** How long a killed node stays down before its restart (ms). */
  downMs: number;
  /** Load after the repair (ms); with `untilRecoveredMs`, at least this long. */
  afterMs: number;
  /**
   * Tests: after `afterMs`, go on until calls succeed again after the repair (20 in a row), for
   * at most this long, instead of judging a fixed window (no timing assumption).
   */
  untilRecoveredMs?: number;
}

export interface FaultResult {
  fault: FaultName;
  description: string;
  ledger: Ledger;
  /** When the fault was injected and repaired (epoch ms). */
  injectedAt: number;
  repairedAt: number;
  /** What the fault hit (node name, process name). */
  victim: string;
  /** Time from injection / from the repair until calls succeeded for good (the last failure; ms). */
  recoveryFromFaultMs: number | null;
  recoveryFromRepairMs: number | null;
  /** The longest call in flight when the fault hit, start to answer (ms): e.g. a redelivery's wait. */
  longestAcrossFaultMs: number;
  /** 20 calls in a row succeeded after the repair before the load stopped. */
  recovered: boolean;
  /**
   * After the load: a resource subscription made before the fault still delivers
   * `notifications/resources/updated` to its session, and `tools/list` (the registry) is served.
   */
  survived: { subscription: boolean; registry: boolean };
}

export interface FaultOptions extends FaultTiming {
  sessions: number;
  /** How many of the sessions use the 2.x client (2026-07-28 era, stateless); default 0. */
  v2Sessions?: number;
  /** How many use SDK 1.32.2 over WebSocket (none in edge-kill); default 0. */
  wsSessions?: number;
  inFlight: number;
  /** Pause after each successful call per slot (ms); 0 (default) = closed loop. */
  thinkMs?: number;
  deadlineMs: number;
  logDir?: string;
  /** Extra settings for every mcpq process. */
  env?: Record<string, string>;
  /** Called with progress lines. */
  say?: (line: string) => void;
}

const WATCHED = "mcpq://example/readme";

/** Announces an update of the watched resource until the subscribed session receives one (bounded). */
async function updateArrives(url: string, updates: string[]): Promise<boolean> {
  const nc = await connect({ servers: url.split(","), name: "chaos-announcer" });
  try {
    for (let i = 0; i < 100 && !updates.includes(WATCHED); i++) {
      nc.publish("mcpq.evt.resources.updated", JSON.stringify({ uri: WATCHED }));
      await sleep(200);
    }
    return updates.includes(WATCHED);
  } finally {
    await nc.close();
  }
}

async function listsTools(c: Client): Promise<boolean> {
  for (let i = 0; i < 50; i++) {
    const names: string[] = await c.listTools().then(
      (r) => r.tools.map((t) => t.name),
      () => [],
    );
    if (names.includes("echo")) return true;
    await sleep(200);
  }
  return false;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The node (index) leading `stream`, from the JetStream API. */
async function streamLeader(
  nats: { url: string; names: string[] },
  stream: string,
): Promise<number> {
  const nc = await connect({ servers: nats.url.split(","), name: "chaos-probe" });
  try {
    const jsm = await jetstreamManager(nc);
    const info = await jsm.streams.info(stream);
    const leader = info.cluster?.leader;
    const i = nats.names.indexOf(String(leader));
    if (i < 0) throw new Error(`no leader for ${stream} (${String(leader)})`);
    return i;
  } finally {
    await nc.close();
  }
}

export async function runFault(fault: FaultName, o: FaultOptions): Promise<FaultResult> {
  const say = o.say ?? (() => undefined);
  const cluster = fault === "node-kill" || fault === "leader-kill" || fault === "partition";
  const split: NetnsCluster | undefined =
    fault === "partition" ? await startNetnsCluster(o.logDir) : undefined;
  const nats: NatsNodes | NetnsCluster = split ?? (await startNatsNodes(cluster ? 3 : 1, o.logDir));
  let stack: ChaosStack | undefined;
  try {
    const env: Record<string, string> = { ...(cluster ? { MCPQ_REPLICAS: "3" } : {}), ...o.env };
    stack = await startChaosStack(nats.url, {
      edges: fault === "edge-kill" ? 2 : 1,
      workers: fault === "worker-kill" ? 2 : 1,
      env,
      logDir: o.logDir,
    });
    say(
      `${fault}: stack up (${nats.names.length} NATS node(s), ${stack.edges.length} edge(s), ${stack.workers.length} worker(s))`,
    );
    // A session with a resource subscription, made before the fault.
    const watcher = new Client({ name: "chaos-watcher", version: "1" }, { capabilities: {} });
    const updates: string[] = [];
    watcher.setNotificationHandler(
      ResourceUpdatedNotificationSchema,
      (n) => void updates.push(n.params.uri),
    );
    await watcher.connect(
      new StreamableHTTPClientTransport(new URL(stack.url), {
        reconnectionOptions: {
          initialReconnectionDelay: 50,
          maxReconnectionDelay: 1_000,
          reconnectionDelayGrowFactor: 1.5,
          maxRetries: 120,
        },
      }),
    );
    await watcher.subscribeResource({ uri: WATCHED });
    const load = await startLoad({
      url: stack.url,
      sessions: o.sessions,
      inFlight: o.inFlight,
      deadlineMs: o.deadlineMs,
      thinkMs: o.thinkMs,
      v2Sessions: o.v2Sessions,
      // The SDK's WebSocket client does not resume a socket whose edge died (mcpq's
      // `$/mcpq/resume` is covered by the transport tests): no WebSocket sessions there.
      wsSessions: fault === "edge-kill" ? 0 : o.wsSessions,
    });
    await sleep(o.beforeMs);
    let victim = "";
    const injectedAt = Date.now();
    let repairedAt = injectedAt;
    switch (fault) {
      case "broker-restart":
        victim = nats.names[0]!;
        await (nats as NatsNodes).kill(0);
        await sleep(o.downMs);
        await (nats as NatsNodes).restart(0);
        repairedAt = Date.now();
        break;
      case "node-kill":
      case "leader-kill": {
        const leader = await streamLeader(nats, "MCPQ_REQ");
        const i = fault === "leader-kill" ? leader : (leader + 1) % nats.names.length;
        victim = `${nats.names[i]!}${i === leader ? " (MCPQ_REQ leader)" : ""}`;
        await (nats as NatsNodes).kill(i);
        await sleep(o.downMs);
        await (nats as NatsNodes).restart(i);
        repairedAt = Date.now();
        break;
      }
      case "partition": {
        const i = await streamLeader(nats, "MCPQ_REQ");
        victim = `${nats.names[i]!} (MCPQ_REQ leader)`;
        split!.partition(i);
        await sleep(o.downMs);
        split!.heal(i);
        repairedAt = Date.now();
        break;
      }
      case "worker-kill": {
        const w = stack.workers[0]!;
        victim = w.name;
        await stack.kill9(w);
        repairedAt = Date.now();
        break;
      }
      case "edge-kill": {
        const e = stack.edges[0]!;
        victim = e.name;
        await stack.kill9(e);
        repairedAt = Date.now();
        break;
      }
    }
    say(`${fault}: fault injected on ${victim}; load continues`);
    await sleep(o.afterMs);
    const recovered = () => {
      const t = load.ledger.timeline;
      return t.length >= 20 && t.slice(-20).every((c) => c.cls === "ok" && c.at > repairedAt);
    };
    if (o.untilRecoveredMs !== undefined) {
      const until = Date.now() + o.untilRecoveredMs;
      while (!recovered() && Date.now() < until) await sleep(100);
    }
    const wasRecovered = recovered();
    const ledger = await load.stop();
    const survived = {
      subscription: await updateArrives(nats.url, updates),
      registry: await listsTools(watcher),
    };
    await watcher.close().catch(() => undefined);
    return {
      fault,
      description: FAULTS[fault],
      ledger,
      injectedAt,
      repairedAt,
      victim,
      recoveryFromFaultMs: recoveryMs(ledger, injectedAt),
      recoveryFromRepairMs: recoveryMs(ledger, repairedAt),
      recovered: wasRecovered,
      longestAcrossFaultMs: longestAcross(ledger, injectedAt),
      survived,
    };
  } finally {
    await stack?.stop();
    await nats.stop();
  }
}
