import { DeliverPolicy } from "@nats-io/jetstream";
import { LRUCache } from "lru-cache";
import { STREAMS, decodeRecords, type Bus, type RequestRecord } from "@mcpq/bus";
import { matchesSelection, selectionFilterSubject, type ResolvedSelection } from "./selection.js";

export interface ReadRecordsOptions {
  /** Called as messages are read (seen = messages read, matched = records yielded, invalid = records failing `RecordSchema`). */
  onProgress?(p: { seen: number; matched: number; invalid: number; lastSeq: number }): void;
  /** Give up when the server sends nothing for this long (ms). Default 10 000. */
  idleMs?: number;
}

/** MCPQ_REC does not exist: nothing was ever recorded on this NATS. */
export class NoRecordsStreamError extends Error {
  override readonly name = "NoRecordsStreamError";
  readonly code = "replay.no_records_stream";
  constructor(cause?: unknown) {
    super(
      `stream ${STREAMS.records} not found: no worker has recorded on this NATS (are workers running with MCPQ_RECORD=off?)`,
      { cause },
    );
  }
}

/**
 * Reads the records a selection matches from MCPQ_REC with an ordered consumer (no acks, no
 * durable state, deleted afterwards) filtered by subject and starting at `since` (opt_start_time).
 * Bounded: it stops at the last stream sequence present when it started, so live traffic recorded
 * meanwhile is never read. Every record is validated with `RecordSchema`; invalid ones are
 * counted. A message may hold several records (a worker's batch); a request id among the last
 * `RECENT_IDS` records read is skipped (a request that ran twice because its ack was lost, its
 * records in two batches, which the stream's duplicate window cannot catch).
 */
export async function* readRecords(
  bus: Bus,
  sel: ResolvedSelection,
  opts: ReadRecordsOptions = {},
): AsyncGenerator<RequestRecord> {
  let lastSeq: number;
  try {
    const info = await bus.jsm.streams.info(STREAMS.records);
    if (info.state.messages === 0) return;
    lastSeq = info.state.last_seq;
  } catch (err) {
    if (err instanceof Error && /not found/i.test(err.message)) throw new NoRecordsStreamError(err);
    throw err;
  }
  const consumer = await bus.js.consumers.get(STREAMS.records, {
    filter_subjects: selectionFilterSubject(sel),
    ...(sel.since !== undefined
      ? { opt_start_time: new Date(sel.since).toISOString() }
      : { deliver_policy: DeliverPolicy.All }),
  });
  let seen = 0;
  let matched = 0;
  let invalid = 0;
  const recent = new LRUCache<string, true>({ max: RECENT_IDS });
  try {
    const info = await consumer.info(true);
    if (info.num_pending === 0) return;
    const messages = await consumer.consume({ max_messages: 256 });
    const idleMs = opts.idleMs ?? 10_000;
    let idle = setTimeout(() => messages.stop(), idleMs);
    try {
      read: for await (const m of messages) {
        clearTimeout(idle);
        idle = setTimeout(() => messages.stop(), idleMs);
        const seq = m.info.streamSequence;
        if (seq > lastSeq) break;
        seen++;
        const decoded = decodeRecords(m.data);
        invalid += decoded.invalid;
        for (const rec of decoded.records) {
          if (recent.has(rec.requestId)) continue;
          recent.set(rec.requestId, true);
          if (!matchesSelection(rec, sel)) continue;
          matched++;
          yield rec;
          if (sel.limit !== undefined && matched >= sel.limit) break read;
        }
        opts.onProgress?.({ seen, matched, invalid, lastSeq });
        if (seq >= lastSeq || m.info.pending === 0) break;
      }
    } finally {
      clearTimeout(idle);
      messages.stop();
    }
  } finally {
    opts.onProgress?.({ seen, matched, invalid, lastSeq });
    await consumer.delete().catch(() => undefined);
  }
}

/** Collects `readRecords` into an array. */
export async function collectRecords(
  bus: Bus,
  sel: ResolvedSelection,
  opts: ReadRecordsOptions = {},
): Promise<RequestRecord[]> {
  const out: RequestRecord[] = [];
  for await (const r of readRecords(bus, sel, opts)) out.push(r);
  return out;
}

/** How many of the latest request ids `readRecords` remembers to drop a repeated record. */
const RECENT_IDS = 65_536;
