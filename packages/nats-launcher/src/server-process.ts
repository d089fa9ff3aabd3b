import { spawn, type ChildProcess } from "node:child_process";
import { createWriteStream, type WriteStream } from "node:fs";
import { readFile, writeFile } from "node:fs/promises";
import { NatsLaunchError } from "./errors.js";
import { trackChild } from "./cleanup.js";
import { assertPortFree } from "./ports.js";
import { renderNodeConfig, type NodeConfig } from "./server-config.js";
import { lockStore, type StoreLock } from "./store-lock.js";

/** Where a server's log goes: captured (kept for error messages), also copied to our stderr, or appended to a file. */
export interface LogOptions {
  /** Copy the server's log to this process's stderr (development). Default false. */
  echo?: boolean | undefined;
  /** Append the server's log to this file. */
  logFile?: string | undefined;
  /** The server's environment (e.g. the values of {@link confVariable}s); inherited when omitted. */
  env?: Readonly<Record<string, string | undefined>> | undefined;
}

/** When the server counts as ready: polled over its monitoring port until true. */
export type ReadyCheck = (monitorUrl: string) => Promise<boolean>;

const TAIL = 8_000;
const TERMINATING = new Set<NodeJS.Signals>(["SIGKILL", "SIGTERM", "SIGINT", "SIGQUIT"]);

/** Fetches a monitoring endpoint as JSON; null on any failure (not up yet). */
export async function monitorJson(url: string): Promise<Record<string, unknown> | null> {
  try {
    const r = await fetch(url, { signal: AbortSignal.timeout(2_000) });
    const body = (await r.json()) as unknown;
    return r.ok && body && typeof body === "object" ? (body as Record<string, unknown>) : null;
  } catch {
    return null;
  }
}

/** /healthz ok (JetStream up and current) and /jsz shows JetStream enabled. */
export const jetStreamReady: ReadyCheck = async (base) => {
  const jsz = await monitorJson(`${base}/jsz`);
  if (!jsz || !jsz["config"] || jsz["disabled"]) return false;
  const health = await monitorJson(`${base}/healthz`);
  return health?.["status"] === "ok";
};

/**
 * One nats-server child process with a fixed config (ports, store) that can be started again
 * after it exits or is killed — the same ports and store each time.
 */
export class ServerProcess {
  #child: ChildProcess | undefined;
  #exited: Promise<void> = Promise.resolve();
  #tail = "";
  #lock: StoreLock | undefined;
  #log: WriteStream | undefined;

  constructor(
    readonly bin: string,
    readonly config: NodeConfig,
    readonly configFile: string,
    private readonly logOpts: LogOptions,
  ) {}

  get pid(): number | undefined {
    return this.running ? this.#child?.pid : undefined;
  }

  get running(): boolean {
    return (
      this.#child !== undefined && this.#child.exitCode === null && this.#child.signalCode === null
    );
  }

  get monitorUrl(): string {
    return `http://${this.config.host}:${this.config.httpPort}`;
  }

  /** Resolves when the current server process exits (at once when none runs). */
  exited(): Promise<void> {
    return this.#exited;
  }

  /** The last lines the server logged (for error messages). */
  get logTail(): string {
    return this.#tail;
  }

  /**
   * {@link spawn}, then {@link waitReady}.
   * @throws NatsLaunchError `port-in-use` | `store-locked` | `exited` | `not-ready`
   */
  async start(ready: ReadyCheck, timeoutMs: number): Promise<void> {
    await this.spawn();
    await this.waitReady(ready, timeoutMs);
  }

  /** Checks ports and store, writes the config and spawns the server without waiting. */
  async spawn(): Promise<void> {
    if (this.running) return;
    const c = this.config;
    await assertPortFree(c.port, c.host, "client");
    await assertPortFree(c.httpPort, c.host, "monitoring");
    if (c.cluster) await assertPortFree(c.cluster.port, c.host, "cluster route");
    this.#lock ??= await lockStore(c.storeDir);
    await writeFile(this.configFile, renderNodeConfig(c));
    this.#tail = "";
    this.#log ??= this.logOpts.logFile
      ? createWriteStream(this.logOpts.logFile, { flags: "a" })
      : undefined;
    const child = spawn(this.bin, ["-c", this.configFile], {
      stdio: ["ignore", "pipe", "pipe"],
      ...(this.logOpts.env ? { env: { ...this.logOpts.env } } : {}),
    });
    trackChild(child);
    this.#child = child;
    const onData = (d: Buffer) => {
      this.#tail = (this.#tail + d.toString()).slice(-TAIL);
      if (this.logOpts.echo) process.stderr.write(d);
      this.#log?.write(d);
    };
    child.stdout?.on("data", onData);
    child.stderr?.on("data", onData);
    this.#exited = new Promise((r) => child.once("exit", () => r()));
    child.once("error", () => undefined); // surfaced as an exit below
    if (child.pid) await this.#lock.setServer(child.pid, c.port);
  }

