import { EventEmitter } from "node:events";
import { registryContract, type Bus, type RegistryEntry } from "@mcpq/bus";
import {
  DEFAULT_CACHE_HINT,
  cacheHintOf,
  listCacheHint,
  matchUriTemplate,
  silentLogger,
  type CacheHint,
  type CacheListKind,
  type Logger,
  type PromptDescriptor,
  type ResourceDescriptor,
  type ResourceTemplateDescriptor,
  type ToolDescriptor,
} from "@mcpq/protocol";

export type ListKind = "tools" | "resources" | "prompts";

/** The kinds of entry the catalog remembers as gone for a while. */
type GoneKind = "tool" | "prompt" | "resource" | "template";

/**
 * The edge's view of the registry: a local cache of every live worker's catalog, kept fresh by
 * watching the KV bucket (no per-request lookups). Entries whose heartbeat is older than their
 * TTL are dropped locally even if the broker has not expired them yet. Emits `changed` with the
 * list kinds whose content changed (for `notifications/<kind>/list_changed`).
 */
export class CatalogView extends EventEmitter<{ changed: [ListKind[]]; rebuilt: [] }> {
  readonly #entries = new Map<string, RegistryEntry>();
  #tools: ToolDescriptor[] = [];
  #resources: ResourceDescriptor[] = [];
  #templates: (ResourceTemplateDescriptor & { pool: string; hint: CacheHint })[] = [];
  /** Stateless era: each list's caching hint, from the declarations of the catalogs it is made of. */
  #listHints: Record<CacheListKind, CacheHint> = {
    tools: DEFAULT_CACHE_HINT,
    resources: DEFAULT_CACHE_HINT,
    resourceTemplates: DEFAULT_CACHE_HINT,
    prompts: DEFAULT_CACHE_HINT,
  };
  /** Resource URI -> the declared hint of its `resources/read`. */
  #readHints = new Map<string, CacheHint>();
  #prompts: PromptDescriptor[] = [];
  #toolPool = new Map<string, string>();
  #toolByName = new Map<string, ToolDescriptor>();
  #resourcePool = new Map<string, string>();
  #promptPool = new Map<string, string>();
  /** Names served recently by a worker that has since gone: "unavailable", not "unknown". */
  readonly #gone = new Map<string, number>();
  /** When the latest entry of each kind in `#gone` went (kept with it in `#rebuild`). */
  #lastGone: Partial<Record<GoneKind, number>> = {};
  #signature = { tools: "", resources: "", prompts: "" };
  #sweep: NodeJS.Timeout | undefined;
  #stopWatch: (() => void) | undefined;
  #ready = false;

  constructor(
    private readonly bus: Bus,
    private readonly log: Logger = silentLogger,
    private readonly goneMemoryMs = 10 * 60_000,
  ) {
    super();
  }

  /** The live, routed registry entries by key (read-only; replaced content emits `rebuilt`). */
  get entries(): ReadonlyMap<string, RegistryEntry> {
    return this.#entries;
  }

  get workerCount(): number {
    return this.#entries.size;
  }
  get ready(): boolean {
    return this.#ready;
  }
  /** Pools with a registered (non-shadow) worker. */
  pools(): string[] {
    return [...new Set([...this.#entries.values()].map((e) => e.pool))];
  }

  async start(): Promise<void> {
    const watcher = await this.bus.kv.registry.watch();
    this.#stopWatch = () => watcher.stop();
    let initial = true;
    void (async () => {
      for await (const e of watcher) {
        if (e.operation === "PUT" && e.length > 0) {
          const entry = registryContract.decode(e.value);
          if (!entry) this.log.warn({ key: e.key }, "bad registry entry ignored");
          else if (Date.now() - entry.heartbeatAt < entry.ttlMs && entry.shadow !== true)
            this.#entries.set(e.key, entry);
        } else {
          this.#entries.delete(e.key);
        }
        if (e.delta === 0 && initial) initial = false;
        if (!initial) this.#rebuild();
      }
    })().catch((err: unknown) => this.log.error({ err }, "registry watch ended"));
    // The watcher replays current values first; wait until it has caught up.
    const until = Date.now() + 2_000;
    while (
      initial &&
      Date.now() < until &&
      (await this.bus.kv.registry.status()).values > this.#entries.size
    ) {
      await new Promise((r) => setTimeout(r, 10));
    }
    initial = false;
    this.#rebuild();
    this.#ready = true;
    this.#sweep = setInterval(() => this.#expire(), 500);
    this.#sweep.unref();
  }

  stop(): void {
    clearInterval(this.#sweep);
    this.#stopWatch?.();
  }

  tools(): readonly ToolDescriptor[] {
    return this.#tools;
  }
  resources(): readonly ResourceDescriptor[] {
    return this.#resources;
  }
  resourceTemplates(): readonly ResourceTemplateDescriptor[] {
    return this.#templates.map(({ pool: _p, hint: _h, ...t }) => t);
  }

  /**
   * The caching hint of a list result (every page the same): as fresh as its least fresh entry
   * and private when any entry (or a contributing catalog's list declaration) is; an
   * undeclared entry counts as immediately stale and private (DEFAULT_CACHE_HINT).
   */
  listHint(kind: CacheListKind): CacheHint {
    return this.#listHints[kind];
  }

  /** The declared hint of `resources/read` of `uri` (its resource, else the matching template). */
  readHint(uri: string): CacheHint {
    return (
      this.#readHints.get(uri) ??
      this.#templates.find((t) => matchUriTemplate(t.uriTemplate, uri))?.hint ??
      DEFAULT_CACHE_HINT
    );
  }
  prompts(): readonly PromptDescriptor[] {
    return this.#prompts;
  }

  /** A listed tool by name. */
  tool(name: string): ToolDescriptor | undefined {
    return this.#toolByName.get(name);
  }

  toolPool(name: string): string | undefined {
    return this.#toolPool.get(name);
  }
  promptPool(name: string): string | undefined {
    return this.#promptPool.get(name);
  }
  /** Pool serving `uri`: an exact resource first, then the first matching template. */
  resourcePool(uri: string): string | undefined {
    return (
      this.#resourcePool.get(uri) ??
      this.#templates.find((t) => matchUriTemplate(t.uriTemplate, uri))?.pool
    );
  }
  templatePool(uriTemplate: string): string | undefined {
    return this.#templates.find((t) => t.uriTemplate === uriTemplate)?.pool;
  }
  /**
   * True when `kind:name` was served recently and every worker for it is gone: for a resource,
   * its URI or a resource template matching it (a template named by `completion/complete` is
   * `template`).
   */
  recentlyGone(kind: GoneKind, name: string): boolean {
    const now = Date.now();
    const at = this.#gone.get(`${kind}:${name}`);
    if (at !== undefined && now - at < this.goneMemoryMs) return true;
    if (kind !== "resource" || !this.servedRecently("template")) return false;
    for (const [k, when] of this.#gone)
      if (
        k.startsWith("template:") &&
        now - when < this.goneMemoryMs &&
        matchUriTemplate(k.slice("template:".length), name)
      )
        return true;
    return false;
  }

  /** True when some `kind` entry was served recently and every worker for it is gone. */
  servedRecently(kind: GoneKind): boolean {
    const at = this.#lastGone[kind];
    return at !== undefined && Date.now() - at < this.goneMemoryMs;
  }

  #expire(): void {
    const now = Date.now();
    let changed = false;
    for (const [k, e] of this.#entries) {
      if (now - e.heartbeatAt >= e.ttlMs) {
        this.#entries.delete(k);
        changed = true;
      }
    }
    if (changed) this.#rebuild();
  }

  #rebuild(): void {
    const before = {
      tools: new Set(this.#toolPool.keys()),
      prompts: new Set(this.#promptPool.keys()),
      resources: new Set(this.#resourcePool.keys()),
      templates: new Set(this.#templates.map((t) => t.uriTemplate)),
    };
    const tools = new Map<string, ToolDescriptor>();
    const toolPool = new Map<string, string>();
    const resources = new Map<string, ResourceDescriptor>();
    const resourcePool = new Map<string, string>();
    const templates = new Map<
      string,
      ResourceTemplateDescriptor & { pool: string; hint: CacheHint }
    >();
    const readHints = new Map<string, CacheHint>();
    /** Per list kind, the keys each contributing catalog won (hints come from the catalog that serves the entry). */
    const sources: Record<CacheListKind, Map<RegistryEntry, string[]>> = {
      tools: new Map(),
      resources: new Map(),
      resourceTemplates: new Map(),
      prompts: new Map(),
    };
    const won = (kind: CacheListKind, e: RegistryEntry, key: string) => {
      const keys = sources[kind].get(e);
      if (keys) keys.push(key);
      else sources[kind].set(e, [key]);
    };
    const prompts = new Map<string, PromptDescriptor>();
    const promptPool = new Map<string, string>();
    // Deterministic: sort by key so every edge picks the same pool for a name served by two pools.
    for (const [, e] of [...this.#entries].sort(([a], [b]) => (a < b ? -1 : 1))) {
      for (const t of e.catalog.tools) {
        if (!tools.has(t.name)) {
          tools.set(t.name, t);
          toolPool.set(t.name, e.pool);
          won("tools", e, t.name);
        }
      }
      for (const r of e.catalog.resources) {
        if (!resources.has(r.uri)) {
          resources.set(r.uri, r);
          resourcePool.set(r.uri, e.pool);
          readHints.set(r.uri, cacheHintOf(e.catalog.cacheHints, "resources", r.uri));
          won("resources", e, r.uri);
        }
      }
      for (const t of e.catalog.resourceTemplates) {
        if (!templates.has(t.uriTemplate)) {
          templates.set(t.uriTemplate, {
            ...t,
            pool: e.pool,
            hint: cacheHintOf(e.catalog.cacheHints, "resourceTemplates", t.uriTemplate),
          });
          won("resourceTemplates", e, t.uriTemplate);
        }
      }
      for (const p of e.catalog.prompts) {
        if (!prompts.has(p.name)) {
          prompts.set(p.name, p);
          promptPool.set(p.name, e.pool);
          won("prompts", e, p.name);
        }
      }
    }
    const now = Date.now();
    for (const n of before.tools) if (!toolPool.has(n)) this.#gone.set(`tool:${n}`, now);
    for (const n of before.prompts) if (!promptPool.has(n)) this.#gone.set(`prompt:${n}`, now);
    for (const n of before.resources)
      if (!resourcePool.has(n)) this.#gone.set(`resource:${n}`, now);
    for (const n of toolPool.keys()) this.#gone.delete(`tool:${n}`);
    for (const n of promptPool.keys()) this.#gone.delete(`prompt:${n}`);
    for (const n of resourcePool.keys()) this.#gone.delete(`resource:${n}`);
    for (const t of before.templates) if (!templates.has(t)) this.#gone.set(`template:${t}`, now);
    for (const t of templates.keys()) this.#gone.delete(`template:${t}`);
    const lastGone: Partial<Record<GoneKind, number>> = {};
    for (const [k, at] of this.#gone) {
      // Forgotten after goneMemoryMs: the map stays bounded by what went in that window.
      if (now - at >= this.goneMemoryMs) this.#gone.delete(k);
      else {
        const kind = k.slice(0, k.indexOf(":")) as GoneKind;
        lastGone[kind] = Math.max(lastGone[kind] ?? 0, at);
      }
    }
    this.#lastGone = lastGone;
    const byName = <T extends { name: string }>(a: T, b: T) =>
      a.name < b.name ? -1 : a.name > b.name ? 1 : 0;
    this.#tools = [...tools.values()].sort(byName);
    this.#resources = [...resources.values()].sort(byName);
    this.#templates = [...templates.values()].sort(byName);
    this.#prompts = [...prompts.values()].sort(byName);
    const hints = (kind: CacheListKind) =>
      listCacheHint(
        kind,
        [...sources[kind]].map(([entry, keys]) => ({ hints: entry.catalog.cacheHints, keys })),
      );
    this.#listHints = {
      tools: hints("tools"),
      resources: hints("resources"),
      resourceTemplates: hints("resourceTemplates"),
      prompts: hints("prompts"),
    };
    this.#readHints = readHints;
    this.#toolPool = toolPool;
    this.#toolByName = tools;
    this.#resourcePool = resourcePool;
    this.#promptPool = promptPool;
    const sig = {
      tools: JSON.stringify(this.#tools),
      resources: JSON.stringify([this.#resources, this.#templates]),
      prompts: JSON.stringify(this.#prompts),
    };
    const changed = (Object.keys(sig) as ListKind[]).filter((k) => sig[k] !== this.#signature[k]);
    this.#signature = sig;
    if (changed.length > 0 && this.#ready) this.emit("changed", changed);
    this.emit("rebuilt");
  }
}
