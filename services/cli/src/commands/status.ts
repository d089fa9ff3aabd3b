import { parseArgs } from "node:util";
import { STREAMS, connectBus, distinctKeys, isNotFound, type Bus } from "@mcpq/bus";
import type { CliEnv } from "../env.js";

const STATUS_USAGE = `mcpq status — pools, workers, queue, rates and circuits at a glance (no Grafana needed)

Usage: mcpq status [--edge URL]... [--watch] [--interval 2s] [--json]

  --edge URL       an edge to read /metrics from (repeatable; its /mcp URL or its base URL);
                   default http://127.0.0.1:8080 (MCPQ_STATUS_EDGES=URL,URL also works)
  --watch          redraw every interval until Ctrl-C
  --interval T     seconds between the two samples rates are computed from (default 2s)
  --json           print one snapshot as JSON instead of the table

Reads the broker (MCPQ_NATS_URL, default nats://127.0.0.1:4222): MCPQ_REQ stream and its pool
consumers, the worker registry; and each edge's Prometheus /metrics for request and refusal
rates, errors and circuit states. Exit status 4 when the broker is unreachable.`;

/** One pool as the broker sees it. */
interface PoolStatus {
  pool: string;
  workers: number;
  shadowWorkers: number;
  tools: number;
  /** Requests not yet delivered to any worker (consumer num_pending). */
  queued: number;
  /** Delivered, not acked (running or lost). */
  running: number;
  /** Pull requests waiting (0 with workers present: all busy). */
  waitingPulls: number;
  /** Worst circuit state any edge reports for the pool. */
  circuit: "closed" | "half_open" | "open" | "unknown";
}

/** One edge as its /metrics shows it, with rates between two samples. */
interface EdgeStatus {
  url: string;
  reachable: boolean;
  brokerConnected?: boolean;
  requestsPerSec?: number;
  /** Per outcome (ok, tool_error, error, rejected, cancelled), per second. */
  outcomesPerSec?: Record<string, number>;
  refusalsPerSec?: Record<string, number>;
  errorsPerSec?: Record<string, number>;
  inFlight?: number;
  openStreams?: number;
  workersSeen?: number;
}

interface StatusSnapshot {
  at: string;
  broker: string;
  /** MCPQ_REQ's depth; null when the stream does not exist yet (nothing has provisioned this broker). */
  queue: { messages: number; bytes: number } | null;
  pools: PoolStatus[];
  edges: EdgeStatus[];
}

type Sample = { name: string; labels: Record<string, string>; value: number };

/** Parses the Prometheus text exposition format (what prom-client serves). */
function parsePrometheus(text: string): Sample[] {
  const out: Sample[] = [];
  for (const line of text.split("\n")) {
    if (line === "" || line.startsWith("#")) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)/.exec(line);
    if (!m) continue;
    const labels: Record<string, string> = {};
    for (const l of (m[3] ?? "").matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) {
      labels[l[1]!] = l[2]!.replace(/\\(.)/g, (_x, c: string) => (c === "n" ? "\n" : c));
    }
    const value = Number(m[4]);
    if (Number.isFinite(value)) out.push({ name: m[1]!, labels, value });
  }
  return out;
}

function total(samples: Sample[], name: string, by?: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const s of samples) {
    if (s.name !== name) continue;
    const k = by ? (s.labels[by] ?? "") : "";
    out[k] = (out[k] ?? 0) + s.value;
  }
  return out;
}

function rates(
  a: Record<string, number>,
  b: Record<string, number>,
  seconds: number,
): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [k, v] of Object.entries(b)) {
    const r = Math.max(0, v - (a[k] ?? 0)) / seconds;
    out[k] = Math.round(r * 100) / 100;
  }
  return out;
}

function metricsUrl(edge: string): string {
  const u = new URL(edge);
  u.pathname = "/metrics";
  u.search = "";
  return u.toString();
}

async function scrape(edge: string): Promise<Sample[] | null> {
  try {
    const res = await fetch(metricsUrl(edge), { signal: AbortSignal.timeout(3_000) });
    if (!res.ok) return null;
    return parsePrometheus(await res.text());
  } catch {
    return null;
  }
}

const CIRCUIT: PoolStatus["circuit"][] = ["closed", "half_open", "open"];

/** null for a stream or bucket that does not exist (yet); any other failure is rethrown. */
function unlessNotFound(err: unknown): null {
  if (isNotFound(err)) return null;
  throw err;
}

/** The worker registry's keys; none while its bucket does not exist. */
async function* registryKeys(bus: Bus): AsyncGenerator<string> {
  try {
    yield* distinctKeys(bus.kv.registry);
  } catch (err) {
    unlessNotFound(err);
  }
}

/**
 * One snapshot: broker state now, edge rates over `intervalMs` (two scrapes of each edge).
 * Registry entries whose heartbeat is older than their TTL do not count as live workers.
 */
