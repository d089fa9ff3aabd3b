/**
 * The whole benchmark, self-contained: starts its own nats-server (temp store), the mcpq
 * stack (edge + worker via services/cli/dist/main.js), the SDK reference server and the node:http
 * floor (src/http-floor-server.ts: what node:http alone costs per call) on free
 * loopback ports, runs the workload set, kills every child on exit/signal and writes
 * loadtests/results/<timestamp>/{report.json,report.md,chart.svg} (+ copies to results/latest/).
 *
 *   pnpm --filter @mcpq/loadtests bench            # --quick (default, < 5 min)
 *   pnpm --filter @mcpq/loadtests bench:full       # --full
 *
 * flags: --quick | --full
 *        --skip-mcpq --skip-sdk --skip-raw       skip a target
 *        --sdk-all          also run baseline/flood/bombing against the SDK reference
 *        --capacity N       bombing/soak capacity instead of measured saturation C=64
 *        --flood N          flood session target (quick 2000; full 10000; --flood-100k for 100000)
 *        --soak [--soak-minutes M]   include soak (quick: 1 min; full runs soak by default, 5 min)
 *        --duration S       per-C saturation duration (quick 8, full 20)
 *        --out DIR          results root (default loadtests/results)
 *        --budget S         skip steps that would start after S seconds (quick 420, full 3600)
 *        --flood-ramp-timeout S   stop ramping after S seconds (quick 30, full 300)
 */
