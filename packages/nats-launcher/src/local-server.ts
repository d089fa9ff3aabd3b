import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import {
  readServerVersion,
  requireNatsServer,
  type FindNatsServerOptions,
  type ServerVersion,
} from "./binary.js";
import { trackPath, untrackPath } from "./cleanup.js";
import { NatsLaunchError } from "./errors.js";
import { freePort } from "./ports.js";
import { jetStreamReady, ServerProcess, type LogOptions } from "./server-process.js";

/**
 * The `max_payload` the launcher gives servers: twice the edge's default MCPQ_MAX_MESSAGE_BYTES
 * (4 MiB), as in infra/: an MCPQ_REC record holds a request and its response.
 */
export const DEFAULT_MAX_PAYLOAD = 8 * 1024 * 1024;

/** Options every launch shares. */
export interface LaunchOptions extends FindNatsServerOptions, LogOptions {
  /** Interface to bind (client, monitoring, routes). Default 127.0.0.1. */
  host?: string | undefined;
  /** The servers' `max_payload` in bytes. Default {@link DEFAULT_MAX_PAYLOAD}. */
  maxPayload?: number | undefined;
  /** Extra top-level server settings (e.g. `authorization` from a role config, `tls`). */
  settings?: Readonly<Record<string, unknown>> | undefined;
  /** How long to wait for readiness (JetStream enabled and current; the cluster's meta leader). Default 30 s. */
  readyTimeoutMs?: number | undefined;
}

export interface LocalNatsOptions extends LaunchOptions {
  /** Client port; a free random one when omitted (then a port race is retried on another). */
  port?: number | undefined;
  /** Monitoring port; random when omitted. */
  httpPort?: number | undefined;
  /** JetStream store directory (kept); a temp dir, removed by stop(), when omitted. */
  storeDir?: string | undefined;
  serverName?: string | undefined;
}

/** A running local nats-server with JetStream. */
export interface LocalNats {
  readonly kind: "local";
  /** `nats://host:port` */
  readonly url: string;
  readonly port: number;
  /** `http://host:httpPort` (/healthz, /varz, /jsz). */
  readonly monitorUrl: string;
  readonly storeDir: string;
  readonly configFile: string;
  readonly version: ServerVersion;
  readonly pid: number | undefined;
  readonly running: boolean;
  /** Resolves when the running server process exits (killed, crashed or stopped). */
  exited(): Promise<void>;
  /** The last lines the server logged. */
  readonly logTail: string;
  /** Sends `signal` (default SIGKILL) and waits for the exit; the store stays for restart(). */
  kill(signal?: NodeJS.Signals): Promise<void>;
  /** Starts it again on the same ports and store and waits until ready. */
  restart(): Promise<void>;
  /** Graceful shutdown; removes the temp store (if it made one) and the config. */
  stop(): Promise<void>;
}

/** Resolves the binary and version and makes the launch's private temp dir (configs). */
export async function prepareLaunch(
  opts: LaunchOptions,
): Promise<{ bin: string; version: ServerVersion; workDir: string }> {
  const bin = requireNatsServer(opts);
  const version = readServerVersion(bin);
  const workDir = await mkdtemp(join(tmpdir(), "mcpq-nats-"));
  trackPath(workDir);
  return { bin, version, workDir };
}

export async function removeWorkDir(dir: string): Promise<void> {
  untrackPath(dir);
  await rm(dir, { recursive: true, force: true });
}

/**
 * Starts `nats-server` with JetStream on 127.0.0.1 (random ports and a temp store unless given)
 * and resolves once /healthz reports JetStream ready.
 * @throws NatsLaunchError naming the port or store at fault (`port-in-use`, `store-locked`, ...).
 */
export async function startLocalNats(opts: LocalNatsOptions = {}): Promise<LocalNats> {
  const { bin, version, workDir } = await prepareLaunch(opts);
  const host = opts.host ?? "127.0.0.1";
  const storeDir = opts.storeDir !== undefined ? resolve(opts.storeDir) : join(workDir, "store");
  const timeout = opts.readyTimeoutMs ?? 30_000;
  let proc: ServerProcess | undefined;
  try {
    for (let attempt = 1; ; attempt++) {
      const port = opts.port ?? (await freePort(host));
      const httpPort = opts.httpPort ?? (await freePort(host));
      proc = new ServerProcess(
        bin,
        {
          serverName: opts.serverName ?? `mcpq-${port}`,
          host,
          port,
          httpPort,
          storeDir,
          maxPayload: opts.maxPayload ?? DEFAULT_MAX_PAYLOAD,
          settings: opts.settings,
        },
        join(workDir, "nats-server.conf"),
        opts,
      );
      try {
        await proc.start(jetStreamReady, timeout);
        break;
      } catch (err) {
        await proc.stop();
        // A random port can be taken between freePort() and the bind: retry unless the caller chose it.
        const chosen = opts.port !== undefined && opts.httpPort !== undefined;
        if (
          !(err instanceof NatsLaunchError) ||
          err.code !== "port-in-use" ||
          chosen ||
          attempt === 3
        )
          throw err;
        if (opts.port !== undefined && err.message.includes(`client port ${opts.port} `)) throw err;
      }
    }
  } catch (err) {
    await removeWorkDir(workDir);
    throw err;
  }
  const p = proc;
  return {
    kind: "local",
    url: `nats://${host}:${p.config.port}`,
    port: p.config.port,
    monitorUrl: p.monitorUrl,
    storeDir,
    configFile: p.configFile,
    version,
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
    kill: (signal) => p.kill(signal),
    restart: async () => {
      await p.kill("SIGKILL");
      await p.start(jetStreamReady, timeout);
    },
    async stop() {
      await p.stop();
      await removeWorkDir(workDir);
    },
  };
}
