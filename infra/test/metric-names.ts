/**
 * Which Prometheus series mcpq exposes, read from the code rather than listed by hand, so the
 * rules and the dashboard cannot name a metric that does not exist:
 *  - every `new Counter|Gauge|Histogram({ name: "..." })` under packages/ and services/ src;
 *  - the request metrics `requestMetrics(registry, "<prefix>")` builds, expanded per prefix;
 *  - prom-client's default process/Node metrics (@mcpq/observability calls collectDefaultMetrics),
 *    from a real registry of the prom-client that package uses;
 *  - `up`, which Prometheus adds per target.
 * A histogram contributes its _bucket, _sum and _count series.
 */
import { readFileSync, readdirSync, statSync } from "node:fs";
import { createRequire } from "node:module";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

const repoRoot = fileURLToPath(new URL("../..", import.meta.url));

/**
 * Metrics the rules and dashboard use that other changes in flight add (MCP semantic-convention
 * tool histogram, queue wait, broker connection gauge). Each is dropped from here once the code
 * declares it; `pendingMetricsMissing()` lists those still missing.
 */
const PENDING_METRICS: Record<string, "histogram" | "gauge" | "counter"> = {};

function sourceFiles(dir: string, out: string[] = []): string[] {
  for (const name of readdirSync(dir)) {
    if (name === "node_modules" || name === "dist" || name === "test") continue;
    const p = join(dir, name);
    if (statSync(p).isDirectory()) sourceFiles(p, out);
    else if (name.endsWith(".ts") && !name.endsWith(".d.ts")) out.push(p);
  }
  return out;
}

const series = (name: string, kind: string) =>
  kind === "Histogram" || kind === "histogram"
    ? [`${name}_bucket`, `${name}_sum`, `${name}_count`]
    : [name];

/** Metric names declared in the code (without the pending ones). */
async function declaredMetrics(): Promise<Set<string>> {
  const files = ["packages", "services"].flatMap((top) =>
    readdirSync(join(repoRoot, top)).flatMap((pkg) => {
      const src = join(repoRoot, top, pkg, "src");
      try {
        return statSync(src).isDirectory() ? sourceFiles(src) : [];
      } catch {
        return [];
      }
    }),
  );
  const names = new Set<string>(["up"]);
  const templated: { suffix: string; kind: string }[] = [];
  const prefixes = new Set<string>();
  for (const f of files) {
    const text = readFileSync(f, "utf8");
    for (const m of text.matchAll(
      /new (Counter|Gauge|Histogram|Summary)\(\{\s*name:\s*"([a-zA-Z_:][a-zA-Z0-9_:]*)"/g,
    )) {
      for (const s of series(m[2]!, m[1]!)) names.add(s);
    }
    for (const m of text.matchAll(
      /new (Counter|Gauge|Histogram|Summary)\(\{\s*name:\s*`\$\{prefix\}_([a-z0-9_]+)`/g,
    )) {
      templated.push({ kind: m[1]!, suffix: m[2]! });
    }
    for (const m of text.matchAll(/requestMetrics\(\s*\w+\s*,\s*"([a-z0-9_]+)"\s*\)/g))
      prefixes.add(m[1]!);
  }
  for (const p of prefixes)
    for (const t of templated) for (const s of series(`${p}_${t.suffix}`, t.kind)) names.add(s);
  const observability = join(repoRoot, "packages/observability");
  if (/collectDefaultMetrics\(/.test(readFileSync(join(observability, "src/index.ts"), "utf8"))) {
    // prom-client is that package's dependency, not the root's: load it from there.
    const promClient = createRequire(join(observability, "package.json"))("prom-client") as {
      Registry: new () => { getMetricsAsJSON(): Promise<{ name: string; type: unknown }[]> };
      collectDefaultMetrics(opts: { register: unknown }): void;
    };
    const registry = new promClient.Registry();
    promClient.collectDefaultMetrics({ register: registry });
    for (const m of await registry.getMetricsAsJSON())
      for (const s of series(m.name, String(m.type))) names.add(s);
  }
  return names;
}

/** Declared metrics plus the pending ones: what a rule or panel may reference. */
export async function knownMetrics(): Promise<Set<string>> {
  const names = await declaredMetrics();
  for (const [n, kind] of Object.entries(PENDING_METRICS))
    for (const s of series(n, kind)) names.add(s);
  return names;
}

export async function pendingMetricsMissing(): Promise<string[]> {
  const declared = await declaredMetrics();
  return Object.keys(PENDING_METRICS).filter(
    (n) => !declared.has(n) && !declared.has(`${n}_bucket`),
  );
}

const PROMQL_WORDS = new Set([
  "by",
  "without",
  "on",
  "ignoring",
  "group_left",
  "group_right",
  "bool",
  "and",
  "or",
  "unless",
  "offset",
  "inf",
  "nan",
  "e",
  "le",
]);

/**
 * The metric (and recording rule) names a PromQL expression reads. Label matchers, grouping
 * clauses, ranges, strings and numbers are removed first; a remaining identifier that is not
 * followed by `(` (a function call) and is not a keyword is a series name. The syntax itself is
 * checked by promtool where the callers have it.
 */
export function referencedSeries(expr: string): string[] {
  const stripped = expr
    .replace(/"(?:[^"\\]|\\.)*"/g, '""')
    .replace(/\{[^}]*\}/g, " ")
    .replace(/\[[^\]]*\]/g, " ")
    .replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, " ");
  const out = new Set<string>();
  for (const m of stripped.matchAll(/([a-zA-Z_:][a-zA-Z0-9_:]*)\s*(\()?/g)) {
    const [, word, call] = m;
    if (call || PROMQL_WORDS.has(word!.toLowerCase())) continue;
    // 1e-9 and similar: the exponent's "e" is caught above; skip digits-led tokens (none match).
    out.add(word!);
  }
  return [...out];
}
