import { z } from "zod";
import { addHeader } from "./headers.js";
import { headers as natsHeaders, type MsgHdrs } from "@nats-io/transport-node";
import { H } from "./envelope.js";
import { subjects, type TargetKind } from "./subjects.js";

/**
 * The typed contract of one record: a finished request, its final response and the envelope it
 * ran under. Workers produce it (worker-sdk `createRecorder`), `mcpq replay` and the testkit
 * fixtures consume it; a fixture file is these objects, one per line (JSONL).
 *
 * An MCPQ_REC message holds one record (a JSON object) or several records of one subject (a JSON
 * array of them: the records a worker finished in one event-loop turn, one publish and PubAck for
 * all; `decodeRecords` reads both). Subject: `mcpq.rec.<pool>.<kind>.<target>`
 * (`subjects.record`). Header of a one-record message: `Nats-Msg-Id`, the request id, so a
 * redelivered request is stored once per duplicate window (readers also drop a request id they
 * have just read, for batches). Retention: MCPQ_REC_MAX_AGE_MS / MCPQ_REC_MAX_BYTES (discard
 * old). Never acked or redelivered: readers use ordered consumers.
 */
export const RECORD_VERSION = 1;

/** What redacted values are replaced with, before a record is stored. */
export const REDACTED = "[REDACTED]";

const TARGET_KINDS = [
  "tool",
  "resource",
  "prompt",
  "complete",
] as const satisfies readonly TargetKind[];

const RecordOutcomeSchema = z.enum(["ok", "error", "cancelled", "timeout"]);

const JsonObject = z.record(z.string(), z.unknown());

const RecordedErrorSchema = z.object({
  code: z.number().int(),
  message: z.string(),
  data: z.unknown().optional(),
});

/** The final response as the client got it, without `jsonrpc`/`id`; null when none was sent (cancelled). */
export const RecordedResponseSchema = z.union([
  z.object({ result: JsonObject }),
  z.object({ error: RecordedErrorSchema }),
]);
export type RecordedResponse = z.infer<typeof RecordedResponseSchema>;

export const RecordSchema = z.object({
  v: z.literal(RECORD_VERSION),
  /** Internal request id (the envelope's `Mcpq-Request`), unique across the deployment. */
  requestId: z.string().min(1),
  pool: z.string().min(1),
  workerId: z.string(),
  method: z.string(),
  targetKind: z.enum(TARGET_KINDS),
  target: z.string(),
  session: z.string(),
  principal: z.string(),
  protocolVersion: z.string(),
  edge: z.string(),
  logLevel: z.string().optional(),
  traceparent: z.string().optional(),
  /** Epoch ms: the edge accepted the request / its deadline / the worker started it. */
  receivedAt: z.number(),
  deadline: z.number(),
  startedAt: z.number(),
  /** Worker time from start to the response being published (ms). */
  durationMs: z.number().nonnegative(),
  outcome: RecordOutcomeSchema,
  /** False for side-effecting tools (`replayable: false` or `destructiveHint`); replay skips them unless forced. */
  replayable: z.boolean(),
  /** The JSON-RPC request as the client sent it (redacted). */
  request: z.object({
    jsonrpc: z.literal("2.0").optional(),
    id: z.union([z.string(), z.number()]),
    method: z.string(),
    params: JsonObject.optional(),
  }),
  response: RecordedResponseSchema.nullable(),
  /** Notifications sent on the request's stream before the response (only with notification recording on). */
  notifications: z.array(JsonObject).optional(),
  /** Locations that were masked with `REDACTED` (e.g. `params.arguments.password`). */
  redacted: z.array(z.string()).optional(),
});
export type RequestRecord = z.infer<typeof RecordSchema>;

/** Subject of a record. */
export function recordSubject(r: Pick<RequestRecord, "pool" | "targetKind" | "target">): string {
  return subjects.record(r.pool, r.targetKind, r.target);
}

/**
 * Headers of a one-record message: only `Nats-Msg-Id` (the request id), so a redelivered request
 * is stored once per duplicate window. Everything else is in the body; readers never need
 * headers, and 15 envelope headers per record were 4 % of a worker's CPU.
 */
export function recordHeaders(requestId: string): MsgHdrs {
  const h = natsHeaders();
  addHeader(h, H.msgId, requestId);
  return h;
}

/**
 * Validates an MCPQ_REC message body (consumers validate, not just producers): one record or a
 * JSON array of records. `invalid` counts what is not a record (a body that is not JSON counts 1).
 */
export function decodeRecords(data: Uint8Array | string): {
  records: RequestRecord[];
  invalid: number;
} {
  let raw: unknown;
  try {
    raw = JSON.parse(typeof data === "string" ? data : new TextDecoder().decode(data));
  } catch {
    return { records: [], invalid: 1 };
  }
  const records: RequestRecord[] = [];
  let invalid = 0;
  for (const item of Array.isArray(raw) ? (raw as unknown[]) : [raw]) {
    const r = RecordSchema.safeParse(item);
    if (r.success) records.push(r.data);
    else invalid++;
  }
  return { records, invalid };
}

/** Maps a routed method to the record subject's kind. */
export function kindOfMethod(method: string): TargetKind | undefined {
  switch (method) {
    case "tools/call":
      return "tool";
    case "resources/read":
      return "resource";
    case "prompts/get":
      return "prompt";
    case "completion/complete":
      return "complete";
    default:
      return undefined;
  }
}

/** True when the recorded response is an error: a JSON-RPC error or a tool result with `isError`. */
export function isErrorResponse(r: RecordedResponse | null | undefined): boolean {
  if (!r) return false;
  return "error" in r || (r.result as { isError?: unknown })["isError"] === true;
}

/**
 * The largest MCPQ_REC record: a request and its response, each up to MCPQ_MAX_MESSAGE_BYTES.
 * Servers mcpq launches or configures get this `max_payload` (infra/ sets the same, 8 MiB).
 */
export function recordMaxBytes(maxMessageBytes: number): number {
  return maxMessageBytes * 2;
}
