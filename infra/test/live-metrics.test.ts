/**
 * The rules and the dashboard against the metrics a real edge and worker expose: a real
 * nats-server, an edge and a worker in-process, the official SDK client making a few calls (one
 * answered, one unknown tool, one over the rate limit), then both /metrics scraped. Every label a
 * recording rule or a panel groups by or matches on must be on the metric it reads (where that
 * metric has samples after these calls; the rest are named in a warning), so a renamed label
 * breaks this test instead of silently emptying a panel or an alert.
 */
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { readFileSync } from "node:fs";
import { describe, expect } from "vitest";
import { parse as parseYaml } from "yaml";
import { eventually, freePort, natsTest as it, startStack } from "@mcpq/testkit";
import { loadEdgeConfig, startEdge } from "@mcpq/edge";
import { loadWorkerConfig, startWorker } from "@mcpq/worker";
import { referencedSeries } from "./metric-names.js";

/** Labels Prometheus attaches per target (not part of the exposition). */
const TARGET_LABELS = new Set(["job", "instance"]);

/** metric sample name -> label names seen on its samples. */
function parseExposition(text: string): Map<string, Set<string>> {
  const out = new Map<string, Set<string>>();
  for (const line of text.split("\n")) {
    if (!line || line.startsWith("#")) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s/.exec(line);
    if (!m) continue;
    const labels = out.get(m[1]!) ?? new Set<string>();
    for (const l of (m[2] ?? "").matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="(?:[^"\\]|\\.)*"/g))
      labels.add(l[1]!);
    out.set(m[1]!, labels);
  }
  return out;
}

/** Label names an expression groups by, joins on or matches on (`le` belongs to histograms). */
function usedLabels(expr: string): string[] {
  const names = new Set<string>();
  const noStrings = expr.replace(/"(?:[^"\\]|\\.)*"/g, '""');
  for (const m of noStrings.matchAll(/\b(?:by|without|on|ignoring)\s*\(([^)]*)\)/g)) {
    for (const l of m[1]!
      .split(",")
      .map((s) => s.trim())
      .filter(Boolean))
      names.add(l);
  }
  for (const m of noStrings.matchAll(/\{([^}]*)\}/g)) {
    for (const l of m[1]!.matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)/g)) names.add(l[1]!);
  }
  names.delete("le");
  return [...names];
}

const infra = new URL("..", import.meta.url);
type Rule = { record?: string; alert?: string; expr: string };
const rules = ["recording.rules.yml", "alerts.rules.yml"].flatMap((f) =>
  (
    parseYaml(readFileSync(new URL(`prometheus/${f}`, infra), "utf8")) as {
      groups: { rules: Rule[] }[];
    }
  ).groups.flatMap((g) => g.rules),
);
const recorded = new Set(rules.flatMap((r) => (r.record ? [r.record] : [])));
const dashboard = JSON.parse(
  readFileSync(new URL("grafana/dashboards/mcpq.json", infra), "utf8"),
) as {
  panels: { title: string; targets?: { expr: string }[] }[];
};
const queries = [
  ...rules.map((r) => ({ what: r.record ?? r.alert!, expr: r.expr })),
  ...dashboard.panels.flatMap((p) =>
    (p.targets ?? []).map((t) => ({ what: `panel "${p.title}"`, expr: t.expr })),
  ),
];

describe("rules and dashboard against a live edge and worker", () => {
  it("every label a query uses exists on the real metric it reads", async ({ nats }) => {
    const workerMetricsPort = await freePort();
    const s = await startStack(
      nats,
      {
        startEdge: (natsUrl, env) =>
          startEdge(
            loadEdgeConfig({
              MCPQ_NATS_URL: natsUrl,
              MCPQ_PORT: "0",
              MCPQ_LOG_LEVEL: "silent",
              ...env,
            }),
          ),
        startWorker: (natsUrl, catalogs, env) =>
          startWorker(
            loadWorkerConfig({
              MCPQ_NATS_URL: natsUrl,
              MCPQ_CATALOGS: catalogs.join(","),
              MCPQ_LOG_LEVEL: "silent",
              ...env,
            }),
          ),
      },
      {
        // One tools/call token and (practically) no refill: the second routed call is refused
        // (rate_limited); the unknown tool is answered -32602 before the bucket.
        edgeEnv: {
          MCPQ_BUS_STATS_MS: "100",
          MCPQ_TOOL_RATE_PER_SEC: "0.001",
          MCPQ_TOOL_RATE_BURST: "1",
        },
        workers: [
          { catalogs: ["example"], env: { MCPQ_WORKER_METRICS_PORT: String(workerMetricsPort) } },
        ],
      },
    );
    try {
      const edgeUrl = new URL(s.edges[0]!.url);
      const client = new Client(
        { name: "mcpq-infra-test", version: "1.0.0" },
        { capabilities: {} },
      );
      await client.connect(new StreamableHTTPClientTransport(edgeUrl));
      await client.callTool({ name: "echo", arguments: { text: "metrics" } });
      await expect(client.callTool({ name: "nope", arguments: {} })).rejects.toMatchObject({
        code: -32602,
      });
      await expect(
        client.callTool({ name: "echo", arguments: { text: "refused" } }),
      ).rejects.toMatchObject({ code: expect.any(Number) });
      await client.close();

      const scrape = async (url: string) => parseExposition(await (await fetch(url)).text());
      // The broker-side gauges come from a poll: wait until one has been taken.
      const edge = await eventually(
        async () => {
          const m = await scrape(new URL("/metrics", edgeUrl).href);
          return m.has("mcpq_edge_pool_pending") ? m : undefined;
        },
        { what: "edge bus-stats poll" },
      );
      const worker = await scrape(`http://127.0.0.1:${workerMetricsPort}/metrics`);
      const exposed = new Map<string, Set<string>>();
      for (const src of [edge, worker]) {
        for (const [name, labels] of src)
          exposed.set(name, new Set([...(exposed.get(name) ?? []), ...labels]));
      }
      expect(
        exposed.get("mcpq_edge_rejected_total"),
        "the third call was refused and counted",
      ).toBeDefined();

      const unchecked = new Set<string>();
      for (const q of queries) {
        // `up` is Prometheus's own series per target.
        const raw = referencedSeries(q.expr).filter((n) => !recorded.has(n) && n !== "up");
        if (raw.length === 0) continue;
        const sampled = raw.filter((n) => exposed.has(n));
        for (const n of raw.filter((x) => !exposed.has(x))) unchecked.add(n);
        if (sampled.length === 0) continue;
        for (const l of usedLabels(q.expr)) {
          if (TARGET_LABELS.has(l)) continue;
          expect(
            sampled.some((n) => exposed.get(n)!.has(l)),
            `${q.what} uses label "${l}", which ${sampled.join(", ")} does not carry: ${q.expr}`,
          ).toBe(true);
        }
      }
      if (unchecked.size)
        console.warn(
          `[live-metrics.test] no samples here (labels unchecked): ${[...unchecked].sort().join(", ")}`,
        );
    } finally {
      await s.close();
    }
  });
});
