import { describe, expect, it } from "vitest";
import { LazyAbort } from "../src/lazy-abort.js";

// The worker's per-request cancellation: a handler that reads ctx.signal gets a real AbortSignal
// that follows the request, whether it reads it before or after the abort.
describe("LazyAbort", () => {
  it("a signal read before the abort fires with the reason; onAbort listeners run after it, once", () => {
    const a = new LazyAbort();
    const order: string[] = [];
    const signal = a.signal;
    expect(a.signal).toBe(signal);
    signal.addEventListener("abort", () => order.push(`signal:${String(signal.reason)}`));
    a.onAbort(() => order.push("listener"));
    const stop = a.onAbort(() => order.push("stopped"));
    stop();
    a.abort("cancelled");
    a.abort("again");
    expect(order).toEqual(["signal:cancelled", "listener"]);
    expect(a.aborted).toBe(true);
    expect(a.reason).toBe("cancelled");
  });

  it("a signal first read after the abort is already aborted with the same reason", () => {
    const a = new LazyAbort();
    const reason = new Error("timed out");
    a.abort(reason);
    expect(a.signal.aborted).toBe(true);
    expect(a.signal.reason).toBe(reason);
    expect(() => a.throwIfAborted()).toThrow(reason);
    let called = false;
    a.onAbort(() => (called = true));
    expect(called).toBe(false);
  });

  it("without an abort nothing fires and throwIfAborted passes", () => {
    const a = new LazyAbort();
    let called = false;
    a.onAbort(() => (called = true));
    expect(() => a.throwIfAborted()).not.toThrow();
    expect(a.aborted).toBe(false);
    expect(a.signal.aborted).toBe(false);
    expect(called).toBe(false);
  });
});
