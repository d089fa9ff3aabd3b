import { Counter, Gauge, type Registry } from "@mcpq/observability";

/** Prometheus metrics of the edge response cache (`mcpq_edge_cache_*`, see docs/caching.md). */
export function cacheMetrics(
  registry: Registry,
  collectL2: () => Promise<void> = () => Promise.resolve(),
) {
  const lookups = new Counter({
    name: "mcpq_edge_cache_lookups_total",
    help: "Response-cache lookups of cacheable requests by layer and outcome (hit, miss)",
    labelNames: ["layer", "outcome"] as const,
    registers: [registry],
  });
  const stale = new Counter({
    name: "mcpq_edge_cache_stale_total",
    help: "Lookups that found an entry past its expiry (never served: counted as a miss too)",
    labelNames: ["layer"] as const,
    registers: [registry],
  });
  const evictions = new Counter({
    name: "mcpq_edge_cache_evictions_total",
    help: "Entries removed by reason (size: LRU bounds, invalidated: URI/tag/catalog version, expired)",
    labelNames: ["layer", "reason"] as const,
    registers: [registry],
  });
  const stores = new Counter({
    name: "mcpq_edge_cache_stores_total",
    help: "Results stored per layer",
    labelNames: ["layer"] as const,
    registers: [registry],
  });
  const coalesced = new Counter({
    name: "mcpq_edge_cache_coalesced_total",
    help: "Requests that waited for an identical in-flight request on this edge (single-flight) instead of calling a worker",
    registers: [registry],
  });
  const bypassed = new Counter({
    name: "mcpq_edge_cache_bypassed_total",
    help: "Requests for cacheable entries that skipped the cache, by reason",
    labelNames: ["reason"] as const,
    registers: [registry],
  });
  const entries = new Gauge({
    name: "mcpq_edge_cache_entries",
    help: "Entries held per layer (l2: the shared bucket)",
    labelNames: ["layer"] as const,
    registers: [registry],
    collect: collectL2,
  });
  const bytes = new Gauge({
    name: "mcpq_edge_cache_bytes",
    help: "Bytes held per layer (l1: keys and results, estimated; l2: the shared bucket)",
    labelNames: ["layer"] as const,
    registers: [registry],
    collect: collectL2,
  });
  return { lookups, stale, evictions, stores, coalesced, bypassed, entries, bytes };
}
export type CacheMetrics = ReturnType<typeof cacheMetrics>;
