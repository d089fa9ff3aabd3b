/**
 * scale-out (issue 17, point 2): what more processes buy on this box, each shape on a fresh
 * stack (its own nats-server, edge and worker processes):
 *
 *  1. edge 1 vs 2 processes (`mcpq edge --processes N`): closed loop C=64, `echo` over
 *     Streamable HTTP — CPU-bound, so on two cores shared with the worker, nats-server and the
 *     generator the gain is bounded by the spare core;
 *  2. the I/O-bound scale-out: workers 1 → 2 → 4 processes (`mcpq worker --processes N`, each
 *     with MCPQ_WORKER_CONCURRENCY slots), tool `echo_io` (awaits 20 ms, catalog `bench`),
 *     closed loop with twice the 4-process slot count in flight (every shape has work queued
 *     for every slot). Linear = N × the 1-process throughput; goal ≥ 0.9× linear.
 *
 *   pnpm --filter @mcpq/loadtests scale-out [--duration 8] [--warmup 2] [--slots 4]
 *        [--workers 1,2,4] [--edges 1,2] [--skip-edges] [--skip-workers] [--out DIR]
 *
 * Prints the tables and writes results/scale-out-<stamp>/scale-out.{json,md}. Bounded: about
 * (warm-up + duration + start-up ~5 s) per shape, 5 shapes by default (~1.5 min).
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { loadavg } from "node:os";
import { join } from "node:path";
import { parseArgs, bool, num, str } from "./lib/args.js";
import { installExitHooks, startNats } from "./lib/procs.js";
import { captureEnvironment, fmtUs, type WorkloadResult } from "./lib/report.js";
import { LOADTESTS_DIR, mcpqUnavailable, startMcpq, type McpqShape } from "./lib/stack.js";
import { runSaturation } from "./scenarios/saturation.js";

installExitHooks();
const { flags } = parseArgs();
const durationMs = num(flags, "duration", 8) * 1000;
const warmupMs = num(flags, "warmup", 2) * 1000;
const slots = num(flags, "slots", 4);
const list = (k: string, d: string) =>
  str(flags, k, d)
    .split(",")
    .map(Number)
    .filter((n) => n > 0);
const workerCounts = list("workers", "1,2,4");
const edgeCounts = list("edges", "1,2");
const log = (m: string) => process.stderr.write(`${m}\n`);
const why = mcpqUnavailable();
if (why) {
  log(why);
  process.exit(2);
}
const stamp = new Date().toISOString().replace(/[:.]/g, "-");
const outDir = join(str(flags, "out", join(LOADTESTS_DIR, "results")), `scale-out-${stamp}`);
const logDir = join(outDir, "logs");
mkdirSync(logDir, { recursive: true });

interface Row {
  shape: string;
  processes: number;
  tool: string;
  in_flight: number;
  load_avg: number;
  result: WorkloadResult;
}

async function measure(
  shape: McpqShape,
  label: string,
  tool: string,
  C: number,
): Promise<WorkloadResult> {
  const nats = await startNats(logDir);
  try {
    const stack = await startMcpq(nats, logDir, { ...shape, label });
    try {
      const [r] = await runSaturation(
        { ...stack.target, toolName: tool },
        { transport: "http", concurrencies: [C], durationMs, warmupMs, idSuffix: `-${label}`, log },
      );
      return r!;
    } finally {
      await stack.stop();
    }
  } finally {
    await nats.stop();
  }
}

const edges: Row[] = [];
if (!bool(flags, "skip-edges"))
  for (const n of edgeCounts) {
    const label = `edge${n}`;
    log(`[${label}] mcpq edge --processes ${n}: echo, C=64`);
    const result = await measure({ edgeProcesses: n }, label, "echo", 64);
    edges.push({
      shape: label,
      processes: n,
      tool: "echo",
      in_flight: 64,
      load_avg: loadavg()[0]!,
      result,
    });
  }

const workers: Row[] = [];
const C = 2 * slots * Math.max(...workerCounts);
if (!bool(flags, "skip-workers"))
  for (const n of workerCounts) {
    const label = `worker${n}`;
    log(`[${label}] mcpq worker --processes ${n} (${slots} slots each): echo_io (20 ms), C=${C}`);
    const result = await measure(
      {
        workerProcesses: n,
        catalog: "bench",
        env: { MCPQ_WORKER_CONCURRENCY: String(slots) },
      },
      label,
      "echo_io",
      C,
    );
    workers.push({
      shape: label,
      processes: n,
      tool: "echo_io",
      in_flight: C,
      load_avg: loadavg()[0]!,
      result,
    });
  }

const cpc = (r: WorkloadResult, k: string) =>
  ((r.extra?.cpu_us_per_call ?? {}) as Record<string, number | null>)[k] ?? null;
const md: string[] = [
  `# mcpq scale-out (${new Date().toISOString()})`,
  "",
  `- ${captureEnvironment().cores} cores; each shape on a fresh nats-server + edge + worker; closed loop over Streamable HTTP, ${warmupMs / 1000} s warm-up + ${durationMs / 1000} s window; load average is the 1-min figure after the shape ran.`,
  "",
];
if (edges.length) {
  const base = edges[0]!.result.throughput_msg_per_s;
  md.push(
    "## Edge processes (echo, C=64)",
    "",
    "| edge processes | msg/s | × 1 process | p99 | CPU µs/call edge | worker | nats | load avg |",
    "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ...edges.map(
      (e) =>
        `| ${e.processes} | ${e.result.throughput_msg_per_s} | ${(e.result.throughput_msg_per_s / base).toFixed(2)}× | ${fmtUs(e.result.latency_p99_us)} | ${cpc(e.result, "edge")} | ${cpc(e.result, "worker")} | ${cpc(e.result, "nats")} | ${e.load_avg.toFixed(1)} |`,
    ),
    "",
  );
}
if (workers.length) {
  const one = workers.find((w) => w.processes === 1) ?? workers[0]!;
  const per = one.result.throughput_msg_per_s / one.processes;
  md.push(
    `## Worker processes (echo_io: 20 ms await; ${slots} slots per process; C=${C})`,
    "",
    `Ideal per process: ${slots} slots / 20 ms = ${slots * 50} msg/s. Linear = processes × the ${one.processes}-process figure per process.`,
    "",
    "| worker processes | msg/s | linear | × linear | p50 | p99 | CPU µs/call edge | worker | nats | load avg |",
    "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ...workers.map((w) => {
      const lin = per * w.processes;
      return `| ${w.processes} | ${w.result.throughput_msg_per_s} | ${Math.round(lin)} | **${(w.result.throughput_msg_per_s / lin).toFixed(2)}×** | ${fmtUs(w.result.latency_p50_us)} | ${fmtUs(w.result.latency_p99_us)} | ${cpc(w.result, "edge")} | ${cpc(w.result, "worker")} | ${cpc(w.result, "nats")} | ${w.load_avg.toFixed(1)} |`;
    }),
    "",
  );
}
const text = md.join("\n");
writeFileSync(join(outDir, "scale-out.md"), text);
writeFileSync(
  join(outDir, "scale-out.json"),
  JSON.stringify({ environment: captureEnvironment(), slots, edges, workers }, null, 2) + "\n",
);
process.stdout.write(`${text}\n→ ${outDir}\n`);
process.exit(0);
