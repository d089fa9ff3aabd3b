/** Metrology report schema (one object per workload) and environment capture. */
import { spawnSync } from "node:child_process";
import { cpus, hostname, loadavg, totalmem } from "node:os";
import type { LatencyHistogram } from "./histogram.js";
import { readServerVersion } from "@mcpq/nats-launcher";
import { benchNatsServer } from "./procs.js";

export type TargetName =
  "mcpq" | "sdk-reference" | "node-http-floor" | "raw-jetstream" | "broker-floor";

export interface WorkloadResult {
  workload_id: string;
  target: TargetName;
  transport: string;
  sessions: number;
  in_flight: number | null;
  duration_s: number;
  requests: number;
  throughput_msg_per_s: number;
  latency_p50_us: number | null;
  latency_p95_us: number | null;
  latency_p99_us: number | null;
  latency_p999_us: number | null;
  error_rate: number;
  errors_by_code: Record<string, number>;
  edge_rss_mib: number | null;
  per_session_kib: number | null;
  cpu_pct: number | null;
  /** scenario-specific extras (offered rate, outcome classes, recovery time, RSS before/after/peak, …) */
  extra?: Record<string, unknown>;
}

export interface Environment {
  cores: number;
  cpu_model: string;
  total_mem_gib: number;
  node_version: string;
  nats_server_version: string | null;
  git_commit: string | null;
  hostname: string;
  date: string;
  machine_label: string;
  open_files_limit: number | null;
  /** 1/5/15-min load averages when the run started — a noisy-machine indicator (> cores ⇒ numbers suspect) */
  load_avg_at_start: number[];
}

export interface Report {
  schema: "mcpq-loadtests/v1";
  mode: "quick" | "full" | "custom";
  environment: Environment;
  workloads: WorkloadResult[];
  skipped: { workload_id: string; reason: string }[];
}

export function openFilesLimit(): number | null {
  try {
    const s = spawnSync("sh", ["-c", "ulimit -n"], { encoding: "utf8" });
    const n = Number(s.stdout.trim());
    return Number.isFinite(n) ? n : null;
  } catch {
    return null;
  }
}

export function captureEnvironment(): Environment {
  const c = cpus();
  let nats: string | null = null;
  const bin = benchNatsServer();
  if (bin) {
    try {
      nats = `nats-server: v${readServerVersion(bin).text}`;
    } catch (e) {
      nats = (e as Error).message;
    }
  }
  let git: string | null = null;
  try {
    const r = spawnSync("git", ["rev-parse", "--short", "HEAD"], { encoding: "utf8" });
    if (r.status === 0) git = r.stdout.trim() || null;
  } catch {
    git = null;
  }
  return {
    cores: c.length,
    cpu_model: c[0]?.model?.trim() ?? "unknown",
    total_mem_gib: Math.round((totalmem() / 2 ** 30) * 10) / 10,
    node_version: process.version,
    nats_server_version: nats,
    git_commit: git,
    hostname: hostname(),
    date: new Date().toISOString(),
    machine_label: process.env.MCPQ_MACHINE_LABEL ?? `${c.length}-core dev VM`,
    open_files_limit: openFilesLimit(),
    load_avg_at_start: loadavg().map((x) => Math.round(x * 100) / 100),
  };
}

/** Turn raw counters into the standard workload object. */
export function makeResult(p: {
  workload_id: string;
  target: TargetName;
  transport: string;
  sessions: number;
  in_flight: number | null;
  duration_s: number;
  requests: number;
  ok: number;
  hist: LatencyHistogram;
  errors_by_code: Record<string, number>;
  edge_rss_bytes?: number | null;
  per_session_kib?: number | null;
  cpu_pct?: number | null;
  extra?: Record<string, unknown>;
}): WorkloadResult {
  const s = p.hist.summary();
  const errs = Object.values(p.errors_by_code).reduce((a, b) => a + b, 0);
  return {
    workload_id: p.workload_id,
    target: p.target,
    transport: p.transport,
    sessions: p.sessions,
    in_flight: p.in_flight,
    duration_s: Math.round(p.duration_s * 1000) / 1000,
    requests: p.requests,
    // throughput counts successful (verified) responses only
    throughput_msg_per_s: p.duration_s > 0 ? Math.round((p.ok / p.duration_s) * 10) / 10 : 0,
    latency_p50_us: s.p50,
    latency_p95_us: s.p95,
    latency_p99_us: s.p99,
    latency_p999_us: s.p999,
    error_rate: p.requests > 0 ? Math.round((errs / p.requests) * 1e6) / 1e6 : 0,
    errors_by_code: p.errors_by_code,
    edge_rss_mib:
      p.edge_rss_bytes == null ? null : Math.round((p.edge_rss_bytes / 1048576) * 10) / 10,
    per_session_kib: p.per_session_kib ?? null,
    cpu_pct: p.cpu_pct ?? null,
    extra: {
      latency_max_us: s.max,
      latency_mean_us: s.mean,
      histogram_clamped: p.hist.clamped,
      ...(p.extra ?? {}),
    },
  };
}

export function fmtUs(v: number | null | undefined): string {
  if (v === null || v === undefined) return "—";
  if (v >= 1_000_000) return `${(v / 1_000_000).toFixed(2)} s`;
  if (v >= 1000) return `${(v / 1000).toFixed(2)} ms`;
  return `${v} µs`;
}

export function printResult(r: WorkloadResult): void {
  const errs = Object.entries(r.errors_by_code)
    .map(([k, v]) => `${k}=${v}`)
    .join(",");
  process.stdout.write(
    `  ${r.workload_id.padEnd(34)} ${String(r.throughput_msg_per_s).padStart(9)} msg/s  ` +
      `p50 ${fmtUs(r.latency_p50_us).padStart(9)}  p99 ${fmtUs(r.latency_p99_us).padStart(9)}  p999 ${fmtUs(r.latency_p999_us).padStart(9)}  ` +
      `n=${r.requests} err=${(r.error_rate * 100).toFixed(2)}%${errs ? ` [${errs}]` : ""}` +
      `${r.cpu_pct !== null ? ` cpu=${r.cpu_pct}%` : ""}${typeof r.extra?.client_cpu_pct === "number" ? ` client_cpu=${r.extra.client_cpu_pct}%` : ""}${r.edge_rss_mib !== null ? ` rss=${r.edge_rss_mib}MiB` : ""}` +
      `${r.per_session_kib !== null ? ` per_session=${r.per_session_kib}KiB` : ""}\n`,
  );
}
