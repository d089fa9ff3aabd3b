import { describe, expect, it } from "vitest";
import { deepFreeze } from "@mcpq/protocol";
import { loadWorkerConfig } from "@mcpq/worker";
import { loadEdgeConfig } from "../src/env.js";

describe("service configs: parsed once, deep-frozen, bad values named", () => {
  it("the edge config is frozen all the way down (lists and broker limits too)", () => {
    const cfg = loadEdgeConfig({ MCPQ_ALLOWED_HOSTS: "a.example,b.example" });
    expect(Object.isFrozen(cfg)).toBe(true);
    expect(Object.isFrozen(cfg.allowedHosts)).toBe(true);
    expect(Object.isFrozen(cfg.busLimits)).toBe(true);
    expect(() => (cfg.allowedHosts as string[]).push("evil.example")).toThrow(TypeError);
    expect(cfg.allowedHosts).toEqual(["a.example", "b.example"]);
  });

  it("the edge's heap growth: V8's own by default, a percentage when set, a negative one refused", () => {
    expect(loadEdgeConfig({}).heapGrowingPercent).toBe(0);
    expect(loadEdgeConfig({ MCPQ_HEAP_GROWING_PERCENT: "20" }).heapGrowingPercent).toBe(20);
    expect(() => loadEdgeConfig({ MCPQ_HEAP_GROWING_PERCENT: "-5" })).toThrow(
      /MCPQ_HEAP_GROWING_PERCENT/,
    );
  });

  it("the worker config is frozen all the way down", () => {
    const cfg = loadWorkerConfig({
      MCPQ_CATALOGS: "example",
      MCPQ_RECORD_REDACT: "arguments.password",
    });
    expect(Object.isFrozen(cfg.record)).toBe(true);
    expect(Object.isFrozen(cfg.record.redact)).toBe(true);
    expect(Object.isFrozen(cfg.catalogs)).toBe(true);
    expect(cfg.pool).toBe("example");
  });

  it.each([
    [{ MCPQ_PORT: "70000" }, /MCPQ_PORT: expected a port number 0-65535/],
    [{ MCPQ_TCP_PORT: "-1" }, /MCPQ_TCP_PORT/],
    [{ MCPQ_GRPC_PORT: "65536" }, /MCPQ_GRPC_PORT: expected a port number 0-65535/],
  ])("the edge refuses %j naming the variable", (env, message) => {
    expect(() => loadEdgeConfig(env)).toThrow(message);
  });

  it("the worker refuses an out-of-range metrics port naming the variable", () => {
    expect(() => loadWorkerConfig({ MCPQ_WORKER_METRICS_PORT: "99999" })).toThrow(
      /MCPQ_WORKER_METRICS_PORT: expected a port number/,
    );
  });

  it("the worker's per-principal task quota: 100 by default, 0 turns it off, a negative one is refused", () => {
    expect(loadWorkerConfig({}).tasksMaxPerPrincipal).toBe(100);
    expect(loadWorkerConfig({ MCPQ_TASKS_MAX_PER_PRINCIPAL: "0" }).tasksMaxPerPrincipal).toBe(0);
    expect(() => loadWorkerConfig({ MCPQ_TASKS_MAX_PER_PRINCIPAL: "-1" })).toThrow(
      /MCPQ_TASKS_MAX_PER_PRINCIPAL/,
    );
  });

  it("deepFreeze leaves class instances (Maps) alone and returns its argument", () => {
    const m = new Map([["k", "v"]]);
    const o = { m, list: [{ x: 1 }] };
    expect(deepFreeze(o)).toBe(o);
    expect(Object.isFrozen(o.list[0])).toBe(true);
    expect(Object.isFrozen(m)).toBe(false);
  });
});
