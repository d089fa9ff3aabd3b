import {
  ErrorCode,
  Fault,
  McpError,
  rejection,
  errorResponse,
  type FaultKind,
  type JsonRpcErrorObject,
  type RequestId,
} from "@mcpq/protocol";
import type { OutboundMessage } from "./outbound.js";

/**
 * The one table from internal faults to what a client sees: the JSON-RPC code, the sentence
 * (`data.reason` of a retryable refusal, else the message) and the default retry hint. A
 * `no_worker` sentence is the thrower's own (it names the target or pool); every other kind has
 * a fixed sentence, so nothing of a broker's error text reaches the wire.
 */
const FAULT_TABLE: Record<
  FaultKind,
  { code: number; say: string | ((f: Fault) => string); retryAfterMs?: number }
> = {
  stream_full: { code: ErrorCode.Overloaded, say: "request queue is full", retryAfterMs: 1_000 },
  target_queue_full: {
    code: ErrorCode.Overloaded,
    say: "request queue for this target is full",
    retryAfterMs: 1_000,
  },
  broker_unavailable: {
    code: ErrorCode.Overloaded,
    say: "broker unavailable",
    retryAfterMs: 1_000,
  },
  request_lost: {
    code: ErrorCode.Overloaded,
    say: "the broker lost the queued request (restart); it may be retried",
    retryAfterMs: 1_000,
  },
  no_worker: { code: ErrorCode.Unavailable, say: (f) => f.message, retryAfterMs: 2_000 },
  not_started: {
    code: ErrorCode.Overloaded,
    say: "no worker could start the request within the queue-time bound",
    retryAfterMs: 1_000,
  },
  too_large: { code: ErrorCode.InvalidRequest, say: "Request too large for the request queue" },
  session_gone: { code: ErrorCode.InvalidRequest, say: "Session not found" },
  // A cancelled request gets no answer; this is only what a cancel racing an answer would show.
  cancelled: { code: ErrorCode.RequestTimeout, say: "Request cancelled" },
  internal: { code: ErrorCode.InternalError, say: "Internal error" },
};

/**
 * The client-facing error for anything thrown at the edge: an `McpError` as it is, a fault
 * through the table above, anything else -32603 "Internal error" (the original kept as `cause`
 * for the logs, never on the wire).
 */
export function wireError(err: unknown): McpError {
  if (err instanceof McpError) return err;
  if (err instanceof Fault) {
    const row = FAULT_TABLE[err.kind];
    const say = typeof row.say === "string" ? row.say : row.say(err);
    if (row.retryAfterMs === undefined)
      return new McpError(row.code, say, undefined, { cause: err.cause ?? err });
    return rejection(
      row.code as Parameters<typeof rejection>[0],
      say,
      err.retryAfterMs ?? row.retryAfterMs,
    );
  }
  return new McpError(ErrorCode.InternalError, "Internal error", undefined, { cause: err });
}

/**
 * The one JSON-RPC error answer the edge makes, as the stream message it is: `err` as its wire
 * form (`wireError`: an McpError as is, a fault through the edge's error table, anything else
 * -32603 "Internal error" without internals).
 */
export function errorMessage(id: RequestId | null, err: unknown): OutboundMessage {
  return {
    eventId: undefined,
    kind: "response",
    requestId: undefined,
    json: JSON.stringify(errorResponse(id, wireError(err).toJSON())),
  };
}

/** Whether `err` is neither a client-facing error nor a fault: a bug, worth an error log. */
export function isUnexpected(err: unknown): boolean {
  return !(err instanceof McpError) && !(err instanceof Fault);
}

/** An HTTP-level refusal with its status and JSON-RPC error body (id null). */
export interface HttpRefusal {
  status: number;
  headers: Record<string, string>;
  body: { jsonrpc: "2.0"; id: null; error: JsonRpcErrorObject };
}

export function refusal(
  status: number,
  code: number,
  message: string,
  headers: Record<string, string> = {},
  data?: unknown,
): HttpRefusal {
  return {
    status,
    headers,
    body: {
      jsonrpc: "2.0",
      id: null,
      error: data === undefined ? { code, message } : { code, message, data },
    },
  };
}

/**
 * The one table of HTTP statuses for JSON-RPC errors answered without a stream. Legacy era
 * (`statusFor`): 429/503 with Retry-After for refusals, 400 for malformed requests, else 200.
 * Stateless era (`modernStatus`, Streamable HTTP 2026-07-28) on top: -32601 is 404; header
 * mismatch, missing client capability and unsupported version are 400.
 */
export function modernStatus(code: number, fallback: number): number {
  switch (code) {
    case ErrorCode.MethodNotFound:
      return 404;
    case ErrorCode.HeaderMismatch:
    case ErrorCode.MissingRequiredClientCapability:
    case ErrorCode.UnsupportedProtocolVersion:
      return 400;
    default:
      return fallback;
  }
}

/**
 * HTTP status for an error thrown before a request was accepted (legacy mapping; see
 * `modernStatus`); a fault is mapped through the table above first.
 */
export function statusFor(thrown: unknown): { status: number; headers: Record<string, string> } {
  const err = wireError(thrown);
  if (err.code === ErrorCode.InternalError && !(thrown instanceof McpError))
    return { status: 500, headers: {} };
  const retryAfterMs = (err.data as { retryAfterMs?: number } | undefined)?.retryAfterMs;
  const retry: Record<string, string> =
    retryAfterMs !== undefined
      ? { "retry-after": String(Math.max(1, Math.ceil(retryAfterMs / 1000))) }
      : {};
  switch (err.code) {
    case ErrorCode.RateLimited:
      return { status: 429, headers: retry };
    case ErrorCode.Overloaded:
    case ErrorCode.Unavailable:
      return { status: 503, headers: retry };
    case ErrorCode.ParseError:
    case ErrorCode.InvalidRequest:
      return { status: 400, headers: {} };
    default:
      return { status: 200, headers: {} };
  }
}
