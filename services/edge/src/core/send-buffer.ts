/** How often a waiting replay re-checks the send buffer when no `drain` comes. */
const READY_POLL_MS = 100;
/** How long a replay waits for a reader to make room before cutting it off. */
const READY_MAX_WAIT_MS = 10_000;

export interface SendBufferOptions {
  /** The bound (MCPQ_MAX_SEND_BUFFER_BYTES); `Infinity` leaves the rule to another layer. */
  maxBytes: number;
  /** Bytes accepted for the connection but not yet handed to the network. */
  held(): number;
  /** Cuts the reader off as a slow consumer (and should end up calling `close()`). */
  cutOff(held: number): void;
}

/**
 * The slow-consumer rule of one connection or SSE stream's bounded send buffer, shared by every
 * transport (SSE streams, WebSocket, TCP, gRPC, legacy SSE):
 *
 * - Before each message is written, a connection that still holds more than the bound from
 *   earlier writes is a reader that stopped reading: the message is refused and the reader is
 *   cut off. The check comes before the write, so one message larger than the bound, sent to a
 *   reader that keeps up, is written (the buffer may briefly hold the bound plus one message).
 * - A replay waits between messages (`ready()`) until at most half the bound is held, so a
 *   large replay is paced by the reader instead of piling up; a reader that makes no room for
 *   READY_MAX_WAIT_MS is cut off, so a replay never waits, nor buffers live messages, forever.
 */
export class SendBuffer {
  #closed = false;
  #waiters: (() => void)[] = [];
  #poll: NodeJS.Timeout | undefined;

  constructor(private readonly opts: SendBufferOptions) {}

  /** Before a write: true when the message may be written; false once the reader was cut off. */
  admit(): boolean {
    if (this.#closed) return false;
    const held = this.opts.held();
    if (held <= this.opts.maxBytes) return true;
    this.opts.cutOff(held);
    return false;
  }

  /**
   * Resolves once at most half the bound is held (or the connection is gone). A reader that
   * makes no room for READY_MAX_WAIT_MS is cut off, which resolves the wait.
   */
  ready(): Promise<void> {
    if (this.#closed || this.#hasRoom()) return Promise.resolve();
    return new Promise((r) => {
      this.#waiters.push(r);
      if (this.#poll) return;
      const since = Date.now();
      // `drain` only follows a write the socket refused; a small bound may never see one.
      this.#poll = setInterval(() => {
        if (Date.now() - since < READY_MAX_WAIT_MS) return this.drained();
        this.opts.cutOff(this.opts.held());
        this.close();
      }, READY_POLL_MS);
    });
  }

  /** The transport made progress sending (socket `drain`, a write callback). */
  drained(): void {
    if (this.#waiters.length > 0 && (this.#closed || this.#hasRoom())) this.#wake();
  }

  /** The connection is gone: nothing more is admitted; waiting replays go on (and stop). */
  close(): void {
    this.#closed = true;
    this.#wake();
  }

  #hasRoom(): boolean {
    return this.opts.held() <= this.opts.maxBytes / 2;
  }

  #wake(): void {
    clearInterval(this.#poll);
    this.#poll = undefined;
    for (const w of this.#waiters.splice(0)) w();
  }
}
