/**
 * Caching hints of MCP 2026-07-28 (`server/utilities/caching`): `ttlMs` (how long a client may
 * treat a result as fresh) and `cacheScope` (`public`: shareable across authorization contexts;
 * `private`: only within the same one). Required on complete results of `server/discover`,
 * `tools/list`, `prompts/list`, `resources/list`, `resources/templates/list` and `resources/read`.
 *
 * Workers declare them per catalog entry and per list (worker SDK `cache`), and publish the
 * resolved values in their registry entry (`Catalog.cacheHints`), where edges read them for the
 * list results; a worker puts them on its own `resources/read` results.
 */

type CacheScope = "public" | "private";

export interface CacheHint {
  /** Freshness in ms (integer >= 0; 0 = immediately stale). */
  ttlMs: number;
  cacheScope: CacheScope;
}

/** What a definition may declare; unset fields fall back to the list's, then the catalog's, then the default. */
export type CacheHintInput = Partial<CacheHint>;

/**
 * What one catalog entry (tool, resource, resource template, prompt) may declare: its hint, and
 * whether mcpq's edges may answer repeated requests for it from their response cache
 * (`edge: true`, see docs/caching.md). The same `ttlMs`/`cacheScope` drive both: an edge keeps
 * a result for `ttlMs` (0 = never), and a `private` one only for the principal it was made for.
 */
export interface EntryCacheInput extends CacheHintInput {
  /** Opt in to edge caching of `tools/call`, `resources/read`, `prompts/get` results of this entry. */
  edge?: boolean;
  /** Invalidation tags: `ctx.invalidate(tags)` evicts every cached result of entries carrying one. */
  tags?: string[];
  /** Cache (and serve from cache) requests that carry a progress token (they get no progress then). */
  allowProgress?: boolean;
}

/** Tags per entry, and their length, are bounded: they travel in every registry entry. */
const MAX_CACHE_TAGS = 16;
const MAX_CACHE_TAG_LENGTH = 128;

/**
 * The edge-cache policy of one entry as a worker publishes it in its registry entry
 * (`CatalogCacheHints.edge`): only entries that opted in with a `ttlMs` above 0.
 * `scope` `principal` (a `private` hint) keys results by the caller's principal id.
 */
export interface EdgeCachePolicy {
  ttlMs: number;
  scope: "public" | "principal";
  tags?: string[];
  allowProgress?: boolean;
}

/** Used where nothing was declared: immediately stale, never shared across callers. */
export const DEFAULT_CACHE_HINT: Readonly<CacheHint> = Object.freeze({
  ttlMs: 0,
  cacheScope: "private",
});

/** The catalog lists that carry hints (and whose entries do). */
export type CacheListKind = "tools" | "resources" | "resourceTemplates" | "prompts";

/**
 * Resolved hints in a worker's registry entry (all fields optional, so older workers and edges
 * interoperate). `tools`/`prompts` are keyed by name, `resources` by URI, `resourceTemplates` by
 * URI template; an entry that is absent has `DEFAULT_CACHE_HINT`. `lists` holds the list-level
 * hint a catalog declared for a kind; absent means it declared none.
 */
export interface CatalogCacheHints {
  tools?: Record<string, CacheHint>;
  resources?: Record<string, CacheHint>;
  resourceTemplates?: Record<string, CacheHint>;
  prompts?: Record<string, CacheHint>;
  lists?: Partial<Record<CacheListKind, CacheHint>>;
  /** Entries edges may answer from their response cache, keyed like the hints (absent: none). */
  edge?: Partial<Record<CacheListKind, Record<string, EdgeCachePolicy>>>;
}

/** Checks a declared hint (a programming error when invalid: thrown at definition time). */
export function assertCacheHintInput(h: CacheHintInput | undefined, where: string): void {
  if (!h) return;
  if (h.ttlMs !== undefined && !(Number.isInteger(h.ttlMs) && h.ttlMs >= 0)) {
    throw new Error(`${where}: cache.ttlMs must be an integer >= 0 (got ${String(h.ttlMs)})`);
  }
  if (h.cacheScope !== undefined && h.cacheScope !== "public" && h.cacheScope !== "private") {
    throw new Error(
      `${where}: cache.cacheScope must be "public" or "private" (got ${JSON.stringify(h.cacheScope)})`,
    );
  }
}

