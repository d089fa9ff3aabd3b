import { ErrorCode } from "@mcpq/protocol";

/**
 * How a request ended, the `outcome` label of `mcpq_edge_requests_total`: `ok` a result,
 * `tool_error` a CallToolResult with `isError: true`, `error` a JSON-RPC error (by code in
 * `mcpq_edge_errors_total`), `rejected` a retryable refusal (-32010/-32011/-32012; by reason in
 * `mcpq_edge_rejected_total`, also counted by code), `cancelled` the client cancelled (no answer).
 */
export type RequestOutcome = "ok" | "tool_error" | "error" | "rejected" | "cancelled";

/** Codes of retryable refusals: nothing was queued, the client may retry (`rejection()`). */
export const REFUSAL_CODES: ReadonlySet<number> = new Set([
  ErrorCode.Overloaded,
  ErrorCode.RateLimited,
  ErrorCode.Unavailable,
]);

/**
 * Classifies an answer's JSON without parsing results on the hot path. In JSON text the sequence
 * `"error":` can only be an object key (a quote inside a string is escaped), so the top-level
 * member is whichever of `"error":` / `"result":` comes first (it follows `jsonrpc` and `id`).
 * Only error responses and tool results that carry an `isError` key are parsed.
 */
export function classifyAnswer(
  method: string,
  json: string,
): { outcome: RequestOutcome; code?: number; message?: string } {
  const e = json.indexOf('"error":');
  const r = json.indexOf('"result":');
  if (e !== -1 && (r === -1 || e < r)) {
    let msg: { error?: { code?: unknown; message?: unknown } };
    try {
      msg = JSON.parse(json) as typeof msg;
    } catch {
      return { outcome: "error" };
    }
    const code = typeof msg.error?.code === "number" ? msg.error.code : ErrorCode.InternalError;
    const message = typeof msg.error?.message === "string" ? msg.error.message : undefined;
    return {
      outcome: REFUSAL_CODES.has(code) ? "rejected" : "error",
      code,
      ...(message ? { message } : {}),
    };
  }
  if (method !== "tools/call" || !json.includes('"isError"')) return { outcome: "ok" };
  try {
    return (JSON.parse(json) as { result?: { isError?: unknown } }).result?.isError === true
      ? { outcome: "tool_error" }
      : { outcome: "ok" };
  } catch {
    return { outcome: "ok" };
  }
}

/**
 * What a worker's answer says about its pool, for admission's circuit and queue-time load:
 * "failed" a -32603, "timeout" a -32001, anything else (a result, a tool error, a client's
 * mistake) "ok". From the same classification as the metrics; a result is never parsed (no
 * method given: whether a tool result is an error does not matter here).
 */
export function poolOutcome(json: string): "ok" | "failed" | "timeout" {
  const { code } = classifyAnswer("", json);
  return code === ErrorCode.InternalError
    ? "failed"
    : code === ErrorCode.RequestTimeout
      ? "timeout"
      : "ok";
}
