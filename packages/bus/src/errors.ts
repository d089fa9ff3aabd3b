import { JetStreamApiError } from "@nats-io/jetstream";
import { Fault } from "@mcpq/protocol";

/**
 * JetStream API error codes (`err_code` of a publish ack) that mean "the broker cannot take more
 * now". nats-server errors.json: 10077 JSStreamStoreFailedF (503; "maximum messages exceeded",
 * "maximum bytes exceeded", "maximum messages per subject exceeded" for discard-new streams),
 * 10047 JSStorageResourcesExceededErr, 10028 JSMemoryResourcesExceededErr,
 * 10023 JSInsufficientResourcesErr, 10002 JSAccountResourcesExceededErr,
 * 10167 JSStreamTooManyRequests (429; newer servers throttling a stream's ingest).
 */
const JS_FULL_CODES: ReadonlySet<number> = new Set([10077, 10047, 10028, 10023, 10002, 10167]);
/** 10008 JSClusterNotAvailErr, 10039/10076 JetStream not enabled (for the account). */
const JS_UNAVAILABLE_CODES: ReadonlySet<number> = new Set([10008, 10039, 10076]);
/** 10054 JSStreamMessageExceedsMaximumErr: retrying the same request cannot help. */
const JS_TOO_LARGE_CODE = 10054;
/** 10071 JSStreamWrongLastSequenceErr: a compare-and-set (KV update at a revision) lost a race. */
const JS_WRONG_LAST_SEQUENCE_CODE = 10071;

/**
 * Whether a JetStream publish or KV update was refused because its expected last sequence
 * (revision) is no longer the latest: another writer got in first. Matched by `err_code`, with
 * the description text as a fallback, like `publishFailure`.
 */
export function isWrongLastSequence(err: unknown): boolean {
  if (err instanceof JetStreamApiError) return err.code === JS_WRONG_LAST_SEQUENCE_CODE;
  return /wrong last sequence/i.test(err instanceof Error ? err.message : String(err));
}

/**
 * Whether a JetStream API call failed because its stream or consumer does not exist (10059
 * JSStreamNotFoundErr, 10014 JSConsumerNotFoundErr, HTTP-style 404; the text as a fallback):
 * nothing has provisioned it yet, or it was lost (memory storage across a restart).
 */
export function isNotFound(err: unknown): boolean {
  if (err instanceof JetStreamApiError)
    return (
      err.code === 10059 ||
      err.code === 10014 ||
      err.status === 404 ||
      /not found/i.test(err.message)
    );
  return err instanceof Error && /not found/i.test(err.message);
}

/**
 * Whether a JetStream API call failed only for now: its request timed out, or the meta leader or
 * the stream's leader is being elected (10008 JSClusterNotAvailErr, no responders). Such a
 * call may be repeated; an idempotent one (info, reconcile) should be.
 */
export function isTransientApiFailure(err: unknown): boolean {
  if (err instanceof JetStreamApiError)
    return err.code === 10008 || /temporarily unavailable/i.test(err.message);
  const name = err instanceof Error ? err.name : "";
  const msg = err instanceof Error ? err.message : String(err);
  return name === "TimeoutError" || name === "NoResponders" || /timeout|no responders/i.test(msg);
}

/** nats.js error classes (by `name`) that mean the broker did not answer the publish. */
const UNREACHABLE = new Set([
  "TimeoutError",
  "JetStreamNotEnabled",
  "NoResponders",
  "RequestError",
  "ClosedConnectionError",
  "DrainingConnectionError",
  "ConnectionError",
]);

/**
 * Classifies a failed JetStream publish as a fault (the edge's error table says what a client
 * sees). JetStream API errors are matched by `err_code` (nats.js `JetStreamApiError.code`),
 * falling back to the description text for other clients: the target's per-subject share used
 * up is `target_queue_full`; a full stream or exhausted broker storage `stream_full`; a message
 * over the stream's size limit `too_large`; an unreachable or disabled JetStream (timeout, no
 * responders, closed connection) `broker_unavailable`; anything else `internal` (cause kept).
 */
export function publishFailure(err: unknown, retryAfterMs?: number): Fault {
  if (err instanceof Fault) return err;
  const api = err instanceof JetStreamApiError ? err : undefined;
  const apiCode = api ? api.code : NaN;
  const name = err instanceof Error ? err.name : "";
  const msg = err instanceof Error ? err.message : String(err);
  const fault = (kind: Fault["kind"]) => new Fault(kind, msg, { retryAfterMs, cause: err });
  if (/per subject/i.test(msg) && (apiCode === 10077 || Number.isNaN(apiCode))) {
    return fault("target_queue_full");
  }
  if (
    JS_FULL_CODES.has(apiCode) ||
    /maximum (messages|bytes)|resource limits|insufficient (storage |memory )?resources|too many requests/i.test(
      msg,
    )
  ) {
    return fault("stream_full");
  }
  if (apiCode === JS_TOO_LARGE_CODE || /message size exceeds maximum/i.test(msg)) {
    return fault("too_large");
  }
  const unavailable = JS_UNAVAILABLE_CODES.has(apiCode) || api?.status === 503;
  if (
    unavailable ||
    UNREACHABLE.has(name) ||
    /no responders|timeout|disconnect|closed|not enabled|temporarily unavailable/i.test(msg)
  ) {
    return fault("broker_unavailable");
  }
  return fault("internal");
}

/**
 * Whether a failed JetStream publish may still have been stored (its ack timed out): a worker
 * may then run the request although the client was told it failed. API errors (the broker
 * refused it) and unreachable brokers mean it was not.
 */
export function publishMayHaveLanded(err: unknown): boolean {
  if (err instanceof JetStreamApiError) return false;
  const name = err instanceof Error ? err.name : "";
  const msg = err instanceof Error ? err.message : String(err);
  return name === "TimeoutError" || /timeout|timed out/i.test(msg);
}