async function collectStatus(
  bus: Bus,
  brokerUrl: string,
  edges: string[],
  intervalMs: number,
): Promise<StatusSnapshot> {
  const first = await Promise.all(edges.map(scrape));
  const started = Date.now();
  // A broker no edge or worker has provisioned yet has none of mcpq's streams or buckets: that
  // is a state to show (no pools, no queue), not a failure.
  const si = await bus.jsm.streams.info(STREAMS.requests).catch(unlessNotFound);
  const pools = new Map<string, PoolStatus>();
  const pool = (name: string): PoolStatus => {
    let p = pools.get(name);
    if (!p) {
      p = {
        pool: name,
        workers: 0,
        shadowWorkers: 0,
        tools: 0,
        queued: 0,
        running: 0,
        waitingPulls: 0,
        circuit: "unknown",
      };
      pools.set(name, p);
    }
    return p;
  };
  if (si)
    for await (const ci of bus.jsm.consumers.list(STREAMS.requests)) {
      const p = pool(ci.name.startsWith("pool-") ? ci.name.slice("pool-".length) : ci.name);
      p.queued = ci.num_pending;
      p.running = ci.num_ack_pending;
      p.waitingPulls = ci.num_waiting;
    }
  const now = Date.now();
  for await (const key of registryKeys(bus)) {
    const e = await bus.kv.registry.get(key).catch(() => null);
    if (!e || e.operation !== "PUT") continue;
    let entry: {
      pool?: unknown;
      heartbeatAt?: unknown;
      ttlMs?: unknown;
      shadow?: unknown;
      catalog?: { tools?: unknown[] };
    };
    try {
      entry = e.json();
    } catch {
      continue;
    }
    if (
      typeof entry.pool !== "string" ||
      typeof entry.heartbeatAt !== "number" ||
      typeof entry.ttlMs !== "number"
    )
      continue;
    if (now - entry.heartbeatAt >= entry.ttlMs) continue;
    const p = pool(entry.pool);
    if (entry.shadow === true) p.shadowWorkers++;
    else p.workers++;
    p.tools = Math.max(
      p.tools,
      Array.isArray(entry.catalog?.tools) ? entry.catalog.tools.length : 0,
    );
  }
  const wait = intervalMs - (Date.now() - started);
  if (wait > 0) await new Promise((r) => setTimeout(r, wait));
  const second = await Promise.all(edges.map(scrape));
  const seconds = Math.max(0.001, Math.max(intervalMs, Date.now() - started) / 1000);
  const edgeStatus: EdgeStatus[] = edges.map((url, i) => {
    const a = first[i];
    const b = second[i];
    if (!a || !b) return { url, reachable: false };
    for (const [p, state] of Object.entries(total(b, "mcpq_edge_circuit_state", "pool"))) {
      const ps = pool(p);
      const s = CIRCUIT[Math.round(state)] ?? "unknown";
      if (ps.circuit === "unknown" || CIRCUIT.indexOf(s) > CIRCUIT.indexOf(ps.circuit))
        ps.circuit = s;
    }
    const outcomes = rates(
      total(a, "mcpq_edge_requests_total", "outcome"),
      total(b, "mcpq_edge_requests_total", "outcome"),
      seconds,
    );
    return {
      url,
      reachable: true,
      brokerConnected: (total(b, "mcpq_edge_broker_connected")[""] ?? 0) >= 1,
      requestsPerSec: Math.round(Object.values(outcomes).reduce((x, y) => x + y, 0) * 100) / 100,
      outcomesPerSec: outcomes,
      refusalsPerSec: rates(
        total(a, "mcpq_edge_rejected_total", "reason"),
        total(b, "mcpq_edge_rejected_total", "reason"),
        seconds,
      ),
      errorsPerSec: rates(
        total(a, "mcpq_edge_errors_total", "code"),
        total(b, "mcpq_edge_errors_total", "code"),
        seconds,
      ),
      inFlight: total(b, "mcpq_edge_admission_in_flight")[""] ?? 0,
      openStreams: Object.values(total(b, "mcpq_edge_open_streams")).reduce((x, y) => x + y, 0),
      workersSeen: total(b, "mcpq_edge_registry_workers")[""] ?? 0,
    };
  });
  for (const p of pools.values())
    if (p.circuit === "unknown" && edgeStatus.some((e) => e.reachable)) p.circuit = "closed";
  return {
    at: new Date().toISOString(),
    broker: brokerUrl,
    queue: si ? { messages: si.state.messages, bytes: si.state.bytes } : null,
    pools: [...pools.values()].sort((x, y) => x.pool.localeCompare(y.pool)),
    edges: edgeStatus,
  };
}

function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => (r[c] ?? "").length)));
  return rows
    .map(
      (r) =>
        "  " +
        r
          .map((cell, c) => (c === 0 ? cell.padEnd(widths[c]!) : cell.padStart(widths[c]!)))
          .join("  "),
    )
    .join("\n");
}