import { cpSync, mkdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { parseArgs, bool, num, str } from "./lib/args.js";
import type { LocalNats } from "@mcpq/nats-launcher";
import { installExitHooks, startNats } from "./lib/procs.js";
import { captureEnvironment, printResult, type Report, type WorkloadResult } from "./lib/report.js";
import { renderMarkdown, renderSvg } from "./lib/render.js";
import {
  LOADTESTS_DIR,
  mcpqUnavailable,
  startFloorServer,
  startMcpq,
  startReferenceServer,
  type Running,
} from "./lib/stack.js";
import type { Target } from "./lib/target.js";
import { probeWs } from "./client/ws.js";
import { runRawJetStream } from "./raw-jetstream.js";
import { runSaturation } from "./scenarios/saturation.js";
import { runBaseline } from "./scenarios/baseline.js";
import { runFlood } from "./scenarios/flood.js";
import { runBombing } from "./scenarios/bombing.js";
import { runSoak } from "./scenarios/soak.js";

installExitHooks();
const { flags } = parseArgs();
const full = bool(flags, "full");
const mode: Report["mode"] = full ? "full" : "quick";
const Cs = [16, 64, 256];
const satMs = num(flags, "duration", full ? 20 : 8) * 1000;
const warmMs = full ? 2000 : 1000;
const baselineMs = full ? 60_000 : 10_000;
const floodN = num(flags, "flood", bool(flags, "flood-100k") ? 100_000 : full ? 10_000 : 2000);
const floodRampMs = num(flags, "flood-ramp-timeout", full ? 300 : 30) * 1000;
const soakMin = num(flags, "soak-minutes", full ? 5 : 1);
const doSoak = full || bool(flags, "soak");
const t0 = Date.now();
const stamp = new Date().toISOString().replace(/[:.]/g, "-");
const root = str(flags, "out", join(LOADTESTS_DIR, "results"));
const outDir = join(root, stamp);
const logDir = join(outDir, "logs");
mkdirSync(logDir, { recursive: true });

const log = (m: string) => process.stderr.write(`${m}\n`);
const workloads: WorkloadResult[] = [];
const skipped: Report["skipped"] = [];
const elapsed = () => `${((Date.now() - t0) / 1000).toFixed(0)}s`;

const budgetS = num(flags, "budget", full ? 3600 : 420);
async function step<T>(id: string, fn: () => Promise<T>): Promise<T | undefined> {
  if ((Date.now() - t0) / 1000 > budgetS) {
    log(`[${elapsed()}] SKIP ${id}: time budget of ${budgetS}s exhausted (--budget)`);
    skipped.push({ workload_id: id, reason: `time budget of ${budgetS}s exhausted` });
    return undefined;
  }
  log(`[${elapsed()}] ${id}`);
  try {
    const r = await fn();
    const arr = (Array.isArray(r) ? r : [r]) as WorkloadResult[];
    for (const w of arr)
      if (w && typeof w === "object" && "workload_id" in w) {
        workloads.push(w);
        printResult(w);
      }
    return r;
  } catch (e) {
    const reason = (e as Error).message ?? String(e);
    log(`  FAILED ${id}: ${reason}`);
    skipped.push({ workload_id: id, reason: `failed: ${reason}` });
    return undefined;
  }
}

const environment = captureEnvironment();
log(`mcpq loadtests bench (${mode}) → ${outDir}`);
log(
  `  ${environment.machine_label}: ${environment.cores} × ${environment.cpu_model}; node ${environment.node_version}; ${environment.nats_server_version}; ulimit -n ${environment.open_files_limit}; load ${environment.load_avg_at_start.join("/")}`,
);
if ((environment.load_avg_at_start[0] ?? 0) > environment.cores)
  log(
    `  WARNING: 1-min load average ${environment.load_avg_at_start[0]} > ${environment.cores} cores — something else is using the CPU; figures will be noisy`,
  );

// 1. raw JetStream (its own nats-server, nothing else running)
if (!bool(flags, "skip-raw")) {
  await step("raw-jetstream", () =>
    runRawJetStream({ concurrencies: full ? Cs : [64], durationMs: satMs, warmupMs: warmMs, log }),
  );
  // the broker floor: mcpq's stored request/answer path with no MCP logic (C=64 only)
  await step("broker-floor", () =>
    runRawJetStream({
      shape: "stored",
      concurrencies: [64],
      durationMs: satMs,
      warmupMs: warmMs,
      log,
    }),
  );
} else skipped.push({ workload_id: "raw-jetstream-* broker-floor-*", reason: "--skip-raw" });

/** Starts a reference server, or records why its workloads are skipped. */
async function startedOrSkipped(
  id: string,
  start: () => Promise<Running>,
): Promise<Running | undefined> {
  try {
    const r = await start();
    log(`  ${id} at ${r.target.mcpUrl} (pid ${r.target.proc.pid})`);
    return r;
  } catch (e) {
    skipped.push({ workload_id: `${id}-*`, reason: `could not start: ${(e as Error).message}` });
    return undefined;
  }
}

// 2. SDK reference
if (!bool(flags, "skip-sdk")) {
  const ref = await startedOrSkipped("sdk-reference", () => startReferenceServer(logDir));
  if (ref) {
    const t = ref.target;
    const sat = await step("saturation http (sdk-reference)", () =>
      runSaturation(t, {
        transport: "http",
        concurrencies: Cs,
        durationMs: satMs,
        warmupMs: warmMs,
        log,
      }),
    );
    if (bool(flags, "sdk-all")) {
      const cap = num(
        flags,
        "capacity",
        sat?.find((w) => w.in_flight === 64)?.throughput_msg_per_s ?? 0,
      );
      await step("baseline (sdk-reference)", () =>
        runBaseline(t, { transport: "http", durationMs: baselineMs, log }),
      );
      await step("flood http (sdk-reference)", () =>
        runFlood(t, { transport: "http", sessions: floodN, rampTimeoutMs: floodRampMs, log }),
      );
      if (cap > 0)
        await step("bombing (sdk-reference)", () =>
          runBombing(t, { transport: "http", capacity: cap, log }),
        );
    }
    await ref.stop();
  }
} else skipped.push({ workload_id: "sdk-reference-*", reason: "--skip-sdk" });

// 2b. the node:http floor: what node:http alone costs per call (C=64 only)
if (!bool(flags, "skip-sdk")) {
  const floor = await startedOrSkipped("node-http-floor", () => startFloorServer(logDir));
  if (floor) {
    const t = floor.target;
    await step("saturation http (node:http floor)", () =>
      runSaturation(t, {
        transport: "http",
        concurrencies: [64],
        durationMs: satMs,
        warmupMs: warmMs,
        log,
      }),
    );
    await floor.stop();
  }
}

// 3. mcpq
const why = bool(flags, "skip-mcpq") ? "--skip-mcpq" : mcpqUnavailable();
if (why) {
  log(`  SKIP mcpq: ${why}`);
  skipped.push({ workload_id: "mcpq-*", reason: why });
} else {
  let nats: LocalNats | undefined;
  let stack: Running | undefined;
  try {
    nats = await startNats(logDir);
    stack = await startMcpq(nats, logDir);
    log(
      `  mcpq edge at ${stack.target.mcpUrl} (edge pid ${stack.target.proc.pid}, worker pid ${stack.target.siblings?.worker}), NATS ${nats.url}`,
    );
  } catch (e) {
    const reason = `mcpq stack failed to start: ${(e as Error).message} (logs: ${logDir})`;
    log(`  SKIP mcpq: ${reason}`);
    skipped.push({ workload_id: "mcpq-*", reason });
  }
  if (stack) {
    const t: Target = stack.target;
    const wsWhy = t.wsUrl ? await probeWs(t.wsUrl) : "no ws url";
    if (wsWhy) {
      log(`  mcpq WebSocket transport skipped: ${wsWhy}`);
      skipped.push({ workload_id: "saturation-ws-*, flood-ws-*", reason: wsWhy });
    }
    const sat = await step("saturation http (mcpq)", () =>
      runSaturation(t, {
        transport: "http",
        concurrencies: Cs,
        durationMs: satMs,
        warmupMs: warmMs,
        log,
      }),
    );
    const satWs = wsWhy
      ? undefined
      : await step("saturation ws (mcpq)", () =>
          runSaturation(t, {
            transport: "ws",
            concurrencies: Cs,
            durationMs: satMs,
            warmupMs: warmMs,
            log,
          }),
        );
    await step("baseline (mcpq)", () =>
      runBaseline(t, { transport: "http", durationMs: baselineMs, log }),
    );
    await step("flood http (mcpq)", () =>
      runFlood(t, { transport: "http", sessions: floodN, rampTimeoutMs: floodRampMs, log }),
    );
    if (!wsWhy)
      await step("flood ws (mcpq)", () =>
        runFlood(t, { transport: "ws", sessions: floodN, rampTimeoutMs: floodRampMs, log }),
      );
    const measured = sat?.find((w) => w.in_flight === 64)?.throughput_msg_per_s ?? 0;
    const cap = num(flags, "capacity", measured);
    if (cap > 0) {
      await step("bombing http (mcpq)", () =>
        runBombing(t, { transport: "http", capacity: cap, log }),
      );
      // The overload issue's storm: plain clients (no deadline hints), 4,000 connections, 30 s patience.
      await step("bombing http plain (mcpq)", () =>
        runBombing(t, { transport: "http", capacity: cap, plain: true, log }),
      );
      // The WebSocket storm is offered 10x the WebSocket capacity (its own saturation C=64).
      const capWs = num(
        flags,
        "capacity",
        satWs?.find((w) => w.in_flight === 64)?.throughput_msg_per_s ?? 0,
      );
      if (!wsWhy && capWs > 0)
        await step("bombing ws (mcpq)", () =>
          runBombing(t, { transport: "ws", capacity: capWs, log }),
        );
      if (doSoak)
        await step("soak (mcpq)", () =>
          runSoak(t, { transport: "http", capacity: cap, minutes: soakMin, log }),
        );
    } else
      skipped.push({
        workload_id: "bombing-*, soak-*",
        reason: "no capacity measured (saturation C=64 failed) and no --capacity",
      });
  }
  await stack?.stop();
  await nats?.stop();
}

const report: Report = { schema: "mcpq-loadtests/v1", mode, environment, workloads, skipped };
writeFileSync(join(outDir, "report.json"), JSON.stringify(report, null, 2) + "\n");
writeFileSync(join(outDir, "report.md"), renderMarkdown(report));
writeFileSync(join(outDir, "chart.svg"), renderSvg(report));
const latest = join(root, "latest");
rmSync(latest, { recursive: true, force: true });
mkdirSync(latest, { recursive: true });
for (const f of ["report.json", "report.md", "chart.svg"]) cpSync(join(outDir, f), join(latest, f));
log(
  `[${elapsed()}] done: ${workloads.length} workloads, ${skipped.length} skipped → ${outDir} (copied to ${latest})`,
);
for (const s of skipped) log(`  skipped ${s.workload_id}: ${s.reason}`);
process.exit(0);
