/** Outcome classification shared by every client and scenario. */
export type OutcomeKind = "ok" | "rejected" | "timeout" | "error";

export interface Outcome {
  kind: OutcomeKind;
  /** stable short code for errors_by_code, e.g. "http_429", "rpc_-32000", "timeout", "ECONNRESET", "mismatch" */
  code?: string;
}

export const OK: Outcome = Object.freeze({ kind: "ok" }) as Outcome;

export interface McpSession {
  readonly transport: string;
  readonly sessionId: string | undefined;
  /** tools/call echo {text}; resolves (never rejects) with a classified outcome. */
  callEcho(text: string, timeoutMs: number): Promise<Outcome>;
  close(): Promise<void>;
}

/** JSON-RPC server-range (-32000..-32099) errors whose message indicates load shedding count as "rejected". */
const SHED_RE =
  /rate.?limit|overload|unavailable|too many|busy|capacity|shed|throttl|backpressure|try again/i;

export function classifyRpcError(code: unknown, message: unknown): Outcome {
  const c = typeof code === "number" ? code : NaN;
  const m = typeof message === "string" ? message : "";
  // mcpq's (and the SDK's) request timeout: an explicit answer, counted with the timeouts
  if (c === -32001 && /timed out|timeout/i.test(m)) return { kind: "timeout", code: "rpc_-32001" };
  if (c <= -32000 && c >= -32099 && SHED_RE.test(m)) return { kind: "rejected", code: `rpc_${c}` };
  return { kind: "error", code: Number.isFinite(c) ? `rpc_${c}` : "rpc_error" };
}

/** Classify a non-2xx HTTP status (body is the response text, possibly a JSON-RPC error). */
export function classifyHttpStatus(status: number, bodyText: string): Outcome {
  if (status === 429 || status === 503) return { kind: "rejected", code: `http_${status}` };
  try {
    const j = JSON.parse(bodyText) as { error?: { code?: unknown; message?: unknown } };
    if (j && j.error) {
      const o = classifyRpcError(j.error.code, j.error.message);
      if (o.kind === "rejected") return { kind: "rejected", code: `http_${status}_${o.code}` };
    }
  } catch {
    /* not JSON */
  }
  return { kind: "error", code: `http_${status}` };
}

export class TimeoutError extends Error {
  readonly code = "timeout";
  constructor() {
    super("request timed out");
  }
}

/** Classify a thrown network/transport error. */
export function classifyThrown(err: unknown): Outcome {
  const e = err as { code?: string; name?: string; message?: string; cause?: { code?: string } };
  if (err instanceof TimeoutError) return { kind: "timeout", code: "timeout" };
  const code = e?.code ?? e?.cause?.code;
  if (
    code === "UND_ERR_HEADERS_TIMEOUT" ||
    code === "UND_ERR_BODY_TIMEOUT" ||
    code === "UND_ERR_CONNECT_TIMEOUT" ||
    code === "ETIMEDOUT"
  )
    return {
      kind: "timeout",
      code: code === "UND_ERR_CONNECT_TIMEOUT" ? "connect_timeout" : "timeout",
    };
  if (e?.name === "AbortError" || e?.name === "TimeoutError")
    return { kind: "timeout", code: "timeout" };
  if (typeof code === "string" && code.length > 0) return { kind: "error", code };
  return { kind: "error", code: e?.name && e.name !== "Error" ? e.name : "exception" };
}

/** Check a tools/call result for the echo tool. */
export function checkEchoResult(result: unknown, sent: string): Outcome {
  const r = result as
    { content?: { type?: string; text?: string }[]; isError?: boolean } | undefined;
  if (!r || typeof r !== "object") return { kind: "error", code: "bad_result" };
  if (r.isError) return { kind: "error", code: "tool_error" };
  const first = r.content?.[0];
  if (!first || first.type !== "text" || first.text !== sent)
    return { kind: "error", code: "mismatch" };
  return OK;
}

/** `_meta` keys telling mcpq the client's patience (other servers ignore `_meta`). */
export const TIMEOUT_META = "io.mcpq/timeoutMs";
export const DEADLINE_META = "io.mcpq/deadline";

/**
 * A call's patience as mcpq reads it: relative (counted from when the edge reads the request)
 * and absolute on this host's clock (load tests run on loopback, so the server shares it).
 */
export function deadlineMeta(timeoutMs: number): Record<string, number> {
  return { [TIMEOUT_META]: timeoutMs, [DEADLINE_META]: Date.now() + timeoutMs };
}

/**
 * How long past the deadline it stated a client keeps listening, so a server's own timeout
 * answer at that deadline is heard instead of raced by the client's timer.
 */
export const ANSWER_GRACE_MS = 1000;

/** A result that came after the caller's patience ran out is of no use to it: a timeout. */
export function lateAsTimeout(o: Outcome, startedAt: number, timeoutMs: number): Outcome {
  return o.kind === "ok" && performance.now() - startedAt > timeoutMs
    ? { kind: "timeout", code: "late_answer" }
    : o;
}

export const CLIENT_INFO = { name: "mcpq-loadtests", version: "0.1.0" } as const;
export const DEFAULT_PROTOCOL_VERSION = "2025-11-25";
