import { describe, expect, it } from "vitest";
import { requestBudget } from "../src/core/session-core.js";

// Direct unit tests of a routed request's deadline budget (MCPQ_REQUEST_TIMEOUT_MS,
// MCPQ_MAX_REQUEST_TIMEOUT_MS, `_meta["io.mcpq/timeoutMs"]` and `_meta["io.mcpq/deadline"]`).
const NOW = 1_700_000_000_000;
const budget = (meta: Record<string, unknown>) => requestBudget(meta, NOW, 30_000, 300_000);

describe("requestBudget (unit)", () => {
  it("is the default without _meta, and the client's timeoutMs when it states one", () => {
    expect(budget({})).toBe(30_000);
    expect(budget({ "io.mcpq/timeoutMs": 500 })).toBe(500);
    expect(budget({ "io.mcpq/timeoutMs": "750" })).toBe(750);
  });

  it("never exceeds the cap", () => {
    expect(budget({ "io.mcpq/timeoutMs": 10_000_000 })).toBe(300_000);
    expect(requestBudget({}, NOW, 30_000, 5_000)).toBe(5_000);
  });

  it("ignores a malformed timeoutMs (text, zero, negative, null)", () => {
    for (const v of ["soon", 0, -5, null, Number.NaN, Number.POSITIVE_INFINITY])
      expect(budget({ "io.mcpq/timeoutMs": v })).toBe(30_000);
  });

  it("an absolute deadline shortens the budget, the earlier of the two winning", () => {
    expect(budget({ "io.mcpq/deadline": NOW + 1_234 })).toBe(1_234);
    expect(budget({ "io.mcpq/deadline": NOW + 60_000, "io.mcpq/timeoutMs": 2_000 })).toBe(2_000);
    expect(budget({ "io.mcpq/deadline": NOW + 60_000 })).toBe(30_000);
    expect(budget({ "io.mcpq/deadline": NOW + 10.9 })).toBe(10);
  });

  it("a deadline already past gives zero or less (admission sheds it); a malformed one is ignored", () => {
    expect(budget({ "io.mcpq/deadline": NOW })).toBe(0);
    expect(budget({ "io.mcpq/deadline": NOW - 5_000 })).toBe(-5_000);
    for (const v of ["tomorrow", 0, -1, null])
      expect(budget({ "io.mcpq/deadline": v })).toBe(30_000);
  });
});
