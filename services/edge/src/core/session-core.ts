import { z } from "zod";
import {
  CancelledParamsSchema,
  CompleteParamsSchema,
  ErrorCode,
  InitializeParamsSchema,
  McpError,
  PaginatedParamsSchema,
  ReadResourceParamsSchema,
  SetLevelParamsSchema,
  SubscribeParamsSchema,
  CallToolParamsSchema,
  GetPromptParamsSchema,
  negotiateProtocolVersion,
  rejection,
  silentLogger,
  toWireError,
  type JsonRpcNotification,
  type JsonRpcRequest,
  type JsonRpcResponse,
  type Logger,
  type RequestId,
} from "@mcpq/protocol";
import {
  EDGE_QUEUE_GROUP,
  idGenerator,
  STANDALONE_STREAM,
  encodeEnvelope,
  outboundHeaders,
  publishFailure,
  publishMayHaveLanded,
  subjects,
  subscriptionPrefix,
  type Bus,
  type CancelNotice,
  type TargetKind,
} from "@mcpq/bus";
import type { CatalogView, ListKind } from "./catalog.js";
import type { OutboundMessage, OutboundRouter } from "./outbound.js";
import type { RequestObservation, RequestObserver } from "./request-observer.js";
import { SessionStore, type SessionRecord } from "./session-store.js";
import type { Caller } from "./auth.js";
import type { AccessPolicy, ListedKind, TargetView } from "./policy.js";
import { checkTargetName, requestedName } from "./subject-safety.js";

export interface CoreConfig {
  edgeId: string;
  requestTimeoutMs: number;
  maxRequestTimeoutMs: number;
  /** Queue-time bound (ms) stamped on each request as its start-by time; 0/absent = deadline only. */
  maxQueueMs?: number;
  maxSessionsPerPrincipal: number;
  pageSize: number;
  serverName: string;
  serverVersion: string;
  instructions?: string;
  /** MCPQ_MAX_NAME_BYTES: longest tool/prompt name or resource URI accepted (0 = no bound). */
  maxNameBytes?: number;
}

/** Hooks the service backs with metrics (request outcomes go to `SessionCore.observer`). */
export interface CoreMetrics {
  inFlight(delta: number): void;
  sessionsCreated(): void;
}

/**
 * How an admitted request ended, reported when it releases its admission slot: "ok" a worker
 * answered (a result or a non-internal error), "failed" a worker answered -32603, "timeout" the
 * deadline passed (or the worker answered -32001), "cancelled" the client cancelled, "refused"
 * it was never queued (the publish failed; `err` is the thrown error).
 */
export type RouteOutcome = "ok" | "failed" | "timeout" | "cancelled" | "refused";

/**
 * Admission control consulted before anything is queued; throws a retryable McpError to reject.
 * The returned release runs exactly once, with the outcome (see services/edge/src/core/admission.ts).
 */
export interface Admission {
  admit(
    session: SessionRecord,
    req: JsonRpcRequest,
    target: { kind: TargetKind; name: string; pool: string },
    /** The request's deadline budget (ms), as the core computed it. */
    timeoutMs: number,
  ): (outcome?: RouteOutcome, err?: unknown) => void;
}

/**
 * Where a request's related messages and response go. The transport attaches the stream's
 * reader itself (OutboundRouter.attach) before dispatching, for as long as the stream is open:
 * an answer may come through the stream after the request settled (see `finalMessage`).
 */
export interface StreamContext {
  /** Stream id (hex); related messages are published to mcpq.out.<session>.<id>. */
  id: string;
  /** The raw JSON text of the request as received, forwarded without re-serialising. */
  raw?: string;
  /** Who sent it (this request's credential; for sockets the connection's). */
  caller?: Caller | undefined;
  /** The virtual server the request came through (`/mcp/<name>`): its subset of the catalog. */
  view?: TargetView | undefined;
}

