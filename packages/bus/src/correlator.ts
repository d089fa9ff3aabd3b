/**
 * The requests one process has in flight: a deadline timer per entry and a hard cap on how many
 * may wait (a full correlator is an overload signal, never unbounded). It is told when a request
 * is answered (the value is the answer, for the caller's bookkeeping); it never delivers answers.
 */
export class Correlator<T> {
  readonly #pending = new Map<
    string,
    { resolve: (v: T) => void; reject: (e: unknown) => void; timer: NodeJS.Timeout }
  >();

  constructor(private readonly maxPending: number) {}

  get size(): number {
    return this.#pending.size;
  }

  get full(): boolean {
    return this.#pending.size >= this.maxPending;
  }

  /**
   * Registers `id`; the promise settles with the first `resolve(id, ...)`, or rejects with
   * `onTimeout()` at `deadline` (epoch ms).
   */
  wait(id: string, deadline: number, onTimeout: () => unknown): Promise<T> {
    if (this.#pending.has(id)) throw new Error(`duplicate correlation id ${id}`);
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(
        () => {
          this.#pending.delete(id);
          reject(onTimeout());
        },
        Math.max(0, deadline - Date.now()),
      );
      timer.unref?.();
      this.#pending.set(id, { resolve, reject, timer });
    });
  }

  /** Delivers a value; false when nobody waits (late or duplicate delivery, dropped by caller). */
  resolve(id: string, value: T): boolean {
    const p = this.#pending.get(id);
    if (!p) return false;
    clearTimeout(p.timer);
    this.#pending.delete(id);
    p.resolve(value);
    return true;
  }

  /** True while `id` is awaited (its deadline timer has not fired and nothing settled it). */
  has(id: string): boolean {
    return this.#pending.has(id);
  }

  reject(id: string, err: unknown): boolean {
    const p = this.#pending.get(id);
    if (!p) return false;
    clearTimeout(p.timer);
    this.#pending.delete(id);
    p.reject(err);
    return true;
  }
}
