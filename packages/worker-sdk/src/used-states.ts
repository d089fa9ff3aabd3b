import { createHash } from "node:crypto";
import { ErrorCode, McpError, rejection } from "@mcpq/protocol";
import { isWrongLastSequence, type KV } from "@mcpq/bus";

/**
 * Single use of MRTR `requestState` (MCP 2026-07-28: "enforce single use server-side"): the
 * first request that continues from a sealed state claims it in the KV bucket
 * `mcpq_used_states` (create-if-absent on a digest of the token, kept for the state TTL,
 * MCPQ_REQUEST_STATE_TTL_MS, the bucket's max_age), so a replay of the same state reaches any
 * worker of any pool, through any edge, and is refused. A redelivery of the same request (its
 * envelope id is the claim's value) is not a replay and continues.
 */

/** Key of a used state: a digest (the token itself is a secret-sealed blob of up to 64 KiB). */
function usedKey(token: string): string {
  return createHash("sha256").update(token).digest("base64url");
}

/**
 * Claims `token` for the request `requestId`. Throws -32602 "Invalid or expired requestState"
 * when another request used it already (the wire says no more than for any refused state), and
 * a retryable -32010 when the bucket is full (MCPQ_USED_STATES_MAX_BYTES).
 */
export async function claimRequestState(
  kv: KV,
  token: string,
  requestId: string,
  onRefused?: (reason: string) => void,
): Promise<void> {
  const key = usedKey(token);
  try {
    await kv.create(key, requestId);
    return;
  } catch (err) {
    if (!isWrongLastSequence(err)) {
      const m = err instanceof Error ? err.message : String(err);
      if (/maximum (messages|bytes)|resource limits exceeded/i.test(m))
        throw rejection(
          ErrorCode.Overloaded,
          "the used-request-state store is full (MCPQ_USED_STATES_MAX_BYTES); try again later",
          5_000,
        );
      throw err;
    }
  }
  const holder = await kv.get(key);
  if (holder?.operation === "PUT" && holder.string() === requestId) return;
  onRefused?.("reused");
  throw new McpError(ErrorCode.InvalidParams, "Invalid or expired requestState");
}
