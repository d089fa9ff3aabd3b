/**
 * The internal error family: what went wrong inside mcpq, as a string code that never crosses
 * the wire. Packages throw these (the bus for a broker refusal, the worker SDK and the edge for
 * a cancellation, the session store for a session that ended); the edge's one error table
 * (services/edge/src/core/http-errors.ts) turns each into the JSON-RPC error and HTTP status a
 * client sees. The client-facing family is `McpError` (errors.ts); anything else thrown is a bug
 * and reaches a client only as -32603 "Internal error".
 */
export const FAULT_KINDS = [
  /** MCPQ_REQ is at its message or byte limit (or broker storage is exhausted). */
  "stream_full",
  /** The target's own share of MCPQ_REQ (`max_msgs_per_subject`) is used up. */
  "target_queue_full",
  /** JetStream cannot be reached or answer now (timeout, no responders, disabled, disconnected). */
  "broker_unavailable",
  /** The request is larger than the request stream's maximum message size. */
  "too_large",
  /** The broker lost a request that was queued (a stream re-created after a broker fault). */
  "request_lost",
  /** No worker serves the target now: all of its workers are gone, or the pool's liveness stopped. */
  "no_worker",
  /** No worker took the queued request before its start-by time (the edge's MCPQ_MAX_QUEUE_MS). */
  "not_started",
  /** The client cancelled the request (notifications/cancelled, or its stream went away). */
  "cancelled",
  /** The session ended (deleted or expired) while a request was using it. */
  "session_gone",
  /** A broker operation failed in a way no client can act on (kept as `cause` for the logs). */
  "internal",
] as const;
export type FaultKind = (typeof FAULT_KINDS)[number];

/**
 * An internal failure with its kind. `message` is for logs (never sent as is); `retryAfterMs`
 * is the thrower's hint for a retryable kind (the edge's table has a default per kind).
 * No stack is captured: faults are expected, high-rate outcomes (refusals in a storm), and an
 * `internal` fault keeps the real error, with its stack, as `cause`.
 */
export class Fault extends Error {
  readonly kind: FaultKind;
  readonly retryAfterMs: number | undefined;

  constructor(
    kind: FaultKind,
    message: string,
    opts: { retryAfterMs?: number | undefined; cause?: unknown } = {},
  ) {
    const limit = Error.stackTraceLimit;
    Error.stackTraceLimit = 0;
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    Error.stackTraceLimit = limit;
    this.kind = kind;
    this.retryAfterMs = opts.retryAfterMs;
  }
}
Object.defineProperty(Fault.prototype, "name", { value: "Fault" });

/** The one representation of a cancellation, wherever it is raised (edge or worker). */
export class Cancelled extends Fault {
  constructor(reason?: string) {
    super("cancelled", reason ?? "cancelled");
  }
}

/** Whether `err` is a fault (of `kind`, when given). */
export function isFault(err: unknown, kind?: FaultKind): err is Fault {
  return err instanceof Fault && (kind === undefined || err.kind === kind);
}
