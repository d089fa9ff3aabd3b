import { describe, expect, it } from "vitest";
import { JetStreamApiError } from "@nats-io/jetstream";
import { errors } from "@nats-io/transport-node";
import { Fault } from "@mcpq/protocol";
import { publishFailure } from "@mcpq/bus";
import { isTransientApiFailure } from "../src/errors.js";

const api = (err_code: number, code: number, description: string) =>
  new JetStreamApiError({ err_code, code, description });

// Pure classification (the real full-stream path runs against nats-server in
// services/edge/test/overload-stream-full.test.ts; what a client sees for each kind is the
// edge's error table, services/edge/test/error-table.test.ts).
describe("publishFailure: JetStream publish errors -> internal faults", () => {
  it.each([
    [api(10077, 503, "maximum messages exceeded"), "stream_full"],
    [api(10077, 503, "maximum bytes exceeded"), "stream_full"],
    [api(10077, 503, "maximum messages per subject exceeded"), "target_queue_full"],
    [api(10047, 500, "insufficient storage resources available"), "stream_full"],
    [api(10028, 500, "insufficient memory resources available"), "stream_full"],
    [api(10023, 503, "insufficient resources"), "stream_full"],
    [api(10167, 429, "too many requests"), "stream_full"],
    // A server with different texts is still matched by code.
    [api(10077, 503, "store failed"), "stream_full"],
    // Other clients: by text.
    [new Error("maximum messages exceeded"), "stream_full"],
    [api(10008, 503, "JetStream system temporarily unavailable"), "broker_unavailable"],
    // What nats.js throws for "no responders" on a JetStream publish (class not exported).
    [
      Object.assign(new Error("jetstream is not enabled"), { name: "JetStreamNotEnabled" }),
      "broker_unavailable",
    ],
    [new errors.TimeoutError(), "broker_unavailable"],
    [new errors.ClosedConnectionError(), "broker_unavailable"],
    [api(10054, 400, "message size exceeds maximum allowed"), "too_large"],
    [new Error("secret detail"), "internal"],
  ])("%s -> %s", (err, kind) => {
    const f = publishFailure(err, 1_500);
    expect(f).toBeInstanceOf(Fault);
    expect(f.kind).toBe(kind);
    expect(f.retryAfterMs).toBe(1_500);
    // The broker's own error stays with the fault for the logs.
    expect(f.cause).toBe(err);
  });

  it("a fault passes through unchanged", () => {
    const f = new Fault("no_worker", "no worker is serving tool x");
    expect(publishFailure(f)).toBe(f);
  });

  it("only timeouts and elections are transient for the JetStream API", () => {
    expect(isTransientApiFailure(new errors.TimeoutError())).toBe(true);
    expect(isTransientApiFailure(api(10008, 503, "JetStream system temporarily unavailable"))).toBe(
      true,
    );
    expect(isTransientApiFailure(api(10058, 400, "stream name already in use"))).toBe(false);
    expect(isTransientApiFailure(api(10077, 503, "maximum messages exceeded"))).toBe(false);
    expect(isTransientApiFailure(new Error("permissions violation"))).toBe(false);
  });
});
