import { randomBytes } from "node:crypto";
import {
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
  /** Give up waiting for the PubAck after this long (rejects with nats.js's `TimeoutError`). */
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

interface Pending {
  cb: PubAckCallback;
  due: number;
}

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
 * The subscription is part of the connection: nats.js renews it after a reconnect.
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
        if (err) p.cb(err, undefined);
        else settle(m, p.cb);
      },
    });
  }

  /** PubAcks awaited now. */
  get inFlight(): number {
    return this.#pending.size;
  }

  /** Publishes `data` to `subject` and resolves with its PubAck (rejects as the class says). */
  publish(subject: string, data: string | Uint8Array, opts?: AckedPublishOptions): Promise<PubAck> {
    return new Promise((resolve, reject) =>
      this.send(subject, data, opts, (err, ack) => (err ? reject(err) : resolve(ack!))),
    );
  }

  /** `publish` with a callback instead of a promise (for fire-and-count callers). */
  send(
    subject: string,
    data: string | Uint8Array,
    opts: AckedPublishOptions | undefined,
    cb: PubAckCallback,
  ): void {
    const token = this.#token++;
    try {
      this.#nc.publish(subject, data, {
        reply: `${this.#inbox}.${token}`,
        ...(opts?.headers ? { headers: opts.headers } : {}),
      });
    } catch (err) {
      cb(err instanceof Error ? err : new Error(String(err)), undefined);
      return;
    }
    this.#pending.set(token, { cb, due: Date.now() + (opts?.timeoutMs ?? this.#timeoutMs) });
    if (this.#sweep === undefined) {
      this.#sweep = setInterval(() => this.#expire(), this.#sweepMs);
      this.#sweep.unref();
    }
  }

  #expire(): void {
    const now = Date.now();
    for (const [token, p] of this.#pending) {
      if (p.due > now) continue;
      this.#pending.delete(token);
      p.cb(new TimeoutError(), undefined);
    }
    if (this.#pending.size === 0) {
      clearInterval(this.#sweep);
      this.#sweep = undefined;
    }
  }
}

function settle(m: Msg, cb: PubAckCallback): void {
  const h = m.headers;
  if (h?.hasError) {
    cb(
      h.code === 503
        ? new NoRespondersError(m.subject)
        : new JetStreamApiError({ code: h.code, err_code: 0, description: h.description }),
      undefined,
    );
    return;
  }
  let ack: { stream?: string; seq?: number; duplicate?: boolean; error?: ApiErrorBody };
  try {
    ack = JSON.parse(decoder.decode(m.data)) as typeof ack;
  } catch (err) {
    cb(new Error("invalid PubAck", { cause: err }), undefined);
    return;
  }
  if (ack.error) cb(new JetStreamApiError(ack.error), undefined);
  else if (!ack.stream) cb(new Error("invalid PubAck"), undefined);
  else cb(undefined, { stream: ack.stream, seq: ack.seq ?? 0, duplicate: ack.duplicate === true });
}

interface ApiErrorBody {
  code: number;
  err_code: number;
  description: string;
}
