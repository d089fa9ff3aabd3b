// The nats-server launcher against the real binary: readiness, version, clear refusals for a
// taken port or a locked store, kill -9 / restart on the same port and store, and a 3-node
// JetStream cluster that keeps an R3 stream writable while one node is down.
import { execFileSync } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { createServer, type Server } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { jetstreamManager, jetstream, StorageType } from "@nats-io/jetstream";
import {
  freePort,
  NatsLaunchError,
  parseServerVersion,
  requireNatsServer,
  startLocalCluster,
  startLocalNats,
  STORE_LOCK_FILE,
  versionAtLeast,
  type LocalCluster,
  type LocalNats,
} from "../src/index.js";

const searchPath = process.env["PATH"];
const cleanup: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const c of cleanup.splice(0).reverse()) await c();
});
const nats = async (o: Parameters<typeof startLocalNats>[0] = {}): Promise<LocalNats> => {
  const n = await startLocalNats({ searchPath, ...o });
  cleanup.push(() => n.stop());
  return n;
};
const client = async (servers: string | string[]): Promise<NatsConnection> => {
  const nc = await connect({ servers, maxReconnectAttempts: -1, reconnectTimeWait: 100 });
  cleanup.push(() => nc.close());
  return nc;
};
/** A start that should fail; one that starts after all is stopped with the test (nothing leaks). */
const failedStart = <T extends { stop(): Promise<void> }>(p: Promise<T>): Promise<unknown> =>
  p.then(
    (h) => {
      cleanup.push(() => h.stop());
      return h;
    },
    (e: unknown) => e,
  );
const tempDir = async (): Promise<string> => {
  const d = await mkdtemp(join(tmpdir(), "mcpq-launcher-test-"));
  cleanup.push(() => rm(d, { recursive: true, force: true }));
  return d;
};

describe("versions", () => {
  it("parses and compares nats-server versions", () => {
    const v = parseServerVersion("nats-server: v2.9.10");
    expect(v).toEqual({ major: 2, minor: 9, patch: 10, text: "2.9.10" });
    expect(versionAtLeast(v!, "2.9.0")).toBe(true);
    expect(versionAtLeast(v!, "2.10.0")).toBe(false);
    expect(versionAtLeast(parseServerVersion("v2.11.0-RC.1")!, "2.10.4")).toBe(true);
    expect(parseServerVersion("no version here")).toBeNull();
  });
});

describe("startLocalNats", () => {
  it("starts JetStream on a random loopback port, reports the binary's version, and stop() removes its temp store", async () => {
    const n = await nats();
    expect(n.url).toMatch(/^nats:\/\/127\.0\.0\.1:\d+$/);
    const printed = execFileSync(requireNatsServer({ searchPath }), ["--version"], {
      encoding: "utf8",
    });
    expect(printed).toContain(n.version.text);
    const nc = await client(n.url);
    const info = await (await jetstreamManager(nc)).getAccountInfo();
    expect(info.limits).toBeDefined();
    // Twice the edge's 4 MiB messages: a replay record holds a request and its response.
    expect(nc.info?.max_payload).toBe(8 * 1024 * 1024);
    expect(nc.info?.version).toBe(n.version.text);
    expect(existsSync(n.storeDir)).toBe(true);
    await nc.close();
    await n.stop();
    expect(existsSync(n.storeDir)).toBe(false);
    expect(existsSync(n.configFile)).toBe(false);
  });

  it("refuses a taken port with an error naming it, and starts nothing", async () => {
    const port = await freePort();
    const blocker: Server = createServer();
    await new Promise<void>((r) => blocker.listen(port, "127.0.0.1", () => r()));
    cleanup.push(() => new Promise((r) => blocker.close(r)));
    const err = await failedStart(startLocalNats({ searchPath, port }));
    expect(err).toBeInstanceOf(NatsLaunchError);
    expect((err as NatsLaunchError).code).toBe("port-in-use");
    expect((err as NatsLaunchError).message).toContain(`port ${port}`);
  });

  it("refuses a store another launched server holds, naming the store; the lock goes with stop()", async () => {
    const store = await tempDir();
    const first = await nats({ storeDir: store });
    expect(existsSync(join(store, STORE_LOCK_FILE))).toBe(true);
    const err = await failedStart(startLocalNats({ searchPath, storeDir: store }));
    expect((err as NatsLaunchError).code).toBe("store-locked");
    expect((err as NatsLaunchError).message).toContain(store);
    await first.stop();
    expect(existsSync(join(store, STORE_LOCK_FILE))).toBe(false);
    const second = await nats({ storeDir: store });
    expect(second.running).toBe(true);
  });

  it("restarts after kill -9 on the same port and store: a file stream's messages survive", async () => {
    const n = await nats();
    const nc = await client(n.url);
    const jsm = await jetstreamManager(nc);
    await jsm.streams.add({ name: "KEEP", subjects: ["keep.>"], storage: StorageType.File });
    await jetstream(nc).publish("keep.a", "one");
    const pid = n.pid;
    await n.kill("SIGKILL");
    expect(n.running).toBe(false);
    await n.restart();
    expect(n.pid).not.toBe(pid);
    // The client reconnects to the same port by itself (a request sent while it was away is lost: retry).
    await waitUntil(
      async () => (await jsm.streams.info("KEEP").catch(() => null))?.state.messages === 1,
    );
  });
});

