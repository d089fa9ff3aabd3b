/**
 * The comparison bench-compare makes (src/compare.ts prints it): each workload of the latest
 * report against the same target and workload_id of the baseline.
 *
 * Storm rows (`bombing-*`: a closed set of requests offered at `multiplier` × the capacity that
 * run measured) are offered a different load in every run, so their raw throughput says more
 * about the capacity measured before the storm than about the storm. For them the throughput
 * check compares the share of the offered requests answered ok, and a second check the share
 * answered at all (ok or an explicit refusal); both must not drop by more than the throughput
 * tolerance. Latency and memory are compared as for every row.
 */
import type { Report, WorkloadResult } from "./report.js";

export interface Tolerances {
  /** Largest relative throughput drop (storm rows: of the ok share, and of the answered share). */
  tput: number;
  /** Largest relative p95 / p99 rise. */
  lat: number;
  /** Largest relative edge RSS / per-session memory rise (a WARN only). */
  mem: number;
  /** Largest relative CPU-per-call rise of any serving process, or of their total. */
  cpu: number;
}

type RowStatus = "OK" | "WARN" | "FAIL" | "NEW" | "MISSING";

export interface ComparisonRow {
  /** `target|workload_id`. */
  id: string;
  /** tput (storm rows: the ok share of offered), p95, p99, cpu/call, rss, KiB/sess: relative changes. */
  cells: string[];
  status: RowStatus;
  notes: string[];
}

/** How a storm's offered requests ended, as shares of all it offered. */
export interface StormShares {
  offered: number;
  /** Answered with a result. */
  ok: number;
  /** Answered with a result or an explicit refusal (-32010/-32011, HTTP 429/503). */
  answered: number;
}

/**
 * The outcome shares of a storm row; null for any other row. The classes count every request of
 * the storm's schedule once (ok, rejected, deadline, error, lost, held), so their sum is the
 * offered load whatever rate the run offered.
 */
export function stormShares(w: WorkloadResult): StormShares | null {
  if (!w.workload_id.startsWith("bombing-")) return null;
  const c = w.extra?.["classes"];
  if (typeof c !== "object" || c === null) return null;
  const classes = c as Record<string, unknown>;
  let offered = 0;
  for (const v of Object.values(classes)) if (typeof v === "number") offered += v;
  if (offered === 0) return null;
  const n = (k: string) => (typeof classes[k] === "number" ? classes[k] : 0);
  return { offered, ok: n("ok") / offered, answered: (n("ok") + n("rejected")) / offered };
}

const pct = (a: number | null | undefined, b: number | null | undefined): number | null =>
  a == null || b == null || b === 0 ? null : (a - b) / b;

/** A relative change as `+12.3%` (— when there is nothing to compare). */
const fmtPct = (p: number | null) =>
  p === null ? "—" : `${p >= 0 ? "+" : ""}${(p * 100).toFixed(1)}%`;

const share = (x: number) => `${(x * 100).toFixed(2)}%`;

/** µs of CPU per call by serving process (and `total`); the generator is not the system under test. */
function cpuPerCall(w: WorkloadResult): Record<string, number> {
  const c = (w.extra?.["cpu_us_per_call"] ?? {}) as Record<string, number | null>;
  const out: Record<string, number> = {};
  for (const [k, v] of Object.entries(c))
    if (k !== "generator" && typeof v === "number") out[k] = v;
  return out;
}

const NONE = ["—", "—", "—", "—", "—", "—"];

/** Every baseline workload compared with the latest run's, then the latest run's new ones. */
export function compareReports(latest: Report, base: Report, tol: Tolerances): ComparisonRow[] {
  const key = (w: WorkloadResult) => `${w.target}|${w.workload_id}`;
  const L = new Map(latest.workloads.map((w) => [key(w), w]));
  const B = new Map(base.workloads.map((w) => [key(w), w]));
  const rows: ComparisonRow[] = [];
  for (const [k, b] of B) {
    const l = L.get(k);
    if (!l) {
      rows.push({ id: k, cells: NONE, status: "MISSING", notes: ["not in latest run"] });
      continue;
    }
    const notes: string[] = [];
    let status: RowStatus = "OK";
    const fail = (note: string) => {
      status = "FAIL";
      notes.push(note);
    };
    const warn = (note: string) => {
      if (status === "OK") status = "WARN";
      notes.push(note);
    };
    const sl = stormShares(l);
    const sb = stormShares(b);
    let dT: number | null;
    if (sl && sb) {
      dT = pct(sl.ok, sb.ok);
      const dA = pct(sl.answered, sb.answered);
      notes.push(
        `storm: ok ${share(sb.ok)} → ${share(sl.ok)}, ok+refused ${share(sb.answered)} → ${share(sl.answered)} of offered (${sb.offered} → ${sl.offered} requests)`,
      );
      if (dT !== null && dT < -tol.tput) fail(`ok share ${fmtPct(dT)}`);
      if (dA !== null && dA < -tol.tput) fail(`answered share ${fmtPct(dA)}`);
    } else {
      dT = pct(l.throughput_msg_per_s, b.throughput_msg_per_s);
      if (dT !== null && dT < -tol.tput) fail(`throughput ${fmtPct(dT)}`);
    }
    const d95 = pct(l.latency_p95_us, b.latency_p95_us);
    const d99 = pct(l.latency_p99_us, b.latency_p99_us);
    if (d95 !== null && d95 > tol.lat) fail(`p95 ${fmtPct(d95)}`);
    if (d99 !== null && d99 > tol.lat) fail(`p99 ${fmtPct(d99)}`);
    const cl = cpuPerCall(l);
    const cb = cpuPerCall(b);
    for (const [proc, v] of Object.entries(cl)) {
      const d = pct(v, cb[proc]);
      if (d !== null && d > tol.cpu) fail(`CPU/call ${proc} ${fmtPct(d)} (${cb[proc]} → ${v} µs)`);
    }
    const dCpu = pct(cl["total"], cb["total"]);
    const dRss = pct(l.edge_rss_mib, b.edge_rss_mib);
    const dSes = pct(l.per_session_kib, b.per_session_kib);
    if (dRss !== null && dRss > tol.mem) warn(`edge RSS ${fmtPct(dRss)}`);
    if (dSes !== null && dSes > tol.mem) warn(`per-session ${fmtPct(dSes)}`);
    rows.push({
      id: k,
      cells: [fmtPct(dT), fmtPct(d95), fmtPct(d99), fmtPct(dCpu), fmtPct(dRss), fmtPct(dSes)],
      status,
      notes,
    });
  }
  for (const [k] of L)
    if (!B.has(k)) rows.push({ id: k, cells: NONE, status: "NEW", notes: ["no baseline"] });
  return rows;
}