/** A request accepted for processing; `response` settles with the final message (or a cancel). */
export interface Dispatched {
  response: Promise<OutboundMessage>;
  /**
   * Routed requests: settles once the broker accepted the request, or rejects with the
   * retryable refusal (queue full, broker unavailable) that `response` also carries as an error
   * response. Transports that answer refusals with an HTTP status await it.
   */
  published?: Promise<void>;
  /**
   * Routed requests: the internal id a worker's answer carries. When the edge answers the
   * request itself (deadline, cancellation), `finalMessage` claims the request's response slot
   * with it (OutboundRouter.claim).
   */
  requestId?: string;
}

/** Thrown into a waiting request when the client cancelled it: no response is sent. */
export class RequestCancelled extends Error {
  override readonly name = "RequestCancelled";
}

/** Internal ids: unique across processes, cheap per request (not secrets). */
const nextRequestId = idGenerator();
const nextEventToken = idGenerator();

const TIMEOUT_META_KEY = "io.mcpq/timeoutMs";
/** Absolute deadline (epoch ms) for clients on the edge's clock; see `requestBudget`. */
const DEADLINE_META_KEY = "io.mcpq/deadline";
/** Upper bound on one request publish (the JetStream client's own default is 10 s). */
const PUBLISH_TIMEOUT_MS = 10_000;

/**
 * The transport-neutral session core: lifecycle, edge-answered methods, routing to worker pools
 * through JetStream, cancellation, client answers to server requests, subscriptions. Every
 * transport (Streamable HTTP, SSE, WebSocket, TCP, gRPC) only frames messages and calls this.
 */
export class SessionCore {
  readonly sessions: SessionStore;
  readonly #log: Logger;
  /** (session, client request id) -> internal request id, for cancellation. */
  readonly #byClientId = new Map<string, string>();
  admission: Admission | undefined;
  /** Per-request telemetry (spans, metrics, access log); see services/edge/src/request-telemetry.ts. */
  observer: RequestObserver | undefined;
  /** Authorization policy (MCPQ_POLICY_FILE); undefined = every caller may use everything. */
  policy: AccessPolicy | undefined;

  constructor(
    private readonly bus: Bus,
    private readonly cfg: CoreConfig,
    private readonly catalog: CatalogView,
    private readonly router: OutboundRouter,
    sessions: SessionStore,
    log: Logger = silentLogger,
    private readonly metrics?: CoreMetrics,
  ) {
    this.sessions = sessions;
    this.#log = log;
  }

  /** Subscribes to cancels and resource-update fan-out; wires list_changed to local GET streams. */
  start(): void {
    this.bus.nc.subscribe(subjects.cancelAll, {
      callback: (_e, m) => {
        let n: CancelNotice;
        try {
          n = m.json<CancelNotice>();
        } catch {
          return;
        }
        const internal = this.#byClientId.get(clientKey(n.session, n.requestId));
        if (internal) this.router.correlator.reject(internal, new RequestCancelled(n.reason ?? "cancelled"));
      },
    });
    this.bus.nc.subscribe(subjects.resourceUpdated, {
      queue: EDGE_QUEUE_GROUP,
      // Anyone may publish here (workers, external systems): validate, never throw.
      callback: (_e, m) => {
        let uri: unknown;
        try {
          uri = m.json<{ uri?: unknown }>().uri;
        } catch {
          uri = undefined;
        }
        if (typeof uri === "string" && uri !== "") void this.#fanOutResourceUpdate(uri);
        else this.#log.warn({ subject: m.subject }, "malformed resource update ignored");
      },
    });
    this.catalog.on("changed", (kinds: ListKind[]) => {
      for (const k of kinds) {
        const json = JSON.stringify({ jsonrpc: "2.0", method: `notifications/${k}/list_changed` });
        this.router.broadcastLocal(STANDALONE_STREAM, json);
      }
    });
  }

  /** Creates a session bound to `principal`. */
  async initialize(principal: string, req: JsonRpcRequest, caller?: Caller): Promise<{ session: SessionRecord; json: string }> {
    const obs = this.observer?.begin({ principal }, req);
    try {
      const out = await this.#initialize(principal, req, caller);
      obs?.answered({ response: Promise.resolve(localMessage(req.id, {}, out.json)) });
      return out;
    } catch (err) {
      obs?.refused(err);
      throw err;
    }
  }

