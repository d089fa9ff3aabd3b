/**
 * conn-flood (issue 17, point 4): N concurrent idle connections on one box, held for a while,
 * with a 16-in-flight probe answering throughout.
 *
 * The per-process file limit (`ulimit -n`, 20,000 hard on the dev VM) bounds both sides, so the
 * connections are spread: over E edge processes (`mcpq edge --processes E`, node:cluster hands
 * each accepted connection to the next process) and over G generator processes
 * (src/conn-flood/flood-proc.ts), each binding its own source addresses 127.0.0.x (≤ 20,000
 * sockets per address: the ephemeral port range is ~28K). The mix: `--ws-share` of them
 * WebSocket sessions (one initialized socket each), the rest Streamable HTTP sessions holding a
 * `GET /mcp` SSE stream (initialize, initialized and the GET on one connection).
 *
 * Settings raised for the run (the defaults protect a production edge from exactly this):
 * MCPQ_MAX_CONNECTIONS (per edge process) to what the file limit allows, MCPQ_MAX_CONNECTIONS_PER_CLIENT
 * off (all generators are one host), MCPQ_MAX_SESSIONS_PER_PRINCIPAL off (anonymous sessions
 * are counted per client address, and counting them costs a listing per initialize), and
 * MCPQ_HEAP_GROWING_PERCENT (`--heap-growing-percent`, default 50: the connection-heavy profile).
 *
 * Reports: held at the end of the hold / target, dropped (held once, closed during the hold),
 * open failures by code, ramp time, probe p50/p99 during the ramp and while held, edge RSS
 * (all edge processes) before the ramp and while held ⇒ KiB per connection, nats-server RSS,
 * connections per edge process (open fds).
 *
 *   pnpm --filter @mcpq/loadtests conn-flood [--connections 100000] [--ws-share 0.5] [--hold 60]
 *        [--edges auto] [--generators auto] [--ramp-concurrency 48] [--per-address 20000]
 *        [--ramp-timeout 420] [--probe 16] [--heap-growing-percent 50] [--out DIR]
 *
 * Loopback only, bounded (ramp timeout + hold + teardown), kills everything it started.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { mkdirSync, readdirSync, writeFileSync } from "node:fs";
import { loadavg } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { parseArgs, num, str } from "./lib/args.js";
import { LatencyHistogram, median } from "./lib/histogram.js";
import { installExitHooks, startNats } from "./lib/procs.js";
import { processTree, readRssBytes, readTreeRssBytes } from "./lib/procstat.js";
import { captureEnvironment, fmtUs, openFilesLimit } from "./lib/report.js";
import { LOADTESTS_DIR, mcpqUnavailable, startMcpq } from "./lib/stack.js";
import { openSessions } from "./lib/target.js";
import { closedLoop } from "./lib/drivers.js";
import { request } from "undici";
import type { FloodProcConfig, FloodProcStatus } from "./conn-flood/flood-proc.js";

installExitHooks();
const { flags } = parseArgs();
const N = num(flags, "connections", 100_000);
const wsShare = num(flags, "ws-share", 0.5);
const holdMs = num(flags, "hold", 60) * 1000;
const rampTimeoutMs = num(flags, "ramp-timeout", 420) * 1000;
const perAddress = num(flags, "per-address", 20_000);
// each connection binds its own source port out of 40,000 per address (flood-proc.ts)
if (perAddress > 40_000) throw new Error("--per-address: at most 40000");
const rampConc = num(flags, "ramp-concurrency", 48);
// The connection-heavy edge profile: V8 collects before its heap doubles (README, MCPQ_HEAP_GROWING_PERCENT).
const heapGrowingPercent = num(flags, "heap-growing-percent", 50);
const probeC = num(flags, "probe", 16);
const log = (m: string) =>
  process.stderr.write(`[${new Date().toISOString().slice(11, 19)}] ${m}\n`);
const why = mcpqUnavailable();
if (why) {
  log(why);
  process.exit(2);
}
const fdLimit = openFilesLimit() ?? 1024;
// room per process for what is not a held connection (listeners, NATS, logs, the probe)
const perProcess = Math.max(100, fdLimit - 1500);
// node:cluster hands a connection to the next *free* process, so a busier process gets fewer:
// 20,000 over 2 processes split 6,495 / 13,563. Room for that imbalance under each file limit.
const autoEdges = Math.max(1, Math.ceil((N * 1.4) / perProcess));
const E = flags.edges && flags.edges !== "auto" ? num(flags, "edges", autoEdges) : autoEdges;
const autoGens = Math.max(1, Math.ceil(N / perProcess));
const G =
  flags.generators && flags.generators !== "auto" ? num(flags, "generators", autoGens) : autoGens;
const stamp = new Date().toISOString().replace(/[:.]/g, "-");
const outDir = join(str(flags, "out", join(LOADTESTS_DIR, "results")), `conn-flood-${stamp}`);
const logDir = join(outDir, "logs");
mkdirSync(logDir, { recursive: true });
log(
  `conn-flood: ${N} connections (${Math.round(wsShare * 100)} % WebSocket), ${E} edge processes, ${G} generators, ulimit -n ${fdLimit}, hold ${holdMs / 1000} s, load ${loadavg()[0]!.toFixed(1)}`,
);

const nats = await startNats(logDir);
const stack = await startMcpq(nats, logDir, {
  edgeProcesses: E,
  label: "flood",
  env: {
    MCPQ_MAX_CONNECTIONS: String(perProcess),
    MCPQ_MAX_CONNECTIONS_PER_CLIENT: "0",
    MCPQ_MAX_SESSIONS_PER_PRINCIPAL: "0",
    MCPQ_HEAP_GROWING_PERCENT: String(heapGrowingPercent),
  },
});
const edgePid = stack.target.proc.pid!;
const edgeProcs = () => processTree(edgePid);
const edgeRss = () => readTreeRssBytes(edgePid) ?? 0;
const fdsOf = (pid: number) => {
  try {
    return readdirSync(`/proc/${pid}/fd`).length;
  } catch {
    return null;
  }
};
/** Memory gauges summed over every edge process (the primary's /metrics has one line per process, labelled by edge id). */
interface EdgeMemory {
  /** V8 heap in use. */
  heapUsed: number;
  /** V8 heap committed (in use + slack the heap keeps). */
  heapTotal: number;
  /** Memory of Buffers and other objects held outside the V8 heap. */
  external: number;
}
async function edgeMemory(): Promise<EdgeMemory | null> {
  try {
    const r = await request(stack.target.proc.metricsUrl!, {
      headersTimeout: 15_000,
      bodyTimeout: 15_000,
    });
    const text = await r.body.text();
    // One line per edge process (labelled by its edge id): the sum is the edges' memory.
    const gauge = (name: string) => {
      const lines = [
        ...text.matchAll(new RegExp(`^${name}(?:\\{[^}]*\\})?\\s+([0-9.eE+]+)`, "gm")),
      ];
      return lines.length ? lines.reduce((sum, m) => sum + Number(m[1]), 0) : NaN;
    };
    const mem = {
      heapUsed: gauge("nodejs_heap_size_used_bytes"),
      heapTotal: gauge("nodejs_heap_size_total_bytes"),
      external: gauge("nodejs_external_memory_bytes"),
    };
    return Object.values(mem).every(Number.isFinite) ? mem : null;
  } catch {
    return null;
  }
}
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
async function rssMedian(n = 5): Promise<number> {
  const xs: number[] = [];
  for (let i = 0; i < n; i++) {
    xs.push(edgeRss());
    await sleep(300);
  }
  return median(xs) ?? 0;
}

