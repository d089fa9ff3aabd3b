import { describe, expect, it } from "vitest";
import {
  ErrorCode,
  McpError,
  classifyMessage,
  negotiateProtocolVersion,
  parseJson,
  rejection,
  toWireError,
  allowsBatching,
  matchUriTemplate,
  logLevelPasses,
  salvageId,
} from "../src/index.js";

describe("JSON-RPC classification", () => {
  it("classifies requests, notifications and responses", () => {
    expect(classifyMessage({ jsonrpc: "2.0", id: 1, method: "ping" }).kind).toBe("request");
    expect(classifyMessage({ jsonrpc: "2.0", method: "notifications/initialized" }).kind).toBe(
      "notification",
    );
    expect(classifyMessage({ jsonrpc: "2.0", id: "a", result: {} }).kind).toBe("response");
    expect(classifyMessage({ jsonrpc: "2.0", id: 3, error: { code: -1, message: "x" } }).kind).toBe(
      "response",
    );
  });

  it.each([
    ["a non-object", 42],
    ["an array", [1]],
    ["wrong version", { jsonrpc: "1.0", id: 1, method: "ping" }],
    ["a null id on a request", { jsonrpc: "2.0", id: null, method: "ping" }],
    ["a fractional id", { jsonrpc: "2.0", id: 1.5, method: "ping" }],
    ["params that are not an object", { jsonrpc: "2.0", id: 1, method: "ping", params: [1] }],
    ["an empty method", { jsonrpc: "2.0", id: 1, method: "" }],
    ["neither method nor result", { jsonrpc: "2.0", id: 1 }],
  ])("rejects %s with -32600", (_label, value) => {
    expect(() => classifyMessage(value)).toThrowError(
      expect.objectContaining({ code: ErrorCode.InvalidRequest }),
    );
  });

  it("maps malformed JSON to -32700", () => {
    expect(() => parseJson("{nope")).toThrowError(
      expect.objectContaining({ code: ErrorCode.ParseError }),
    );
    expect(parseJson('{"a":1}')).toEqual({ a: 1 });
  });

  it("salvages ids from invalid messages when it can", () => {
    expect(salvageId({ id: 7, jsonrpc: "1.0" })).toBe(7);
    expect(salvageId({ id: { x: 1 } })).toBeNull();
  });
});

describe("version negotiation", () => {
  it("echoes a supported version and answers the latest otherwise", () => {
    for (const v of ["2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05"])
      expect(negotiateProtocolVersion(v)).toBe(v);
    expect(negotiateProtocolVersion("2099-01-01")).toBe("2025-11-25");
    expect(negotiateProtocolVersion(undefined)).toBe("2025-11-25");
  });
  it("allows batches only before 2025-06-18", () => {
    expect(allowsBatching("2025-03-26")).toBe(true);
    expect(allowsBatching("2024-11-05")).toBe(true);
    expect(allowsBatching("2025-06-18")).toBe(false);
    expect(allowsBatching("2025-11-25")).toBe(false);
  });
});

describe("error mapping", () => {
  it("passes protocol errors through and hides everything else", () => {
    expect(toWireError(new McpError(-32602, "bad", { field: "x" }))).toEqual({
      code: -32602,
      message: "bad",
      data: { field: "x" },
    });
    const internal = new Error("db password=hunter2 at /srv/x.ts:12");
    const wire = toWireError(internal);
    expect(wire).toEqual({ code: -32603, message: "Internal error" });
    expect(JSON.stringify(wire)).not.toContain("hunter2");
  });
  it("rejections are retryable and carry retryAfterMs", () => {
    const r = rejection(ErrorCode.RateLimited, "tool calls per second", 1234.2);
    expect(r.retryable).toBe(true);
    expect(r.message).toBe("rate limited: tool calls per second");
    expect(r.toJSON()).toEqual({
      code: -32011,
      message: "rate limited: tool calls per second",
      data: { reason: "tool calls per second", retryAfterMs: 1235 },
    });
    expect(rejection(ErrorCode.Overloaded, "queue full", 10).message).toMatch(/^overloaded/);
    expect(new McpError(ErrorCode.InvalidParams, "x").retryable).toBe(false);
  });
});

describe("helpers", () => {
  it("matches URI templates", () => {
    expect(matchUriTemplate("test://template/{id}/data", "test://template/123/data")).toEqual({
      id: "123",
    });
    expect(matchUriTemplate("test://template/{id}/data", "test://template/1/2/data")).toBeNull();
    expect(matchUriTemplate("file:///{+path}", "file:///a/b.txt")).toEqual({ path: "a/b.txt" });
  });
  it("orders log levels", () => {
    expect(logLevelPasses("error", "warning")).toBe(true);
    expect(logLevelPasses("debug", "info")).toBe(false);
  });
});
