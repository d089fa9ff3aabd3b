import { ErrorCode, McpError, rejection } from "@mcpq/protocol";

/**
 * Maps a failed JetStream publish to the client-facing rejection: a full stream or an
 * unreachable JetStream is a retryable overload; anything else is an internal error.
 */
export function publishFailure(err: unknown, retryAfterMs: number): McpError {
  const msg = err instanceof Error ? err.message : String(err);
  if (/maximum (messages|bytes)|resource limits|insufficient resources|storage/i.test(msg)) {
    return rejection(ErrorCode.Overloaded, "request queue is full", retryAfterMs);
  }
  if (/no responders|timeout|disconnect|closed|503/i.test(msg)) {
    return rejection(ErrorCode.Overloaded, "broker unavailable", retryAfterMs);
  }
  return new McpError(ErrorCode.InternalError, "Internal error", undefined, { cause: err });
}
