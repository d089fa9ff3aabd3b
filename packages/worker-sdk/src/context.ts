import { randomBytes } from "node:crypto";
import {
  ErrorCode,
  McpError,
  isModernEra,
  logLevelPasses,
  notification,
  type LogLevel,
  type ProgressToken,
  type RequestId,
} from "@mcpq/protocol";
import {
  cacheInvalidateContract,
  controlHeaders,
  eventId,
  idGenerator,
  outboundHeaders,
  responseEventId,
  subjects,
  type Bus,
  type MsgHdrs,
  type OutboundKind,
  type RequestEnvelope,
} from "@mcpq/bus";
import { CAPABILITY_OF, type InputMethod, type MrtrRound } from "./mrtr.js";
import type { LazyAbort } from "./lazy-abort.js";

/** What a handler can do while it runs. Everything crosses the broker to the client's session. */
export interface HandlerContext {
  /** Fires when the client cancels the request, its deadline passes, or the handler times out. */
  readonly signal: AbortSignal;
  readonly session: string;
  readonly principal: string;
  /** The caller's token claims the edge's authorization policy exposes (`exposeClaims`); empty otherwise. Never the token. */
  readonly claims: Readonly<Record<string, unknown>>;
  readonly requestId: RequestId;
  readonly protocolVersion: string;
  /** The request's `_meta`, as sent by the client. */
  readonly meta: Readonly<Record<string, unknown>>;
  /**
   * Top-level capabilities the client declared (`sampling`, `elicitation`, `roots`, ...);
   * undefined when the edge did not say (then the client is assumed to have them).
   */
  readonly clientCapabilities: readonly string[] | undefined;
  /**
   * 2026-07-28 MRTR: how many `input_required` rounds preceded this run of the request, as its
   * verified `requestState` says (0 on a first request or a retry without state). Undefined in
   * the legacy era and for methods without MRTR.
   */
  readonly inputRound: number | undefined;
  /**
   * `notifications/message` on the request's stream, when `level` passes the session's log level.
   * In the 2026-07-28 era only when the request set a log level in its `_meta` (none otherwise).
   */
  log(level: LogLevel, data: unknown, logger?: string): Promise<void>;
  /** `notifications/progress` echoing the client's progressToken; a no-op when the client sent none. */
  progress(progress: number, total?: number, message?: string): Promise<void>;
  /**
   * Asks the client for an LLM completion (`sampling/createMessage`); resolves with its result.
   *
   * Protocol 2025-11-25 and older: a server->client request on the request's stream. The
   * client's answer may be POSTed to any edge: it reaches this worker on
   * `mcpq.s2c.<principal-digest>.<session>.<id>`. Rejects with the client's JSON-RPC error,
   * -32601 when the client did not declare the `sampling` capability, or -32001 when no answer
   * arrives within `timeoutMs` (default 60 s, never past the request's deadline) or the request
   * is cancelled.
   *
   * Protocol 2026-07-28 (MRTR, `tools/call`, `resources/read`, `prompts/get` only): an input
   * request under `key` (default `sample-<n>`, numbered in call order). Unanswered, it rejects
   * and the round ends with an `input_required` result asking every unanswered input request of
   * the run; the client's retry (any edge, any worker) runs the handler again and the call then
   * resolves with the answer. Start several asks together (`Promise.all`) to ask them in one
   * round. Rejects with -32021 when the client lacks the capability, -32602 for a malformed answer.
   */
  sample(params: Record<string, unknown>, opts?: AskOptions): Promise<Record<string, unknown>>;
  /** Asks the user (`elicitation/create`, result `{action, content}`); as `sample` (capability `elicitation`, key `elicit-<n>`). */
  elicit(params: Record<string, unknown>, opts?: AskOptions): Promise<Record<string, unknown>>;
  /** Asks the client's roots (`roots/list`); as `sample` (capability `roots`, key `roots-<n>`). */
  listRoots(opts?: AskOptions): Promise<Record<string, unknown>>;
  /**
   * Asks the edge holding the request's stream to close the client's connection now, after an
   * SSE `retry: <retryMs>` (default: the edge's MCPQ_SSE_RETRY_MS). The request keeps running;
   * the client resumes with GET + Last-Event-ID (any edge) and gets everything published
   * afterwards, response included (SEP-1699 polling). Ordered with the other related messages.
   * A no-op for clients that cannot resume (no priming event), for socket transports and in the
   * 2026-07-28 era (no resumable streams there: closing a request's stream cancels it).
   */
  closeStream(opts?: { retryMs?: number }): Promise<void>;
  /**
   * Announces `notifications/resources/updated` to every session subscribed to `uri`; edges also
   * evict their cached `resources/read` results of `uri` (every edge, and the shared L2).
   */
  resourceUpdated(uri: string): void;
  /**
   * Evicts, on every edge and in the shared L2, the cached results of every entry whose
   * `cache.tags` holds one of `tags` (docs/caching.md). 1-64 tags of 1-128 characters.
   */
  invalidate(tags: string[]): void;
  /**
   * Tells the worker its catalog definitions changed in place (an entry added, removed or
   * changed): it re-reads them and advertises the new catalog now, and edges send
   * `notifications/<kind>/list_changed` to the clients that listen.
   */
  catalogChanged(): Promise<void>;
  /**
   * Tasks extension: turns this `tools/call` into a task now, for a tool defined with
   * `task: { start: "handler" }` (e.g. after gathering input with MRTR rounds). The client gets
   * the CreateTaskResult at once; the handler goes on, and its result becomes the task's. A no-op
   * when the call cannot be a task (no `task` option, legacy era, the client did not negotiate
   * the extension) and when it is one already.
   */
  startTask(): Promise<void>;
}

