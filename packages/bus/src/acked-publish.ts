import { randomBytes } from "node:crypto";
import {
  ClosedConnectionError,
  NoRespondersError,
  TimeoutError,
  type Msg,
  type MsgHdrs,
  type NatsConnection,
} from "@nats-io/transport-node";
import { JetStreamApiError } from "@nats-io/jetstream";

/** Where JetStream stored a message (a publish's PubAck). */
export interface PubAck {
  stream: string;
  seq: number;
  /** The message id was seen within the stream's duplicate window: stored once, earlier. */
  duplicate: boolean;
}

/** Options of one acked publish. */
export interface AckedPublishOptions {
  /** Headers (a message id goes in as `Nats-Msg-Id`, set by the caller). */
  headers?: MsgHdrs | undefined;
  /**
   * Give up waiting for the PubAck after at most this long (rejects with nats.js's
   * `TimeoutError`, up to one sweep, 100 ms, early).
   */
  timeoutMs?: number | undefined;
}

/** Called once per publish: the PubAck, or why there is none. */
export type PubAckCallback = (err: Error | undefined, ack: PubAck | undefined) => void;

/** What a `Bus` offers of an `AckedPublisher` (a guarded view may wrap `publish`). */
export interface AckedPublish {
  publish(subject: string, data: string | Uint8Array, opts?: AckedPublishOptions): Promise<PubAck>;
  send(
    subject: string,
    data: string | Uint8Array,
    opts: AckedPublishOptions | undefined,
    cb: PubAckCallback,
  ): void;
  readonly inFlight: number;
}

/** An awaited PubAck: `[resolve, reject, due]` (a closure per publish measured ~15 µs dearer). */
type Pending = [resolve: (ack: PubAck) => void, reject: (err: Error) => void, due: number];

const decoder = new TextDecoder();

/**
 * JetStream publishes whose PubAcks come back on one subscription of this connection, matched
 * by a token in the reply subject (`<inbox>.pa-<random>.<token>`). nats.js's `js.publish` makes
 * each publish a request with its own muxed entry, timer, promises and a copy of its options;
 * this costs a map entry per publish and one sweep timer (every `sweepMs`, only while PubAcks
 * are awaited) for the whole connection. Failures are nats.js's own error classes, so
 * `publishFailure` and `publishMayHaveLanded` classify them alike:
 * - a PubAck with an error: `JetStreamApiError` (stream full, message too large, …);
 * - no stream takes the subject (the server answers 503): `NoRespondersError`;
 * - no PubAck within the timeout: `TimeoutError` (the message may have been stored);
 * - the connection refused the publish (closed, draining, payload over max_payload): its error.
 * The subscription is part of the connection: nats.js renews it after a reconnect. PubAcks still
 * awaited when the connection closes reject at once with `ClosedConnectionError`.
 */
export class AckedPublisher implements AckedPublish {
  readonly #nc: NatsConnection;
  readonly #inbox: string;
  readonly #timeoutMs: number;
  readonly #sweepMs: number;
  readonly #pending = new Map<number, Pending>();
  #token = 0;
  #sweep: NodeJS.Timeout | undefined;

  constructor(
    nc: NatsConnection,
    opts: {
      /** The connection's reply-subject prefix (its credential may subscribe only below it). */
      inboxPrefix: string;
      /** Default PubAck timeout (ms). */
      timeoutMs: number;
      /** How often waiting PubAcks are checked against their timeouts (ms). Default 100. */
      sweepMs?: number;
    },
  ) {
    this.#nc = nc;
    this.#inbox = `${opts.inboxPrefix}.pa-${randomBytes(8).toString("hex")}`;
    this.#timeoutMs = opts.timeoutMs;
    this.#sweepMs = opts.sweepMs ?? 100;
    const prefix = this.#inbox.length + 1;
    nc.subscribe(`${this.#inbox}.*`, {
      callback: (err, m) => {
        const token = Number(m?.subject.slice(prefix));
        const p = this.#pending.get(token);
        if (!p) return; // given up on already
        this.#pending.delete(token);
        if (err) p[1](err);
        else settle(m, p);
      },
    });
    void nc.closed().then(() => {
      const waiting = [...this.#pending.values()];
      this.#pending.clear();
      clearInterval(this.#sweep);
      this.#sweep = undefined;
      for (const p of waiting) p[1](new ClosedConnectionError());
    });
  }

  /** PubAcks awaited now. */
  get inFlight(): number {
    return this.#pending.size;
  }

  /** Publishes `data` to `subject` and resolves with its PubAck (rejects as the class says). */
  publish(subject: string, data: string | Uint8Array, opts?: AckedPublishOptions): Promise<PubAck> {
    return new Promise((resolve, reject) => this.#start(subject, data, opts, resolve, reject));
  }

  /** `publish` with a callback instead of a promise (for fire-and-count callers). */
  send(
    subject: string,
    data: string | Uint8Array,
    opts: AckedPublishOptions | undefined,
    cb: PubAckCallback,
  ): void {
    this.#start(
      subject,
      data,
      opts,
      (ack) => cb(undefined, ack),
      (err) => cb(err, undefined),
    );
  }

  #start(
    subject: string,
    data: string | Uint8Array,
    opts: AckedPublishOptions | undefined,
    resolve: Pending[0],
    reject: Pending[1],
  ): void {
    const token = this.#token++;
    try {
      this.#nc.publish(
        subject,
        data,
        opts?.headers
          ? { reply: `${this.#inbox}.${token}`, headers: opts.headers }
          : { reply: `${this.#inbox}.${token}` },
      );
    } catch (err) {
      reject(err instanceof Error ? err : new Error(String(err)));
      return;
    }
    this.#pending.set(token, [resolve, reject, Date.now() + (opts?.timeoutMs ?? this.#timeoutMs)]);
    if (this.#sweep === undefined) {
      this.#sweep = setInterval(() => this.#expire(), this.#sweepMs);
      this.#sweep.unref();
    }
  }

  #expire(): void {
    // Up to one sweep early rather than up to one sweep late: a caller that bounds the wait by a
    // deadline (the edge's request publish) must hear of the timeout before the deadline passes,
    // as it did with a timer per publish.
    const cutoff = Date.now() + this.#sweepMs;
    for (const [token, p] of this.#pending) {
      if (p[2] > cutoff) continue;
      this.#pending.delete(token);
      p[1](new TimeoutError());
    }
    if (this.#pending.size === 0) {
      clearInterval(this.#sweep);
      this.#sweep = undefined;
    }
  }
}

function settle(m: Msg, [resolve, reject]: Pending): void {
  const h = m.headers;
  if (h?.hasError) {
    reject(
      h.code === 503
        ? new NoRespondersError(m.subject)
        : new JetStreamApiError({ code: h.code, err_code: 0, description: h.description }),
    );
    return;
  }
  let ack: { stream?: string; seq?: number; duplicate?: boolean; error?: ApiErrorBody };
  try {
    ack = JSON.parse(decoder.decode(m.data)) as typeof ack;
  } catch (err) {
    reject(new Error("invalid PubAck", { cause: err }));
    return;
  }
  if (ack.error) reject(new JetStreamApiError(ack.error));
  else if (!ack.stream) reject(new Error("invalid PubAck"));
  else resolve({ stream: ack.stream, seq: ack.seq ?? 0, duplicate: ack.duplicate === true });
}

interface ApiErrorBody {
  code: number;
  err_code: number;
  description: string;
}
