import type { ServerResponse } from "node:http";
import type { BufferAccount, BufferBudget } from "../core/buffer-budget.js";
import type { OutboundMessage, StreamSink } from "../core/outbound.js";
import { SendBuffer } from "../core/send-buffer.js";

export interface SseOptions {
  /**
   * Bytes the socket may still hold unsent when the next message is due before the reader is
   * cut off as a slow consumer (checked before writing: see SendBuffer).
   */
  maxBufferedBytes: number;
  keepaliveMs: number;
  /** Messages queued before the stream is opened (admission still pending). */
  maxQueued?: number;
  onSlowConsumer?: () => void;
  /** SSE `retry:` (ms) of the priming event, and when a worker asks the client to reconnect without saying when. */
  retryMs?: number;
  /** Edge-wide buffered-bytes accounting: unsent socket bytes plus queued messages are reported. */
  buffers?: BufferBudget;
  /**
   * How long a stream opened with `answerDue` holds its head for the first message (ms;
   * MCPQ_SSE_HOLD_MS): a quick response leaves with it in one socket write. 0 = never held.
   */
  holdMs?: number;
}

/**
 * One Server-Sent Events stream over a raw Node response: frames messages as `id`/`data`
 * events, sends keepalive comments, and cuts off a reader that stops reading (bounded buffer,
 * the same rule as the socket transports'; a replay is paced by `ready()`). Messages sent before
 * `open()` are queued (bounded) so nothing related to a request is lost while the request is
 * still being admitted.
 */