// the probe: its own sessions and pool, 16 in flight from start to end
const probeSet = await openSessions(stack.target, "http", probeC, { connections: probeC });
let phase: "pre" | "ramp" | "hold" | "done" = "pre";
const hist = {
  pre: new LatencyHistogram(),
  ramp: new LatencyHistogram(),
  hold: new LatencyHistogram(),
};
const probeBad = { pre: 0, ramp: 0, hold: 0 };
const probeOk = { pre: 0, ramp: 0, hold: 0 };
const probeCodes = { pre: {}, ramp: {}, hold: {} } as Record<
  "pre" | "ramp" | "hold",
  Record<string, number>
>;
const probe = closedLoop({
  sessions: probeSet.sessions,
  inFlight: probeC,
  durationMs: 3600_000,
  timeoutMs: 10_000,
  tag: "probe",
  onResult: (_end, lat, o) => {
    if (phase === "done") return;
    if (o.kind === "ok") {
      hist[phase].record(lat);
      probeOk[phase]++;
    } else {
      probeBad[phase]++;
      const c = `${o.kind}:${o.code ?? ""}`;
      probeCodes[phase][c] = (probeCodes[phase][c] ?? 0) + 1;
    }
  },
  stop: () => phase === "done",
});
await sleep(3000);
const rssBefore = await rssMedian();
const memBefore = await edgeMemory();
const natsRssBefore = nats.pid ? readRssBytes(nats.pid) : null;
log(
  `edge RSS before ramp ${(rssBefore / 2 ** 20).toFixed(0)} MiB over ${edgeProcs().length} processes; probe p50 ${fmtUs(hist.pre.p(50))}`,
);

