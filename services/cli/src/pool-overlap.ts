import { distinctKeys, type Bus } from "@mcpq/bus";
import type { Catalog } from "@mcpq/protocol";

/** What `findOverlaps` reads of a registry entry (`mcpq_registry`, key `<pool>.<workerId>`). */
export interface AdvertisedPool {
  pool: string;
  catalog: Pick<Catalog, "tools" | "prompts" | "resources">;
  shadow?: boolean;
}

/** A tool, prompt or resource this worker serves that another, routed pool serves too. */
export interface Overlap {
  kind: "tool" | "prompt" | "resource";
  name: string;
  /** The other pools serving it (sorted, without this worker's). */
  pools: string[];
}

/**
 * The targets of `mine` that other non-shadow pools also advertise. An edge routes each target
 * to exactly one pool, so a worker whose pool shares a tool with another pool may receive none of
 * that tool's calls: capacity for a tool is added by joining the pool that serves it.
 */
export function findOverlaps(mine: AdvertisedPool, others: Iterable<AdvertisedPool>): Overlap[] {
  const served = new Map<string, Set<string>>();
  for (const o of others) {
    if (o.shadow === true || o.pool === mine.pool) continue;
    const add = (key: string) =>
      (served.get(key) ?? served.set(key, new Set()).get(key)!).add(o.pool);
    for (const t of o.catalog.tools ?? []) add(`tool\u0000${t.name}`);
    for (const p of o.catalog.prompts ?? []) add(`prompt\u0000${p.name}`);
    for (const r of o.catalog.resources ?? []) add(`resource\u0000${r.uri}`);
  }
  const out: Overlap[] = [];
  const check = (kind: Overlap["kind"], name: string) => {
    const pools = served.get(`${kind}\u0000${name}`);
    if (pools) out.push({ kind, name, pools: [...pools].sort() });
  };
  for (const t of mine.catalog.tools) check("tool", t.name);
  for (const p of mine.catalog.prompts) check("prompt", p.name);
  for (const r of mine.catalog.resources) check("resource", r.uri);
  return out;
}

/** Every live entry of the worker registry (entries that fail to parse are skipped). */
export async function readRegistry(bus: Bus): Promise<AdvertisedPool[]> {
  const out: AdvertisedPool[] = [];
  for await (const key of distinctKeys(bus.kv.registry)) {
    const e = await bus.kv.registry.get(key);
    if (!e || e.operation !== "PUT") continue;
    try {
      const v = e.json<AdvertisedPool>();
      if (typeof v.pool === "string" && v.catalog) out.push(v);
    } catch {
      // A malformed entry is the edge's to log; here it only cannot overlap.
    }
  }
  return out;
}

/** One warning line per overlapping target group, saying which `--pool` adds capacity instead. */
export function overlapWarning(pool: string, overlaps: Overlap[]): string | undefined {
  if (overlaps.length === 0) return undefined;
  const byPools = new Map<string, string[]>();
  for (const o of overlaps) {
    const k = o.pools.join(",");
    (byPools.get(k) ?? byPools.set(k, []).get(k)!).push(`${o.kind} ${o.name}`);
  }
  const lines = [...byPools].map(
    ([pools, targets]) =>
      `  ${targets.join(", ")}: also served by pool ${pools.split(",").join(" and ")}; to add capacity for ${targets.length > 1 ? "them" : "it"}, start this worker with --pool ${pools.split(",")[0]}`,
  );
  return `mcpq worker: WARNING: pool ${pool} shares targets with other pools; an edge routes each target to one pool only, so this worker may receive none of their calls:\n${lines.join("\n")}`;
}
