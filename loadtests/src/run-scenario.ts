/**
 * Run one scenario against an already-running target, or against a reference server it
 * spawns itself.
 *
 *   tsx src/run-scenario.ts <saturation|baseline|flood|bombing|soak> [target] [scenario flags] [--out file.json]
 *
 * target (one of):
 *   --spawn-ref [--ref-json]        start the SDK reference server on a free port (default when no --url)
 *   --url http://127.0.0.1:P/mcp    an already-running server; add --pid N and/or --metrics URL for RSS/CPU,
 *                                   --ws-url ws://127.0.0.1:P/ws, --target mcpq|sdk-reference
 * common: --transport http|ws   --tool echo
 * saturation: --c 16,64,256 --duration 8 --warmup 1
 * baseline:   --sessions 25 --rate 100 --duration 10
 * flood:      --sessions 2000 --probe 5 --ramp-concurrency 64 --per-address 900 --ramp-timeout 30
 * bombing:    --capacity N (required) --multiplier 10 --sessions 20 --storm 10 --timeout 5 --grace 1
 *             --connections-per-session 50 (HTTP) --window 1000 (WebSocket)
 * soak:       --capacity N (required) --fraction 0.5 --minutes 1
 */
import { writeFileSync } from "node:fs";
import { parseArgs, bool, num, numList, str } from "./lib/args.js";
import { installExitHooks } from "./lib/procs.js";
import {
  captureEnvironment,
  printResult,
  type TargetName,
  type WorkloadResult,
} from "./lib/report.js";
import { startReferenceServer, type Running } from "./lib/stack.js";
import type { Target, TransportKind } from "./lib/target.js";
import { probeWs } from "./client/ws.js";
import { runSaturation } from "./scenarios/saturation.js";
import { runBaseline } from "./scenarios/baseline.js";
import { runFlood } from "./scenarios/flood.js";
import { runBombing } from "./scenarios/bombing.js";
import { runSoak } from "./scenarios/soak.js";

installExitHooks();
const { flags, positional } = parseArgs();
const scenario = positional[0];
if (!scenario || bool(flags, "help")) {
  process.stderr.write(
    "usage: run-scenario <saturation|baseline|flood|bombing|soak> [--url URL | --spawn-ref] [flags]\n",
  );
  process.exit(2);
}
const transport = str(flags, "transport", "http") as TransportKind;
let running: Running | undefined;
let target: Target;
const url = str(flags, "url");
if (url) {
  const pid = str(flags, "pid");
  target = {
    name: str(flags, "target", "mcpq") as TargetName,
    mcpUrl: url,
    wsUrl: str(flags, "ws-url"),
    proc: { pid: pid ? Number(pid) : undefined, metricsUrl: str(flags, "metrics") },
    toolName: str(flags, "tool"),
  };
} else {
  running = await startReferenceServer(undefined, { json: bool(flags, "ref-json") });
  target = running.target;
  process.stderr.write(
    `started SDK reference server at ${target.mcpUrl} (pid ${target.proc.pid})\n`,
  );
}
if (transport === "ws") {
  const why = target.wsUrl ? await probeWs(target.wsUrl) : "no --ws-url given";
  if (why) {
    process.stderr.write(`SKIP: ${why}\n`);
    await running?.stop();
    process.exit(0);
  }
}

let results: WorkloadResult[] = [];
const needCap = () => {
  const c = num(flags, "capacity", NaN);
  if (!Number.isFinite(c) || c <= 0)
    throw new Error(`${scenario} needs --capacity N (msg/s), e.g. from saturation C=64`);
  return c;
};
switch (scenario) {
  case "saturation":
    results = await runSaturation(target, {
      transport,
      concurrencies: numList(flags, "c", [16, 64, 256]),
      durationMs: num(flags, "duration", 8) * 1000,
      warmupMs: num(flags, "warmup", 1) * 1000,
      payloadBytes: num(flags, "payload", 32),
    });
    break;
  case "baseline":
    results = [
      await runBaseline(target, {
        transport,
        sessions: num(flags, "sessions", 25),
        ratePerSession: num(flags, "rate", 100),
        durationMs: num(flags, "duration", 10) * 1000,
      }),
    ];
    break;
  case "flood":
    results = [
      await runFlood(target, {
        transport,
        sessions: num(flags, "sessions", 2000),
        probeMs: num(flags, "probe", 5) * 1000,
        rampConcurrency: num(flags, "ramp-concurrency", 64),
        perAddress: num(flags, "per-address", 900),
        rampTimeoutMs: num(flags, "ramp-timeout", 30) * 1000,
      }),
    ];
    break;
  case "bombing":
    results = [
      await runBombing(target, {
        transport,
        capacity: needCap(),
        multiplier: num(flags, "multiplier", 10),
        sessions: num(flags, "sessions", 20),
        stormMs: num(flags, "storm", 10) * 1000,
        connectionsPerSession: num(flags, "connections-per-session", 50),
        window: num(flags, "window", 1000),
        timeoutMs: num(flags, "timeout", 5) * 1000,
        graceMs: num(flags, "grace", 1) * 1000,
      }),
    ];
    break;
  case "soak":
    results = [
      await runSoak(target, {
        transport,
        capacity: needCap(),
        fraction: num(flags, "fraction", 0.5),
        minutes: num(flags, "minutes", 1),
      }),
    ];
    break;
  default:
    process.stderr.write(`unknown scenario ${scenario}\n`);
    process.exit(2);
}
process.stdout.write(`${scenario} results (${target.name}):\n`);
for (const r of results) printResult(r);
const out = str(flags, "out");
if (out) {
  writeFileSync(
    out,
    JSON.stringify({ environment: captureEnvironment(), workloads: results }, null, 2),
  );
  process.stdout.write(`wrote ${out}\n`);
}
await running?.stop();
process.exit(0);
