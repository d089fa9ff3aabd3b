/**
 * Child-process management for the bench: spawn targets on free loopback ports,
 * wait for readiness, and guarantee every child is killed when we exit
 * (normal exit, exception, SIGINT/SIGTERM/SIGHUP).
 */
import { spawn, type ChildProcess, type SpawnOptions } from "node:child_process";
import { createWriteStream, type WriteStream } from "node:fs";
import { findNatsServer, startLocalNats, type LocalNats } from "@mcpq/nats-launcher";
import { join } from "node:path";

export interface Managed {
  name: string;
  child: ChildProcess;
  pid: number;
  logPath?: string;
  exited: Promise<number | null>;
  stop(signal?: NodeJS.Signals, graceMs?: number): Promise<void>;
}

const children = new Set<Managed>();
let hooksInstalled = false;

function killAllSync(): void {
  for (const m of children) {
    try {
      if (m.child.exitCode === null && m.child.signalCode === null) process.kill(m.pid, "SIGKILL");
    } catch {
      /* already gone */
    }
  }
  children.clear();
}

export function installExitHooks(): void {
  if (hooksInstalled) return;
  hooksInstalled = true;
  process.on("exit", killAllSync);
  for (const sig of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
    process.on(sig, () => {
      process.stderr.write(`\n[loadtests] ${sig}: stopping children\n`);
      killAllSync();
      process.exit(130);
    });
  }
  process.on("uncaughtException", (e) => {
    process.stderr.write(`[loadtests] uncaught: ${e?.stack ?? String(e)}\n`);
    killAllSync();
    process.exit(1);
  });
  process.on("unhandledRejection", (e) => {
    process.stderr.write(`[loadtests] unhandled rejection: ${(e as Error)?.stack ?? String(e)}\n`);
    killAllSync();
    process.exit(1);
  });
}

/** A free TCP port on 127.0.0.1 (the launcher's). */
export { freePort } from "@mcpq/nats-launcher";

/**
 * A private nats-server with JetStream on a random loopback port and a temp store (the one
 * launcher, @mcpq/nats-launcher); its log goes to `<logDir>/nats-server.log`. The launcher kills
 * it if the bench exits without stopping it.
 */
export function startNats(logDir?: string): Promise<LocalNats> {
  return startLocalNats({
    bin: process.env.NATS_SERVER_BIN ?? process.env.MCPQ_NATS_SERVER_BIN,
    searchPath: process.env.PATH,
    logFile: logDir ? join(logDir, "nats-server.log") : undefined,
  });
}

/** The nats-server binary the bench runs (NATS_SERVER_BIN, MCPQ_NATS_SERVER_BIN, PATH, /usr/sbin). */
export function benchNatsServer(): string | null {
  return findNatsServer({
    bin: process.env.NATS_SERVER_BIN ?? process.env.MCPQ_NATS_SERVER_BIN,
    searchPath: process.env.PATH,
  });
}

export function startProcess(
  name: string,
  cmd: string,
  args: string[],
  opts: SpawnOptions & { logFile?: string; echo?: boolean } = {},
): Managed {
  installExitHooks();
  const child = spawn(cmd, args, { stdio: ["ignore", "pipe", "pipe"], ...opts });
  if (child.pid === undefined) throw new Error(`failed to spawn ${name}: ${cmd}`);
  let log: WriteStream | undefined;
  if (opts.logFile) log = createWriteStream(opts.logFile, { flags: "a" });
  const sink = (prefix: string) => (buf: Buffer) => {
    log?.write(buf);
    if (opts.echo) process.stderr.write(`[${name}${prefix}] ${buf.toString()}`);
  };
  child.stdout?.on("data", sink(""));
  child.stderr?.on("data", sink(":err"));
  const exited = new Promise<number | null>((resolve) => {
    child.on("exit", (code) => {
      children.delete(m);
      log?.end();
      resolve(code);
    });
  });
  const m: Managed = {
    name,
    child,
    pid: child.pid,
    logPath: opts.logFile,
    exited,
    async stop(signal: NodeJS.Signals = "SIGTERM", graceMs = 3000) {
      if (child.exitCode !== null || child.signalCode !== null) return;
      try {
        child.kill(signal);
      } catch {
        /* gone */
      }
      const t = setTimeout(() => {
        try {
          child.kill("SIGKILL");
        } catch {
          /* gone */
        }
      }, graceMs);
      await exited;
      clearTimeout(t);
    },
  };
  children.add(m);
  return m;
}

/** Poll until `probe()` resolves true, the process dies, or the deadline passes. */
export async function waitUntil(
  what: string,
  probe: () => Promise<boolean>,
  timeoutMs: number,
  proc?: Managed,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let dead = false;
  proc?.exited.then(() => {
    dead = true;
  });
  let delay = 25;
  while (Date.now() < deadline) {
    if (dead)
      throw new Error(
        `${what}: process exited before becoming ready${proc?.logPath ? ` (log: ${proc.logPath})` : ""}`,
      );
    try {
      if (await probe()) return;
    } catch {
      /* not yet */
    }
    await new Promise((r) => setTimeout(r, delay));
    delay = Math.min(250, delay * 2);
  }
  throw new Error(
    `${what}: not ready after ${timeoutMs} ms${proc?.logPath ? ` (log: ${proc.logPath})` : ""}`,
  );
}

export async function httpOk(url: string): Promise<boolean> {
  const ctl = new AbortController();
  const t = setTimeout(() => ctl.abort(), 1000);
  try {
    const r = await fetch(url, { signal: ctl.signal });
    await r.arrayBuffer().catch(() => undefined);
    return r.status === 200;
  } finally {
    clearTimeout(t);
  }
}

export function tcpOpen(port: number, host = "127.0.0.1"): Promise<boolean> {
  return import("node:net").then(
    ({ connect }) =>
      new Promise<boolean>((resolve) => {
        const s = connect({ port, host });
        s.once("connect", () => {
          s.destroy();
          resolve(true);
        });
        s.once("error", () => resolve(false));
      }),
  );
}
