import { describe, expect, it } from "vitest";
import { SocketTimeouts } from "../src/core/socket-timeouts.js";

const fired = (t: (cb: (w: "handshake" | "idle") => void) => SocketTimeouts) =>
  new Promise<"handshake" | "idle">((resolve) => t(resolve));

describe("socket clocks", () => {
  it("a connection that never binds a session hits the handshake clock", async () => {
    expect(
      await fired((cb) => new SocketTimeouts({ handshakeMs: 20, idleMs: 0 }, () => false, cb)),
    ).toBe("handshake");
  });
  it("a bound connection idles out only once nothing is outstanding", async () => {
    let busy = true;
    let checks = 0;
    const which = await fired((cb) => {
      const t = new SocketTimeouts(
        { handshakeMs: 0, idleMs: 20 },
        () => {
          // Outstanding work for the first few checks: the clock re-arms instead of firing.
          if (++checks >= 3) busy = false;
          return busy;
        },
        cb,
      );
      t.bound();
      return t;
    });
    expect(which).toBe("idle");
    expect(checks).toBeGreaterThanOrEqual(3);
  });
});