  /** Polls `ready` until true; fails when the process exits or `timeoutMs` passes (then kills it). */
  async waitReady(ready: ReadyCheck, timeoutMs: number): Promise<void> {
    const c = this.config;
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (!this.running) throw this.#exitError();
      if (await ready(this.monitorUrl)) return;
      if (Date.now() > deadline) {
        await this.kill("SIGKILL");
        throw new NatsLaunchError(
          "not-ready",
          `nats-server ${c.serverName} on ${c.host}:${c.port} was not ready after ${timeoutMs} ms: ${this.#tail.slice(-2_000)}`,
        );
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  #exitError(): NatsLaunchError {
    const c = this.config;
    const inUse = /address already in use/i.exec(this.#tail);
    if (inUse) {
      const line = this.#tail.split("\n").find((l) => /address already in use/i.test(l)) ?? "";
      return new NatsLaunchError(
        "port-in-use",
        `nats-server could not bind (port ${c.port}${c.cluster ? `, cluster ${c.cluster.port}` : ""}, monitoring ${c.httpPort} on ${c.host}): ${line.trim()}`,
      );
    }
    const code = this.#child?.exitCode ?? this.#child?.signalCode;
    return new NatsLaunchError(
      "exited",
      `nats-server ${c.serverName} (port ${c.port}, store ${c.storeDir}) exited (${code}) while starting: ${this.#why()}`,
    );
  }

  /** The server's fatal/error lines (what made it stop), else the end of its log. */
  #why(): string {
    const bad = this.#tail.split("\n").filter((l) => /\[(FTL|ERR)\]/.test(l));
    return (bad.length ? bad.slice(-5).join("\n") : this.#tail).slice(-2_000).trim();
  }

  /**
   * Sends `signal` (default SIGKILL: no shutdown, store left as it is); waits for the exit when
   * the signal ends the server (KILL, TERM, INT, QUIT). SIGSTOP/SIGCONT (a hung node) and reload
   * or lame-duck signals (HUP, USR2) return once sent; SIGSTOP returns once the process is
   * stopped (Linux /proc state T, at most 1 s), since the signal is delivered asynchronously.
   */
  async kill(signal: NodeJS.Signals = "SIGKILL"): Promise<void> {
    if (!this.running) return;
    this.#child?.kill(signal);
    if (TERMINATING.has(signal)) await this.#exited;
    else if (signal === "SIGSTOP" && this.#child?.pid) await waitStopped(this.#child.pid);
  }

  /** SIGTERM (graceful shutdown), SIGKILL after `graceMs`; releases the store lock. */
  async stop(graceMs = 5_000): Promise<void> {
    if (this.running) {
      this.#child?.kill("SIGCONT"); // a stopped (SIGSTOP) server cannot shut down
      this.#child?.kill("SIGTERM");
      const t = setTimeout(() => this.#child?.kill("SIGKILL"), graceMs);
      await this.#exited;
      clearTimeout(t);
    }
    await this.#lock?.release();
    this.#lock = undefined;
    await new Promise<void>((r) => (this.#log ? this.#log.end(() => r()) : r()));
    this.#log = undefined;
  }
}

/** Waits until `pid` is in the stopped state (/proc/<pid>/stat field 3 is T); gives up after 1 s or without /proc. */
async function waitStopped(pid: number): Promise<void> {
  for (let i = 0; i < 200; i++) {
    const stat = await readFile(`/proc/${pid}/stat`, "utf8").catch(() => undefined);
    if (stat === undefined || /\) [Tt] /.test(stat)) return;
    await new Promise((r) => setTimeout(r, 5));
  }
}
