import type { JetStreamManager } from "@nats-io/jetstream";
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

/**
 * How many keys of the KV bucket `bucket` match `pattern` (a key pattern: `*` one token, `>` the
 * rest), counted by the server: stream info filtered to the pattern's subjects lists each key
 * once (expired ones have aged out; ones removed with `eraseKey` leave no marker). It creates
 * nothing on the server (a temporary consumer per count made nats-server's memory grow with
 * every count). Used for per-principal caps (sessions, tasks) that hold across processes.
 */
export async function countKeys(
  jsm: JetStreamManager,
  bucket: string,
  pattern: string,
): Promise<number> {
  const si = await jsm.streams.info(`KV_${bucket}`, {
    subjects_filter: `$KV.${bucket}.${pattern}`,
  });
  return si.state.subjects ? Object.keys(si.state.subjects).length : 0;
}

/**
 * Removes the key `key` of the KV bucket `bucket` without leaving a purge or delete marker (a
 * stream purge by subject), so it stops counting in `countKeys` at once. Watchers see nothing;
 * use it only for index keys nobody watches.
 */
export async function eraseKey(jsm: JetStreamManager, bucket: string, key: string): Promise<void> {
  await jsm.streams.purge(`KV_${bucket}`, { filter: `$KV.${bucket}.${key}` });
}
