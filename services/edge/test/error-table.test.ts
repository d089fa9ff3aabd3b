import { describe, expect, it } from "vitest";
import { Cancelled, ErrorCode, FAULT_KINDS, Fault, McpError } from "@mcpq/protocol";
import { errorMessage, statusFor, wireError } from "../src/core/http-errors.js";

// The edge's one table from internal faults to what a client sees. The real paths (a full
// stream, a broker outage, a dead pool) run against nats-server in the overload, chaos and
// self-heal tests; this pins the table itself, every kind of it.
describe("the edge's error table", () => {
  const cases: [Fault, number, number, string | undefined][] = [
    [
      new Fault("stream_full", "nats: maximum messages exceeded"),
      ErrorCode.Overloaded,
      503,
      "request queue is full",
    ],
    [
      new Fault("target_queue_full", "nats: maximum messages per subject exceeded"),
      ErrorCode.Overloaded,
      503,
      "request queue for this target is full",
    ],
    [
      new Fault("broker_unavailable", "TimeoutError: timeout"),
      ErrorCode.Overloaded,
      503,
      "broker unavailable",
    ],
    [
      new Fault("request_lost", "queued in a lost stream"),
      ErrorCode.Overloaded,
      503,
      "the broker lost the queued request (restart); it may be retried",
    ],
    [
      new Fault("no_worker", "no worker is serving tool echo"),
      ErrorCode.Unavailable,
      503,
      "no worker is serving tool echo",
    ],
    [
      new Fault("not_started", "queued past its start-by"),
      ErrorCode.Overloaded,
      503,
      "no worker could start the request within the queue-time bound",
    ],
    [
      new Fault("too_large", "nats: message size exceeds maximum allowed"),
      ErrorCode.InvalidRequest,
      400,
      undefined,
    ],
    [new Fault("session_gone", "gone"), ErrorCode.InvalidRequest, 400, undefined],
    [new Cancelled("user pressed stop"), ErrorCode.RequestTimeout, 200, undefined],
    [
      new Fault("internal", "nats: permissions violation for secret.subject"),
      ErrorCode.InternalError,
      500,
      undefined,
    ],
  ];

  it("covers every fault kind", () => {
    expect(cases.map(([f]) => f.kind).sort()).toEqual([...FAULT_KINDS].sort());
  });

  it.each(cases)("%s -> code %i, HTTP %i", (fault, code, status, reason) => {
    const e = wireError(fault);
    expect(e).toBeInstanceOf(McpError);
    expect(e.code).toBe(code);
    expect(statusFor(fault).status).toBe(status);
    // Nothing of the internal message (a broker's error text) reaches the wire, except the
    // no_worker sentence, which the thrower writes for the client.
    const wire = JSON.stringify(errorMessage(7, fault).json);
    if (fault.kind !== "no_worker") expect(wire).not.toContain(fault.message);
    if (reason === undefined) {
      expect(e.retryable).toBe(code === ErrorCode.RequestTimeout);
      return;
    }
    expect(e.retryable).toBe(true);
    expect(e.data).toMatchObject({ reason });
    expect(statusFor(fault).headers["retry-after"]).toMatch(/^\d+$/);
  });

  it("a thrower's retry hint wins over the table's default", () => {
    const e = wireError(new Fault("stream_full", "full", { retryAfterMs: 4_200 }));
    expect(e.data).toEqual({ reason: "request queue is full", retryAfterMs: 4_200 });
    expect(statusFor(new Fault("stream_full", "full", { retryAfterMs: 4_200 })).headers).toEqual({
      "retry-after": "5",
    });
  });

  it("an McpError passes as it is; anything else is -32603 without its text", () => {
    const mcp = new McpError(ErrorCode.InvalidParams, "Unknown tool: x");
    expect(wireError(mcp)).toBe(mcp);
    const json = errorMessage("a", new Error("stack and secrets")).json;
    expect(JSON.parse(json)).toEqual({
      jsonrpc: "2.0",
      id: "a",
      error: { code: ErrorCode.InternalError, message: "Internal error" },
    });
    expect(statusFor(new Error("x")).status).toBe(500);
  });
});
