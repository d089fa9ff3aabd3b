import { randomBytes } from "node:crypto";
import { ErrorCode, McpError, logLevelPasses, notification, type LogLevel, type ProgressToken, type RequestId } from "@mcpq/protocol";
import { outboundHeaders, subjects, type Bus, type OutboundKind, type RequestEnvelope } from "@mcpq/bus";

/** What a handler can do while it runs. Everything crosses the broker to the client's session. */
export interface HandlerContext {
  /** Fires when the client cancels the request, its deadline passes, or the handler times out. */
  readonly signal: AbortSignal;
  readonly session: string;
  readonly principal: string;
  readonly requestId: RequestId;
  readonly protocolVersion: string;
  /** The request's `_meta`, as sent by the client. */
  readonly meta: Readonly<Record<string, unknown>>;
  /** `notifications/message` on the request's stream, when `level` passes the session's log level. */
  log(level: LogLevel, data: unknown, logger?: string): Promise<void>;
  /** `notifications/progress` echoing the client's progressToken; a no-op when the client sent none. */
  progress(progress: number, total?: number, message?: string): Promise<void>;
  /** Server->client `sampling/createMessage`; resolves with the client's result. */
  sample(params: Record<string, unknown>, opts?: { timeoutMs?: number }): Promise<Record<string, unknown>>;
  /** Server->client `elicitation/create`; resolves with the client's result ({action, content}). */
  elicit(params: Record<string, unknown>, opts?: { timeoutMs?: number }): Promise<Record<string, unknown>>;
  /** Server->client `roots/list`. */
  listRoots(opts?: { timeoutMs?: number }): Promise<Record<string, unknown>>;
  /** Announces `notifications/resources/updated` to every session subscribed to `uri`. */
  resourceUpdated(uri: string): void;
}

export const DEFAULT_CLIENT_REQUEST_TIMEOUT_MS = 60_000;

/** Builds the context of one request; related messages and the response keep their order. */
export function createContext(
  bus: Bus,
  env: RequestEnvelope,
  requestId: RequestId,
  meta: Record<string, unknown>,
  signal: AbortSignal,
): RequestScope {
  const streamId = env.replyTo.slice(env.replyTo.lastIndexOf(".") + 1);
  const progressToken = meta["progressToken"] as ProgressToken | undefined;
  let lastProgress = -Infinity;
  let chain: Promise<unknown> = Promise.resolve();

  const publish = (kind: OutboundKind, body: unknown): Promise<void> => {
    const eventId = `${streamId}_${randomBytes(9).toString("base64url")}`;
    const p = chain.then(() =>
      bus.js.publish(env.replyTo, JSON.stringify(body), { headers: outboundHeaders(kind, eventId, env.requestId) }),
    );
    chain = p.catch(() => undefined);
    return p.then(() => undefined);
  };

  const clientRequest = async (method: string, params: Record<string, unknown> | undefined, timeoutMs?: number) => {
    if (signal.aborted) throw new McpError(ErrorCode.RequestTimeout, "request was cancelled");
    const token = randomBytes(12).toString("base64url");
    const id = `mcpq-${token}`;
    const sub = bus.nc.subscribe(subjects.clientReply(env.principal, env.session, id), { max: 1 });
    const limit = Math.min(timeoutMs ?? DEFAULT_CLIENT_REQUEST_TIMEOUT_MS, Math.max(0, env.deadline - Date.now()));
    try {
      await publish("request", params === undefined ? { jsonrpc: "2.0", id, method } : { jsonrpc: "2.0", id, method, params });
      const reply = await new Promise<Record<string, unknown>>((resolve, reject) => {
        const timer = setTimeout(() => reject(new McpError(ErrorCode.RequestTimeout, `${method}: client did not answer in ${limit} ms`)), limit);
        const onAbort = () => reject(new McpError(ErrorCode.RequestTimeout, `${method}: request was cancelled`));
        signal.addEventListener("abort", onAbort, { once: true });
        void (async () => {
          for await (const m of sub) {
            clearTimeout(timer);
            signal.removeEventListener("abort", onAbort);
            const msg = m.json<{ result?: Record<string, unknown>; error?: { code: number; message: string; data?: unknown } }>();
            if (msg.error) reject(new McpError(msg.error.code, msg.error.message, msg.error.data));
            else resolve(msg.result ?? {});
          }
        })();
      });
      return reply;
    } finally {
      sub.unsubscribe();
    }
  };

  const ctx: HandlerContext = {
    signal,
    session: env.session,
    principal: env.principal,
    requestId,
    protocolVersion: env.protocolVersion,
    meta,
    async log(level, data, logger) {
      if (env.logLevel && !logLevelPasses(level, env.logLevel)) return;
      if (signal.aborted) return;
      await publish("notification", notification("notifications/message", logger ? { level, logger, data } : { level, data }));
    },
    async progress(progress, total, message) {
      if (progressToken === undefined || signal.aborted) return;
      // The spec requires strictly increasing progress; drop values that would go backwards.
      if (progress < lastProgress) return;
      lastProgress = progress;
      const params: Record<string, unknown> = { progressToken, progress };
      if (total !== undefined) params["total"] = total;
      if (message !== undefined) params["message"] = message;
      await publish("notification", notification("notifications/progress", params));
    },
    sample: (params, opts) => clientRequest("sampling/createMessage", params, opts?.timeoutMs),
    elicit: (params, opts) => clientRequest("elicitation/create", params, opts?.timeoutMs),
    listRoots: (opts) => clientRequest("roots/list", undefined, opts?.timeoutMs),
    resourceUpdated(uri) {
      bus.nc.publish(subjects.resourceUpdated, JSON.stringify({ uri }));
    },
  };
  return { ctx, publish };
}

/** A request's context plus the ordered publisher its final response must also go through. */
export interface RequestScope {
  ctx: HandlerContext;
  /** Publishes on the request's stream after everything published before it (awaits the PubAck). */
  publish(kind: OutboundKind, body: unknown): Promise<void>;
}