describe("freezing a server", () => {
  it("kill(SIGSTOP) returns at once and the server stops answering; SIGCONT brings it back; stop() ends a frozen one", async () => {
    const n = await nats();
    await n.kill("SIGSTOP");
    expect(n.running).toBe(true);
    const health = () =>
      fetch(`${n.monitorUrl}/healthz`, { signal: AbortSignal.timeout(500) }).then(
        (r) => r.ok,
        () => false,
      );
    expect(await health()).toBe(false);
    await n.kill("SIGCONT");
    await waitUntil(health);
    await n.kill("SIGSTOP");
    await n.stop();
    expect(n.running).toBe(false);
  });
});

describe("startLocalCluster", () => {
  it("runs a 3-node JetStream cluster; an R3 stream stays writable with its leader killed -9 and the node rejoins on restart", async () => {
    const c: LocalCluster = await startLocalCluster({ searchPath, nodes: 3 });
    cleanup.push(() => c.stop());
    expect(c.urls).toHaveLength(3);
    expect(c.url.split(",")).toEqual(c.urls);
    expect(new Set(c.nodes.map((n) => n.port)).size).toBe(3);
    expect(new Set(c.nodes.map((n) => n.storeDir)).size).toBe(3);

    const nc = await client([...c.urls]);
    const jsm = await jetstreamManager(nc);
    await jsm.streams.add({
      name: "R3",
      subjects: ["r3.>"],
      num_replicas: 3,
      storage: StorageType.File,
    });
    const js = jetstream(nc);
    await js.publish("r3.a", "before");
    const info = await jsm.streams.info("R3");
    expect(info.cluster?.replicas).toHaveLength(2);
    const leader = c.nodes.findIndex((n) => n.serverName === info.cluster?.leader);
    expect(leader).toBeGreaterThanOrEqual(0);
    const ports = c.nodes.map((n) => n.port);

    await c.kill(leader, "SIGKILL");
    expect(c.nodes[leader]!.running).toBe(false);
    // Two of three nodes keep the quorum: a new leader is elected and the stream takes writes.
    await waitUntil(async () => {
      try {
        await js.publish("r3.a", "during", { timeout: 2_000 });
        return true;
      } catch {
        return false;
      }
    });

    await c.restart(leader);
    expect(c.nodes[leader]!.running).toBe(true);
    expect(c.nodes.map((n) => n.port)).toEqual(ports);
    await c.waitReady();
    await waitUntil(async () => {
      const s = await jsm.streams.info("R3").catch(() => null);
      const peers = s?.cluster?.replicas ?? [];
      return (
        s?.state.messages === 2 && peers.length === 2 && peers.every((p) => p.current && !p.offline)
      );
    });
  });

  it("refuses a taken client port naming it", async () => {
    // Block node 1's port (node i listens on port + i); retry where port + 1 is someone else's already.
    let port = 0;
    let blocker: Server | undefined;
    while (!blocker) {
      port = await freePort();
      const s = createServer();
      const bound = await new Promise<boolean>((r) =>
        s.once("error", () => r(false)).listen(port + 1, "127.0.0.1", () => r(true)),
      );
      if (bound) blocker = s;
    }
    const b = blocker;
    cleanup.push(() => new Promise((r) => b.close(r)));
    const err = await failedStart(startLocalCluster({ searchPath, nodes: 3, port }));
    expect((err as NatsLaunchError).code).toBe("port-in-use");
    expect((err as NatsLaunchError).message).toContain(`port ${port + 1}`);
  });
});

async function waitUntil(check: () => Promise<boolean>, timeoutMs = 60_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > until) throw new Error("condition not reached");
    await new Promise((r) => setTimeout(r, 100));
  }
}
