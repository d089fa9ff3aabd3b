import type { Change } from "./diff.js";
import type { ReplayItem, ReplayReport, ReplayStatus } from "./replay.js";

const LABEL: Record<ReplayStatus, string> = {
  unchanged: "UNCHANGED",
  changed: "CHANGED",
  "new-error": "NEW ERROR",
  failed: "FAILED",
  skipped: "SKIPPED",
};

export interface FormatOptions {
  /** Also list unchanged requests. */
  verbose?: boolean;
  /** Changes shown per request before "… N more". Default 10. */
  maxChanges?: number;
}

/** Human-readable report: summary, latency, then each changed / new-error / failed / skipped request. */
export function formatReport(r: ReplayReport, opts: FormatOptions = {}): string {
  const replayed = r.items.length - r.counts.skipped;
  const lines: string[] = [];
  lines.push(
    `mcpq replay ${r.replayId}: ${r.items.length} selected, ${replayed} replayed` +
      (r.pools.length
        ? ` against pool${r.pools.length > 1 ? "s" : ""} ${r.pools.join(", ")}`
        : "") +
      `, ${r.counts.skipped} skipped (${((r.finishedAt - r.startedAt) / 1000).toFixed(1)} s)`,
  );
  lines.push(`  unchanged   ${r.counts.unchanged}`);
  lines.push(`  changed     ${r.counts.changed}`);
  lines.push(`  new errors  ${r.counts["new-error"]}`);
  lines.push(`  failed      ${r.counts.failed}`);
  lines.push(`  skipped     ${r.counts.skipped}`);
  if (r.latency) {
    const { recorded: a, replay: b } = r.latency;
    lines.push(
      `latency ms    recorded p50 ${ms(a.p50)} p95 ${ms(a.p95)} max ${ms(a.max)}  ->  replay p50 ${ms(b.p50)} p95 ${ms(b.p95)} max ${ms(b.max)}` +
        `  (p50 ${signed(b.p50 - a.p50)}, p95 ${signed(b.p95 - a.p95)})`,
    );
  }
  for (const w of r.warnings) lines.push(`warning: ${w}`);
  const shown = r.items.filter((i) => opts.verbose || i.status !== "unchanged");
  if (shown.length) lines.push("");
  for (const i of shown) lines.push(...formatItem(i, opts));
  lines.push("");
  lines.push(
    r.differs
      ? `RESULT: DIFFERENT — ${r.counts.changed + r.counts["new-error"] + r.counts.failed} of ${replayed} replayed responses differ or failed`
      : `RESULT: SAME — ${r.counts.unchanged} of ${replayed} replayed responses match the recording`,
  );
  return lines.join("\n");
}

/** One request's block: a header line, then its changes or the reason it was skipped or failed. */
export function formatItem(i: ReplayItem, opts: FormatOptions = {}): string[] {
  const rec = i.record;
  const latency =
    i.replayMs === undefined ? "" : `  ${ms(i.recordedMs)} ms -> ${ms(i.replayMs)} ms`;
  const head = `${LABEL[i.status].padEnd(9)} ${rec.method} ${rec.target}  [req ${rec.requestId} at ${new Date(rec.receivedAt).toISOString()}, pool ${i.pool}]${latency}`;
  const out = [head];
  if (i.reason) out.push(`    ${i.reason}`);
  const max = opts.maxChanges ?? 10;
  for (const c of i.changes.slice(0, max)) out.push(`    ${formatChange(c)}`);
  if (i.changes.length > max) out.push(`    … ${i.changes.length - max} more`);
  return out;
}

function formatChange(c: Change): string {
  switch (c.kind) {
    case "changed":
      return `${c.path}: ${show(c.before)} -> ${show(c.after)}`;
    case "added":
      return `${c.path}: added ${show(c.after)}`;
    case "removed":
      return `${c.path}: removed (was ${show(c.before)})`;
  }
}

/** The report as plain JSON (for `--json`): no full records, just what identifies and explains each request. */
export function reportToJson(r: ReplayReport): Record<string, unknown> {
  return {
    replayId: r.replayId,
    pools: r.pools,
    counts: r.counts,
    differs: r.differs,
    warnings: r.warnings,
    latency: r.latency,
    startedAt: new Date(r.startedAt).toISOString(),
    finishedAt: new Date(r.finishedAt).toISOString(),
    items: r.items.map((i) => ({
      requestId: i.record.requestId,
      method: i.record.method,
      target: i.record.target,
      session: i.record.session,
      receivedAt: new Date(i.record.receivedAt).toISOString(),
      pool: i.pool,
      status: i.status,
      ...(i.reason ? { reason: i.reason } : {}),
      ...(i.changes.length ? { changes: i.changes } : {}),
      recordedMs: i.recordedMs,
      ...(i.replayMs !== undefined ? { replayMs: Math.round(i.replayMs * 10) / 10 } : {}),
    })),
  };
}

function show(v: unknown): string {
  const s = v === undefined ? "undefined" : JSON.stringify(v);
  return s.length > 120 ? `${s.slice(0, 117)}...` : s;
}

function ms(v: number): string {
  return v < 10 ? v.toFixed(1) : String(Math.round(v));
}

function signed(v: number): string {
  return `${v >= 0 ? "+" : ""}${ms(v)}`;
}