  async #initialize(principal: string, req: JsonRpcRequest, caller?: Caller): Promise<{ session: SessionRecord; json: string }> {
    const params = parse(InitializeParamsSchema, req.params);
    // Anonymous sessions are counted per client address, not all under one principal.
    const quotaKey = caller && caller.quotaKey !== principal ? caller.quotaKey : undefined;
    if (this.cfg.maxSessionsPerPrincipal > 0) {
      const open = await this.sessions.countForPrincipal(quotaKey ?? principal);
      if (open >= this.cfg.maxSessionsPerPrincipal) {
        throw rejection(ErrorCode.RateLimited, "too many open sessions for this principal", 60_000);
      }
    }
    const version = negotiateProtocolVersion(params.protocolVersion);
    const now = Date.now();
    const session: SessionRecord = {
      id: SessionStore.newId(),
      principal,
      ...(quotaKey ? { quotaKey } : {}),
      protocolVersion: version,
      clientInfo: params.clientInfo,
      clientCapabilities: params.capabilities,
      initialized: false,
      createdAt: now,
      lastSeenAt: now,
    };
    await this.sessions.create(session);
    this.metrics?.sessionsCreated();
    const result = {
      protocolVersion: version,
      capabilities: {
        tools: { listChanged: true },
        resources: { subscribe: true, listChanged: true },
        prompts: { listChanged: true },
        logging: {},
        completions: {},
      },
      serverInfo: {
        name: this.cfg.serverName,
        title: "mcpq",
        version: this.cfg.serverVersion,
        description: "MCP served through NATS JetStream by stateless edges and independently scaled workers",
      },
      ...(this.cfg.instructions ? { instructions: this.cfg.instructions } : {}),
    };
    return { session, json: JSON.stringify({ jsonrpc: "2.0", id: req.id, result }) };
  }

  /**
   * Accepts a request: answers edge methods at once, or publishes routed ones to JetStream.
   * Rejections before queuing (overload, rate limit, unknown target) throw McpError so the
   * transport can map them to its status codes; errors after acceptance arrive as the response.
   */
  async dispatch(session: SessionRecord, req: JsonRpcRequest, stream: StreamContext): Promise<Dispatched> {
    const obs = this.observer?.begin(session, req);
    let d: Dispatched;
    try {
      d = await this.#dispatch(session, req, stream, obs);
    } catch (err) {
      obs?.refused(err);
      throw err;
    }
    obs?.answered(d);
    return d;
  }

  async #dispatch(session: SessionRecord, req: JsonRpcRequest, stream: StreamContext, obs: RequestObservation | undefined): Promise<Dispatched> {
    const named = requestedName(req.method, req.params);
    if (named) {
      checkTargetName(named.kind, named.name, this.cfg.maxNameBytes ?? 0);
      // Before the catalog is consulted: a forbidden target is refused like a missing one.
      this.policy?.check(callerOf(session, stream), named.kind, named.name, named.promptRef);
      stream.view?.check(callerOf(session, stream), named.kind, named.name, named.promptRef);
    }
    switch (req.method) {
      case "tools/call":
      case "resources/read":
      case "prompts/get":
      case "completion/complete":
        return this.#route(session, req, stream, obs);
      case "initialize":
        throw new McpError(ErrorCode.InvalidRequest, "Session already initialized");
      default: {
        try {
          const result = await this.#local(session, req, callerOf(session, stream), stream.view);
          return { response: Promise.resolve(localMessage(req.id, result)) };
        } catch (err) {
          return { response: Promise.resolve(errorMessage(req.id, toWireError(err))) };
        }
      }
    }
  }

  /**
   * What the transport writes to end a dispatched request, once its `response` settles, when
   * the request was routed with `stream` (its StreamContext id); null when it writes nothing:
   * the answer goes out through the stream instead (the router delivers it to the stream's
   * reader with its event id, in stream order), or the request was cancelled (no answer). A
   * message with an event id is a worker's answer, which also came through the stream.
   *
   * One response per request id, live and across resumes on any edge: when the edge answers a
   * routed request itself (its deadline passed: -32001), the worker may still answer it, so the
   * edge first claims the request's response slot in MCPQ_OUT (OutboundRouter.claim). Won: the
   * answer is published on the stream like a worker's (retained, with its event id) and the
   * worker's later answer is neither retained nor delivered. Lost: the worker's answer was
   * retained first and comes through the stream instead. Unknown (NATS unavailable), or the
   * answer could not be published: the transport writes it directly. A refusal (never queued;
   * an ambiguous publish was claimed by #route) is written directly. A cancelled request's slot
   * is claimed too, so a result racing the cancel is dropped (unless it was retained first).
   */
  async finalMessage(session: SessionRecord, stream: string, d: Dispatched): Promise<OutboundMessage | null> {
    let out: OutboundMessage;
    try {
      out = await d.response;
    } catch (err) {
      if (!(err instanceof RequestCancelled) || d.requestId === undefined) throw err;
      await this.router.claim(session.id, stream, d.requestId);
      return null;
    }
    if (out.eventId !== undefined || d.requestId === undefined) return out;
    // Everything up to the claim runs in the microtasks that follow the deadline: no worker
    // answer can arrive unclaimed in between (the correlator no longer waits for it).
    if (await (d.published?.then(notRefused, refused) ?? false)) return out;
    const claim = await this.router.claim(session.id, stream, d.requestId);
    if (claim === "lost") return null;
    if (claim === "won" && (await this.router.publishAnswer(session.id, stream, out.json))) return null;
    return out;
  }

  async #local(session: SessionRecord, req: JsonRpcRequest, caller: Caller, view: TargetView | undefined): Promise<Record<string, unknown>> {
    switch (req.method) {
      case "ping":
        return {};
      case "logging/setLevel": {
        const { level } = parse(SetLevelParamsSchema, req.params);
        await this.sessions.update(session, (r) => {
          r.logLevel = level;
        });
        return {};
      }
      case "tools/list":
        return this.#page("tools", this.#visible(caller, view, "tools", this.catalog.tools()), req);
      case "resources/list":
        return this.#page("resources", this.#visible(caller, view, "resources", this.catalog.resources()), req);
      case "resources/templates/list":
        return this.#page("resourceTemplates", this.#visible(caller, view, "resourceTemplates", this.catalog.resourceTemplates()), req);
      case "prompts/list":
        return this.#page("prompts", this.#visible(caller, view, "prompts", this.catalog.prompts()), req);
      case "resources/subscribe": {
        const { uri } = parse(SubscribeParamsSchema, req.params);
        await this.sessions.subscribe(session, uri);
        return {};
      }
      case "resources/unsubscribe": {
        const { uri } = parse(SubscribeParamsSchema, req.params);
        await this.sessions.unsubscribe(session, uri);
        return {};
      }
      default:
        throw new McpError(ErrorCode.MethodNotFound, `Method not found: ${req.method}`);
    }
  }

  /** A list as the caller may see it through `view` (everything without a policy or view). */
  #visible<T>(caller: Caller, view: TargetView | undefined, kind: ListedKind, items: readonly T[]): readonly T[] {
    const allowed = this.policy ? this.policy.filter(caller, kind, items) : items;
    return view ? view.filter(caller, kind, allowed) : allowed;
  }

  #page(key: string, items: readonly unknown[], req: JsonRpcRequest): Record<string, unknown> {
    const params = parse(PaginatedParamsSchema, req.params);
    let offset = 0;
    if (params?.cursor !== undefined) {
      offset = decodeCursor(params.cursor);
    }
    const size = this.cfg.pageSize;
    const page = items.slice(offset, offset + size);
    const out: Record<string, unknown> = { [key]: page };
    if (offset + size < items.length) out["nextCursor"] = encodeCursor(offset + size);
    return out;
  }

  async #route(session: SessionRecord, req: JsonRpcRequest, stream: StreamContext, obs: RequestObservation | undefined): Promise<Dispatched> {
    const target = this.#target(req);
    obs?.routed(target);
    const meta = (req.params?.["_meta"] ?? {}) as Record<string, unknown>;
    const timeout = requestBudget(meta, Date.now(), this.cfg.requestTimeoutMs, this.cfg.maxRequestTimeoutMs);
    const release: (outcome?: RouteOutcome, err?: unknown) => void =
      this.admission?.admit(session, req, target, timeout) ?? (() => undefined);
    let outcome: RouteOutcome = "ok";
    let releaseRouter: (() => void) | undefined;
    try {
      if (this.router.correlator.full) {
        throw rejection(ErrorCode.Overloaded, "edge has too many requests in flight", 1_000);
      }
      const requestId = nextRequestId();
      const now = Date.now();
      const deadline = now + timeout;
      const replyTo = subjects.outbound(session.id, stream.id);
      // The session's outbound subject, while the request waits (the transport holds the stream's reader).
      releaseRouter = this.router.attach(session.id);
      const key = clientKey(session.id, req.id);
      this.#byClientId.set(key, requestId);
      const timedOut = () => new McpError(ErrorCode.RequestTimeout, `Request timed out after ${timeout} ms`, { timeoutMs: timeout });
      const response = this.router.correlator.wait(requestId, deadline, timedOut);
      response.catch(() => undefined);
      const headers = encodeEnvelope({
        requestId,
        session: session.id,
        principal: session.principal,
        protocolVersion: session.protocolVersion,
        deadline,
        startBy: this.cfg.maxQueueMs ? Math.min(deadline, now + this.cfg.maxQueueMs) : undefined,
        replyTo,
        logLevel: session.logLevel,
        targetKind: target.kind,
        target: target.name,
        edge: this.cfg.edgeId,
        receivedAt: now,
        traceparent: typeof meta["traceparent"] === "string" ? (meta["traceparent"] as string) : undefined,
        tracestate: typeof meta["tracestate"] === "string" ? (meta["tracestate"] as string) : undefined,
        clientCapabilities: Object.keys(session.clientCapabilities ?? {}),
        claims: this.policy?.exposed(stream.caller),
      });
      this.metrics?.inFlight(1);
      const subject = subjects.request(target.pool, target.kind, target.name);
      const publishDone = obs?.publishing(headers, subject, requestId);
      // The publish is started here, in order with this connection's earlier publishes, but its
      // PubAck is not awaited: a transport that processes a connection's messages in order
      // (sockets) moves on to the next message at once. A refusal still reaches the client:
      // `published` rejects with it (HTTP answers 503/429 from that) and `response` settles to
      // the same error as a JSON-RPC error response.
      const published = this.bus.js
        .publish(subject, stream.raw ?? JSON.stringify(req), {
          headers,
          msgID: requestId,
          // Never wait on the broker past the request's deadline (nor past the client's 10 s default).
          timeout: Math.max(1, Math.min(PUBLISH_TIMEOUT_MS, deadline - Date.now())),
        })
        .then(
          () => publishDone?.(),
          (err: unknown) => {
            publishDone?.(err);
            // A publish that only failed because the deadline came is answered as the timeout it is.
            const mapped = Date.now() >= deadline ? timedOut() : publishFailure(err, 1_000);
            if (mapped.code === ErrorCode.InternalError) this.#log.error({ err }, "publish failed");
            // The request may be queued after all: this refusal is its answer, not a worker's.
            if (publishMayHaveLanded(err)) void this.router.claim(session.id, stream.id, requestId);
            throw mapped;
          },
        );
      published.catch(() => undefined);
      const rr = releaseRouter;
      let refusal: McpError | undefined;
      const settled = published
        .then(
          () =>
            response.then(
              (msg) => {
                outcome = responseOutcome(msg.json);
                return msg;
              },
              (err: unknown) => {
                if (err instanceof RequestCancelled) {
                  outcome = "cancelled";
                  throw err;
                }
                const wire = toWireError(err);
                outcome = wire.code === ErrorCode.RequestTimeout ? "timeout" : "failed";
                return errorMessage(req.id, wire);
              },
            ),
          (err: McpError) => {
            refusal = err;
            response.catch(() => undefined);
            this.router.correlator.reject(requestId, err);
            return errorMessage(req.id, toWireError(err));
          },
        )
        .finally(() => {
          this.metrics?.inFlight(-1);
          if (this.#byClientId.get(key) === requestId) this.#byClientId.delete(key);
          rr();
          if (refusal) release("refused", refusal);
          else release(outcome);
        });
      releaseRouter = undefined;
      return { response: settled, published, requestId };
    } catch (err) {
      releaseRouter?.();
      release("refused", err);
      throw err;
    }
  }

  #target(req: JsonRpcRequest): { kind: TargetKind; name: string; pool: string } {
    switch (req.method) {
      case "tools/call": {
        const { name } = parse(CallToolParamsSchema, req.params);
        const pool = this.catalog.toolPool(name);
        if (pool) return { kind: "tool", name, pool };
        if (this.catalog.recentlyGone("tool", name)) {
          throw rejection(ErrorCode.Unavailable, `no worker is serving tool ${name}`, 2_000);
        }
        throw new McpError(ErrorCode.InvalidParams, `Unknown tool: ${name}`);
      }
      case "resources/read": {
        const { uri } = parse(ReadResourceParamsSchema, req.params);
        const pool = this.catalog.resourcePool(uri);
        if (pool) return { kind: "resource", name: uri, pool };
        if (this.catalog.recentlyGone("resource", uri)) {
          throw rejection(ErrorCode.Unavailable, `no worker is serving resource ${uri}`, 2_000);
        }
        throw new McpError(ErrorCode.ResourceNotFound, "Resource not found", { uri });
      }
      case "prompts/get": {
        const { name } = parse(GetPromptParamsSchema, req.params);
        const pool = this.catalog.promptPool(name);
        if (pool) return { kind: "prompt", name, pool };
        if (this.catalog.recentlyGone("prompt", name)) {
          throw rejection(ErrorCode.Unavailable, `no worker is serving prompt ${name}`, 2_000);
        }
        throw new McpError(ErrorCode.InvalidParams, `Unknown prompt: ${name}`);
      }
      default: {
        const { ref } = parse(CompleteParamsSchema, req.params);
        const name = ref.type === "ref/prompt" ? ref.name : ref.uri;
        const pool = ref.type === "ref/prompt" ? this.catalog.promptPool(ref.name) : this.catalog.templatePool(ref.uri);
        if (pool) return { kind: "complete", name, pool };
        throw new McpError(ErrorCode.InvalidParams, `Unknown completion reference: ${name}`);
      }
    }
  }

  /** Client notifications: initialized, cancelled (fanned out to workers and edges), others ignored. */
  async notification(session: SessionRecord, n: JsonRpcNotification): Promise<void> {
    switch (n.method) {
      case "notifications/initialized":
        if (!session.initialized) {
          await this.sessions.update(session, (r) => {
            r.initialized = true;
          });
        }
        return;
      case "notifications/cancelled": {
        const p = CancelledParamsSchema.safeParse(n.params);
        if (!p.success) return;
        const notice: CancelNotice = { session: session.id, principal: session.principal, requestId: p.data.requestId };
        if (p.data.reason) notice.reason = p.data.reason;
        this.bus.nc.publish(subjects.cancel(session.principal, session.id), JSON.stringify(notice));
        return;
      }
      default:
        return;
    }
  }

  /**
   * A client's answer to a server->client request: routed to the waiting worker on a subject
   * derived from the authenticated principal and the session, never from the session id alone.
   */
  clientResponse(session: SessionRecord, r: JsonRpcResponse): void {
    if (typeof r.id !== "string" || !r.id.startsWith("mcpq-")) return;
    this.bus.nc.publish(subjects.clientReply(session.principal, session.id, r.id), JSON.stringify(r));
  }

  /** Ends a session everywhere and frees what it held (subscriptions, local delivery). */
  async end(session: SessionRecord): Promise<void> {
    await this.sessions.delete(session);
    this.router.forget(session.id);
    for await (const k of await this.bus.kv.subscriptions.keys(`*.${session.id}`)) {
      await this.bus.kv.subscriptions.purge(k);
    }
  }

  async #fanOutResourceUpdate(uri: string): Promise<void> {
    try {
      const json = JSON.stringify({ jsonrpc: "2.0", method: "notifications/resources/updated", params: { uri } });
      for await (const key of await this.bus.kv.subscriptions.keys(subscriptionPrefix(uri))) {
        const session = key.slice(key.indexOf(".") + 1);
        const eventId = `${STANDALONE_STREAM}_${nextEventToken()}`;
        await this.bus.js.publish(subjects.outbound(session, STANDALONE_STREAM), json, {
          headers: outboundHeaders("notification", eventId),
        });
      }
    } catch (err) {
      this.#log.warn({ err }, "resource update fan-out failed");
    }
  }
}

