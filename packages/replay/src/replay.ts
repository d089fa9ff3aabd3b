import type { ToolDescriptor } from "@mcpq/protocol";
import {
  distinctKeys,
  isErrorResponse,
  parsePathPatterns,
  type Bus,
  type RecordedResponse,
  type RequestRecord,
} from "@mcpq/bus";
import { ReplayClient } from "./client.js";
import { diffResponses, type Change } from "./diff.js";

/** How one selected request fared. */
export type ReplayStatus = "unchanged" | "changed" | "new-error" | "failed" | "skipped";

export interface ReplayItem {
  record: RequestRecord;
  /** Pool the request was replayed against. */
  pool: string;
  status: ReplayStatus;
  /** Why it was skipped or failed. */
  reason?: string;
  /** Differences from the recorded response (`changed` / `new-error`). */
  changes: Change[];
  /** The replayed response (null when skipped or failed). */
  response: RecordedResponse | null;
  /** Recorded: edge accepted -> worker finished (ms). */
  recordedMs: number;
  /** Replay: publish -> response received (ms). */
  replayMs?: number;
}

export interface LatencySummary {
  p50: number;
  p95: number;
  max: number;
}

export interface ReplayReport {
  replayId: string;
  /** Pools replayed against. */
  pools: string[];
  items: ReplayItem[];
  counts: Record<ReplayStatus, number>;
  /** Over the requests that got an answer. */
  latency: { recorded: LatencySummary; replay: LatencySummary } | null;
  /** The deploy gate: any response changed, newly failed as an error, or did not arrive. */
  differs: boolean;
  /** Things worth knowing that do not fail the run (e.g. a candidate pool that also serves clients). */
  warnings: string[];
  startedAt: number;
  finishedAt: number;
}

export interface ReplayOptions {
  /** Pool (or `mcpq.req.<pool>`) to replay against; default: each record's own pool. */
  against?: string;
  /** `original`: keep the recorded spacing between requests; `fast` (default): as fast as `rate`/`concurrency` allow. */
  pace?: "original" | "fast";
  /** Most requests started per second (fast pace). Default: no limit besides `concurrency`. */
  rate?: number;
  /** Most requests in flight at once. Default 16. */
  concurrency?: number;
  /** Per-request deadline (ms). Default 30 000. */
  timeoutMs?: number;
  /** Response paths expected to vary (see `@mcpq/bus` json-path), e.g. `result.structuredContent.now`. */
  ignore?: readonly string[];
  /** Also replay side-effecting requests (non-replayable tools). */
  force?: boolean;
  /** Replay run id (a safe token); random by default. */
  replayId?: string;
  /** Called after each request finishes (or is skipped). */
  onItem?(item: ReplayItem, done: number, total: number): void;
  /** Called with each warning as soon as it is known (they are also in the report). */
  onWarning?(message: string): void;
}

/** A pool to replay against has no live worker (the request would sit in the queue until it expires). */
export class NoWorkersError extends Error {
  override readonly name = "NoWorkersError";
  readonly code = "replay.no_workers";
  constructor(readonly pool: string) {
    super(
      `no live worker in pool ${JSON.stringify(pool)} (start one: mcpq worker --pool ${pool} --catalog ...)`,
    );
  }
}

/** Parses `--against`: a pool name, or a request subject prefix `mcpq.req.<pool>[.>]`. */
export function parseAgainst(against: string): string {
  const m = /^(?:mcpq\.req\.)?([A-Za-z0-9_-]+)(?:\.>)?$/.exec(against.trim());
  if (!m)
    throw new Error(
      `--against ${JSON.stringify(against)}: expected a pool name or mcpq.req.<pool>`,
    );
  return m[1]!;
}

/**
 * Replays recorded requests against live workers and compares each answer with the recording.
 * This is the one implementation behind `mcpq replay` and testkit's `replayFixtures`.
 *
 * Side-effecting requests (recorded `replayable: false`, or a tool the target pool now lists with
 * `destructiveHint` / `replayable: false`) and requests recorded without a response (cancelled)
 * are skipped unless `force` (cancelled ones always are). Throws `NoWorkersError` before sending
 * anything when a pool that has requests to run has no live worker.
 */
