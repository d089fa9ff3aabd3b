import { describe, expect, it } from "vitest";
import { JetStreamApiError } from "@nats-io/jetstream";
import { errors } from "@nats-io/transport-node";
import { ErrorCode } from "@mcpq/protocol";
import {
  BROKER_UNAVAILABLE_REASON,
  QUEUE_FULL_REASON,
  TARGET_QUEUE_FULL_REASON,
  publishFailure,
} from "@mcpq/bus";

const api = (err_code: number, code: number, description: string) =>
  new JetStreamApiError({ err_code, code, description });

// Pure mapping (the real full-stream path runs against nats-server in services/edge/test/overload-stream-full.test.ts).
describe("publishFailure: JetStream publish errors -> client-facing errors", () => {
  it.each([
    [api(10077, 503, "maximum messages exceeded"), QUEUE_FULL_REASON],
    [api(10077, 503, "maximum bytes exceeded"), QUEUE_FULL_REASON],
    [api(10077, 503, "maximum messages per subject exceeded"), TARGET_QUEUE_FULL_REASON],
    [api(10047, 500, "insufficient storage resources available"), QUEUE_FULL_REASON],
    [api(10028, 500, "insufficient memory resources available"), QUEUE_FULL_REASON],
    [api(10023, 503, "insufficient resources"), QUEUE_FULL_REASON],
    [api(10167, 429, "too many requests"), QUEUE_FULL_REASON],
    // A server with different texts is still matched by code.
    [api(10077, 503, "store failed"), QUEUE_FULL_REASON],
    // Other clients: by text.
    [new Error("maximum messages exceeded"), QUEUE_FULL_REASON],
    [api(10008, 503, "JetStream system temporarily unavailable"), BROKER_UNAVAILABLE_REASON],
    // What nats.js throws for "no responders" on a JetStream publish (class not exported).
    [
      Object.assign(new Error("jetstream is not enabled"), { name: "JetStreamNotEnabled" }),
      BROKER_UNAVAILABLE_REASON,
    ],
    [new errors.TimeoutError(), BROKER_UNAVAILABLE_REASON],
    [new errors.ClosedConnectionError(), BROKER_UNAVAILABLE_REASON],
  ])("%s -> overloaded (%s)", (err, reason) => {
    const e = publishFailure(err, 1_500);
    expect(e.code).toBe(ErrorCode.Overloaded);
    expect(e.retryable).toBe(true);
    expect(e.message).toBe(`overloaded: ${reason}`);
    expect(e.data).toEqual({ reason, retryAfterMs: 1_500 });
  });

  it("a request over the stream's message size is not retryable", () => {
    const e = publishFailure(api(10054, 400, "message size exceeds maximum allowed"), 1_000);
    expect(e.code).toBe(ErrorCode.InvalidRequest);
    expect(e.retryable).toBe(false);
  });

  it("anything else is an internal error with nothing leaked", () => {
    const e = publishFailure(new Error("secret detail"), 1_000);
    expect(e.code).toBe(ErrorCode.InternalError);
    expect(e.message).toBe("Internal error");
  });
});
