/**
 * The chaos benchmark: `pnpm --filter @mcpq/loadtests chaos [flags]`. For each fault, a fresh
 * NATS (one node, or a 3-node cluster with MCPQ_REPLICAS=3) and fresh mcpq processes, the
 * official SDK client load (S sessions × K in flight), the fault, its repair, more load; then
 * one line per fault: calls accepted, answered correctly, refused explicitly, timed out, lost,
 * wrong, duplicated, and the time until calls succeed again. Bounded: every phase has a fixed
 * length and the run stops by itself (about 30 s per fault with the defaults).
 *
 * Flags: --faults a,b (default all: broker-restart,node-kill,leader-kill,partition,worker-kill,edge-kill;
 * partition needs root and ip netns)
 * --sessions 10 --v2-sessions 2 (of them, the 2.x client: 2026-07-28 era) --ws-sessions 2 (SDK
 * 1.32.2 over WebSocket; none in edge-kill, the SDK does not resume a socket) --in-flight 4 --before 4 --down 3 --after 10 (seconds) --deadline 10 (seconds)
 * --think 0 (ms after each answer; 0 = closed loop) --until-recovered 0 (seconds: after the
 * repair, keep the load on until calls succeed again, at most this long; 0 = just --after) --out FILE (JSON; default
 * results/chaos-<time>.json) --logs DIR (process logs) --no-fail (exit 0 even when lost > 0).
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { bool, num, parseArgs, str } from "../lib/args.js";
import { LOADTESTS_DIR, mcpqUnavailable } from "../lib/stack.js";
import { FAULTS, runFault, type FaultName, type FaultResult } from "./faults.js";
import { netnsUnavailable } from "./netns.js";

const { flags } = parseArgs();
const faults = str(flags, "faults", Object.keys(FAULTS).join(","))
  .split(",")
  .filter(Boolean) as FaultName[];
for (const f of faults)
  if (!(f in FAULTS))
    throw new Error(`unknown fault ${f}; known: ${Object.keys(FAULTS).join(", ")}`);
const unavailable = mcpqUnavailable();
if (unavailable) {
  process.stderr.write(`${unavailable}\n`);
  process.exit(2);
}
const opts = {
  sessions: num(flags, "sessions", 10),
  v2Sessions: num(flags, "v2-sessions", 2),
  wsSessions: num(flags, "ws-sessions", 2),
  inFlight: num(flags, "in-flight", 4),
  beforeMs: num(flags, "before", 4) * 1000,
  downMs: num(flags, "down", 3) * 1000,
  afterMs: num(flags, "after", 10) * 1000,
  deadlineMs: num(flags, "deadline", 10) * 1000,
  thinkMs: num(flags, "think", 0),
  untilRecoveredMs: num(flags, "until-recovered", 0) * 1000 || undefined,
  logDir: str(flags, "logs"),
  say: (l: string) => process.stderr.write(`[chaos] ${l}\n`),
};
if (opts.logDir) mkdirSync(opts.logDir, { recursive: true });

const results: FaultResult[] = [];
const skipped: string[] = [];
for (const f of faults) {
  const why = f === "partition" ? netnsUnavailable() : null;
  if (why) {
    skipped.push(`${f}: ${why}`);
    opts.say(`${f}: skipped (${why})`);
    continue;
  }
  results.push(await runFault(f, opts));
  const r = results.at(-1)!;
  opts.say(`${f}: ${line(r)}`);
}

const secs = (ms: number | null) => (ms === null ? "never" : `${(ms / 1000).toFixed(2)} s`);
function line(r: FaultResult): string {
  const c = r.ledger.counts;
  const why = Object.entries(r.ledger.refusals)
    .map(([k, n]) => `${n}× ${k}`)
    .join("; ");
  return `${why ? `refusals: ${why}; ` : ""}subscription survived ${r.survived.subscription}, registry ${r.survived.registry}; sent ${r.ledger.sent} (${Object.entries(
    r.ledger.sentBy,
  )
    .map(([k, n]) => `${k} ${n}`)
    .join(
      ", ",
    )}), accepted ${r.ledger.sent - c.unaccepted}, ok ${c.ok}, refused ${c.refused}, timeout ${c.timeout}, lost ${c.lost}, wrong ${c.wrong}, duplicated ${r.ledger.duplicates}`;
}
const rows = results.map((r) => {
  const c = r.ledger.counts;
  const survival = (100 * r.ledger.sessionsSurvived) / Math.max(1, r.ledger.sessions);
  return `| ${r.fault} (${r.victim}) | ${r.ledger.sent - c.unaccepted} | ${c.ok} | ${c.refused} | ${c.timeout} | ${c.lost} | ${c.wrong} | ${r.ledger.duplicates} | ${c.unaccepted} | ${survival.toFixed(1)} % | ${secs(r.recoveryFromFaultMs)} | ${secs(r.recoveryFromRepairMs)} | ${secs(r.longestAcrossFaultMs)} |`;
});
const table = [
  `chaos: ${opts.sessions} sessions × ${opts.inFlight} in flight (official SDK clients: ${opts.wsSessions} on 1.32.2 over WebSocket except in edge-kill, ${opts.v2Sessions} on 2.x in the 2026-07-28 era, the rest on 1.32.2 over Streamable HTTP), deadline ${opts.deadlineMs / 1000} s, fault after ${opts.beforeMs / 1000} s, node down ${opts.downMs / 1000} s, ${opts.afterMs / 1000} s after`,
  "",
  "| fault | accepted | answered correctly | refused explicitly | timed out | lost | wrong | duplicated | not accepted (connection failed) | sessions survived | calls succeed again after the fault | … after the repair | longest call across the fault |",
  "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
  ...rows,
  ...skipped.map((s) => `\nskipped: ${s}`),
].join("\n");
process.stdout.write(`${table}\n`);
const out =
  str(flags, "out") ??
  join(LOADTESTS_DIR, "results", `chaos-${new Date().toISOString().replace(/[:.]/g, "-")}.json`);
mkdirSync(dirname(out), { recursive: true });
writeFileSync(
  out,
  JSON.stringify(
    {
      opts: { ...opts, say: undefined },
      results: results.map((r) => ({ ...r, ledger: { ...r.ledger, timeline: undefined } })),
    },
    null,
    2,
  ),
);
process.stderr.write(`[chaos] report: ${out}\n`);
const bad = results.some(
  (r) => r.ledger.counts.lost > 0 || r.ledger.counts.wrong > 0 || r.ledger.duplicates > 0,
);
process.exit(bad && !bool(flags, "no-fail") ? 1 : 0);