export async function replayRecords(
  bus: Bus,
  records: readonly RequestRecord[],
  opts: ReplayOptions = {},
): Promise<ReplayReport> {
  const startedAt = Date.now();
  const ignore = parsePathPatterns(opts.ignore ?? []);
  const against = opts.against === undefined ? undefined : parseAgainst(opts.against);
  const concurrency = Math.max(1, opts.concurrency ?? 16);
  const sorted = [...records].sort((a, b) => a.receivedAt - b.receivedAt);
  const pools = [...new Set(sorted.map((r) => against ?? r.pool))];
  const catalogs = new Map<string, PoolCatalog>();
  for (const p of pools) catalogs.set(p, await poolCatalog(bus, p));
  const warnings: string[] = [];
  const warn = (m: string) => (warnings.push(m), opts.onWarning?.(m));
  if (
    against !== undefined &&
    sorted.some((r) => r.pool !== against) &&
    catalogs.get(against)!.routable > 0
  ) {
    warn(
      `pool ${against} has ${catalogs.get(against)!.routable} worker(s) that edges route client traffic to; ` +
        `start a candidate with \`mcpq worker --pool ${against} --shadow\` (MCPQ_WORKER_SHADOW=on) so it serves replays only`,
    );
  }

  const items: ReplayItem[] = sorted.map((record) => {
    const pool = against ?? record.pool;
    const reason = skipReason(
      record,
      catalogs.get(pool)!.tools.get(record.target),
      opts.force === true,
    );
    const item: ReplayItem = {
      record,
      pool,
      status: "skipped",
      changes: [],
      response: null,
      recordedMs: recordedMs(record),
    };
    if (reason) item.reason = reason;
    return item;
  });
  const toRun = items.filter((i) => i.reason === undefined);
  for (const p of new Set(toRun.map((i) => i.pool)))
    if (catalogs.get(p)!.workers === 0) throw new NoWorkersError(p);

  let done = 0;
  for (const i of items) if (i.reason !== undefined) opts.onItem?.(i, ++done, items.length);
  const client = await ReplayClient.open(bus, {
    ...(opts.replayId ? { id: opts.replayId } : {}),
    timeoutMs: opts.timeoutMs ?? 30_000,
  });
  try {
    const t0 = performance.now();
    const base = toRun[0]?.record.receivedAt ?? 0;
    let running = 0;
    const slotFreed: (() => void)[] = [];
    const all: Promise<void>[] = [];
    for (const [n, item] of toRun.entries()) {
      const at =
        opts.pace === "original"
          ? item.record.receivedAt - base
          : opts.rate
            ? (n * 1000) / opts.rate
            : 0;
      const wait = t0 + at - performance.now();
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
      while (running >= concurrency) await new Promise<void>((r) => slotFreed.push(r));
      running++;
      all.push(
        client
          .send(item.record, item.pool)
          .then((answer) => {
            item.replayMs = answer.durationMs;
            item.response = answer.response;
            if (!answer.response) {
              item.status = "failed";
              item.reason = answer.failure ?? "no response";
              return;
            }
            item.changes = diffResponses(item.record.response!, answer.response, ignore);
            if (item.changes.length === 0) item.status = "unchanged";
            else
              item.status =
                !isErrorResponse(item.record.response) && isErrorResponse(answer.response)
                  ? "new-error"
                  : "changed";
          })
          .finally(() => {
            running--;
            slotFreed.shift()?.();
            opts.onItem?.(item, ++done, items.length);
          }),
      );
    }
    await Promise.all(all);
  } finally {
    await client.close();
  }

  const counts: Record<ReplayStatus, number> = {
    unchanged: 0,
    changed: 0,
    "new-error": 0,
    failed: 0,
    skipped: 0,
  };
  for (const i of items) counts[i.status]++;
  const answered = items.filter((i) => i.replayMs !== undefined && i.response);
  return {
    replayId: client.id,
    pools: [...new Set(toRun.map((i) => i.pool))],
    items,
    counts,
    latency: answered.length
      ? {
          recorded: summary(answered.map((i) => i.recordedMs)),
          replay: summary(answered.map((i) => i.replayMs!)),
        }
      : null,
    differs: counts.changed + counts["new-error"] + counts.failed > 0,
    warnings,
    startedAt,
    finishedAt: Date.now(),
  };
}

interface PoolCatalog {
  /** Live workers (shadow or not). */
  workers: number;
  /** Live workers edges route client traffic to (not shadow). */
  routable: number;
  tools: Map<string, ToolDescriptor>;
}

/** Live workers of a pool and the tools they list (from the registry bucket). */
async function poolCatalog(bus: Bus, pool: string): Promise<PoolCatalog> {
  const out: PoolCatalog = { workers: 0, routable: 0, tools: new Map() };
  const keys: string[] = [];
  for await (const k of distinctKeys(bus.kv.registry, `${pool}.*`)) keys.push(k);
  for (const k of keys) {
    const e = await bus.kv.registry.get(k);
    if (!e || e.operation !== "PUT") continue;
    try {
      const entry = e.json<{ catalog?: { tools?: ToolDescriptor[] }; shadow?: boolean }>();
      out.workers++;
      if (entry.shadow !== true) out.routable++;
      for (const t of entry.catalog?.tools ?? []) out.tools.set(t.name, t);
    } catch {
      // A malformed registry entry is not a worker we can count on.
    }
  }
  return out;
}

function skipReason(
  r: RequestRecord,
  current: ToolDescriptor | undefined,
  force: boolean,
): string | undefined {
  if (r.response === null) return `no recorded response (${r.outcome})`;
  if (force) return undefined;
  if (r.method === "tools/call") {
    if (current?.annotations?.destructiveHint === true)
      return "side-effecting tool (destructiveHint); --force replays it";
    if ((current?._meta as Record<string, unknown> | undefined)?.["io.mcpq/replayable"] === false) {
      return "side-effecting tool (replayable: false); --force replays it";
    }
  }
  if (!r.replayable) return "side-effecting (recorded as not replayable); --force replays it";
  return undefined;
}

function recordedMs(r: RequestRecord): number {
  return Math.max(0, r.startedAt + r.durationMs - r.receivedAt);
}

function summary(values: number[]): LatencySummary {
  const s = [...values].sort((a, b) => a - b);
  const at = (q: number) => s[Math.min(s.length - 1, Math.max(0, Math.ceil(q * s.length) - 1))]!;
  return { p50: at(0.5), p95: at(0.95), max: s[s.length - 1]! };
}
