/**
 * Edge-wide accounting of bytes held for clients: data written to sockets but not yet sent
 * (SSE `writableLength`, WebSocket `bufferedAmount`, ...) plus outbound messages queued in memory.
 * Transports open one `BufferAccount` per stream or socket and report what it holds; admission
 * control rejects new work (-32010, HTTP 503) while the total is over the budget.
 */
export class BufferBudget {
  #bytes = 0;
  #accounts = 0;

  /** `limit` in bytes; 0 means unbounded (accounting only). */
  constructor(readonly limit: number) {}

  /** Bytes currently held across every open account. */
  get bytes(): number {
    return this.#bytes;
  }

  /** Open accounts (streams/sockets reporting). */
  get accounts(): number {
    return this.#accounts;
  }

  /** True while the held bytes exceed the budget; new routed requests are then rejected. */
  get exceeded(): boolean {
    return this.limit > 0 && this.#bytes > this.limit;
  }

  /** Opens an account for one stream or socket; `close()` it when the stream ends. */
  open(): BufferAccount {
    this.#accounts++;
    return new BufferAccount(
      this,
      (delta) => {
        this.#bytes += delta;
      },
      () => {
        this.#accounts--;
      },
    );
  }
}

/** What one stream or socket holds; `set` reports the current total, `close` returns it to zero. */
export class BufferAccount {
  #held = 0;
  #closed = false;

  constructor(
    readonly budget: BufferBudget,
    private readonly adjust: (delta: number) => void,
    private readonly onClose: () => void,
  ) {}

  get bytes(): number {
    return this.#held;
  }

  /** Reports the bytes this stream holds now (absolute, not a delta). Ignored after `close`. */
  set(bytes: number): void {
    if (this.#closed) return;
    const next = Math.max(0, bytes);
    if (next === this.#held) return;
    this.adjust(next - this.#held);
    this.#held = next;
  }

  /** Releases everything this account held; idempotent. */
  close(): void {
    if (this.#closed) return;
    this.set(0);
    this.#closed = true;
    this.onClose();
  }
}