/** Options of `sample`, `elicit` and `listRoots`. */
export interface AskOptions {
  /** Legacy era: how long to wait for the client's answer (ms). */
  timeoutMs?: number;
  /** 2026-07-28 era: the input request's key in `inputRequests` (unique per request; 1-128 characters). */
  key?: string;
}

/** The stream a request's outbound messages go to: the last token of its `Mcpq-Reply-To`. */
function replyStream(env: RequestEnvelope): string {
  return env.replyTo.slice(env.replyTo.lastIndexOf(".") + 1);
}

/** Event-id tokens: unique per process, no syscall per message. Never contain "_" (the stream separator). */
const nextEventToken = idGenerator();

/**
 * Publishes a request's response outside a handler scope (a request answered without running it,
 * e.g. refused for waiting too long): the same subject, event id and headers a scope's would have.
 */
export function publishResponse(bus: Bus, env: RequestEnvelope, body: unknown): Promise<void> {
  const id = responseEventId(replyStream(env), nextEventToken());
  return bus.publisher
    .publish(env.replyTo, JSON.stringify(body), {
      headers: outboundHeaders("response", id, env.requestId),
    })
    .then(() => undefined);
}

const DEFAULT_CLIENT_REQUEST_TIMEOUT_MS = 60_000;

/** Builds the context of one request; related messages and the response keep their order. */
export function createContext(
  bus: Bus,
  env: RequestEnvelope,
  requestId: RequestId,
  meta: Record<string, unknown>,
  abort: LazyAbort,
  /** Sees every related message and the response as they are published (recording). Must not throw. */
  onPublish?: (kind: OutboundKind, body: unknown) => void,
  /** 2026-07-28 era, MRTR-capable method: where `sample`/`elicit`/`listRoots` become input requests. */
  round?: MrtrRound,
  /** Re-reads and re-advertises the worker's catalog (`ctx.catalogChanged()`). */
  onCatalogChanged: () => Promise<void> = () => Promise.resolve(),
): RequestScope {
  const modern = isModernEra(env.protocolVersion);
  const streamId = replyStream(env);
  const progressToken = meta["progressToken"] as ProgressToken | undefined;
  let lastProgress = -Infinity;
  let chain: Promise<unknown> = Promise.resolve();

  /** Publishes after everything published before it, so the edge sees the request's messages in order. */
  const ordered = (
    data: string,
    headers: (id: string) => MsgHdrs,
    response = false,
  ): Promise<void> => {
    const token = nextEventToken();
    const id = response ? responseEventId(streamId, token) : eventId(streamId, token);
    const p = chain.then(() => bus.publisher.publish(env.replyTo, data, { headers: headers(id) }));
    chain = p.catch(() => undefined);
    return p.then(() => undefined);
  };
  const publish = (kind: OutboundKind, body: unknown): Promise<void> => {
    onPublish?.(kind, body);
    return ordered(
      JSON.stringify(body),
      (id) => outboundHeaders(kind, id, env.requestId),
      kind === "response",
    );
  };

  const clientRequest = async (
    method: string,
    params: Record<string, unknown> | undefined,
    timeoutMs?: number,
  ) => {
    if (abort.aborted) throw new McpError(ErrorCode.RequestTimeout, "request was cancelled");
    const capability = CAPABILITY_OF[method as InputMethod];
    if (capability && env.clientCapabilities && !env.clientCapabilities.includes(capability)) {
      throw new McpError(
        ErrorCode.MethodNotFound,
        `Client does not support ${method} (no ${capability} capability)`,
      );
    }
    const token = randomBytes(12).toString("base64url");
    const id = `mcpq-${token}`;
    const sub = bus.nc.subscribe(subjects.clientReply(env.principal, env.session, id), { max: 1 });
    const limit = Math.min(
      timeoutMs ?? DEFAULT_CLIENT_REQUEST_TIMEOUT_MS,
      Math.max(0, env.deadline - Date.now()),
    );
    let timer: NodeJS.Timeout | undefined;
    let stopListening: (() => void) | undefined;
    try {
      // The reply subscription exists before the request can reach the client (same connection, in order).
      await publish(
        "request",
        params === undefined
          ? { jsonrpc: "2.0", id, method }
          : { jsonrpc: "2.0", id, method, params },
      );
      return await new Promise<Record<string, unknown>>((resolve, reject) => {
        timer = setTimeout(() => {
          // Tell the client to stop working on it (spec: the requester SHOULD cancel what it gave up on).
          if (!abort.aborted)
            void publish(
              "notification",
              notification("notifications/cancelled", { requestId: id, reason: "timeout" }),
            ).catch(() => undefined);
          reject(
            new McpError(
              ErrorCode.RequestTimeout,
              `${method}: client did not answer in ${limit} ms`,
            ),
          );
        }, limit);
        stopListening = abort.onAbort(() =>
          reject(new McpError(ErrorCode.RequestTimeout, `${method}: request was cancelled`)),
        );
        void (async () => {
          for await (const m of sub) {
            let msg: {
              result?: Record<string, unknown>;
              error?: { code: number; message: string; data?: unknown };
            };
            try {
              msg = m.json();
            } catch {
              return reject(
                new McpError(ErrorCode.InternalError, `${method}: malformed client answer`),
              );
            }
            if (msg.error) reject(new McpError(msg.error.code, msg.error.message, msg.error.data));
            else resolve(msg.result ?? {});
          }
        })();
      });
    } finally {
      clearTimeout(timer);
      stopListening?.();
      sub.unsubscribe();
    }
  };

  /** Modern era: an input request of this round (no server->client requests exist there). */
  const ask = (
    method: InputMethod,
    params: Record<string, unknown> | undefined,
    opts?: AskOptions,
  ) => {
    if (!round) {
      return Promise.reject(
        new McpError(
          ErrorCode.InternalError,
          `${method} is only available during tools/call, resources/read and prompts/get in protocol ${env.protocolVersion}`,
        ),
      );
    }
    return round.ask(method, params, opts?.key);
  };

  const ctx: HandlerContext = {
    get signal() {
      return abort.signal;
    },
    session: env.session,
    principal: env.principal,
    claims: env.claims ?? {},
    requestId,
    protocolVersion: env.protocolVersion,
    meta,
    clientCapabilities: env.clientCapabilities,
    inputRound: round?.number,
    async log(level, data, logger) {
      // Modern era: no log level in the request's _meta means no logs at all.
      if (modern && !env.logLevel) return;
      if (env.logLevel && !logLevelPasses(level, env.logLevel)) return;
      if (abort.aborted) return;
      await publish(
        "notification",
        notification("notifications/message", logger ? { level, logger, data } : { level, data }),
      );
    },
    async progress(progress, total, message) {
      if (progressToken === undefined || abort.aborted) return;
      // The spec requires strictly increasing progress; drop values that would not increase.
      if (progress <= lastProgress) return;
      lastProgress = progress;
      const params: Record<string, unknown> = { progressToken, progress };
      if (total !== undefined) params["total"] = total;
      if (message !== undefined) params["message"] = message;
      await publish("notification", notification("notifications/progress", params));
    },
    sample: (params, opts) =>
      modern
        ? ask("sampling/createMessage", params, opts)
        : clientRequest("sampling/createMessage", params, opts?.timeoutMs),
    elicit: (params, opts) =>
      modern
        ? ask("elicitation/create", params, opts)
        : clientRequest("elicitation/create", params, opts?.timeoutMs),
    listRoots: (opts) =>
      modern
        ? ask("roots/list", undefined, opts)
        : clientRequest("roots/list", undefined, opts?.timeoutMs),
    async closeStream(opts) {
      if (abort.aborted || modern) return;
      const control =
        opts?.retryMs === undefined
          ? { action: "reconnect" as const }
          : { action: "reconnect" as const, retryMs: opts.retryMs };
      await ordered("", (id) => controlHeaders(control, id, env.requestId));
    },
    resourceUpdated(uri) {
      bus.nc.publish(subjects.resourceUpdated, JSON.stringify({ uri }));
    },
    invalidate(tags) {
      publishInvalidation(bus, tags);
    },
    catalogChanged: onCatalogChanged,
    startTask: () => Promise.resolve(),
  };
  return { ctx, publish };
}

/** A request's context plus the ordered publisher its final response must also go through. */
export interface RequestScope {
  ctx: HandlerContext;
  /** Publishes on the request's stream after everything published before it (awaits the PubAck). */
  publish(kind: OutboundKind, body: unknown): Promise<void>;
}

/** Publishes a tag invalidation; malformed tag lists are a programming error (thrown). */
export function publishInvalidation(bus: Bus, tags: string[]): void {
  const n = { tags: [...new Set(tags)] };
  if (!cacheInvalidateContract.decode(cacheInvalidateContract.encode(n))) {
    throw new Error("invalidate: 1-64 tags of 1-128 characters");
  }
  bus.nc.publish(cacheInvalidateContract.subject, cacheInvalidateContract.encode(n));
}