/** The request's caller; a session's own principal when the transport passed none. */
function callerOf(session: SessionRecord, stream: StreamContext): Caller {
  return stream.caller ?? { principal: session.principal, quotaKey: session.quotaKey ?? session.principal, anonymous: false, scopes: [], claims: {} };
}

const notRefused = () => false;
const refused = () => true;

/**
 * A routed request's budget in ms from now: the client's `_meta["io.mcpq/timeoutMs"]` (else the
 * default), never more than the cap, and never past `_meta["io.mcpq/deadline"]` (epoch ms) when
 * the client states one. A relative timeout starts when the edge reads the request, so time the
 * request spent in socket buffers before that is invisible; a client on the edge's clock (same
 * host, or synchronised clocks) can state the absolute deadline instead. Zero or less means the
 * deadline passed before the edge read the request (admission refuses it as overload).
 */
export function requestBudget(meta: Record<string, unknown>, now: number, defaultMs: number, maxMs: number): number {
  const asked = Number(meta[TIMEOUT_META_KEY]);
  const timeout = Math.min(Number.isFinite(asked) && asked > 0 ? asked : defaultMs, maxMs);
  const deadline = Number(meta[DEADLINE_META_KEY]);
  return Number.isFinite(deadline) && deadline > 0 ? Math.min(timeout, Math.floor(deadline - now)) : timeout;
}