export class SseStream implements StreamSink {
  #opened = false;
  #closed = false;
  #queue: OutboundMessage[] = [];
  #keepalive: NodeJS.Timeout | undefined;
  readonly #closeWaiters: (() => void)[] = [];
  /** Opened with a priming event id: the client can resume, so the edge may close it early. */
  #resumable = false;
  #reconnectOnOpen: { retryMs: number | undefined } | undefined;
  /** `finish()` came before `open()`: the stream ends once its queued messages are out. */
  #finishOnOpen = false;
  /** Status line, headers and priming event not written yet: held for the first message (see `open`). */
  #head: { headers: Record<string, string>; priming: string } | undefined;
  #hold: NodeJS.Timeout | undefined;
  readonly #account: BufferAccount | undefined;
  #queuedBytes = 0;
  readonly #sendBuffer: SendBuffer;
  /** Re-reports what the socket still holds once a write is flushed (one bound function, no per-write closure). */
  readonly #flushed = () => {
    this.#report();
    this.#sendBuffer.drained();
  };

  constructor(
    private readonly res: ServerResponse,
    private readonly opts: SseOptions,
  ) {
    this.#account = opts.buffers?.open();
    this.#sendBuffer = new SendBuffer({
      maxBytes: opts.maxBufferedBytes,
      held: () => res.writableLength,
      cutOff: () => this.cutOff(),
    });
    res.on("close", () => {
      this.#markClosed();
      this.#account?.close();
    });
    // Bytes written before end() stay accounted until the socket has taken them.
    res.on("finish", () => this.#account?.close());
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** Called once when the stream opens, before anything is written (a subclass takes the response over). */
  protected opened(): void {}

  /**
   * Runs `cb` once when the stream ends for any reason (at once if it has): what a held stream
   * does at its end without a promise and a suspended handler per stream.
   */
  onClosed(cb: () => void): void {
    if (this.#closed) cb();
    else this.#closeWaiters.push(cb);
  }

  /**
   * Opens the stream: status line, headers, the priming event (with the `retry:` of
   * `retryMs`) and what was queued. With `answerDue`, a stream that has nothing to send yet
   * holds its head up to `holdMs` for the first message, so a quick response leaves with the
   * head in one socket write (one write per call instead of two); after `holdMs` the head goes
   * out alone, as without it.
   */
  open(headers: Record<string, string>, primingEventId?: string, answerDue = false): void {
    if (this.#closed || this.#opened) return;
    this.#opened = true;
    this.opened();
    const retryMs = this.opts.retryMs;
    const holdMs = answerDue ? (this.opts.holdMs ?? 0) : 0;
    if (primingEventId !== undefined) this.#resumable = true;
    this.#head = {
      headers,
      // SEP-1699 priming event: an id the client can resume from, no data.
      priming:
        primingEventId === undefined
          ? ""
          : `id: ${primingEventId}\n${retryMs ? `retry: ${retryMs}\n` : ""}data: \n\n`,
    };
    const queued = this.#queue;
    this.#queue = [];
    this.#queuedBytes = 0;
    if (holdMs > 0 && queued.length === 0 && !this.#finishOnOpen && !this.#reconnectOnOpen) {
      this.#hold = setTimeout(() => this.#writeHead(), holdMs);
    } else {
      this.#writeHead();
      // Queued messages go out as one burst, unchecked: a reader offered nothing yet is not slow
      // (the queue is bounded by maxQueued); the send-buffer rule applies from the next message.
      for (const m of queued) this.res.write(frameOf(m), this.#flushed);
      this.#report();
      if (this.#finishOnOpen) return this.end();
    }
    if (this.opts.keepaliveMs > 0) {
      this.#keepalive = setInterval(() => {
        if (this.#closed) return;
        this.#writeHead();
        this.res.write(": keepalive\n\n");
      }, this.opts.keepaliveMs);
      this.#keepalive.unref();
    }
    const pending = this.#reconnectOnOpen;
    this.#reconnectOnOpen = undefined;
    if (pending) this.reconnect(pending.retryMs);
  }

  /** Writes the held head (once); what is written in the same tick leaves with it in one write. */
  #writeHead(): void {
    const head = this.#head;
    if (!head) return;
    this.#head = undefined;
    clearTimeout(this.#hold);
    if (this.#closed) return;
    this.res.writeHead(200, {
      "content-type": "text/event-stream",
      "cache-control": "no-cache, no-transform",
      // A client that sent `Connection: close` is answered so (Node then closes after the stream).
      connection: this.res.shouldKeepAlive ? "keep-alive" : "close",
      "x-accel-buffering": "no",
      ...head.headers,
    });
    // The socket is corked, not the response: on Node 22 and 24 `res.cork(); res.write(a);
    // res.end(b)` sends `a` and drops `b` (a chunked response's corked buffer), which lost
    // every answer that came within the head hold. `end()` fully uncorks the socket itself.
    const socket = this.res.socket;
    socket?.cork();
    process.nextTick(() => {
      if (socket?.writableCorked) socket.uncork();
      // Nothing written yet (a resumed stream with nothing to replay): send the headers anyway.
      if (!this.res.writableEnded) this.res.flushHeaders();
    });
    if (head.priming) this.res.write(head.priming);
  }

  send(msg: OutboundMessage): void {
    if (this.#closed || this.#finishOnOpen) return;
    if (!this.#opened) {
      if (this.#queue.length >= (this.opts.maxQueued ?? 1_000)) return this.cutOff();
      this.#queue.push(msg);
      this.#queuedBytes += msg.json.length;
      this.#report();
      return;
    }
    this.#write(msg);
  }

  /**
   * StreamSink: resolves once the socket holds at most half the bound (a replay waits on it
   * between messages); a reader that makes no room in time is cut off (see SendBuffer).
   */
  ready(): Promise<void> {
    return this.#opened ? this.#sendBuffer.ready() : Promise.resolve();
  }

  /**
   * StreamSink: a worker asked the client to reconnect (SEP-1699 polling). Only a primed stream
   * is closed (its client resumes with GET + Last-Event-ID); others carry on until the response.
   */
  reconnect(retryMs: number | undefined): void {
    if (this.#closed) return;
    if (!this.#opened) {
      this.#reconnectOnOpen = { retryMs };
      return;
    }
    if (this.#resumable) this.closeWithRetry(retryMs);
  }

  /**
   * Asks the client to reconnect after `retryMs` (default the `retryMs` option, else 1 s) and
   * closes the connection (the stream stays resumable).
   */
  closeWithRetry(retryMs?: number): void {
    if (this.#closed) return;
    this.#writeHead();
    this.res.write(`retry: ${retryMs ?? this.opts.retryMs ?? 1_000}\n\n`);
    this.end();
  }

  end(): void {
    if (this.#closed) return;
    this.#writeHead();
    this.res.end();
    this.#markClosed();
  }

  /**
   * Sends the final message and ends the stream in one write (the response of a POST stream).
   * Before `open()` it is queued, and the stream ends as soon as it opened.
   */
  finish(msg: OutboundMessage): void {
    if (this.#closed || this.#finishOnOpen) return;
    if (!this.#opened) {
      this.send(msg);
      this.#finishOnOpen = !this.#closed;
      return;
    }
    this.#writeHead();
    this.res.end(frameOf(msg));
    this.#markClosed();
  }

  /** Drops a reader that stopped reading; its messages remain resumable from JetStream. */
  cutOff(): void {
    if (this.#closed) return;
    this.opts.onSlowConsumer?.();
    this.res.destroy();
    this.#markClosed();
  }

  /** Writes one message unless the socket still holds more than the bound: then cuts the reader off. */
  #write(m: OutboundMessage): void {
    this.#writeHead();
    if (!this.#sendBuffer.admit()) return;
    this.res.write(frameOf(m), this.#flushed);
    this.#report();
  }

  #report(): void {
    this.#account?.set(this.res.writableLength + this.#queuedBytes);
  }

  #markClosed(): void {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#keepalive);
    clearTimeout(this.#hold);
    this.#sendBuffer.close();
    this.#queue = [];
    this.#queuedBytes = 0;
    this.#report();
    for (const w of this.#closeWaiters.splice(0)) w();
  }
}

function frameOf(m: OutboundMessage): string {
  return m.eventId
    ? `id: ${m.eventId}\nevent: message\ndata: ${m.json}\n\n`
    : `event: message\ndata: ${m.json}\n\n`;
}
