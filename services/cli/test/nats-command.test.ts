// `mcpq nats` as a user runs it (the built CLI in a child process): --help, a clear non-zero exit
// naming a taken port or a locked store, and a 3-node cluster that comes up and stops on SIGINT.
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { createServer, type Server } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterEach, describe, expect, it } from "vitest";
import { connect } from "@nats-io/transport-node";
import { jetstreamManager } from "@nats-io/jetstream";
import { eventually, freePort } from "@mcpq/testkit";

const MAIN = fileURLToPath(new URL("../dist/main.js", import.meta.url));
const cleanup: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const c of cleanup.splice(0).reverse()) await c();
});

interface Run {
  child: ChildProcess;
  output: () => string;
  exit: Promise<number | null>;
}
function mcpq(args: string[]): Run {
  const child = spawn(process.execPath, [MAIN, ...args], { stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  child.stdout?.on("data", (d: Buffer) => (out += d.toString()));
  child.stderr?.on("data", (d: Buffer) => (out += d.toString()));
  const exit = new Promise<number | null>((r) => child.once("exit", (code) => r(code)));
  cleanup.push(async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill("SIGINT");
      await exit;
    }
  });
  return { child, output: () => out, exit };
}
/** A port P with P..P+n-1 free a moment ago (node i of a cluster listens on P+i). */
async function freeRun(n: number): Promise<number> {
  for (;;) {
    const p = await freePort();
    if (p + n - 1 > 65535) continue;
    const ok = await Promise.all(Array.from({ length: n - 1 }, (_, i) => canBind(p + i + 1)));
    if (ok.every(Boolean)) return p;
  }
}
const canBind = (port: number) =>
  new Promise<boolean>((resolve) => {
    const s = createServer();
    s.once("error", () => resolve(false));
    s.listen(port, "127.0.0.1", () => s.close(() => resolve(true)));
  });
const tempDir = async () => {
  const d = await mkdtemp(join(tmpdir(), "mcpq-nats-cmd-"));
  cleanup.push(() => rm(d, { recursive: true, force: true }));
  return d;
};

describe("mcpq nats", () => {
  it("--help prints its options and exits 0", async () => {
    const r = mcpq(["nats", "--help"]);
    expect(await r.exit).toBe(0);
    expect(r.output()).toContain("--cluster N");
    expect(r.output()).toContain("--port P");
  });

  it("exits non-zero naming the port when the port is taken", async () => {
    const port = await freePort();
    const blocker: Server = createServer();
    await new Promise<void>((r) => blocker.listen(port, "127.0.0.1", () => r()));
    cleanup.push(() => new Promise((r) => blocker.close(r)));
    const r = mcpq(["nats", "--port", String(port), "--store", await tempDir()]);
    expect(await r.exit).toBe(1);
    expect(r.output()).toContain(`port ${port}`);
    expect(r.output()).not.toContain("JetStream (nats-server");
  });

  it("exits non-zero naming the store when another mcpq nats holds it", async () => {
    const store = await tempDir();
    const first = mcpq(["nats", "--port", String(await freePort()), "--store", store]);
    await eventually(() => first.output().includes("Ctrl-C stops it"), {
      timeoutMs: 30_000,
      what: "first server ready",
    });
    const second = mcpq(["nats", "--port", String(await freePort()), "--store", store]);
    expect(await second.exit).toBe(1);
    expect(second.output()).toContain(`store ${store} is in use`);
    first.child.kill("SIGINT");
    expect(await first.exit).toBe(0);
  });

  it(
    "--cluster 3 runs a JetStream cluster with a meta leader on three ports; SIGINT stops every node",
    { timeout: 120_000 },
    async () => {
      const port = await freeRun(3);
      const store = await tempDir();
      const r = mcpq(["nats", "--cluster", "3", "--port", String(port), "--store", store]);
      await eventually(() => r.output().includes("Ctrl-C stops it") || r.child.exitCode !== null, {
        timeoutMs: 90_000,
        what: "cluster ready",
      });
      expect(r.child.exitCode, r.output().slice(-3_000)).toBeNull();
      const urls = [0, 1, 2].map((i) => `nats://127.0.0.1:${port + i}`);
      expect(r.output()).toContain(`MCPQ_NATS_URL=${urls.join(",")}`);
      const nc = await connect({ servers: urls });
      const info = await (
        await jetstreamManager(nc)
      ).streams.add({ name: "CLI_R3", subjects: ["cli.r3"], num_replicas: 3 });
      expect(info.cluster?.replicas).toHaveLength(2);
      await nc.close();
      r.child.kill("SIGINT");
      expect(await r.exit).toBe(0);
      // Every node is gone: nothing answers on the client ports.
      for (const u of urls)
        await expect(connect({ servers: u, reconnect: false, timeout: 1_000 })).rejects.toThrow();
    },
  );
});
