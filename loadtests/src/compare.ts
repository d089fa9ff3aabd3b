/**
 * bench-compare: compare results/latest/report.json with baselines/quick.json per workload_id
 * (and target).
 *   FAIL (exit 1): throughput < baseline −10 %, or p95 / p99 > baseline +10 %, or CPU per call
 *                  (any serving process, or their total) > baseline +15 %; storm rows (bombing-*,
 *                  offered 10× the capacity each run measured) compare the share of their offered
 *                  requests answered ok, and answered ok or refused, instead of throughput
 *                  (lib/compare-reports.ts)
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
import { compareReports } from "./lib/compare-reports.js";
import type { Report } from "./lib/report.js";

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

const rows = compareReports(latest, base, {
  tput: tputTol,
  lat: latTol,
  mem: memTol,
  cpu: cpuTol,
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
  `thresholds: throughput −${tputTol * 100}% / p95,p99 +${latTol * 100}% / CPU per call +${cpuTol * 100}% → FAIL; memory +${memTol * 100}% → WARN`,
);
console.log(
  `storm rows (bombing-*): each run offers a multiple of the capacity it measured itself, so their tput column is the change of the share of offered requests answered ok (and the share answered ok or refused must not drop by more than −${tputTol * 100}% either), not of msg/s\n`,
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
