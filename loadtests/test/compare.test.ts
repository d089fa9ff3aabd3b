// bench-compare's verdicts on synthetic reports: storm rows (offered a multiple of the capacity
// each run measured, so a different load every run) are judged by the shares of their offered
// requests answered ok and answered at all, every other row by its throughput as before.
import { spawn } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, describe, expect, it } from "vitest";
import { compareReports, stormShares, type Tolerances } from "../src/lib/compare-reports.js";
import type { Report, WorkloadResult } from "../src/lib/report.js";

const TOL: Tolerances = { tput: 0.1, lat: 0.1, mem: 0.2, cpu: 0.15 };
const LOADTESTS = fileURLToPath(new URL("..", import.meta.url));

function workload(id: string, over: Partial<WorkloadResult> = {}): WorkloadResult {
  return {
    workload_id: id,
    target: "mcpq",
    transport: id.includes("ws") ? "ws" : "http",
    sessions: 20,
    in_flight: null,
    duration_s: 10,
    requests: 0,
    throughput_msg_per_s: 0,
    latency_p50_us: 500_000,
    latency_p95_us: 900_000,
    latency_p99_us: 1_000_000,
    latency_p999_us: 1_100_000,
    error_rate: 0,
    errors_by_code: {},
    edge_rss_mib: 100,
    per_session_kib: null,
    cpu_pct: null,
    ...over,
  };
}

/** A storm row: `classes` over the whole schedule (offered = their sum), throughput = ok / 10 s. */
function storm(id: string, classes: Record<string, number>, offeredRate: number): WorkloadResult {
  const ok = classes["ok"] ?? 0;
  return workload(id, {
    requests: ok + (classes["rejected"] ?? 0),
    throughput_msg_per_s: ok / 10,
    extra: {
      offered_rate_msg_per_s: offeredRate,
      capacity_msg_per_s: offeredRate / 10,
      multiplier: 10,
      classes: { ok: 0, rejected: 0, deadline: 0, error: 0, lost: 0, held: 0, ...classes },
    },
  });
}

function report(workloads: WorkloadResult[]): Report {
  return {
    schema: "mcpq-loadtests/v1",
    mode: "quick",
    environment: {
      cores: 2,
      cpu_model: "test",
      total_mem_gib: 8,
      node_version: process.version,
      nats_server_version: null,
      git_commit: null,
      hostname: "test",
      date: "2026-12-01",
      machine_label: "test",
      open_files_limit: null,
      load_avg_at_start: [0, 0, 0],
    },
    workloads,
    skipped: [],
  };
}

const row = (rows: ReturnType<typeof compareReports>, id: string) =>
  rows.find((r) => r.id === `mcpq|${id}`)!;

// The baseline's storms: HTTP (most of the schedule held in the client) and WebSocket (most refused).
const baseHttp = storm("bombing-http-10x", { ok: 15_500, held: 170_800 }, 18_630);
const baseWs = storm("bombing-ws-10x", { ok: 4_400, rejected: 170_000, held: 40_600 }, 21_500);
const baseSat = workload("saturation-http-c64", { throughput_msg_per_s: 1_860 });
const base = report([baseHttp, baseWs, baseSat]);

describe("bench-compare", () => {
  it("counts every request of a storm's schedule once: the shares are of the offered load", () => {
    expect(stormShares(baseWs)).toEqual({
      offered: 215_000,
      ok: 4_400 / 215_000,
      answered: 174_400 / 215_000,
    });
    expect(stormShares(baseSat)).toBeNull();
  });

  it("a storm offered half the load (half the capacity measured) with the same shares passes; a non-storm row's throughput drop still fails", () => {
    const latest = report([
      storm("bombing-http-10x", { ok: 7_750, held: 85_400 }, 9_315),
      storm("bombing-ws-10x", { ok: 2_200, rejected: 85_000, held: 20_300 }, 10_750),
      workload("saturation-http-c64", { throughput_msg_per_s: 930 }),
    ]);
    const rows = compareReports(latest, base, TOL);
    for (const id of ["bombing-http-10x", "bombing-ws-10x"]) {
      // Its raw throughput halved (-50 %), which the throughput check alone would fail.
      expect(row(rows, id).status).toBe("OK");
      expect(row(rows, id).cells.slice(0, 3)).toEqual(["+0.0%", "+0.0%", "+0.0%"]);
      expect(row(rows, id).notes.join(" ")).toMatch(/^storm: ok .* of offered/);
    }
    expect(row(rows, "bombing-ws-10x").notes[0]).toContain("215000 → 107500 requests");
    expect(row(rows, "saturation-http-c64")).toMatchObject({
      status: "FAIL",
      notes: ["throughput -50.0%"],
    });
  });

  it("a storm answering a smaller share ok fails on the ok share; one losing requests instead of refusing them fails on the answered share", () => {
    const latest = report([
      storm("bombing-http-10x", { ok: 12_000, held: 174_300 }, 18_630),
      storm("bombing-ws-10x", { ok: 4_400, rejected: 100_000, lost: 70_000, held: 40_600 }, 21_500),
      baseSat,
    ]);
    const rows = compareReports(latest, base, TOL);
    expect(row(rows, "bombing-http-10x").status).toBe("FAIL");
    expect(row(rows, "bombing-http-10x").notes).toContain("ok share -22.6%");
    expect(row(rows, "bombing-ws-10x").status).toBe("FAIL");
    expect(row(rows, "bombing-ws-10x").notes).toContain("answered share -40.1%");
    expect(row(rows, "bombing-ws-10x").notes.join(" ")).not.toContain("ok share");
    expect(row(rows, "saturation-http-c64").status).toBe("OK");
  });

  describe("the command (src/compare.ts)", () => {
    let dir: string | undefined;
    afterAll(async () => {
      if (dir) await rm(dir, { recursive: true, force: true });
    });
    const run = async (latest: Report) => {
      dir ??= await mkdtemp(join(tmpdir(), "mcpq-compare-"));
      const [l, b] = [join(dir, "latest.json"), join(dir, "baseline.json")];
      await writeFile(l, JSON.stringify(latest));
      await writeFile(b, JSON.stringify(base));
      const child = spawn(
        join(LOADTESTS, "node_modules", ".bin", "tsx"),
        ["src/compare.ts", "--latest", l, "--baseline", b],
        { cwd: LOADTESTS, stdio: ["ignore", "pipe", "pipe"] },
      );
      let out = "";
      child.stdout.on("data", (d: Buffer) => (out += d.toString()));
      child.stderr.on("data", (d: Buffer) => (out += d.toString()));
      const code = await new Promise<number | null>((r) => child.once("exit", r));
      return { code, out };
    };

    it("says how it judges storm rows, and exits 0 when only the storms' offered load changed", async () => {
      const r = await run(
        report([storm("bombing-http-10x", { ok: 7_750, held: 85_400 }, 9_315), baseWs, baseSat]),
      );
      expect(r.code, r.out).toBe(0);
      expect(r.out).toContain("storm rows (bombing-*)");
      expect(r.out).toContain("share of offered requests answered ok");
      expect(r.out).toMatch(/mcpq\|bombing-http-10x\s+\+0\.0%.*OK\s+storm: ok 8\.32% → 8\.32%/);
    });

    it("exits 1 when a storm's ok share dropped", async () => {
      const r = await run(
        report([storm("bombing-http-10x", { ok: 12_000, held: 174_300 }, 18_630), baseWs, baseSat]),
      );
      expect(r.code, r.out).toBe(1);
      expect(r.out).toMatch(/mcpq\|bombing-http-10x.*FAIL.*ok share -22\.6%/);
    });
  });
});
