/** What a scenario needs to know about the system under test, and how to open sessions on it. */
import { Agent, Pool, type Dispatcher } from "undici";
import { HttpMcpSession, parseMcpUrl, type HttpEndpoint } from "../client/http.js";
import { WsMcpSession } from "../client/ws.js";
import type { McpSession, Outcome } from "../client/types.js";
import type { TargetName } from "./report.js";
import type { ProcTarget } from "./procstat.js";

export interface Target {
  name: TargetName;
  /** http://127.0.0.1:P/mcp */
  mcpUrl: string;
  /** ws://127.0.0.1:P/ws (optional; probed before use) */
  wsUrl?: string;
  /** edge process observation (pid and/or /metrics URL) */
  proc: ProcTarget;
  /** other processes whose CPU is worth reporting (e.g. worker, nats-server) */
  siblings?: Record<string, number>;
  toolName?: string;
}

export type TransportKind = "http" | "ws";

export const transportLabel = (t: TransportKind): string =>
  t === "http" ? "streamable-http" : "websocket";

export interface SessionSet {
  sessions: McpSession[];
  failures: Record<string, number>;
  dispatcher?: Dispatcher;
  close(deleteSessions?: boolean): Promise<void>;
}

/** Run `fn` over items with bounded concurrency. */
export async function forEachLimit<T>(
  items: T[],
  limit: number,
  fn: (x: T, i: number) => Promise<void>,
): Promise<void> {
  let next = 0;
  const run = async () => {
    for (;;) {
      const i = next++;
      if (i >= items.length) return;
      await fn(items[i]!, i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, run));
}

export function httpPool(endpoint: HttpEndpoint, connections: number, localAddress?: string): Pool {
  return new Pool(endpoint.origin, {
    connections,
    pipelining: 1,
    keepAliveTimeout: 60_000,
    keepAliveMaxTimeout: 600_000,
    headersTimeout: 0, // our own per-request timers are authoritative
    bodyTimeout: 0,
    // undici 7: localAddress is a Client/Pool/Agent option; a `connect.localAddress` is overridden (ignored)
    ...(localAddress ? { localAddress } : {}),
    connect: { timeout: 10_000 },
  });
}

export function httpAgent(localAddress: string): Agent {
  return new Agent({
    connections: null,
    pipelining: 1,
    keepAliveTimeout: 600_000,
    keepAliveMaxTimeout: 600_000,
    headersTimeout: 0,
    bodyTimeout: 0,
    localAddress, // see httpPool: must be top-level in undici 7, not under `connect`
    connect: { timeout: 10_000 },
  });
}

/** Open `n` sessions over one transport. HTTP sessions share one keep-alive Pool of `connections`. */
export async function openSessions(
  target: Target,
  transport: TransportKind,
  n: number,
  opts: {
    connections?: number;
    concurrency?: number;
    timeoutMs?: number;
    localAddress?: string;
  } = {},
): Promise<SessionSet> {
  const failures: Record<string, number> = {};
  const sessions: McpSession[] = [];
  const fail = (e: unknown) => {
    const o = (e as { outcome?: Outcome }).outcome;
    const c = o?.code ?? (e as Error).message ?? "open_failed";
    failures[c] = (failures[c] ?? 0) + 1;
  };
  const concurrency = opts.concurrency ?? 32;
  const timeoutMs = opts.timeoutMs ?? 10_000;
  if (transport === "http") {
    const ep = parseMcpUrl(target.mcpUrl, target.toolName);
    const pool = httpPool(ep, opts.connections ?? Math.max(1, n), opts.localAddress);
    await forEachLimit(Array.from({ length: n }), concurrency, async () => {
      try {
        sessions.push(await HttpMcpSession.open(ep, pool, timeoutMs));
      } catch (e) {
        fail(e);
      }
    });
    return {
      sessions,
      failures,
      dispatcher: pool,
      async close(deleteSessions = true) {
        if (deleteSessions)
          await forEachLimit(sessions, 64, (s) => (s as HttpMcpSession).close(2000));
        await pool.close().catch(() => pool.destroy());
      },
    };
  }
  if (!target.wsUrl) throw new Error("target has no wsUrl");
  const wsUrl = target.wsUrl;
  await forEachLimit(Array.from({ length: n }), concurrency, async () => {
    try {
      sessions.push(
        await WsMcpSession.open(
          { url: wsUrl, toolName: target.toolName, localAddress: opts.localAddress },
          timeoutMs,
        ),
      );
    } catch (e) {
      fail(e);
    }
  });
  return {
    sessions,
    failures,
    async close() {
      await forEachLimit(sessions, 64, (s) => s.close());
    },
  };
}

export function failuresLine(f: Record<string, number>): string {
  const e = Object.entries(f);
  return e.length ? e.map(([k, v]) => `${k}=${v}`).join(",") : "none";
}
