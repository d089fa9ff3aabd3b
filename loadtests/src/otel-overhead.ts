/**
 * Observability overhead: throughput and p99 of the mcpq stack (edge + worker processes, HTTP,
 * closed loop at C) with tracing off, on at 100 % sampling and on at 1 % sampling, both
 * exporting over OTLP/HTTP to an in-process receiver that counts spans (so the export cost is
 * real). The access log is off in the three tracing modes, to isolate tracing; a fourth mode
 * measures the access log at its default (info, every request) without tracing.
 * Modes run interleaved for `--rounds` rounds (A B C D A B C D …) so drift hits all alike; each
 * mode's figure is the median of its rounds.
 *
 *   pnpm --filter @mcpq/loadtests otel-overhead [--c 64] [--duration 8] [--rounds 3] [--out DIR]
 *
 * Goal (issue 15): <= 2 % throughput cost at 1 % sampling, <= 10 % at 100 %.
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { createServer } from "node:http";
import { join } from "node:path";
import { parseArgs, num, str } from "./lib/args.js";
import { installExitHooks, startNats } from "./lib/procs.js";
import { CpuMeter } from "./lib/procstat.js";
import { captureEnvironment } from "./lib/report.js";
import { LOADTESTS_DIR, mcpqUnavailable, startMcpq } from "./lib/stack.js";
import { runBaseline } from "./scenarios/baseline.js";
import { runSaturation } from "./scenarios/saturation.js";

installExitHooks();
const { flags } = parseArgs();
const C = num(flags, "c", 64);
const durationMs = num(flags, "duration", 8) * 1000;
const rounds = num(flags, "rounds", 3);
/** Offered rate (msg/s, all sessions) of the fixed-rate run that measures CPU per call. */
const rate = num(flags, "rate", 100);
const outRoot = str(flags, "out", join(LOADTESTS_DIR, "results"));
const log = (m: string) => process.stderr.write(`${m}\n`);

const reason = mcpqUnavailable();
if (reason) {
  log(reason);
  process.exit(1);
}

/** Counts spans in OTLP/HTTP JSON exports (a resourceSpans[].scopeSpans[].spans[] walk). */
async function startCountingReceiver(): Promise<{ url: string; spans: () => number; close(): Promise<void> }> {
  let spans = 0;
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      try {
        const body = JSON.parse(Buffer.concat(chunks).toString("utf8")) as {
          resourceSpans?: { scopeSpans?: { spans?: unknown[] }[] }[];
        };
        for (const rs of body.resourceSpans ?? []) for (const ss of rs.scopeSpans ?? []) spans += ss.spans?.length ?? 0;
        res.writeHead(200, { "content-type": "application/json" }).end("{}");
      } catch {
        res.writeHead(400).end();
      }
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const port = (server.address() as { port: number }).port;
  return { url: `http://127.0.0.1:${port}`, spans: () => spans, close: () => new Promise((r) => server.close(() => r())) };
}

const receiver = await startCountingReceiver();
const ACCESS_OFF = { MCPQ_ACCESS_LOG_LEVEL: "off" };
const TRACED = { OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url, OTEL_TRACES_SAMPLER: "parentbased_traceidratio" };
const MODES: { id: string; env: Record<string, string> }[] = [
  { id: "tracing-off", env: { ...ACCESS_OFF } },
  { id: "tracing-100pct", env: { ...ACCESS_OFF, ...TRACED, OTEL_TRACES_SAMPLER_ARG: "1" } },
  { id: "tracing-1pct", env: { ...ACCESS_OFF, ...TRACED, OTEL_TRACES_SAMPLER_ARG: "0.01" } },
  { id: "access-log-default", env: {} },
];
const OTEL_KEYS = ["OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_TRACES_SAMPLER", "OTEL_TRACES_SAMPLER_ARG", "MCPQ_ACCESS_LOG_LEVEL"];

const stamp = new Date().toISOString().replace(/[:.]/g, "-");
const outDir = join(outRoot, `otel-overhead-${stamp}`);
const logDir = join(outDir, "logs");
mkdirSync(logDir, { recursive: true });
const env = captureEnvironment();
log(`otel overhead: C=${C}, ${durationMs / 1000} s per run, ${rounds} rounds; ${env.cores} × ${env.cpu_model}; load ${env.load_avg_at_start.join("/")}`);

/**
 * Saturation throughput and p99, plus CPU per call (edge + worker + nats-server) in a fixed-rate
 * run: at equal throughput in every mode, the CPU cost of tracing is comparable even on a shared,
 * busy machine (saturation CPU per call also moves with batching at different throughputs).
 */
