/**
 * Observability overhead: the mcpq stack (edge + worker processes, own nats-server, HTTP) with
 * tracing off, against the same stack with tracing on at 100 % and at 1 % sampling (exporting over
 * OTLP/HTTP to an in-process receiver that counts spans, so the export cost is real) and with the
 * access log at info (every request; off in the other modes), and an A/A control (off vs off).
 *
 * Paired and concurrent: each measurement runs the "off" stack and the mode's stack AT THE SAME
 * TIME, so whatever else loads the machine hits both alike (sequential runs on a shared 2-core VM
 * swung by 5x between rounds). Per pair:
 *  - saturation: both closed loops at C at once; the two stacks share the CPU, so the throughput
 *    ratio is the relative cost per call;
 *  - fixed rate: both at `--rate` msg/s at once; CPU µs per call of edge + worker + nats-server,
 *    and p99, at equal throughput.
 * Each mode's figures are the medians over `--rounds` pairs.
 *
 *   pnpm --filter @mcpq/loadtests otel-overhead [--c 64] [--duration 8] [--rounds 3] [--out DIR]
 *        [--modes tracing-1pct,record-off,...]   (a subset; `record-off`: the worker's traffic
 *        recording off, MCPQ_RECORD=off — what recording costs per call, issue 17)
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
async function startCountingReceiver(): Promise<{
  url: string;
  spans: () => number;
  close(): Promise<void>;
}> {
  let spans = 0;
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      try {
        const body = JSON.parse(Buffer.concat(chunks).toString("utf8")) as {
          resourceSpans?: { scopeSpans?: { spans?: unknown[] }[] }[];
        };
        for (const rs of body.resourceSpans ?? [])
          for (const ss of rs.scopeSpans ?? []) spans += ss.spans?.length ?? 0;
        res.writeHead(200, { "content-type": "application/json" }).end("{}");
      } catch {
        res.writeHead(400).end();
      }
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const port = (server.address() as { port: number }).port;
  return {
    url: `http://127.0.0.1:${port}`,
    spans: () => spans,
    close: () => new Promise((r) => server.close(() => r())),
  };
}

const receiver = await startCountingReceiver();
const ACCESS_OFF = { MCPQ_ACCESS_LOG_LEVEL: "off" };
// JSON so the receiver can count spans (protobuf, the default, measured the same per span).
const TRACED = {
  OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url,
  OTEL_EXPORTER_OTLP_PROTOCOL: "http/json",
  OTEL_TRACES_SAMPLER: "parentbased_traceidratio",
};
const MODES: { id: string; env: Record<string, string> }[] = [
  { id: "tracing-off", env: { ...ACCESS_OFF } },
  { id: "tracing-100pct", env: { ...ACCESS_OFF, ...TRACED, OTEL_TRACES_SAMPLER_ARG: "1" } },
  { id: "tracing-1pct", env: { ...ACCESS_OFF, ...TRACED, OTEL_TRACES_SAMPLER_ARG: "0.01" } },
  { id: "access-log-info", env: { MCPQ_ACCESS_LOG_LEVEL: "info" } },
  // A/A control: the same settings as "off" on both sides, showing the pairing's own bias and noise.
  { id: "control-off-vs-off", env: { ...ACCESS_OFF } },
  // Not observability, the same pairing: the worker's per-call traffic record (MCPQ_REC) off.
  { id: "record-off", env: { ...ACCESS_OFF, MCPQ_RECORD: "off" } },
];
const wanted = str(flags, "modes", "").split(",").filter(Boolean);
const modesRun = MODES.slice(1).filter((m) => wanted.length === 0 || wanted.includes(m.id));
const OTEL_KEYS = [
  "OTEL_EXPORTER_OTLP_ENDPOINT",
  "OTEL_EXPORTER_OTLP_PROTOCOL",
  "OTEL_TRACES_SAMPLER",
  "OTEL_TRACES_SAMPLER_ARG",
  "MCPQ_ACCESS_LOG_LEVEL",
  "MCPQ_RECORD",
];

const stamp = new Date().toISOString().replace(/[:.]/g, "-");
const outDir = join(outRoot, `otel-overhead-${stamp}`);
const logDir = join(outDir, "logs");
mkdirSync(logDir, { recursive: true });
const env = captureEnvironment();
log(
  `otel overhead (paired): C=${C}, ${durationMs / 1000} s per run, ${rate} msg/s fixed rate, ${rounds} rounds; ${env.cores} × ${env.cpu_model}; load ${env.load_avg_at_start.join("/")}`,
);

type Stack = Awaited<ReturnType<typeof startMcpq>>;
type Nats = Awaited<ReturnType<typeof startNats>>;

/** Starts a stack with `modeEnv` (startMcpq copies process.env when it spawns). */
async function stackWith(nats: Nats, modeEnv: Record<string, string>): Promise<Stack> {
  for (const k of OTEL_KEYS) delete process.env[k];
  Object.assign(process.env, modeEnv);
  try {
    return await startMcpq(nats, logDir);
  } finally {
    for (const k of OTEL_KEYS) delete process.env[k];
  }
}

