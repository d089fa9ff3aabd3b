import type { ServerResponse } from "node:http";
import type { OutboundMessage, StreamSink } from "../core/outbound.js";

export interface SseOptions {
  /** Bytes the socket may hold unsent before the reader is cut off as a slow consumer. */
  maxBufferedBytes: number;
  keepaliveMs: number;
  /** Messages queued before the stream is opened (admission still pending). */
  maxQueued?: number;
  onSlowConsumer?: () => void;
}

/**
 * One Server-Sent Events stream over a raw Node response: frames messages as `id`/`data`
 * events, sends keepalive comments, and cuts off a reader that stops reading (bounded buffer).
 * Messages sent before `open()` are queued (bounded) so nothing related to a request is lost
 * while the request is still being admitted.
 */
export class SseStream implements StreamSink {
  #opened = false;
  #closed = false;
  #queue: OutboundMessage[] = [];
  #keepalive: NodeJS.Timeout | undefined;
  readonly #closeWaiters: (() => void)[] = [];

  constructor(
    private readonly res: ServerResponse,
    private readonly opts: SseOptions,
  ) {
    res.on("close", () => this.#markClosed());
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** Resolves when the stream ends for any reason (client gone, cut off, or ended). */
  whenClosed(): Promise<void> {
    return this.#closed ? Promise.resolve() : new Promise((r) => this.#closeWaiters.push(r));
  }

  open(headers: Record<string, string>, primingEventId?: string, retryMs?: number): void {
    if (this.#closed || this.#opened) return;
    this.res.writeHead(200, {
      "content-type": "text/event-stream",
      "cache-control": "no-cache, no-transform",
      connection: "keep-alive",
      "x-accel-buffering": "no",
      ...headers,
    });
    this.#opened = true;
    this.res.flushHeaders();
    if (primingEventId !== undefined) {
      // SEP-1699 priming event: an id the client can resume from, no data.
      this.res.write(`id: ${primingEventId}\n${retryMs ? `retry: ${retryMs}\n` : ""}data: \n\n`);
    }
    for (const m of this.#queue) this.#write(m);
    this.#queue = [];
    if (this.opts.keepaliveMs > 0) {
      this.#keepalive = setInterval(() => {
        if (!this.#closed) this.res.write(": keepalive\n\n");
      }, this.opts.keepaliveMs);
      this.#keepalive.unref();
    }
  }

  send(msg: OutboundMessage): void {
    if (this.#closed) return;
    if (!this.#opened) {
      if (this.#queue.length >= (this.opts.maxQueued ?? 1_000)) return this.cutOff();
      this.#queue.push(msg);
      return;
    }
    this.#write(msg);
  }

  /** Asks the client to reconnect after `retryMs` and closes the connection (the stream stays resumable). */
  closeWithRetry(retryMs: number): void {
    if (this.#closed) return;
    this.res.write(`retry: ${retryMs}\n\n`);
    this.end();
  }

  end(): void {
    if (this.#closed) return;
    this.res.end();
    this.#markClosed();
  }

  /** Drops a reader that stopped reading; its messages remain resumable from JetStream. */
  cutOff(): void {
    if (this.#closed) return;
    this.opts.onSlowConsumer?.();
    this.res.destroy();
    this.#markClosed();
  }

  #write(m: OutboundMessage): void {
    const frame = m.eventId ? `id: ${m.eventId}\nevent: message\ndata: ${m.json}\n\n` : `event: message\ndata: ${m.json}\n\n`;
    this.res.write(frame);
    if (this.res.writableLength > this.opts.maxBufferedBytes) this.cutOff();
  }

  #markClosed(): void {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#keepalive);
    this.#queue = [];
    for (const w of this.#closeWaiters.splice(0)) w();
  }
}
