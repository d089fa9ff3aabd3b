import { afterEach, describe, expect, it, vi } from "vitest";
import { SendBuffer } from "../src/core/send-buffer.js";

// Direct unit tests of the slow-consumer rule every transport shares (MCPQ_MAX_SEND_BUFFER_BYTES),
// with a fake connection whose held bytes the test sets. Fake timers drive ready()'s poll.

function connection(maxBytes: number) {
  const c = {
    held: 0,
    cutOffs: [] as number[],
    buffer: undefined as unknown as SendBuffer,
  };
  c.buffer = new SendBuffer({
    maxBytes,
    held: () => c.held,
    cutOff: (held) => {
      c.cutOffs.push(held);
      c.buffer.close();
    },
  });
  return c;
}

/** Whether a promise has settled, after the microtasks queued so far have run. */
async function settled(p: Promise<unknown>): Promise<boolean> {
  let done = false;
  void p.then(() => (done = true));
  await Promise.resolve();
  await Promise.resolve();
  return done;
}

describe("SendBuffer (unit)", () => {
  afterEach(() => vi.useRealTimers());

  it("admits while at most the bound is held, so one message larger than the bound still goes to a reader that keeps up", () => {
    const c = connection(1_000);
    expect(c.buffer.admit()).toBe(true);
    c.held = 1_000;
    expect(c.buffer.admit()).toBe(true);
    // A 5,000-byte message was just written: the buffer holds more than the bound until it drains.
    c.held = 0;
    expect(c.buffer.admit()).toBe(true);
    expect(c.cutOffs).toEqual([]);
  });

  it("cuts the reader off when the bound is still exceeded at the next message, and admits nothing after", () => {
    const c = connection(1_000);
    c.held = 1_001;
    expect(c.buffer.admit()).toBe(false);
    expect(c.cutOffs).toEqual([1_001]);
    c.held = 0;
    expect(c.buffer.admit()).toBe(false);
    expect(c.cutOffs).toEqual([1_001]);
  });

  it("ready() resolves at once with room (at most half the bound held), else on the drain that makes room", async () => {
    const c = connection(1_000);
    c.held = 500;
    expect(await settled(c.buffer.ready())).toBe(true);
    c.held = 501;
    const wait = c.buffer.ready();
    c.buffer.drained();
    expect(await settled(wait)).toBe(false);
    c.held = 400;
    c.buffer.drained();
    expect(await settled(wait)).toBe(true);
  });

  it("ready() polls for room when no drain comes (a small bound may never see one)", async () => {
    vi.useFakeTimers();
    const c = connection(1_000);
    c.held = 900;
    const wait = c.buffer.ready();
    await vi.advanceTimersByTimeAsync(300);
    expect(await settled(wait)).toBe(false);
    c.held = 0;
    await vi.advanceTimersByTimeAsync(100);
    expect(await settled(wait)).toBe(true);
    expect(c.cutOffs).toEqual([]);
  });

  it("a reader that makes no room for 10 s is cut off, which resolves every waiting ready()", async () => {
    vi.useFakeTimers();
    const c = connection(1_000);
    c.held = 900;
    const waits = [c.buffer.ready(), c.buffer.ready()];
    await vi.advanceTimersByTimeAsync(9_900);
    expect(c.cutOffs).toEqual([]);
    await vi.advanceTimersByTimeAsync(200);
    expect(c.cutOffs).toEqual([900]);
    expect(await settled(Promise.all(waits))).toBe(true);
    expect(c.buffer.admit()).toBe(false);
    expect(vi.getTimerCount()).toBe(0);
  });

  it("close() wakes waiting replays and stops admitting", async () => {
    const c = connection(1_000);
    c.held = 900;
    const wait = c.buffer.ready();
    c.buffer.close();
    expect(await settled(wait)).toBe(true);
    c.held = 0;
    expect(c.buffer.admit()).toBe(false);
    expect(await settled(c.buffer.ready())).toBe(true);
  });
});