function nonZero(m: Record<string, number> | undefined): string {
  const parts = Object.entries(m ?? {})
    .filter(([, v]) => v > 0)
    .sort((x, y) => y[1] - x[1])
    .map(([k, v]) => `${k} ${v}/s`);
  return parts.length ? parts.join(", ") : "none";
}

/** The terminal view of a snapshot. */
function renderStatus(s: StatusSnapshot): string {
  const live = s.pools.reduce((n, p) => n + p.workers, 0);
  const lines = [
    `mcpq status  ${s.at}  broker ${s.broker}`,
    "",
    `POOLS (${s.pools.length} pools, ${live} live workers)`,
    s.pools.length
      ? table([
          ["pool", "workers", "shadow", "tools", "queued", "running", "idle-pulls", "circuit"],
          ...s.pools.map((p) => [
            p.pool,
            String(p.workers),
            String(p.shadowWorkers),
            String(p.tools),
            String(p.queued),
            String(p.running),
            String(p.waitingPulls),
            p.circuit,
          ]),
        ])
      : "  (no pools: no worker has started)",
    "",
    s.queue
      ? `QUEUE  MCPQ_REQ ${s.queue.messages} messages, ${s.queue.bytes} bytes`
      : `QUEUE  MCPQ_REQ not provisioned yet (no edge or worker has connected to this broker)`,
    "",
    `EDGES (${s.edges.filter((e) => e.reachable).length}/${s.edges.length} reachable)`,
    s.edges.length
      ? table([
          [
            "edge",
            "broker",
            "req/s",
            "ok/s",
            "tool_err/s",
            "error/s",
            "rejected/s",
            "in-flight",
            "streams",
          ],
          ...s.edges.map((e) =>
            e.reachable
              ? [
                  e.url,
                  e.brokerConnected ? "up" : "DOWN",
                  String(e.requestsPerSec ?? 0),
                  String(e.outcomesPerSec?.["ok"] ?? 0),
                  String(e.outcomesPerSec?.["tool_error"] ?? 0),
                  String(e.outcomesPerSec?.["error"] ?? 0),
                  String(e.outcomesPerSec?.["rejected"] ?? 0),
                  String(e.inFlight ?? 0),
                  String(e.openStreams ?? 0),
                ]
              : [e.url, "unreachable", "", "", "", "", "", "", ""],
          ),
        ])
      : "  (none given: --edge URL)",
  ];
  for (const e of s.edges.filter((x) => x.reachable)) {
    lines.push(
      "",
      `  ${e.url}`,
      `    refusals: ${nonZero(e.refusalsPerSec)}`,
      `    errors:   ${nonZero(e.errorsPerSec)}`,
    );
  }
  return lines.join("\n");
}

/** `mcpq status ...`: prints a snapshot (or redraws one per interval with --watch). */
export async function status(
  argv: string[],
  env: Readonly<Pick<CliEnv, "MCPQ_NATS_URL" | "MCPQ_STATUS_EDGES">>,
): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      edge: { type: "string", multiple: true },
      watch: { type: "boolean" },
      interval: { type: "string", default: "2" },
      json: { type: "boolean" },
      help: { type: "boolean", short: "h" },
    },
  });
  if (values.help) {
    console.log(STATUS_USAGE);
    return;
  }
  const intervalS = Number(String(values.interval).replace(/s$/, ""));
  if (!Number.isFinite(intervalS) || intervalS <= 0 || intervalS > 3600) {
    console.error(
      `mcpq status: --interval must be a number of seconds in (0, 3600]\n\n${STATUS_USAGE}`,
    );
    process.exitCode = 2;
    return;
  }
  const fromEnv = (env.MCPQ_STATUS_EDGES ?? "")
    .split(",")
    .map((x) => x.trim())
    .filter(Boolean);
  const edges = values.edge?.length
    ? values.edge
    : fromEnv.length
      ? fromEnv
      : ["http://127.0.0.1:8080"];
  for (const e of edges) {
    try {
      new URL(e);
    } catch {
      console.error(`mcpq status: not a URL: ${e}`);
      process.exitCode = 2;
      return;
    }
  }
  const url = env.MCPQ_NATS_URL;
  let bus: Bus;
  try {
    bus = await connectBus({ url, name: "mcpq-status", provision: false, batchWrites: false });
  } catch (err) {
    console.error(
      `mcpq status: cannot reach the broker at ${url}: ${err instanceof Error ? err.message : String(err)}`,
    );
    process.exitCode = 4;
    return;
  }
  try {
    let stop = false;
    const onSignal = () => {
      stop = true;
    };
    process.once("SIGINT", onSignal);
    do {
      const snap = await collectStatus(bus, url, edges, intervalS * 1000);
      if (values.json) console.log(JSON.stringify(snap));
      else if (values.watch) process.stdout.write(`\x1b[2J\x1b[H${renderStatus(snap)}\n`);
      else console.log(renderStatus(snap));
    } while (values.watch && !stop);
    process.off("SIGINT", onSignal);
  } finally {
    await bus.close();
  }
}