/** Classifies a worker's response for the pool's circuit: internal errors and timeouts count against it. */
function responseOutcome(json: string): RouteOutcome {
  // Only responses with an "error" member are parsed (results stay unparsed on the hot path).
  if (!json.includes('"error"')) return "ok";
  try {
    const code = (JSON.parse(json) as { error?: { code?: unknown } }).error?.code;
    return code === ErrorCode.InternalError ? "failed" : code === ErrorCode.RequestTimeout ? "timeout" : "ok";
  } catch {
    return "ok";
  }
}

function clientKey(session: string, id: RequestId): string {
  return `${session}\u0000${typeof id}:${id}`;
}

function parse<T extends z.ZodType>(schema: T, raw: unknown): z.output<T> {
  const r = schema.safeParse(raw);
  if (!r.success) throw new McpError(ErrorCode.InvalidParams, `Invalid params: ${z.prettifyError(r.error)}`);
  return r.data;
}

function encodeCursor(offset: number): string {
  return Buffer.from(JSON.stringify({ o: offset })).toString("base64url");
}
function decodeCursor(cursor: string): number {
  try {
    const v = JSON.parse(Buffer.from(cursor, "base64url").toString("utf8")) as { o?: unknown };
    if (typeof v.o === "number" && Number.isInteger(v.o) && v.o >= 0) return v.o;
  } catch {
    // fall through
  }
  throw new McpError(ErrorCode.InvalidParams, "Invalid cursor");
}

function localMessage(id: RequestId, result: Record<string, unknown>, json?: string): OutboundMessage {
  return { eventId: undefined, kind: "response", requestId: undefined, json: json ?? JSON.stringify({ jsonrpc: "2.0", id, result }) };
}
function errorMessage(id: RequestId | null, error: { code: number; message: string; data?: unknown }): OutboundMessage {
  return { eventId: undefined, kind: "response", requestId: undefined, json: JSON.stringify({ jsonrpc: "2.0", id, error }) };
}