// generators
const PROC = fileURLToPath(new URL("./conn-flood/flood-proc.ts", import.meta.url));
interface Gen {
  child: ChildProcess;
  ramped: Promise<FloodProcStatus>;
  last: FloodProcStatus | undefined;
  request(cmd: "STATUS" | "CLOSE"): Promise<FloodProcStatus>;
}
const wsTotal = Math.round(N * wsShare);
let addr = 2;
const gens: Gen[] = [];
for (let g = 0; g < G; g++) {
  const share = Math.floor(N / G) + (g < N % G ? 1 : 0);
  const ws = Math.floor(wsTotal / G) + (g < wsTotal % G ? 1 : 0);
  const nAddr = Math.ceil(share / perAddress);
  const addresses = Array.from({ length: nAddr }, () => `127.0.0.${addr++}`);
  if (addr > 255) throw new Error("out of 127.0.0.x source addresses: raise --per-address");
  const cfg: FloodProcConfig = {
    mcpUrl: stack.target.mcpUrl,
    wsUrl: stack.target.wsUrl!,
    http: share - ws,
    ws,
    addresses,
    perAddress,
    rampConcurrency: rampConc,
    openTimeoutMs: 30_000,
    rampDeadlineMs: rampTimeoutMs,
  };
  const child = spawn(process.execPath, [...process.execArgv, PROC, JSON.stringify(cfg)], {
    stdio: ["pipe", "pipe", "inherit"],
  });
  process.once("exit", () => child.kill("SIGKILL"));
  const waiters = new Map<string, ((s: FloodProcStatus) => void)[]>();
  const gen: Gen = {
    child,
    last: undefined,
    ramped: new Promise((res) => waiters.set("RAMPED", [res])),
    request(cmd) {
      const kind = cmd === "STATUS" ? "STATUS" : "RESULT";
      return new Promise((res) => {
        waiters.set(kind, [...(waiters.get(kind) ?? []), res]);
        child.stdin!.write(`${cmd}\n`);
      });
    },
  };
  createInterface({ input: child.stdout! }).on("line", (line) => {
    const sp = line.indexOf(" ");
    const kind = line.slice(0, sp);
    const s = JSON.parse(line.slice(sp + 1)) as FloodProcStatus;
    gen.last = s;
    const w = waiters.get(kind);
    if (w?.length) {
      waiters.set(kind, []);
      for (const f of w) f(s);
    }
  });
  gens.push(gen);
}
const sum = (xs: (FloodProcStatus | undefined)[]) => {
  const t = {
    held_http: 0,
    held_ws: 0,
    dropped_http: 0,
    dropped_ws: 0,
    failed: {} as Record<string, number>,
    sse_bytes: 0,
  };
  for (const s of xs) {
    if (!s) continue;
    t.held_http += s.held_http;
    t.held_ws += s.held_ws;
    t.dropped_http += s.dropped_http;
    t.dropped_ws += s.dropped_ws;
    t.sse_bytes += s.sse_bytes;
    for (const [k, v] of Object.entries(s.failed)) t.failed[k] = (t.failed[k] ?? 0) + v;
  }
  return t;
};
phase = "ramp";
const tRamp = performance.now();
const ticker = setInterval(() => {
  const t = sum(gens.map((g) => g.last));
  log(
    `ramp: held ${t.held_http + t.held_ws} (http ${t.held_http}, ws ${t.held_ws}) failed ${JSON.stringify(t.failed)}; edge RSS ${(edgeRss() / 2 ** 20).toFixed(0)} MiB; probe ramp p99 ${fmtUs(hist.ramp.p(99))}; load ${loadavg()[0]!.toFixed(1)}`,
  );
}, 5000);
const rampedAll = await Promise.all(gens.map((g) => g.ramped));
clearInterval(ticker);
const rampS = Math.round((performance.now() - tRamp) / 100) / 10;
const atRamp = sum(rampedAll);
const heldAtRamp = atRamp.held_http + atRamp.held_ws;
log(`ramped in ${rampS} s: held ${heldAtRamp} of ${N}; failed ${JSON.stringify(atRamp.failed)}`);

