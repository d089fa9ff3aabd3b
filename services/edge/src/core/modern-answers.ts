import { ErrorCode, META, type CacheHint } from "@mcpq/protocol";
import type { OutboundMessage } from "./outbound.js";

/** What a stateless-era answer is completed with at the edge. */
export interface AnswerShape {
  /** `_meta["io.modelcontextprotocol/serverInfo"]` of every result that lacks one. */
  serverInfo: Record<string, unknown>;
  /** `resources/read`: the hint a complete result gets when the worker sent none. */
  readHint?: CacheHint;
}

/**
 * Completes a stateless-era (2026-07-28) response, whoever produced it (a worker of any
 * version, or the edge): every result gets `resultType` ("complete" unless it says otherwise)
 * and `_meta` serverInfo; a complete `resources/read` result gets `ttlMs`/`cacheScope`
 * (an `input_required` result is never cacheable); resource-not-found is -32602 in this era
 * (was -32002). Anything but a response, and anything unparsable, passes unchanged. Event ids
 * are dropped: stateless-era streams are not resumable, so SSE carries no `id:`.
 */
export function shapeModernAnswer(msg: OutboundMessage, shape: AnswerShape): OutboundMessage {
  if (msg.kind !== "response")
    return msg.eventId === undefined ? msg : { ...msg, eventId: undefined };
  let v: { result?: unknown; error?: { code?: unknown } };
  try {
    v = JSON.parse(msg.json) as typeof v;
  } catch {
    return { ...msg, eventId: undefined };
  }
  if (typeof v.result === "object" && v.result !== null && !Array.isArray(v.result)) {
    const r = v.result as Record<string, unknown>;
    if (typeof r["resultType"] !== "string") r["resultType"] = "complete";
    if (shape.readHint && r["resultType"] === "complete" && r["ttlMs"] === undefined) {
      r["ttlMs"] = shape.readHint.ttlMs;
      r["cacheScope"] = shape.readHint.cacheScope;
    }
    const meta =
      typeof r["_meta"] === "object" && r["_meta"] !== null
        ? (r["_meta"] as Record<string, unknown>)
        : {};
    if (meta[META.serverInfo] === undefined)
      r["_meta"] = { ...meta, [META.serverInfo]: shape.serverInfo };
  } else if (v.error && v.error.code === ErrorCode.ResourceNotFound) {
    v.error.code = ErrorCode.InvalidParams;
  }
  return { ...msg, eventId: undefined, json: JSON.stringify(v) };
}

/** The error code of a JSON-RPC response text, if it is an error (results stay unparsed). */
export function errorCodeOf(json: string): number | undefined {
  if (!json.includes('"error"')) return undefined;
  try {
    const code = (JSON.parse(json) as { error?: { code?: unknown } }).error?.code;
    return typeof code === "number" ? code : undefined;
  } catch {
    return undefined;
  }
}
