import { spawn, type ChildProcess } from "node:child_process";
import { fileURLToPath } from "node:url";
import { connect as tcpConnect } from "node:net";
import { startLocalNats, type LocalNats } from "@mcpq/nats-launcher";

const MAIN = fileURLToPath(new URL("../main.js", import.meta.url));

/**
 * `mcpq dev`: NATS (unless one already answers at MCPQ_NATS_URL) + one edge on 127.0.0.1:8080 +
 * one worker, in the foreground. Ctrl-C or SIGTERM stops every child.
 */
export async function dev(opts: { port: number; catalogs: string; storeDir: string }): Promise<void> {
  const natsUrl = process.env["MCPQ_NATS_URL"] ?? "nats://127.0.0.1:4222";
  // A cluster URL list: probe (and, when nothing answers, start a server on) the first one.
  const u = new URL(natsUrl.split(",")[0]!.trim().replace(/^nats:/, "http:"));
  const natsPort = Number(u.port || 4222);
  let nats: LocalNats | undefined;
  if (await reachable(u.hostname, natsPort)) {
    console.error(`mcpq dev: using the NATS server already at ${natsUrl}`);
  } else {
    nats = await startLocalNats({ port: natsPort, storeDir: opts.storeDir, bin: process.env["MCPQ_NATS_SERVER_BIN"], searchPath: process.env["PATH"] });
    console.error(`mcpq dev: nats-server with JetStream on ${nats.url} (store ${opts.storeDir})`);
  }
  const env = { ...process.env, MCPQ_NATS_URL: natsUrl };
  const children: ChildProcess[] = [];
  const run = (args: string[]) => {
    const c = spawn(process.execPath, [MAIN, ...args], { stdio: "inherit", env });
    children.push(c);
    c.once("exit", (code, signal) => {
      if (!stopping) {
        console.error(`mcpq dev: '${args[0]}' exited (${signal ?? code}); stopping everything`);
        void stop(1);
      }
    });
    return c;
  };
  let stopping = false;
  const stop = async (code: number) => {
    if (stopping) return;
    stopping = true;
    for (const c of children) c.kill("SIGTERM");
    await Promise.all(children.map((c) => (c.exitCode === null && c.signalCode === null ? new Promise((r) => c.once("exit", r)) : undefined)));
    await nats?.stop();
    process.exit(code);
  };
  process.once("SIGINT", () => void stop(0));
  process.once("SIGTERM", () => void stop(0));
  run(["worker", "--catalog", opts.catalogs]);
  run(["edge", "--port", String(opts.port)]);
  console.error(`mcpq dev: MCP endpoint http://127.0.0.1:${opts.port}/mcp (Ctrl-C stops all)`);
}

function reachable(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = tcpConnect({ host, port });
    s.once("connect", () => (s.destroy(), resolve(true)));
    s.once("error", () => resolve(false));
  });
}