/** Checks an entry's declaration: its hint and the edge-cache fields. */
export function assertEntryCacheInput(h: EntryCacheInput | undefined, where: string): void {
  assertCacheHintInput(h, where);
  if (!h) return;
  if (h.edge !== undefined && typeof h.edge !== "boolean")
    throw new Error(`${where}: cache.edge must be a boolean`);
  if (h.allowProgress !== undefined && typeof h.allowProgress !== "boolean")
    throw new Error(`${where}: cache.allowProgress must be a boolean`);
  if (h.tags !== undefined) {
    if (!Array.isArray(h.tags) || h.tags.length > MAX_CACHE_TAGS)
      throw new Error(`${where}: cache.tags must be an array of at most ${MAX_CACHE_TAGS} strings`);
    for (const t of h.tags) {
      if (typeof t !== "string" || t.length === 0 || t.length > MAX_CACHE_TAG_LENGTH) {
        throw new Error(
          `${where}: cache.tags entries must be strings of 1-${MAX_CACHE_TAG_LENGTH} characters`,
        );
      }
    }
  }
}

/** Field by field, the first declared value wins; the default fills the rest. */
export function resolveCacheHint(...layers: (CacheHintInput | undefined)[]): CacheHint {
  let ttlMs: number | undefined;
  let cacheScope: CacheScope | undefined;
  for (const l of layers) {
    ttlMs ??= l?.ttlMs;
    cacheScope ??= l?.cacheScope;
  }
  return {
    ttlMs: ttlMs ?? DEFAULT_CACHE_HINT.ttlMs,
    cacheScope: cacheScope ?? DEFAULT_CACHE_HINT.cacheScope,
  };
}

export function isDefaultCacheHint(h: CacheHint): boolean {
  return h.ttlMs === DEFAULT_CACHE_HINT.ttlMs && h.cacheScope === DEFAULT_CACHE_HINT.cacheScope;
}

/** The hint of one entry (`key`: name, URI or URI template) in a registry catalog's hints. */
export function cacheHintOf(
  hints: CatalogCacheHints | undefined,
  kind: CacheListKind,
  key: string,
): CacheHint {
  return hints?.[kind]?.[key] ?? DEFAULT_CACHE_HINT;
}

/**
 * One hint for a result made of several parts (a list of entries from several catalogs): as
 * fresh as its least fresh part, and private when any part is. `empty` when there are no parts.
 */
export function combineCacheHints(
  parts: Iterable<CacheHint>,
  empty: CacheHint = DEFAULT_CACHE_HINT,
): CacheHint {
  let ttlMs = Infinity;
  let priv = false;
  let any = false;
  for (const p of parts) {
    any = true;
    ttlMs = Math.min(ttlMs, p.ttlMs);
    priv ||= p.cacheScope === "private";
  }
  return any ? { ttlMs, cacheScope: priv ? "private" : "public" } : { ...empty };
}

/**
 * The hint of a whole list (every page gets the same, as the spec asks of `cacheScope`): the
 * combination of every listed entry's hint and of each contributing catalog's list-level hint.
 * `sources` are the registry catalogs that contribute to the list, with the keys each lists.
 */
export function listCacheHint(
  kind: CacheListKind,
  sources: Iterable<{ hints: CatalogCacheHints | undefined; keys: Iterable<string> }>,
  empty: CacheHint = DEFAULT_CACHE_HINT,
): CacheHint {
  const parts: CacheHint[] = [];
  for (const s of sources) {
    const list = s.hints?.lists?.[kind];
    if (list) parts.push(list);
    for (const k of s.keys) parts.push(cacheHintOf(s.hints, kind, k));
  }
  return combineCacheHints(parts, empty);
}
