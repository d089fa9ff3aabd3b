import { describe, expect, it } from "vitest";
import { BufferBudget } from "../src/core/buffer-budget.js";

// Direct unit tests of the edge-wide buffered-bytes budget (MCPQ_MAX_BUFFERED_BYTES).
describe("BufferBudget (unit)", () => {
  it("sums what every open account holds; set() is absolute, not a delta", () => {
    const budget = new BufferBudget(1_000);
    const a = budget.open();
    const b = budget.open();
    expect(budget.accounts).toBe(2);
    a.set(300);
    a.set(400);
    b.set(250);
    expect(a.bytes).toBe(400);
    expect(budget.bytes).toBe(650);
    a.set(100);
    expect(budget.bytes).toBe(350);
  });

  it("is exceeded only above the limit, and never with limit 0 (accounting only)", () => {
    const budget = new BufferBudget(1_000);
    const a = budget.open();
    a.set(1_000);
    expect(budget.exceeded).toBe(false);
    a.set(1_001);
    expect(budget.exceeded).toBe(true);
    const unbounded = new BufferBudget(0);
    unbounded.open().set(Number.MAX_SAFE_INTEGER);
    expect(unbounded.exceeded).toBe(false);
    expect(unbounded.bytes).toBe(Number.MAX_SAFE_INTEGER);
  });

  it("close() returns an account's bytes and is idempotent; a closed account ignores set()", () => {
    const budget = new BufferBudget(100);
    const a = budget.open();
    const b = budget.open();
    a.set(80);
    b.set(50);
    expect(budget.exceeded).toBe(true);
    a.close();
    a.close();
    expect(budget.bytes).toBe(50);
    expect(budget.accounts).toBe(1);
    expect(budget.exceeded).toBe(false);
    a.set(1_000);
    expect(budget.bytes).toBe(50);
    expect(a.bytes).toBe(0);
  });

  it("clamps a negative report to zero", () => {
    const budget = new BufferBudget(100);
    const a = budget.open();
    a.set(40);
    a.set(-5);
    expect(a.bytes).toBe(0);
    expect(budget.bytes).toBe(0);
  });
});
