/**
 * profile (issue 17, point 1): CPU profiles of the edge and the worker under the bench load.
 * Starts a fresh stack with `--cpu-prof` on both services (NODE_OPTIONS), runs the saturation
 * closed loop (C=64, `echo` over Streamable HTTP) for `--duration` seconds, stops the services
 * (the profiles are written on exit) and prints, per process, the functions with the most self
 * time and the self time by module (package or source file).
 *
 *   pnpm --filter @mcpq/loadtests profile [--duration 15] [--c 64] [--top 25] [--transport http|ws]
 *        [--tool echo_io --catalog bench --slots 2]   (the I/O-bound scale-out shape)
 *
 * Writes results/profile-<stamp>/{edge,worker}.cpuprofile (open them in Chrome DevTools or
 * speedscope for flame graphs) and profile.md.
 */
import { mkdirSync, readdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { parseArgs, num, str } from "./lib/args.js";
import { installExitHooks, startNats } from "./lib/procs.js";
import { LOADTESTS_DIR, REPO_DIR, mcpqUnavailable, startMcpq } from "./lib/stack.js";
import { runSaturation } from "./scenarios/saturation.js";
import type { TransportKind } from "./lib/target.js";

interface CpuProfile {
  nodes: {
    id: number;
    callFrame: { functionName: string; url: string; lineNumber: number };
    children?: number[];
  }[];
  samples: number[];
  timeDeltas: number[];
}

/** Self time (µs) by function and by module, idle / GC / program split out. */
function summarise(p: CpuProfile): {
  totalUs: number;
  byFunction: [string, number][];
  byModule: [string, number][];
} {
  const self = new Map<number, number>();
  for (let i = 0; i < p.samples.length; i++)
    self.set(p.samples[i]!, (self.get(p.samples[i]!) ?? 0) + (p.timeDeltas[i] ?? 0));
  const fn = new Map<string, number>();
  const mod = new Map<string, number>();
  let total = 0;
  for (const n of p.nodes) {
    const us = self.get(n.id) ?? 0;
    if (!us) continue;
    const { functionName, url, lineNumber } = n.callFrame;
    if (functionName === "(idle)") continue;
    total += us;
    const m = moduleOf(url) || functionName;
    const key = `${functionName || "(anonymous)"} ${m}${url ? `:${lineNumber + 1}` : ""}`;
    fn.set(key, (fn.get(key) ?? 0) + us);
    mod.set(m, (mod.get(m) ?? 0) + us);
  }
  const sort = (x: Map<string, number>) => [...x.entries()].sort((a, b) => b[1] - a[1]);
  return { totalUs: total, byFunction: sort(fn), byModule: sort(mod) };
}

function moduleOf(url: string): string {
  if (!url) return "";
  if (url.startsWith("node:")) return url;
  const nm = url.lastIndexOf("node_modules/");
  if (nm >= 0) {
    const rest = url.slice(nm + 13).split("/");
    return rest[0]!.startsWith("@") ? `${rest[0]}/${rest[1]}` : rest[0]!;
  }
  const i = url.indexOf(REPO_DIR);
  return i >= 0 ? url.slice(i + REPO_DIR.length + 1) : url.replace(/^file:\/\//, "");
}

if (process.argv[1]?.endsWith("profile.ts")) {
  installExitHooks();
  const { flags } = parseArgs();
  const durationMs = num(flags, "duration", 15) * 1000;
  const C = num(flags, "c", 64);
  const top = num(flags, "top", 25);
  const transport = str(flags, "transport", "http") as TransportKind;
  const tool = str(flags, "tool", "echo");
  const catalog = str(flags, "catalog", "");
  const slots = str(flags, "slots", "");
  const why = mcpqUnavailable();
  if (why) {
    process.stderr.write(`${why}\n`);
    process.exit(2);
  }
  const stamp = new Date().toISOString().replace(/[:.]/g, "-");
  const outDir = join(str(flags, "out", join(LOADTESTS_DIR, "results")), `profile-${stamp}`);
  const profDir = join(outDir, "raw");
  mkdirSync(profDir, { recursive: true });
  const nats = await startNats(outDir);
  const stack = await startMcpq(nats, outDir, {
    nodeArgs: ["--cpu-prof", `--cpu-prof-dir=${profDir}`],
    ...(catalog ? { catalog } : {}),
    ...(slots ? { env: { MCPQ_WORKER_CONCURRENCY: slots } } : {}),
  });
  const pids = { edge: stack.target.proc.pid!, worker: stack.target.siblings!.worker! };
  const [r] = await runSaturation(
    { ...stack.target, toolName: tool },
    {
      transport,
      concurrencies: [C],
      durationMs,
      warmupMs: 2000,
      log: (m) => process.stderr.write(`${m}\n`),
    },
  );
  // profiles are written when the processes exit: give them time
  await Promise.all(stack.procs.map((p) => p.stop("SIGTERM", 30_000)));
  await nats.stop();
  const md: string[] = [
    `# CPU profile under load (${new Date().toISOString()})`,
    "",
    `saturation-${transport}-c${C} (tool ${tool}), ${durationMs / 1000} s (+2 s warm-up): ${r!.throughput_msg_per_s} msg/s, CPU µs/call ${JSON.stringify(r!.extra!.cpu_us_per_call)}. Self time over the whole process life (start-up included), idle excluded.`,
    "",
  ];
  for (const [name, pid] of Object.entries(pids)) {
    const file = readdirSync(profDir).find((f) => f.includes(`.${pid}.`));
    if (!file) {
      md.push(`## ${name}: no profile written (pid ${pid})`, "");
      continue;
    }
    const dest = join(outDir, `${name}.cpuprofile`);
    renameSync(join(profDir, file), dest);
    const s = summarise(JSON.parse(readFileSync(dest, "utf8")) as CpuProfile);
    const pct = (us: number) => `${((us / s.totalUs) * 100).toFixed(1)} %`;
    md.push(
      `## ${name} (${(s.totalUs / 1e6).toFixed(1)} s of CPU sampled)`,
      "",
      "| self | module |",
      "|---:|---|",
      ...s.byModule.slice(0, 15).map(([k, v]) => `| ${pct(v)} | ${k} |`),
      "",
      "| self | function |",
      "|---:|---|",
      ...s.byFunction.slice(0, top).map(([k, v]) => `| ${pct(v)} | \`${k}\` |`),
      "",
    );
  }
  const text = md.join("\n");
  writeFileSync(join(outDir, "profile.md"), text);
  process.stdout.write(`${text}\n→ ${outDir}\n`);
  process.exit(0);
}
