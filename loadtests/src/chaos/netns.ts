/**
 * A 3-node JetStream cluster whose nodes live in their own network namespaces, so one node can be
 * partitioned from its peers while its clients still reach it (a real split, not a kill). Needs
 * root and `ip netns` (+ iptables); `netnsUnavailable()` says why not otherwise.
 *
 * Layout (all created here and deleted on stop, or on exit): namespaces `<p>n0..n2`, each with a
 * veth into a bridge `<p>br` in the root namespace on a private /24 (10.231.X.0/24, no uplink, so
 * nothing leaves the host); node i listens on 10.231.X.(i+1):4222 (clients) and :6222 (routes);
 * mcpq processes in the root namespace reach the nodes through the bridge (10.231.X.254). The
 * partition drops traffic between the node and its peers inside its namespace (iptables); the
 * repair flushes those rules.
 *
 * Why not @mcpq/nats-launcher: it starts nats-server directly; here each server must be started
 * through `ip netns exec` on its namespace's address.
 */
import { execFileSync, spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { connect } from "@nats-io/transport-node";
import { jetstreamManager } from "@nats-io/jetstream";
import { benchNatsServer, startProcess, tcpOpen, waitUntil, type Managed } from "../lib/procs.js";

export interface NetnsCluster {
  names: string[];
  url: string;
  /** Cuts node i off from its peers (clients still reach it). */
  partition(i: number): void;
  /** Lets node i talk to its peers again. */
  heal(i: number): void;
  stop(): Promise<void>;
}

const run = (args: string[]) => execFileSync("ip", args, { stdio: ["ignore", "ignore", "pipe"] });

/** Why the partition case cannot run here, or null when it can. */
export function netnsUnavailable(): string | null {
  if (process.platform !== "linux") return "network namespaces need Linux";
  if (typeof process.getuid === "function" && process.getuid() !== 0)
    return "network namespaces need root";
  if (!benchNatsServer()) return "nats-server not found";
  const probe = `mqprobe${randomBytes(2).toString("hex")}`;
  const add = spawnSync("ip", ["netns", "add", probe], { encoding: "utf8" });
  if (add.status !== 0)
    return `ip netns add failed: ${(add.stderr || add.error?.message || "").trim()}`;
  const ipt = spawnSync("ip", ["netns", "exec", probe, "iptables", "-L", "-n"], {
    encoding: "utf8",
  });
  spawnSync("ip", ["netns", "del", probe]);
  if (ipt.status !== 0)
    return `iptables in a namespace failed: ${(ipt.stderr || ipt.error?.message || "").trim()}`;
  return null;
}

export async function startNetnsCluster(logDir?: string): Promise<NetnsCluster> {
  const bin = benchNatsServer();
  if (!bin) throw new Error("nats-server not found");
  const p = `mq${randomBytes(2).toString("hex")}`;
  const subnet = `10.231.${1 + (randomBytes(1)[0]! % 250)}`;
  const ns = [0, 1, 2].map((i) => `${p}n${i}`);
  const ip = (i: number) => `${subnet}.${i + 1}`;
  const bridge = `${p}br`;
  const stores = ns.map((n) => mkdtempSync(join(tmpdir(), `mcpq-netns-${n}-`)));
  const procs: (Managed | undefined)[] = [];
  let cleaned = false;
  const cleanup = () => {
    if (cleaned) return;
    cleaned = true;
    for (const n of ns) spawnSync("ip", ["netns", "del", n]);
    spawnSync("ip", ["link", "del", bridge]);
    for (const s of stores) rmSync(s, { recursive: true, force: true });
  };
  process.once("exit", cleanup);
  try {
    run(["link", "add", bridge, "type", "bridge"]);
    run(["addr", "add", `${subnet}.254/24`, "dev", bridge]);
    run(["link", "set", bridge, "up"]);
    ns.forEach((n, i) => {
      run(["netns", "add", n]);
      run(["link", "add", `${p}h${i}`, "type", "veth", "peer", "name", `${p}p${i}`]);
      run(["link", "set", `${p}p${i}`, "netns", n]);
      run(["link", "set", `${p}h${i}`, "master", bridge]);
      run(["link", "set", `${p}h${i}`, "up"]);
      run(["netns", "exec", n, "ip", "link", "set", "lo", "up"]);
      run(["netns", "exec", n, "ip", "addr", "add", `${ip(i)}/24`, "dev", `${p}p${i}`]);
      run(["netns", "exec", n, "ip", "link", "set", `${p}p${i}`, "up"]);
    });
    ns.forEach((n, i) => {
      const routes = [0, 1, 2]
        .filter((j) => j !== i)
        .map((j) => `nats://${ip(j)}:6222`)
        .join(",");
      const args = [
        "netns",
        "exec",
        n,
        bin,
        "-js",
        "-a",
        ip(i),
        "-p",
        "4222",
        "-sd",
        stores[i]!,
        "--server_name",
        `n${i}`,
        "--cluster_name",
        "mcpq",
        "--cluster",
        `nats://${ip(i)}:6222`,
        "--routes",
        routes,
      ];
      procs.push(
        startProcess(`nats-n${i}`, "ip", args, {
          logFile: logDir ? join(logDir, `n${i}.log`) : undefined,
        }),
      );
    });
    for (let i = 0; i < 3; i++)
      await waitUntil(`nats n${i}`, () => tcpOpen(4222, ip(i)), 30_000, procs[i]);
    const url = [0, 1, 2].map((i) => `nats://${ip(i)}:4222`).join(",");
    // Ready when the JetStream meta layer answers (a meta leader was elected).
    await waitUntil(
      "cluster meta leader",
      async () => {
        const nc = await connect({ servers: url.split(","), timeout: 2_000 });
        try {
          await (await jetstreamManager(nc, { timeout: 2_000 })).getAccountInfo();
          return true;
        } finally {
          await nc.close();
        }
      },
      60_000,
    );
    const rules = (i: number, op: "-A" | "-D") => {
      for (const j of [0, 1, 2].filter((k) => k !== i)) {
        execFileSync("ip", [
          "netns",
          "exec",
          ns[i]!,
          "iptables",
          op,
          "INPUT",
          "-s",
          ip(j),
          "-j",
          "DROP",
        ]);
        execFileSync("ip", [
          "netns",
          "exec",
          ns[i]!,
          "iptables",
          op,
          "OUTPUT",
          "-d",
          ip(j),
          "-j",
          "DROP",
        ]);
      }
    };
    return {
      names: ["n0", "n1", "n2"],
      url,
      partition: (i) => rules(i, "-A"),
      heal: (i) => rules(i, "-D"),
      async stop() {
        await Promise.all(procs.map((m) => m?.stop("SIGTERM", 5_000)));
        cleanup();
      },
    };
  } catch (err) {
    for (const m of procs) m?.child.kill("SIGKILL");
    cleanup();
    throw err;
  }
}
