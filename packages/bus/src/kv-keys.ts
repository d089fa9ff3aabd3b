import type { KV } from "@nats-io/kv";

/**
 * The keys of `kv` matching `filter`, each once. `KV.keys()` lists through a consumer that
 * keeps delivering while it drains, so a key written during the listing (a worker's heartbeat,
 * a session's touch) can come twice: counted twice by `mcpq status`, or notified twice by a
 * resource-update fan-out. Every listing goes through here.
 */
export async function* distinctKeys(kv: KV, filter?: string): AsyncGenerator<string> {
  const seen = new Set<string>();
  for await (const k of await kv.keys(filter)) {
    if (seen.has(k)) continue;
    seen.add(k);
    yield k;
  }
}
