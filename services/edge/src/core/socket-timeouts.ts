/**
 * The two clocks of a socket connection (WebSocket, TCP, gRPC): a new connection must
 * initialize or resume a session within `handshakeMs`, and a bound connection with nothing in
 * flight that sends and receives nothing for `idleMs` is closed (its session stays resumable).
 * Without them, connections opened and never used (slowloris) held every slot of the edge's
 * connection limit. 0 disables a clock. One timer per connection, re-armed lazily.
 */
export class SocketTimeouts {
  #timer: NodeJS.Timeout | undefined;
  #bound = false;
  #last = Date.now();
  #stopped = false;

  constructor(
    private readonly opts: { handshakeMs: number; idleMs: number },
    /** Whether requests are still outstanding (an idle clock never cuts a connection waiting on work). */
    private readonly busy: () => boolean,
    private readonly onTimeout: (which: "handshake" | "idle") => void,
  ) {
    if (opts.handshakeMs > 0) this.#arm(opts.handshakeMs);
  }

  /** Something was received or sent. */
  activity(): void {
    this.#last = Date.now();
  }

  /** A session is bound: the handshake clock stops, the idle clock starts. */
  bound(): void {
    if (this.#bound || this.#stopped) return;
    this.#bound = true;
    this.#last = Date.now();
    clearTimeout(this.#timer);
    this.#timer = undefined;
    if (this.opts.idleMs > 0) this.#arm(this.opts.idleMs);
  }

  stop(): void {
    this.#stopped = true;
    clearTimeout(this.#timer);
  }

  #arm(ms: number): void {
    this.#timer = setTimeout(() => this.#fire(), ms);
    this.#timer.unref();
  }

  #fire(): void {
    if (this.#stopped) return;
    if (!this.#bound) {
      this.stop();
      this.onTimeout("handshake");
      return;
    }
    const quiet = Date.now() - this.#last;
    if (quiet >= this.opts.idleMs && !this.busy()) {
      this.stop();
      this.onTimeout("idle");
      return;
    }
    this.#arm(Math.max(50, this.opts.idleMs - quiet));
  }
}