// hold
phase = "hold";
const tHold = performance.now();
const rssSamples: number[] = [];
let minHeld = heldAtRamp;
while (performance.now() - tHold < holdMs) {
  await sleep(Math.min(5000, Math.max(0, holdMs - (performance.now() - tHold))));
  const t = sum(await Promise.all(gens.map((g) => g.request("STATUS"))));
  const h = t.held_http + t.held_ws;
  minHeld = Math.min(minHeld, h);
  rssSamples.push(edgeRss());
  log(
    `hold ${Math.round((performance.now() - tHold) / 1000)} s: held ${h}, dropped ${t.dropped_http + t.dropped_ws}; probe ok ${probeOk.hold} bad ${probeBad.hold} p99 ${fmtUs(hist.hold.p(99))}; edge RSS ${(edgeRss() / 2 ** 20).toFixed(0)} MiB`,
  );
}
const rssHeld = await rssMedian();
const memHeld = await edgeMemory();
const natsRssHeld = nats.pid ? readRssBytes(nats.pid) : null;
const perEdge = edgeProcs().map((p) => ({
  pid: p,
  fds: fdsOf(p),
  rss_mib: Math.round((readRssBytes(p) ?? 0) / 2 ** 20),
}));
const end = sum(await Promise.all(gens.map((g) => g.request("STATUS"))));
const heldEnd = end.held_http + end.held_ws;
phase = "done";
await probe;
const results = sum(await Promise.all(gens.map((g) => g.request("CLOSE"))));
for (const g of gens) g.child.kill("SIGKILL");
await probeSet.close(false);
await stack.stop();
await nats.stop();

/** `bytes` spread over the connections held at the end, in KiB (2 decimals); null when none. */
const perConnectionKib = (bytes: number) =>
  heldEnd > 0 ? Math.round((bytes / 1024 / heldEnd) * 100) / 100 : null;
const kib = perConnectionKib(rssHeld - rssBefore);
/**
 * KiB per held connection of: V8 heap in use, heap slack (committed − in use), external memory,
 * and the rest of the RSS growth; null when the gauges could not be read.
 */