type Run = {
  mode: string;
  round: number;
  throughput: number;
  p99_us: number | null;
  cpu_us_per_call: number | null;
  fixed_rate_p99_us: number | null;
  errors: number;
  spans: number;
};
const runs: Run[] = [];
const nats = await startNats(logDir);
try {
  for (let round = 1; round <= rounds; round++) {
    for (const mode of MODES) {
      for (const k of OTEL_KEYS) delete process.env[k];
      Object.assign(process.env, mode.env);
      const spansBefore = receiver.spans();
      const stack = await startMcpq(nats, logDir);
      let r: Awaited<ReturnType<typeof runSaturation>>[number] | undefined;
      let fixed: Awaited<ReturnType<typeof runBaseline>> | undefined;
      let idlePct = 0;
      try {
        [r] = await runSaturation(stack.target, { transport: "http", concurrencies: [C], durationMs, warmupMs: 1000, log });
        // Idle CPU of the same processes (timers, heartbeats, polling), subtracted from the
        // fixed-rate figure so that CPU per call is the calls' own.
        const pids = [stack.target.proc.pid, ...Object.values(stack.target.siblings ?? {})];
        const meters = pids.map((pid) => new CpuMeter(pid));
        for (const m of meters) m.start();
        await new Promise((res) => setTimeout(res, durationMs / 2));
        idlePct = meters.reduce((a, m) => a + (m.stop() ?? 0), 0);
        fixed = await runBaseline(stack.target, { transport: "http", sessions: 10, ratePerSession: rate / 10, durationMs, log });
      } finally {
        // Spans still queued in the exporters arrive at shutdown (batch processor flush).
        await stack.stop();
      }
      {
        if (!r || !fixed) throw new Error("no result");
        const run: Run = {
          mode: mode.id,
          round,
          throughput: r.throughput_msg_per_s,
          p99_us: r.latency_p99_us,
          cpu_us_per_call: cpuPerCall(fixed.cpu_pct, fixed.extra, fixed.throughput_msg_per_s, idlePct),
          fixed_rate_p99_us: fixed.latency_p99_us,
          errors: [...Object.values(r.errors_by_code), ...Object.values(fixed.errors_by_code)].reduce((a, b) => a + b, 0),
          spans: receiver.spans() - spansBefore,
        };
        runs.push(run);
        log(`  round ${round} ${mode.id}: ${run.throughput.toFixed(0)} msg/s, p99 ${run.p99_us ?? "?"} µs, ${run.cpu_us_per_call ?? "?"} CPU µs/call, errors ${run.errors}, spans ${run.spans}`);
      }
    }
  }
} finally {
  for (const k of OTEL_KEYS) delete process.env[k];
  await nats.stop();
  await receiver.close();
}

function cpuPerCall(edgePct: number | null, extra: Record<string, unknown> | undefined, throughput: number, idlePct: number): number | null {
  const worker = extra?.["worker_cpu_pct"];
  const nats = extra?.["nats_cpu_pct"];
  if (edgePct === null || typeof worker !== "number" || typeof nats !== "number" || throughput <= 0) return null;
  return Math.round((Math.max(0, edgePct + worker + nats - idlePct) / 100 / throughput) * 1e6);
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};
const summary = MODES.map((m) => {
  const mine = runs.filter((r) => r.mode === m.id);
  return {
    mode: m.id,
    throughput_msg_per_s: Math.round(median(mine.map((r) => r.throughput))),
    latency_p99_us: Math.round(median(mine.map((r) => r.p99_us ?? 0))),
    cpu_us_per_call: Math.round(median(mine.map((r) => r.cpu_us_per_call ?? 0))),
    spans_per_run: Math.round(median(mine.map((r) => r.spans))),
    errors: mine.reduce((a, r) => a + r.errors, 0),
  };
});
const base = summary[0]!;
const lines = [
  `| mode | throughput (msg/s) | cost vs off | p99 (µs) | p99 vs off | CPU µs per call at ${rate} msg/s | CPU cost vs off | spans exported per run |`,
  `|---|---:|---:|---:|---:|---:|---:|---:|`,
  ...summary.map((s) => {
    const cost = ((base.throughput_msg_per_s - s.throughput_msg_per_s) / base.throughput_msg_per_s) * 100;
    const p99 = ((s.latency_p99_us - base.latency_p99_us) / Math.max(1, base.latency_p99_us)) * 100;
    const cpu = ((s.cpu_us_per_call - base.cpu_us_per_call) / Math.max(1, base.cpu_us_per_call)) * 100;
    const vs = (x: number) => (s === base ? "—" : `${x >= 0 ? "+" : ""}${x.toFixed(1)} %`);
    return `| ${s.mode} | ${s.throughput_msg_per_s} | ${s === base ? "—" : `${cost.toFixed(1)} %`} | ${s.latency_p99_us} | ${vs(p99)} | ${s.cpu_us_per_call} | ${vs(cpu)} | ${s.spans_per_run} |`;
  }),
];
const md = `# Observability overhead (C=${C}, HTTP, ${durationMs / 1000} s × ${rounds} rounds, medians)\n\n${lines.join("\n")}\n\nMachine: ${env.cores} × ${env.cpu_model}, node ${env.node_version}, ${env.nats_server_version ?? "nats ?"}, load at start ${env.load_avg_at_start.join("/")}.\n`;
writeFileSync(join(outDir, "otel-overhead.json"), JSON.stringify({ environment: env, C, duration_s: durationMs / 1000, rounds, runs, summary }, null, 2));
writeFileSync(join(outDir, "otel-overhead.md"), md);
process.stdout.write(md);
log(`wrote ${outDir}`);
