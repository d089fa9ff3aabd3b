/**
 * A request's cancellation, whose `AbortSignal` exists only once something asks for it. Node's
 * `AbortController` is an EventTarget: building one and adding and removing a listener cost ~5 %
 * of a worker's CPU per call in the profile, though almost no handler reads `ctx.signal`. The
 * worker's own waits listen here (`onAbort`); a handler that reads `ctx.signal` gets a real
 * signal, already aborted if the request was.
 */
export class LazyAbort {
  #controller: AbortController | undefined;
  #aborted = false;
  #reason: unknown;
  #listeners: (() => void)[] | undefined;

  get aborted(): boolean {
    return this.#aborted;
  }

  get reason(): unknown {
    return this.#reason;
  }

  /** The request's AbortSignal (built at the first read). */
  get signal(): AbortSignal {
    if (!this.#controller) {
      this.#controller = new AbortController();
      if (this.#aborted) this.#controller.abort(this.#reason);
    }
    return this.#controller.signal;
  }

  /** Aborts once (later calls are ignored): the signal's listeners first, then `onAbort`'s. */
  abort(reason: unknown): void {
    if (this.#aborted) return;
    this.#aborted = true;
    this.#reason = reason;
    this.#controller?.abort(reason);
    const listeners = this.#listeners;
    this.#listeners = undefined;
    if (listeners) for (const l of listeners) l();
  }

  throwIfAborted(): void {
    if (this.#aborted) throw this.#reason;
  }

  /** Calls `fn` once on abort (not if aborted already); returns the way to stop listening. */
  onAbort(fn: () => void): () => void {
    if (this.#aborted) return noop;
    (this.#listeners ??= []).push(fn);
    return () => {
      const i = this.#listeners?.indexOf(fn) ?? -1;
      if (i >= 0) this.#listeners!.splice(i, 1);
    };
  }
}

function noop(): void {}
