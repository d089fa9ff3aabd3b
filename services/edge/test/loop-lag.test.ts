import { describe, expect, it } from "vitest";
import { eventually } from "@mcpq/testkit";
import { LoopLagMonitor } from "../src/core/loop-lag.js";

/** Blocks the event loop for `ms` (the stall the monitor measures). */
function stall(ms: number): void {
  const until = Date.now() + ms;
  while (Date.now() < until) {
    /* busy */
  }
}

// The monitor on its own: a stall shuts the door, and an on-time tick afterwards opens it again
// without waiting out the stall's length (the backlog was read in the poll phase after it).
describe("LoopLagMonitor", () => {
  it("refuses while a stall is in progress and right after it, then opens at the first on-time tick, long before the stall's length has passed", async () => {
    const m = new LoopLagMonitor(100);
    try {
      expect(m.shedFor()).toBe(0);
      stall(3_000);
      // the tick is overdue now: a request read here is refused
      expect(m.shedFor()).toBeGreaterThan(100);
      // the next tick sees the stall ...
      await new Promise((r) => setImmediate(r));
      await eventually(() => m.takeMaxLagMs() > 1_000, { what: "the stall measured" });
      // ... and an on-time tick after it opens the door; holding for the stall's length would
      // keep it shut for 3 s, past this bound
      await eventually(() => m.shedFor() === 0, { timeoutMs: 2_500, what: "the door open again" });
    } finally {
      m.close();
    }
  });

  it("0 disables it", () => {
    const m = new LoopLagMonitor(0);
    stall(150);
    expect(m.shedFor()).toBe(0);
    m.close();
  });
});
