/**
 * bench-compare: compare results/latest/report.json with baselines/quick.json per workload_id
 * (and target).
 *   FAIL (exit 1): throughput < baseline −10 %, or p95 / p99 > baseline +10 %, or CPU per call
 *                  (any serving process, or their total) > baseline +15 %
 *   WARN:          edge_rss_mib or per_session_kib > baseline +20 %; workload missing from latest
 * bench-accept (`--accept`): copy results/latest/report.json to baselines/quick.json
 *
 * flags: --latest FILE --baseline FILE --tput-tol 0.10 --lat-tol 0.10 --mem-tol 0.20 --cpu-tol 0.15
 *        --accept [--name quick]
 */
import { copyFileSync, existsSync, mkdirSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { parseArgs, bool, num, str } from "./lib/args.js";
import { LOADTESTS_DIR } from "./lib/stack.js";
import type { Report, WorkloadResult } from "./lib/report.js";

const { flags } = parseArgs();
const latestPath = str(flags, "latest", join(LOADTESTS_DIR, "results", "latest", "report.json"));
const baselinePath = str(
  flags,
  "baseline",
  join(LOADTESTS_DIR, "baselines", `${str(flags, "name", "quick")}.json`),
);

if (bool(flags, "accept")) {
  if (!existsSync(latestPath)) {
    console.error(`no ${latestPath}: run \`pnpm --filter @mcpq/loadtests bench\` first`);
    process.exit(2);
  }
  const r = JSON.parse(readFileSync(latestPath, "utf8")) as Report;
  mkdirSync(dirname(baselinePath), { recursive: true });
  copyFileSync(latestPath, baselinePath);
  console.log(
    `accepted ${latestPath} (${r.workloads.length} workloads, ${r.environment?.date}, git ${r.environment?.git_commit ?? "none"}) as ${baselinePath}`,
  );
  process.exit(0);
}

for (const p of [latestPath, baselinePath]) {
  if (!existsSync(p)) {
    console.error(
      `missing ${p}${p === baselinePath ? " — accept a baseline with `pnpm --filter @mcpq/loadtests bench-accept`" : " — run the bench first"}`,
    );
    process.exit(2);
  }
}
const latest = JSON.parse(readFileSync(latestPath, "utf8")) as Report;
const base = JSON.parse(readFileSync(baselinePath, "utf8")) as Report;
const tputTol = num(flags, "tput-tol", 0.1);
const latTol = num(flags, "lat-tol", 0.1);
const memTol = num(flags, "mem-tol", 0.2);
const cpuTol = num(flags, "cpu-tol", 0.15);

/** µs of CPU per call by serving process (and `total`); the generator is not the system under test. */
const cpuPerCall = (w: WorkloadResult): Record<string, number> => {
  const c = (w.extra?.cpu_us_per_call ?? {}) as Record<string, number | null>;
  const out: Record<string, number> = {};
  for (const [k, v] of Object.entries(c))
    if (k !== "generator" && typeof v === "number") out[k] = v;
  return out;
};

const key = (w: WorkloadResult) => `${w.target}|${w.workload_id}`;
const L = new Map(latest.workloads.map((w) => [key(w), w]));
const B = new Map(base.workloads.map((w) => [key(w), w]));

type Row = {
  id: string;
  cells: string[];
  status: "OK" | "WARN" | "FAIL" | "NEW" | "MISSING";
  notes: string[];
};
const rows: Row[] = [];
const pct = (a: number | null | undefined, b: number | null | undefined): number | null =>
  a == null || b == null || b === 0 ? null : (a - b) / b;
const fmtPct = (p: number | null) =>
  p === null ? "—" : `${p >= 0 ? "+" : ""}${(p * 100).toFixed(1)}%`;

for (const [k, b] of B) {
  const l = L.get(k);
  if (!l) {
    rows.push({
      id: k,
      cells: ["—", "—", "—", "—", "—", "—"],
      status: "MISSING",
      notes: ["not in latest run"],
    });
    continue;
  }
  const notes: string[] = [];
  let status: Row["status"] = "OK";
  const dT = pct(l.throughput_msg_per_s, b.throughput_msg_per_s);
  const d95 = pct(l.latency_p95_us, b.latency_p95_us);
  const d99 = pct(l.latency_p99_us, b.latency_p99_us);
  const dRss = pct(l.edge_rss_mib, b.edge_rss_mib);
  const dSes = pct(l.per_session_kib, b.per_session_kib);
  if (dT !== null && dT < -tputTol) {
    status = "FAIL";
    notes.push(`throughput ${fmtPct(dT)}`);
  }
  if (d95 !== null && d95 > latTol) {
    status = "FAIL";
    notes.push(`p95 ${fmtPct(d95)}`);
  }
  if (d99 !== null && d99 > latTol) {
    status = "FAIL";
    notes.push(`p99 ${fmtPct(d99)}`);
  }
  const cl = cpuPerCall(l);
  const cb = cpuPerCall(b);
  for (const [proc, v] of Object.entries(cl)) {
    const d = pct(v, cb[proc]);
    if (d !== null && d > cpuTol) {
      status = "FAIL";
      notes.push(`CPU/call ${proc} ${fmtPct(d)} (${cb[proc]} → ${v} µs)`);
    }
  }
  const dCpu = pct(cl.total, cb.total);
  if (dRss !== null && dRss > memTol) {
    if (status === "OK") status = "WARN";
    notes.push(`edge RSS ${fmtPct(dRss)}`);
  }
  if (dSes !== null && dSes > memTol) {
    if (status === "OK") status = "WARN";
    notes.push(`per-session ${fmtPct(dSes)}`);
  }
  rows.push({
    id: k,
    cells: [fmtPct(dT), fmtPct(d95), fmtPct(d99), fmtPct(dCpu), fmtPct(dRss), fmtPct(dSes)],
    status,
    notes,
  });
}
for (const [k] of L)
  if (!B.has(k))
    rows.push({
      id: k,
      cells: ["—", "—", "—", "—", "—", "—"],
      status: "NEW",
      notes: ["no baseline"],
    });

const head = [
  "target|workload",
  "tput",
  "p95",
  "p99",
  "cpu/call",
  "rss",
  "KiB/sess",
  "status",
  "notes",
];
const widths = [Math.max(16, ...rows.map((r) => r.id.length)), 8, 8, 8, 9, 8, 9, 7, 10];
const line = (cells: string[]) =>
  cells
    .map((c, i) => (i === 0 || i === 8 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!)))
    .join("  ");
console.log(
  `latest:   ${latestPath} (${latest.environment?.date}, git ${latest.environment?.git_commit ?? "none"})`,
);
console.log(
  `baseline: ${baselinePath} (${base.environment?.date}, git ${base.environment?.git_commit ?? "none"})`,
);
console.log(
  `thresholds: throughput −${tputTol * 100}% / p95,p99 +${latTol * 100}% / CPU per call +${cpuTol * 100}% → FAIL; memory +${memTol * 100}% → WARN\n`,
);
console.log(line(head));
for (const r of rows) console.log(line([r.id, ...r.cells, r.status, r.notes.join("; ")]));
const fails = rows.filter((r) => r.status === "FAIL").length;
const warns = rows.filter((r) => r.status === "WARN" || r.status === "MISSING").length;
console.log(`\n${fails} FAIL, ${warns} WARN, ${rows.length - fails - warns} other`);
if (
  latest.environment &&
  base.environment &&
  latest.environment.cpu_model !== base.environment.cpu_model
)
  console.log(
    `note: CPU model differs (${base.environment.cpu_model} → ${latest.environment.cpu_model}); comparison may be meaningless`,
  );
process.exit(fails > 0 ? 1 : 0);
