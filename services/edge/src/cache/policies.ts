import { createHash } from "node:crypto";
import type { RegistryEntry } from "@mcpq/bus";
import { matchUriTemplate, type EdgeCachePolicy } from "@mcpq/protocol";

/** The edge-cache declarations of one pool, and the version of the catalog it serves. */
export interface PoolPolicies {
  /**
   * Digest of the distinct catalogs its live workers advertise: part of every cache key, so a
   * worker with a new catalog makes the pool's earlier entries unreachable (and evicted).
   */
  version: string;
  tools: Map<string, EdgeCachePolicy>;
  resources: Map<string, EdgeCachePolicy>;
  /** In name order, as the catalog view matches templates. */
  templates: { uriTemplate: string; policy: EdgeCachePolicy }[];
  prompts: Map<string, EdgeCachePolicy>;
}

/** The policy a request falls under, with the declaring entry's id (`t:`/`r:`/`rt:`/`p:` + name). */
export interface MatchedPolicy {
  policy: EdgeCachePolicy;
  entryId: string;
}

/**
 * The edge-cache policies every pool declares (registry `catalog.cacheHints.edge`), rebuilt
 * from the catalog view's entries whenever it changes; lookups are map reads.
 */
export class PolicyIndex {
  #pools = new Map<string, PoolPolicies>();
  /** Tag -> ids of the entries that carry it (any pool), for purging the shared L2 by tag. */
  #tags = new Map<string, Set<string>>();

  /** Rebuilds from the registry; returns the pools whose catalog version changed or that went. */
  rebuild(entries: Iterable<[string, RegistryEntry]>): string[] {
    const byPool = new Map<string, RegistryEntry[]>();
    for (const [, e] of [...entries].sort(([a], [b]) => (a < b ? -1 : 1))) {
      const list = byPool.get(e.pool);
      if (list) list.push(e);
      else byPool.set(e.pool, [e]);
    }
    const pools = new Map<string, PoolPolicies>();
    const tags = new Map<string, Set<string>>();
    const tag = (p: EdgeCachePolicy, entryId: string) => {
      for (const t of p.tags ?? []) {
        const ids = tags.get(t);
        if (ids) ids.add(entryId);
        else tags.set(t, new Set([entryId]));
      }
    };
    for (const [pool, list] of byPool) {
      const catalogs = [...new Set(list.map((e) => JSON.stringify(e.catalog)))].sort();
      const version = createHash("sha256")
        .update(catalogs.join("\n"))
        .digest("base64url")
        .slice(0, 16);
      const pp: PoolPolicies = {
        version,
        tools: new Map(),
        resources: new Map(),
        templates: [],
        prompts: new Map(),
      };
      const templates = new Map<string, EdgeCachePolicy>();
      // First worker (in key order) declaring an entry wins, as routing picks one catalog per name.
      for (const e of list) {
        const edge = e.catalog.cacheHints?.edge;
        if (!edge) continue;
        for (const [name, p] of Object.entries(edge.tools ?? {}))
          if (!pp.tools.has(name)) pp.tools.set(name, p);
        for (const [uri, p] of Object.entries(edge.resources ?? {}))
          if (!pp.resources.has(uri)) pp.resources.set(uri, p);
        for (const [t, p] of Object.entries(edge.resourceTemplates ?? {}))
          if (!templates.has(t)) templates.set(t, p);
        for (const [name, p] of Object.entries(edge.prompts ?? {}))
          if (!pp.prompts.has(name)) pp.prompts.set(name, p);
      }
      const names = new Map<string, string>();
      for (const e of list)
        for (const t of e.catalog.resourceTemplates)
          if (!names.has(t.uriTemplate)) names.set(t.uriTemplate, t.name);
      pp.templates = [...templates]
        .map(([uriTemplate, policy]) => ({
          uriTemplate,
          policy,
          name: names.get(uriTemplate) ?? "",
        }))
        .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
        .map(({ uriTemplate, policy }) => ({ uriTemplate, policy }));
      for (const [n, p] of pp.tools) tag(p, `t:${n}`);
      for (const [n, p] of pp.resources) tag(p, `r:${n}`);
      for (const t of pp.templates) tag(t.policy, `rt:${t.uriTemplate}`);
      for (const [n, p] of pp.prompts) tag(p, `p:${n}`);
      pools.set(pool, pp);
    }
    const changed: string[] = [];
    for (const [pool, pp] of this.#pools)
      if (pools.get(pool)?.version !== pp.version) changed.push(pool);
    this.#pools = pools;
    this.#tags = tags;
    return changed;
  }

  pool(pool: string): PoolPolicies | undefined {
    return this.#pools.get(pool);
  }

  tool(pool: PoolPolicies, name: string): MatchedPolicy | undefined {
    const policy = pool.tools.get(name);
    return policy ? { policy, entryId: `t:${name}` } : undefined;
  }

  prompt(pool: PoolPolicies, name: string): MatchedPolicy | undefined {
    const policy = pool.prompts.get(name);
    return policy ? { policy, entryId: `p:${name}` } : undefined;
  }

  /** An exact resource's policy, else the first matching template's. */
  resource(pool: PoolPolicies, uri: string): MatchedPolicy | undefined {
    const exact = pool.resources.get(uri);
    if (exact) return { policy: exact, entryId: `r:${uri}` };
    const t = pool.templates.find((x) => matchUriTemplate(x.uriTemplate, uri));
    return t ? { policy: t.policy, entryId: `rt:${t.uriTemplate}` } : undefined;
  }

  /** Ids of the entries (any pool) that carry any of `tags`. */
  entriesTagged(tags: readonly string[]): Set<string> {
    const out = new Set<string>();
    for (const t of tags) for (const id of this.#tags.get(t) ?? []) out.add(id);
    return out;
  }
}

/** Canonical JSON: object keys sorted at every depth, so equal arguments give equal keys. */
export function canonicalJson(v: unknown): string {
  if (v === null || typeof v !== "object") return JSON.stringify(v) ?? "null";
  if (Array.isArray(v)) return `[${v.map(canonicalJson).join(",")}]`;
  const o = v as Record<string, unknown>;
  const keys = Object.keys(o)
    .filter((k) => o[k] !== undefined)
    .sort();
  return `{${keys.map((k) => `${JSON.stringify(k)}:${canonicalJson(o[k])}`).join(",")}}`;
}