function memoryPerConnection() {
  if (!memBefore || !memHeld || heldEnd === 0) return null;
  const committed = memHeld.heapTotal - memBefore.heapTotal;
  const used = memHeld.heapUsed - memBefore.heapUsed;
  const external = memHeld.external - memBefore.external;
  return {
    heap_used: perConnectionKib(used),
    heap_slack: perConnectionKib(committed - used),
    external: perConnectionKib(external),
    rest: perConnectionKib(rssHeld - rssBefore - committed - external),
  };
}
const report = {
  environment: captureEnvironment(),
  target_connections: N,
  ws_share: wsShare,
  edge_processes: E,
  edge_heap_growing_percent: heapGrowingPercent,
  generator_processes: G,
  fd_limit: fdLimit,
  max_connections_per_edge_process: perProcess,
  ramp_s: rampS,
  held_at_ramp: heldAtRamp,
  held_at_end: heldEnd,
  held_http: end.held_http,
  held_ws: end.held_ws,
  min_held_during_hold: minHeld,
  dropped_during_hold:
    end.dropped_http + end.dropped_ws - (atRamp.dropped_http + atRamp.dropped_ws),
  dropped_total: results.dropped_http + results.dropped_ws,
  open_failures: atRamp.failed,
  hold_s: holdMs / 1000,
  probe: Object.fromEntries(
    (["pre", "ramp", "hold"] as const).map((p) => [
      p,
      {
        ok: probeOk[p],
        failed: probeBad[p],
        p50_us: hist[p].p(50),
        p99_us: hist[p].p(99),
        max_us: hist[p].summary().max,
      },
    ]),
  ),
  edge_rss_before_mib: Math.round(rssBefore / 2 ** 20),
  edge_rss_held_mib: Math.round(rssHeld / 2 ** 20),
  kib_per_connection: kib,
  edge_heap_used_before_mib: memBefore ? Math.round(memBefore.heapUsed / 2 ** 20) : null,
  edge_heap_used_held_mib: memHeld ? Math.round(memHeld.heapUsed / 2 ** 20) : null,
  memory_kib_per_connection: memoryPerConnection(),
  nats_rss_before_mib: natsRssBefore === null ? null : Math.round(natsRssBefore / 2 ** 20),
  nats_rss_held_mib: natsRssHeld === null ? null : Math.round(natsRssHeld / 2 ** 20),
  edge_processes_at_end: perEdge,
  sse_bytes_received: end.sse_bytes,
};
const split = report.memory_kib_per_connection;
const md = [
  `# conn-flood ${new Date().toISOString()}`,
  "",
  `- ${N} connections wanted (${Math.round(wsShare * 100)} % WebSocket sessions, the rest Streamable HTTP GET streams), ${E} edge processes (MCPQ_HEAP_GROWING_PERCENT=${heapGrowingPercent}), ${G} generator processes, ulimit -n ${fdLimit}; load ${report.environment.load_avg_at_start.join(" / ")}`,
  `- ramp ${rampS} s: held ${heldAtRamp}; open failures ${JSON.stringify(atRamp.failed)}`,
  `- held for ${holdMs / 1000} s: **${heldEnd} held at the end** (http ${end.held_http}, ws ${end.held_ws}), lowest ${minHeld}, **dropped ${report.dropped_during_hold}**`,
  `- probe (${probeC} in flight, echo over Streamable HTTP): before p50 ${fmtUs(hist.pre.p(50))} p99 ${fmtUs(hist.pre.p(99))}; during the ramp p99 ${fmtUs(hist.ramp.p(99))} (${probeBad.ramp} failed: ${JSON.stringify(probeCodes.ramp)}); **while held p50 ${fmtUs(hist.hold.p(50))} p99 ${fmtUs(hist.hold.p(99))}** (${probeOk.hold} ok, ${probeBad.hold} failed)`,
  `- edge RSS (all ${E} processes + primary) ${report.edge_rss_before_mib} → ${report.edge_rss_held_mib} MiB ⇒ **${kib} KiB per connection**; nats-server RSS ${report.nats_rss_before_mib} → ${report.nats_rss_held_mib} MiB`,
  `- of which V8 heap in use (all edge processes) ${report.edge_heap_used_before_mib} → ${report.edge_heap_used_held_mib} MiB; per connection (KiB): ${
    split
      ? `heap in use ${split.heap_used}, heap slack ${split.heap_slack}, external (Buffers) ${split.external}, the rest of RSS (sockets' native state, allocator) ${split.rest}`
      : "not available"
  }`,
  `- per edge process at the end: ${perEdge.map((p) => `${p.fds} fds / ${p.rss_mib} MiB`).join(", ")}`,
  "",
].join("\n");
writeFileSync(join(outDir, "conn-flood.json"), JSON.stringify(report, null, 2) + "\n");
writeFileSync(join(outDir, "conn-flood.md"), md);
process.stdout.write(`${md}\n→ ${outDir}\n`);
process.exit(0);
