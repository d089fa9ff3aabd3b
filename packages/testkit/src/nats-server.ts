import { spawn, type ChildProcess } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { createServer, connect as tcpConnect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";

/** A NATS server with JetStream for tests and development. */
export interface NatsHandle {
  url: string;
  port: number;
  /** "local" (a nats-server child process) or "container" (testcontainers). */
  kind: "local" | "container";
  /** Kills the server abruptly (SIGKILL) without removing its store; for chaos tests. */
  kill?(): void;
  stop(): Promise<void>;
}

/** Finds a nats-server binary: MCPQ_NATS_SERVER_BIN, PATH, then Debian's /usr/sbin. */
export function findNatsServer(): string | null {
  const candidates = [process.env["MCPQ_NATS_SERVER_BIN"], ...(process.env["PATH"] ?? "").split(":").map((d) => join(d, "nats-server")), "/usr/sbin/nats-server", "/usr/bin/nats-server", "/usr/local/bin/nats-server"];
  for (const c of candidates) if (c && existsSync(c)) return c;
  return null;
}

export async function freePort(host = "127.0.0.1"): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once("error", reject);
    srv.listen(0, host, () => {
      const addr = srv.address();
      const port = typeof addr === "object" && addr ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

export interface LocalNatsOptions {
  port?: number;
  /** JetStream store directory; a temp dir (removed on stop) when omitted. */
  storeDir?: string;
  /** Inherit stdio (development) instead of capturing it. */
  inheritStdio?: boolean;
}

/** Starts `nats-server -js` on 127.0.0.1 (random port unless given) and waits until it accepts. */
export async function startLocalNats(opts: LocalNatsOptions = {}): Promise<NatsHandle> {
  // A random port can be taken between freePort() and the server's bind (other processes'
  // ephemeral ports): retry on another one unless the caller chose the port.
  for (let attempt = 1; ; attempt++) {
    try {
      return await startLocalNatsOnce(opts);
    } catch (err) {
      if (opts.port !== undefined || attempt === 3 || !/address already in use|exited/i.test(String(err))) throw err;
    }
  }
}

async function startLocalNatsOnce(opts: LocalNatsOptions): Promise<NatsHandle> {
  const bin = findNatsServer();
  if (!bin) throw new Error("nats-server not found: install it (Debian: apt-get install nats-server) or set MCPQ_NATS_SERVER_BIN");
  const port = opts.port ?? (await freePort());
  const ownStore = opts.storeDir === undefined;
  const store = opts.storeDir ?? (await mkdtemp(join(tmpdir(), "mcpq-nats-")));
  const child: ChildProcess = spawn(bin, ["-js", "-a", "127.0.0.1", "-p", String(port), "-sd", store], {
    stdio: opts.inheritStdio ? "inherit" : ["ignore", "ignore", "pipe"],
  });
  let stderr = "";
  child.stderr?.on("data", (d: Buffer) => {
    if (stderr.length < 20_000) stderr += d.toString();
  });
  const exited = new Promise<number | null>((r) => child.once("exit", (code) => r(code)));
  const deadline = Date.now() + 15_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`nats-server exited (${child.exitCode}): ${stderr.slice(-2000)}`);
    if (await canConnect(port)) break;
    if (Date.now() > deadline) {
      child.kill("SIGKILL");
      throw new Error(`nats-server did not start on port ${port}: ${stderr.slice(-2000)}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    url: `nats://127.0.0.1:${port}`,
    port,
    kind: "local",
    kill: () => child.kill("SIGKILL"),
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill("SIGTERM");
        const t = setTimeout(() => child.kill("SIGKILL"), 5_000);
        await exited;
        clearTimeout(t);
      }
      if (ownStore) await rm(store, { recursive: true, force: true });
    },
  };
}

function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = tcpConnect({ port, host: "127.0.0.1" });
    s.once("connect", () => {
      s.destroy();
      resolve(true);
    });
    s.once("error", () => resolve(false));
  });
}

/** True when a Docker engine looks reachable (socket present or DOCKER_HOST set). */
function dockerLikelyAvailable(): boolean {
  return Boolean(process.env["DOCKER_HOST"]) || existsSync("/var/run/docker.sock");
}

/**
 * A real NATS with JetStream: testcontainers' NATS module when a Docker engine is reachable,
 * otherwise a local nats-server on a random port with a temporary store.
 */
export async function startNats(): Promise<NatsHandle> {
  if (dockerLikelyAvailable() && process.env["MCPQ_TEST_NO_CONTAINERS"] !== "1") {
    try {
      const { NatsContainer } = await import("@testcontainers/nats");
      const c = await new NatsContainer("nats:2.11-alpine").withJetStream().start();
      const port = c.getMappedPort(4222);
      return {
        url: `nats://${c.getHost()}:${port}`,
        port,
        kind: "container",
        async stop() {
          await c.stop();
        },
      };
    } catch {
      // No usable engine after all: fall back to a local server.
    }
  }
  return startLocalNats();
}
