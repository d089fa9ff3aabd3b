/**
 * The Prometheus rules (infra/prometheus) and the Grafana dashboard (infra/grafana):
 *  - `promtool check rules` / `check config` accept them and `promtool test rules` passes the
 *    unit tests of every alert (skipped with the reason when promtool is absent: `make setup`
 *    installs it from Debian's prometheus package);
 *  - every alert carries one of the four severity tiers, all four are used, and each alert has
 *    a promtool unit test;
 *  - every series a rule or a panel reads is a metric the code declares (metric-names.ts) or a
 *    recording rule; the panels' expressions also pass promtool's parser.
 */
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { parse as parseYaml } from "yaml";
import { knownMetrics, pendingMetricsMissing, referencedSeries } from "./metric-names.js";
import { promtoolBin } from "./tools.js";

const infra = fileURLToPath(new URL("..", import.meta.url));
const promDir = join(infra, "prometheus");
const ruleFiles = ["recording.rules.yml", "alerts.rules.yml"].map((f) => join(promDir, f));
const testFile = join(promDir, "tests", "alerts.test.yml");
const dashboardFile = join(infra, "grafana", "dashboards", "mcpq.json");

const SEVERITIES = ["info", "warning", "critical", "page"] as const;

interface Rule {
  record?: string;
  alert?: string;
  expr: string;
  for?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}
const rules: Rule[] = ruleFiles.flatMap((f) =>
  (parseYaml(readFileSync(f, "utf8")) as { groups: { rules: Rule[] }[] }).groups.flatMap(
    (g) => g.rules,
  ),
);
const recorded = new Set(rules.flatMap((r) => (r.record ? [r.record] : [])));
const alerts = rules.filter((r) => r.alert);

const promtool = promtoolBin();
const noPromtool = "promtool not found (Debian: apt-get install prometheus; `make setup` does it)";
if (!promtool) console.warn(`[prometheus.test] skipping the promtool checks: ${noPromtool}`);

/** Runs promtool; on failure the error carries promtool's own output. */
function runPromtool(args: string[]): string {
  try {
    return execFileSync(promtool!, args, {
      encoding: "utf8",
      stdio: ["ignore", "pipe", "pipe"],
      timeout: 120_000,
    });
  } catch (err) {
    const e = err as { stdout?: string; stderr?: string };
    throw new Error(`promtool ${args.join(" ")} failed:\n${e.stdout ?? ""}${e.stderr ?? ""}`, {
      cause: err,
    });
  }
}

interface Panel {
  id: number;
  type: string;
  title: string;
  gridPos: { x: number; y: number; w: number; h: number };
  datasource?: { type: string; uid: string };
  targets?: { refId: string; expr: string; datasource?: { uid: string } }[];
}
const dashboard = JSON.parse(readFileSync(dashboardFile, "utf8")) as {
  uid: string;
  title: string;
  panels: Panel[];
  templating: { list: { name: string; type: string; query: string }[] };
};
const queryPanels = dashboard.panels.filter((p) => p.type !== "row");
const panelExprs = queryPanels.flatMap((p) =>
  (p.targets ?? []).map((t) => ({ panel: p.title, expr: t.expr })),
);