function pidsOf(st: Stack): number[] {
  return [st.target.proc.pid, ...Object.values(st.target.siblings ?? {})].filter(
    (p): p is number => typeof p === "number",
  );
}

/** CPU µs per call of a stack's processes over a run, net of their idle CPU (% of one core). */
function cpuPerCall(pct: number, idlePct: number, throughput: number): number | null {
  return throughput > 0 ? Math.round((Math.max(0, pct - idlePct) / 100 / throughput) * 1e6) : null;
}

async function idleCpu(stacks: Stack[], ms: number): Promise<number[]> {
  const meters = stacks.map((st) => pidsOf(st).map((pid) => new CpuMeter(pid)));
  for (const ms_ of meters) for (const m of ms_) m.start();
  await new Promise((r) => setTimeout(r, ms));
  return meters.map((ms_) => ms_.reduce((a, m) => a + (m.stop() ?? 0), 0));
}

function stackCpu(r: { cpu_pct: number | null; extra?: Record<string, unknown> }): number {
  const w = r.extra?.["worker_cpu_pct"];
  const n = r.extra?.["nats_cpu_pct"];
  return (r.cpu_pct ?? 0) + (typeof w === "number" ? w : 0) + (typeof n === "number" ? n : 0);
}

type Pair = {
  mode: string;
  round: number;
  /** Concurrent saturation throughput: off, mode. */
  sat_off: number;
  sat_mode: number;
  cpu_off: number | null;
  cpu_mode: number | null;
  p99_off: number | null;
  p99_mode: number | null;
  errors: number;
  spans: number;
};
const pairs: Pair[] = [];
const natsA = await startNats(logDir);
const natsB = await startNats(logDir);
try {
  for (let round = 1; round <= rounds; round++) {
    for (const mode of modesRun) {
      const spansBefore = receiver.spans();
      const off = await stackWith(natsA, MODES[0]!.env);
      const on = await stackWith(natsB, mode.env).catch(async (e: unknown) => {
        await off.stop();
        throw e;
      });
      try {
        const sat = await Promise.all(
          [off, on].map((st) =>
            runSaturation(st.target, {
              transport: "http",
              concurrencies: [C],
              durationMs,
              warmupMs: 1000,
              log,
            }).then((r) => r[0]!),
          ),
        );
        const idle = await idleCpu([off, on], durationMs / 2);
        const fixed = await Promise.all(
          [off, on].map((st) =>
            runBaseline(st.target, {
              transport: "http",
              sessions: 10,
              ratePerSession: rate / 10,
              durationMs,
              log,
            }),
          ),
        );
        const pair: Pair = {
          mode: mode.id,
          round,
          sat_off: sat[0]!.throughput_msg_per_s,
          sat_mode: sat[1]!.throughput_msg_per_s,
          cpu_off: cpuPerCall(stackCpu(fixed[0]!), idle[0]!, fixed[0]!.throughput_msg_per_s),
          cpu_mode: cpuPerCall(stackCpu(fixed[1]!), idle[1]!, fixed[1]!.throughput_msg_per_s),
          p99_off: fixed[0]!.latency_p99_us,
          p99_mode: fixed[1]!.latency_p99_us,
          errors: [...sat, ...fixed].reduce(
            (a, r) => a + Object.values(r.errors_by_code).reduce((x, y) => x + y, 0),
            0,
          ),
          spans: 0,
        };
        await Promise.all([off.stop(), on.stop()]);
        // Spans still queued in the exporters arrive at shutdown (batch processor flush).
        pair.spans = receiver.spans() - spansBefore;
        pairs.push(pair);
        log(
          `  round ${round} ${mode.id}: saturation ${pair.sat_mode.toFixed(0)} vs off ${pair.sat_off.toFixed(0)} msg/s; ` +
            `CPU/call ${pair.cpu_mode ?? "?"} vs ${pair.cpu_off ?? "?"} µs; p99 ${pair.p99_mode ?? "?"} vs ${pair.p99_off ?? "?"} µs; errors ${pair.errors}, spans ${pair.spans}`,
        );
      } finally {
        await Promise.allSettled([off.stop(), on.stop()]);
      }
    }
  }
} finally {
  await Promise.allSettled([natsA.stop(), natsB.stop()]);
  await receiver.close();
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  if (s.length === 0) return Number.NaN;
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};
const pct = (x: number) => `${x >= 0 ? "+" : ""}${x.toFixed(1)} %`;
const summary = modesRun.map((m) => {
  const mine = pairs.filter((p) => p.mode === m.id);
  const tputCost = median(mine.map((p) => (1 - p.sat_mode / p.sat_off) * 100));
  const cpuCost = median(
    mine.filter((p) => p.cpu_off && p.cpu_mode).map((p) => (p.cpu_mode! / p.cpu_off! - 1) * 100),
  );
  const p99 = median(
    mine.filter((p) => p.p99_off && p.p99_mode).map((p) => (p.p99_mode! / p.p99_off! - 1) * 100),
  );
  return {
    mode: m.id,
    throughput_cost_pct: Math.round(tputCost * 10) / 10,
    cpu_per_call_cost_pct: Math.round(cpuCost * 10) / 10,
    p99_change_pct: Math.round(p99 * 10) / 10,
    saturation_msg_per_s: {
      off: Math.round(median(mine.map((p) => p.sat_off))),
      mode: Math.round(median(mine.map((p) => p.sat_mode))),
    },
    cpu_us_per_call: {
      off: Math.round(median(mine.map((p) => p.cpu_off ?? 0))),
      mode: Math.round(median(mine.map((p) => p.cpu_mode ?? 0))),
    },
    per_round_throughput_cost_pct: mine.map(
      (p) => Math.round((1 - p.sat_mode / p.sat_off) * 1000) / 10,
    ),
    spans_per_pair: Math.round(median(mine.map((p) => p.spans))),
    errors: mine.reduce((a, p) => a + p.errors, 0),
  };
});
const lines = [
  `| mode (vs tracing off, run at the same time) | throughput cost (saturation C=${C}) | per round | CPU per call at ${rate} msg/s | p99 at ${rate} msg/s | spans exported per pair |`,
  `|---|---:|---|---:|---:|---:|`,
  ...summary.map(
    (s) =>
      `| ${s.mode} | ${pct(s.throughput_cost_pct)} (${s.saturation_msg_per_s.mode} vs ${s.saturation_msg_per_s.off} msg/s) | ${s.per_round_throughput_cost_pct.join(" / ")} | ${pct(s.cpu_per_call_cost_pct)} (${s.cpu_us_per_call.mode} vs ${s.cpu_us_per_call.off} µs) | ${pct(s.p99_change_pct)} | ${s.spans_per_pair} |`,
  ),
];
const md = `# Observability overhead (paired, concurrent; HTTP; ${durationMs / 1000} s runs × ${rounds} rounds; medians)\n\n${lines.join("\n")}\n\nMachine: ${env.cores} × ${env.cpu_model}, node ${env.node_version}, ${env.nats_server_version ?? "nats ?"}, load at start ${env.load_avg_at_start.join("/")}.\n`;
writeFileSync(
  join(outDir, "otel-overhead.json"),
  JSON.stringify(
    { environment: env, C, rate, duration_s: durationMs / 1000, rounds, pairs, summary },
    null,
    2,
  ),
);
writeFileSync(join(outDir, "otel-overhead.md"), md);
process.stdout.write(md);
log(`wrote ${outDir}`);