describe("Prometheus rules", () => {
  it.skipIf(!promtool)(
    `promtool check rules / check config accept them${promtool ? "" : ` (skipped: ${noPromtool})`}`,
    () => {
      const out = runPromtool(["check", "rules", ...ruleFiles]);
      expect(out).toContain(`SUCCESS: ${recorded.size} rules found`);
      expect(out).toContain(`SUCCESS: ${alerts.length} rules found`);
      // The compose Prometheus config loads both rule files.
      expect(runPromtool(["check", "config", join(promDir, "prometheus.yml")])).toContain(
        "SUCCESS: 2 rule files found",
      );
    },
  );

  it.skipIf(!promtool)(
    `promtool test rules: every alert's unit tests pass${promtool ? "" : ` (skipped: ${noPromtool})`}`,
    () => {
      expect(runPromtool(["test", "rules", testFile])).toContain("SUCCESS");
    },
  );

  it("every alert has a severity tier, all four tiers are used, and each alert has a unit test", () => {
    for (const a of alerts) {
      expect(SEVERITIES, `${a.alert} severity`).toContain(a.labels?.severity);
      expect(a.annotations?.summary, `${a.alert} summary`).toBeTruthy();
      expect(a.annotations?.description, `${a.alert} description`).toBeTruthy();
    }
    expect(new Set(alerts.map((a) => a.labels!.severity))).toEqual(new Set(SEVERITIES));
    const tests = parseYaml(readFileSync(testFile, "utf8")) as {
      tests: { alert_rule_test?: { alertname: string; exp_alerts: unknown[] }[] }[];
    };
    const firing = new Set(
      tests.tests.flatMap((t) =>
        (t.alert_rule_test ?? []).filter((c) => c.exp_alerts.length > 0).map((c) => c.alertname),
      ),
    );
    for (const a of alerts)
      expect(firing, `${a.alert} has a promtool case where it fires`).toContain(a.alert);
  });

  it("the alerts cover what an operator must hear about", () => {
    const reads = (name: string) => alerts.filter((a) => a.expr.includes(name)).map((a) => a.alert);
    expect(reads("mcpq:edge_server_error_ratio:rate5m"), "error rate").not.toHaveLength(0);
    expect(reads("mcpq:edge_request_duration_seconds:p99_5m"), "p99 latency").not.toHaveLength(0);
    expect(reads("mcpq:pool_pending:max"), "queue lag").not.toHaveLength(0);
    expect(reads("mcpq:edge_refusal_ratio:rate5m"), "refusal rate").not.toHaveLength(0);
    expect(reads("mcpq:pool_live_workers:count"), "no live workers for a pool").not.toHaveLength(0);
    expect(reads("mcpq_edge_broker_connected"), "broker unreachable").not.toHaveLength(0);
    expect(reads("process_resident_memory_bytes"), "memory").not.toHaveLength(0);
  });

  it("rules read only metrics the code declares, or recording rules", async () => {
    const known = await knownMetrics();
    const missing = await pendingMetricsMissing();
    if (missing.length)
      console.warn(
        `[prometheus.test] metrics used ahead of the code that adds them: ${missing.join(", ")}`,
      );
    for (const r of rules) {
      for (const s of referencedSeries(r.expr)) {
        expect(
          known.has(s) || recorded.has(s),
          `${r.record ?? r.alert} reads ${s}, which nothing exposes`,
        ).toBe(true);
      }
    }
  });

  it("the series-name extraction sees through matchers, grouping and functions", () => {
    expect(
      referencedSeries('histogram_quantile(0.99, sum by (le, pool) (rate(x_bucket{a="b"}[5m])))'),
    ).toEqual(["x_bucket"]);
    expect(
      referencedSeries("a:b:c / clamp_min(d + e_total, 1e-9) unless on (pool) (f > 0)").sort(),
    ).toEqual(["a:b:c", "d", "e_total", "f"]);
  });
});

describe("Grafana dashboard", () => {
  it("has unique panel ids, non-overlapping positions, and every query uses the datasource variable", () => {
    const ids = dashboard.panels.map((p) => p.id);
    expect(new Set(ids).size).toBe(ids.length);
    expect(dashboard.templating.list.find((v) => v.name === "datasource")).toMatchObject({
      type: "datasource",
      query: "prometheus",
    });
    const cells = new Map<string, string>();
    for (const p of dashboard.panels) {
      const g = p.gridPos;
      expect(g.x + g.w, `${p.title} fits the 24-column grid`).toBeLessThanOrEqual(24);
      for (let x = g.x; x < g.x + g.w; x++) {
        for (let y = g.y; y < g.y + g.h; y++) {
          const key = `${x},${y}`;
          expect(cells.get(key), `${p.title} overlaps ${cells.get(key)}`).toBeUndefined();
          cells.set(key, p.title);
        }
      }
    }
    for (const p of queryPanels) {
      expect(p.datasource?.uid, p.title).toBe("${datasource}");
      expect(p.targets?.length, `${p.title} has queries`).toBeGreaterThan(0);
      for (const t of p.targets ?? [])
        expect(t.datasource?.uid ?? p.datasource?.uid, p.title).toBe("${datasource}");
    }
  });

  it("every panel reads only existing metrics or recording rules", async () => {
    const known = await knownMetrics();
    for (const { panel, expr } of panelExprs) {
      const read = referencedSeries(expr);
      expect(read.length, `${panel}: ${expr}`).toBeGreaterThan(0);
      for (const s of read)
        expect(
          known.has(s) || recorded.has(s),
          `panel "${panel}" reads ${s}, which nothing exposes`,
        ).toBe(true);
    }
  });

  it("shows rates, per-tool latency, queue depth and lag, refusals, circuits, workers and memory", () => {
    const all = panelExprs.map((p) => p.expr).join("\n");
    for (const s of [
      "mcpq:edge_requests:rate1m",
      "mcpq:tool_duration_seconds:p99_5m",
      "mcpq:pool_pending:max",
      "mcpq:pool_queue_wait_seconds:p99_5m",
      "mcpq:edge_rejected:rate1m",
      "mcpq:pool_circuit_state:max",
      "mcpq:pool_live_workers:count",
      "process_resident_memory_bytes",
    ]) {
      expect(all, s).toContain(s);
    }
  });

  it.skipIf(!promtool)(
    `every panel query parses (promtool)${promtool ? "" : ` (skipped: ${noPromtool})`}`,
    () => {
      const dir = mkdtempSync(join(tmpdir(), "mcpq-dash-"));
      try {
        const file = join(dir, "panels.rules.yml");
        const asRules = panelExprs.map((p, i) => ({
          record: `dashboard:panel_${i}`,
          expr: p.expr,
        }));
        writeFileSync(file, JSON.stringify({ groups: [{ name: "dashboard", rules: asRules }] }));
        expect(runPromtool(["check", "rules", file])).toContain(
          `SUCCESS: ${asRules.length} rules found`,
        );
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    },
  );
});
