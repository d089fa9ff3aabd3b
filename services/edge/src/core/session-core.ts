import { z } from "zod";
import {
  CancelledParamsSchema,
  CompleteParamsSchema,
  ErrorCode,
  InitializeParamsSchema,
  Cancelled,
  Fault,
  McpError,
  isFault,
  PaginatedParamsSchema,
  ReadResourceParamsSchema,
  SetLevelParamsSchema,
  SubscribeParamsSchema,
  CallToolParamsSchema,
  GetPromptParamsSchema,
  negotiateProtocolVersion,
  ALL_PROTOCOL_VERSIONS,
  MODERN_METHODS,
  isModernEra,
  ListenParamsSchema,
  MCPQ_META,
  META,
  rejection,
  type CacheHint,
  type ModernMeta,
  type SubscriptionFilter,
  silentLogger,
  resultResponse,
  type JsonRpcNotification,
  type JsonRpcRequest,
  type JsonRpcResponse,
  type Logger,
  type RequestId,
} from "@mcpq/protocol";
import {
  distinctKeys,
  EDGE_QUEUE_GROUP,
  idGenerator,
  STANDALONE_STREAM,
  encodeEnvelope,
  publishRequest,
  type RequestEnvelope,
  outboundHeaders,
  publishFailure,
  publishMayHaveLanded,
  subjectToken,
  subjects,
  subscriptionPrefix,
  type Bus,
  cancelContract,
  eventId,
  type CancelNotice,
  isServerRequestId,
  resourceUpdatedContract,
  type TargetKind,
} from "@mcpq/bus";
import type { CatalogView, ListKind } from "./catalog.js";
import type { OutboundMessage, OutboundRouter, StreamSink } from "./outbound.js";
import type { RequestObservation, RequestObserver } from "./request-observer.js";
import { SessionStore, type SessionRecord } from "./session-store.js";
import { errorMessage, wireError } from "./http-errors.js";
import { poolOutcome } from "./answer-outcome.js";
import type { Caller } from "./auth.js";
import type { AccessPolicy, ListedKind, TargetView } from "./policy.js";
import { checkTargetName, requestedName } from "./subject-safety.js";
import { LEGACY_TASK_METHODS, TASK_METHODS, capabilityNames, type EdgeTasks } from "./tasks.js";

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
  /** Stateless era: `ttlMs` of server/discover (MCPQ_DISCOVER_TTL_MS; its result is public). */
  discoverTtlMs: number;
  /** Stateless era: open `subscriptions/listen` streams per edge (MCPQ_MAX_LISTENERS). */
  maxListeners: number;
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

/** The stream a request is dispatched on. */
export interface StreamContext {
  /** Stream id (hex); related messages and the response are published to mcpq.out.<session>.<id>. */
  id: string;
  /**
   * The stream's reader, attached to the router (OutboundRouter.attach) by the channel before it
   * dispatches and for as long as the request may still be answered: every message of the
   * request reaches it, the response included, whether a worker or the edge produced it.
   */
  sink: StreamSink;
  /** The raw JSON text of the request as received, forwarded without re-serialising. */
  raw?: string;
  /**
   * The session whose outbound subject carries the stream, when it is not the request's own
   * session: stateless-era requests have a synthetic session each, but share their edge's
   * outbound session (`SessionCore.modernOutbound`), so the edge holds one subscription for all of them.
   */
  outboundSession?: string;
  /** Who sent it (this request's credential; for sockets the connection's). */
  caller?: Caller | undefined;
  /** The virtual server the request came through (`/mcp/<name>`): its subset of the catalog. */
  view?: TargetView | undefined;
}

/** A request accepted for processing. */
export interface Dispatched {
  /**
   * Settles once the request is queued (at once for edge-answered methods), or rejects with the
   * retryable refusal (queue full, broker unavailable): the channel answers a refusal itself
   * (HTTP answers 503/429), nothing reaches the sink for it.
   */
  accepted: Promise<void>;
  /**
   * Resolves once the request's answer was handed to the stream's sink (or parked in MCPQ_OUT
   * for a resume), or the request was cancelled or refused; never rejects.
   */
  done: Promise<void>;
}

/**
 * Routes the request to a worker (`SessionCore`'s own path); `onAnswer` sees the JSON text of
 * the worker's response when one arrives for it.
 */
export type RouteToWorker = (onAnswer?: (json: string) => void) => Promise<Dispatched>;

/**
 * The response cache's hook (services/edge/src/cache): consulted for `tools/call`,
 * `resources/read` and `prompts/get` instead of routing them directly; it answers a hit on the
 * stream's sink or calls `route`.
 */
export interface ResultCache {
  dispatch(
    session: SessionRecord,
    req: JsonRpcRequest,
    stream: StreamContext,
    route: RouteToWorker,
  ): Promise<Dispatched>;
}

/** An open `subscriptions/listen` stream. */
interface Listener {
  /** The synthetic session (scope) of the stream. */
  scope: string;
  /** The listen request's id: the subscription id every notification carries. */
  id: RequestId;
  /** The accepted filter. */
  filter: SubscriptionFilter;
  sink: StreamSink;
  /** Ends the listener; `graceful` answers the listen request (SubscriptionsListenResult). */
  close(graceful: boolean): void;
}

/** Which filter flag wants each list kind's list_changed. */
const LIST_FILTER = {
  tools: "toolsListChanged",
  prompts: "promptsListChanged",
  resources: "resourcesListChanged",
} as const satisfies Record<ListKind, keyof SubscriptionFilter>;

/** What the session core runs on (built once per edge, see runtime.ts). */
export interface SessionCoreOptions {
  bus: Bus;
  config: CoreConfig;
  catalog: CatalogView;
  router: OutboundRouter;
  sessions: SessionStore;
  log?: Logger;
  metrics?: CoreMetrics;
}

/** Internal ids: unique across processes, cheap per request (not secrets). */
const nextRequestId = idGenerator();
const nextEventToken = idGenerator();

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
  readonly #bus: Bus;
  readonly #cfg: CoreConfig;
  readonly #catalog: CatalogView;
  readonly #router: OutboundRouter;
  readonly #metrics: CoreMetrics | undefined;
  /** (session, client request id) -> internal request id, for cancellation. */
  readonly #byClientId = new Map<string, string>();
  /** (scope, listen request id) -> open `subscriptions/listen` stream on this edge. */
  readonly #listeners = new Map<string, Listener>();
  admission: Admission | undefined;
  /** The edge response cache (MCPQ_CACHE), when on. */
  cache: ResultCache | undefined;
  /**
   * The outbound session of every stateless-era stream this edge holds (`m-<edge id>`): their
   * answers come on `mcpq.out.m-<edge>.<stream>`, one router subscription for all of them.
   */
  readonly modernOutbound: string;
  /** Per-request telemetry (spans, metrics, access log); see services/edge/src/request-telemetry.ts. */
  observer: RequestObserver | undefined;
  /** Authorization policy (MCPQ_POLICY_FILE); undefined = every caller may use everything. */
  policy: AccessPolicy | undefined;
  /** The tasks extension's tasks/* methods (stateless era; core/tasks.ts). */
  tasks: EdgeTasks | undefined;

  constructor(opts: SessionCoreOptions) {
    this.modernOutbound = `m-${subjectToken(opts.config.edgeId)}`;
    this.#bus = opts.bus;
    this.#cfg = opts.config;
    this.#catalog = opts.catalog;
    this.#router = opts.router;
    this.sessions = opts.sessions;
    this.#log = opts.log ?? silentLogger;
    this.#metrics = opts.metrics;
  }

  /** Subscribes to cancels and resource-update fan-out; wires list_changed to local GET streams. */
  start(): void {
    this.#bus.nc.subscribe(subjects.cancelAll, {
      callback: (_e, m) => {
        const n = cancelContract.decode(m.data);
        if (n) this.#cancelLocal(n.session, n.requestId, n.reason);
      },
    });
    // Stateless-era listeners on this edge get every update (not one edge of the queue group):
    // their filters live here, not in the mcpq_subs bucket.
    this.#bus.nc.subscribe(subjects.resourceUpdated, {
      callback: (_e, m) => {
        if (this.#listeners.size === 0) return;
        const uri = resourceUpdatedContract.decode(m.data)?.uri;
        if (uri !== undefined)
          this.#notifyListeners(
            (f) => f.resourceSubscriptions?.includes(uri) === true,
            "notifications/resources/updated",
            { uri },
          );
      },
    });
    this.#bus.nc.subscribe(subjects.resourceUpdated, {
      queue: EDGE_QUEUE_GROUP,
      // Anyone may publish here (workers, external systems): validate, never throw.
      callback: (_e, m) => {
        const uri = resourceUpdatedContract.decode(m.data)?.uri;
        if (uri !== undefined) void this.#fanOutResourceUpdate(uri);
        else this.#log.warn({ subject: m.subject }, "malformed resource update ignored");
      },
    });
    this.#catalog.on("changed", (kinds: ListKind[]) => {
      for (const k of kinds) {
        const json = JSON.stringify({ jsonrpc: "2.0", method: `notifications/${k}/list_changed` });
        this.#router.broadcastLocal(STANDALONE_STREAM, json);
        const wanted = LIST_FILTER[k];
        this.#notifyListeners((f) => f[wanted] === true, `notifications/${k}/list_changed`, {});
      }
    });
  }

  /** A cancel for `requestId` of `session` seen here: a waiting routed request, or a listener. */
  #cancelLocal(session: string, requestId: RequestId, reason: string | undefined): void {
    const key = clientKey(session, requestId);
    const internal = this.#byClientId.get(key);
    if (internal) this.#router.correlator.reject(internal, new Cancelled(reason));
    this.#listeners.get(key)?.close(false);
  }

  /** Sends a notification to every open listener whose accepted filter `wants` it, tagged with its subscription id. */
  #notifyListeners(
    wants: (f: SubscriptionFilter) => boolean,
    method: string,
    params: Record<string, unknown>,
  ): void {
    for (const l of this.#listeners.values()) {
      if (l.sink.closed) {
        l.close(false);
        continue;
      }
      if (!wants(l.filter)) continue;
      const json = JSON.stringify({
        jsonrpc: "2.0",
        method,
        params: { ...params, _meta: { [META.subscriptionId]: l.id } },
      });
      l.sink.send({ eventId: undefined, kind: "notification", requestId: undefined, json });
    }
  }

  /**
   * `subscriptions/listen` (stateless era): acknowledges the subset of the filter this server
   * honours (`notifications/subscriptions/acknowledged`, the stream's first message), then sends
   * the stream every list change (from the registry, whichever worker changed it) and every
   * `mcpq.evt.resources.updated` for a subscribed URI, each tagged with the subscription id
   * (the listen request's id). Ends when the client closes the stream or cancels it (no
   * answer), or the edge shuts down (a SubscriptionsListenResult). At most
   * MCPQ_MAX_LISTENERS per edge (-32010 beyond).
   */
  #listen(session: SessionRecord, req: JsonRpcRequest, stream: StreamContext): Dispatched {
    const { notifications: want } = parse(ListenParamsSchema, req.params);
    if (this.#listeners.size >= this.#cfg.maxListeners)
      throw rejection(
        ErrorCode.Overloaded,
        "too many subscriptions/listen streams on this edge",
        1_000,
      );
    const key = clientKey(session.id, req.id);
    if (this.#listeners.has(key))
      throw new McpError(
        ErrorCode.InvalidRequest,
        "Invalid Request: a subscription with this id is already open",
      );
    const caps = this.capabilities();
    const filter: SubscriptionFilter = {};
    if (want.toolsListChanged && caps["tools"]) filter.toolsListChanged = true;
    if (want.promptsListChanged && caps["prompts"]) filter.promptsListChanged = true;
    if (want.resourcesListChanged && caps["resources"]) filter.resourcesListChanged = true;
    if (want.resourceSubscriptions && want.resourceSubscriptions.length > 0 && caps["resources"]) {
      filter.resourceSubscriptions = [...new Set(want.resourceSubscriptions)];
    }
    let end!: () => void;
    const done = new Promise<void>((resolve) => (end = resolve));
    const sink = stream.sink;
    const listener: Listener = {
      scope: session.id,
      id: req.id,
      filter,
      sink,
      close: (graceful) => {
        if (this.#listeners.get(key) !== listener) return;
        this.#listeners.delete(key);
        if (graceful && !sink.closed) {
          const json = JSON.stringify({
            jsonrpc: "2.0",
            id: req.id,
            result: { resultType: "complete", _meta: { [META.subscriptionId]: req.id } },
          });
          sink.send({ eventId: undefined, kind: "response", requestId: undefined, json });
        }
        end();
      },
    };
    this.#listeners.set(key, listener);
    const ack = { notifications: filter, _meta: { [META.subscriptionId]: req.id } };
    sink.send({
      eventId: undefined,
      kind: "notification",
      requestId: undefined,
      json: JSON.stringify({
        jsonrpc: "2.0",
        method: "notifications/subscriptions/acknowledged",
        params: ack,
      }),
    });
    return { accepted: Promise.resolve(), done };
  }

  /** Closes the listeners of a stateless-era scope (its connection went away); no answers. */
  endScope(scope: string): void {
    for (const l of [...this.#listeners.values()]) if (l.scope === scope) l.close(false);
  }

  /** Ends every listener with a SubscriptionsListenResult (graceful shutdown of the edge). */
  endListeners(): void {
    for (const l of [...this.#listeners.values()]) l.close(true);
  }

  /** Open `subscriptions/listen` streams on this edge. */
  get listeners(): number {
    return this.#listeners.size;
  }

  /** Creates a session bound to `principal`. */
  async initialize(
    principal: string,
    req: JsonRpcRequest,
    caller?: Caller,
  ): Promise<{ session: SessionRecord; json: string }> {
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

  async #initialize(
    principal: string,
    req: JsonRpcRequest,
    caller?: Caller,
  ): Promise<{ session: SessionRecord; json: string }> {
    const params = parse(InitializeParamsSchema, req.params);
    // Anonymous sessions are counted per client address, not all under one principal.
    const quotaKey = caller && caller.quotaKey !== principal ? caller.quotaKey : undefined;
    if (this.#cfg.maxSessionsPerPrincipal > 0) {
      const open = await this.sessions.countForPrincipal(quotaKey ?? principal);
      if (open >= this.#cfg.maxSessionsPerPrincipal) {
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
    this.#metrics?.sessionsCreated();
    const result = {
      protocolVersion: version,
      capabilities: {
        tools: { listChanged: true },
        resources: { subscribe: true, listChanged: true },
        prompts: { listChanged: true },
        logging: {},
        completions: {},
        ...this.tasks?.legacyCapabilities(this.#catalog.tools()),
      },
      serverInfo: this.serverInfo,
      ...(this.#cfg.instructions ? { instructions: this.#cfg.instructions } : {}),
    };
    return { session, json: JSON.stringify({ jsonrpc: "2.0", id: req.id, result }) };
  }

  /** What this server says it is (InitializeResult.serverInfo; `_meta` serverInfo of stateless-era results). */
  get serverInfo(): { name: string; title: string; version: string; description: string } {
    return {
      name: this.#cfg.serverName,
      title: "mcpq",
      version: this.#cfg.serverVersion,
      description:
        "MCP served through NATS JetStream by stateless edges and independently scaled workers",
    };
  }

  /**
   * The synthetic session of one stateless-era request (or socket connection), from its
   * validated `_meta`: never stored, no lookup. Its id `m-<edge>-<stream>` scopes the request's
   * cancellation (workers key in-flight requests by session and JSON-RPC id); its answers travel
   * on the edge's shared outbound session (`modernOutbound`).
   */
  modernSession(
    principal: string,
    meta: ModernMeta,
    stream: string,
    /** The caller's quota key (an anonymous caller's client address): limits apply to it, not to the per-request session. */
    quotaKey?: string,
  ): SessionRecord {
    const now = Date.now();
    const record: SessionRecord = {
      id: this.modernScope(stream),
      principal,
      protocolVersion: meta.protocolVersion,
      clientInfo: meta.clientInfo ?? {},
      clientCapabilities: meta.clientCapabilities,
      initialized: true,
      createdAt: now,
      lastSeenAt: now,
    };
    if (meta.logLevel) record.logLevel = meta.logLevel;
    if (quotaKey !== undefined && quotaKey !== principal) record.quotaKey = quotaKey;
    return record;
  }

  /** The `inputSchema` of a tool the catalog lists (for its `x-mcp-header` parameters); undefined when unknown. */
  toolInputSchema(name: string): unknown {
    return this.#catalog.tool(name)?.inputSchema;
  }

  /** The synthetic session id (cancellation scope) of stateless-era requests on `stream`. */
  modernScope(stream: string): string {
    return `${this.modernOutbound}-${stream}`;
  }

  /**
   * The capabilities the catalog backs (stateless era: server/discover, and the gate on
   * methods: a kind nobody serves is not advertised and its methods answer -32601). A kind it
   * served until moments ago (its workers gone, or not registered again yet after a broker
   * fault) still is: the server has not stopped offering tools, it has no worker for them right
   * now, and a call to one is the retryable -32012 (`#target`), not "no such method".
   */
  capabilities(): Record<string, unknown> {
    const c = this.#catalog;
    const tools = c.tools().length > 0 || c.servedRecently("tool");
    const prompts = c.prompts().length > 0 || c.servedRecently("prompt");
    const templates = c.resourceTemplates().length > 0 || c.servedRecently("template");
    const resources = c.resources().length > 0 || templates || c.servedRecently("resource");
    const out: Record<string, unknown> = {};
    if (tools) out["tools"] = { listChanged: true };
    if (resources) out["resources"] = { subscribe: true, listChanged: true };
    if (prompts) out["prompts"] = { listChanged: true };
    if (prompts || templates) out["completions"] = {};
    out["logging"] = {};
    this.tasks?.advertise(c.tools(), out);
    return out;
  }

  /**
   * The caching hint of `resources/read` of `uri` when the worker's result carries none: what
   * its catalog entry declares, else never cached and never shared across principals.
   */
  readHint(uri: string): CacheHint {
    return this.#catalog.readHint(uri);
  }

  /**
   * Accepts a request: answers edge methods at once (to the stream's sink), or publishes routed
   * ones to JetStream, whose answer reaches the sink through the router. Rejections before
   * queuing (overload, rate limit, unknown target) throw McpError so the channel can map them to
   * its status codes; a broker refusal rejects `accepted`; errors after acceptance are the response.
   */
  async dispatch(
    session: SessionRecord,
    req: JsonRpcRequest,
    stream: StreamContext,
  ): Promise<Dispatched> {
    const obs = this.observer?.begin(session, req);
    let r: Observed;
    try {
      r = await this.#dispatch(session, req, stream, obs);
    } catch (err) {
      obs?.refused(err);
      throw err;
    }
    obs?.answered({ response: r.response, published: r.dispatched.accepted });
    return r.dispatched;
  }

  /** `dispatch`, with what the observer watches: the answer as a promise (a cancel rejects it). */
  async #dispatch(
    session: SessionRecord,
    req: JsonRpcRequest,
    stream: StreamContext,
    obs: RequestObservation | undefined,
  ): Promise<Observed> {
    const named = requestedName(req.method, req.params);
    if (named) {
      checkTargetName(named.kind, named.name, this.#cfg.maxNameBytes ?? 0);
      // Before the catalog is consulted: a forbidden target is refused like a missing one.
      this.policy?.check(callerOf(session, stream), named.kind, named.name, named.promptRef);
      stream.view?.check(callerOf(session, stream), named.kind, named.name, named.promptRef);
    }
    if (isModernEra(session.protocolVersion)) {
      this.#modernGate(req.method);
      if (req.method === "subscriptions/listen") {
        const listening = this.#listen(session, req, stream);
        return {
          dispatched: listening,
          response: listening.done.then(() => localMessage(req.id, {})),
        };
      }
    }
    switch (req.method) {
      case "tools/call":
      case "resources/read":
      case "prompts/get":
        if (this.cache) {
          let routed: Observed | undefined;
          const dispatched = await this.cache.dispatch(session, req, stream, async (onAnswer) => {
            routed = await this.#route(session, req, stream, obs, onAnswer);
            return routed.dispatched;
          });
          // A hit was answered on the stream's sink by the cache: the observer counts it as answered.
          return (
            routed ?? { dispatched, response: dispatched.done.then(() => localMessage(req.id, {})) }
          );
        }
        return this.#route(session, req, stream, obs);
      case "completion/complete":
        return this.#route(session, req, stream, obs);
      case "initialize":
        throw new McpError(ErrorCode.InvalidRequest, "Session already initialized");
      default: {
        let msg: OutboundMessage;
        try {
          msg = localMessage(
            req.id,
            await this.#local(session, req, callerOf(session, stream), stream.view),
          );
        } catch (err) {
          msg = errorMessage(req.id, err);
        }
        stream.sink.send(msg);
        return { dispatched: ANSWERED, response: Promise.resolve(msg) };
      }
    }
  }

  /**
   * Answers a routed request the edge ends itself (its deadline passed: -32001), one response
   * per request id, live and across resumes on any edge: the worker may still answer it, so the
   * edge first claims the request's response slot in MCPQ_OUT (OutboundRouter.claim). Won: the
   * answer is published on the stream like a worker's (retained, with its event id; the router
   * brings it to the sink in stream order) and the worker's later answer is neither retained
   * nor delivered. Lost: the worker's answer was retained first and reaches the sink instead.
   * Unknown (NATS unavailable), or the answer could not be published: it goes to the sink directly.
   */
  async #answer(
    outbound: string,
    stream: StreamContext,
    requestId: string,
    out: OutboundMessage,
  ): Promise<void> {
    // Lost: the worker's answer is the response (read back from MCPQ_OUT if it never came here).
    const claim = await this.#router.claim(outbound, stream.id, requestId, {
      deliverRetained: true,
    });
    if (claim === "lost") return;
    if (
      claim === "won" &&
      (await this.#router.publishAnswer(outbound, stream.id, out.json, requestId))
    )
      return;
    stream.sink.send(out);
  }

  /**
   * Stateless era: only its methods exist (ping, logging/setLevel, resources/subscribe,
   * initialize... were removed), and only those a capability the catalog backs covers:
   * anything else is -32601 (HTTP 404).
   */
  #modernGate(method: string): void {
    const caps = this.capabilities();
    const needs: string | undefined = method.startsWith("tools/")
      ? "tools"
      : method.startsWith("resources/")
        ? "resources"
        : method.startsWith("prompts/")
          ? "prompts"
          : method === "completion/complete"
            ? "completions"
            : undefined;
    if (!MODERN_METHODS.has(method) || (needs !== undefined && caps[needs] === undefined)) {
      throw new McpError(ErrorCode.MethodNotFound, `Method not found: ${method}`);
    }
  }

  async #local(
    session: SessionRecord,
    req: JsonRpcRequest,
    caller: Caller,
    view: TargetView | undefined,
  ): Promise<Record<string, unknown>> {
    if (isModernEra(session.protocolVersion))
      return this.tasks && TASK_METHODS.has(req.method)
        ? this.tasks.answer(session, req)
        : this.#modernLocal(req, caller, view);
    if (this.tasks && LEGACY_TASK_METHODS.has(req.method))
      return this.tasks.answerLegacy(session, req);
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
        return this.#page(
          "tools",
          this.#visible(caller, view, "tools", this.#catalog.tools()),
          req,
        );
      case "resources/list":
        return this.#page(
          "resources",
          this.#visible(caller, view, "resources", this.#catalog.resources()),
          req,
        );
      case "resources/templates/list":
        return this.#page(
          "resourceTemplates",
          this.#visible(caller, view, "resourceTemplates", this.#catalog.resourceTemplates()),
          req,
        );
      case "prompts/list":
        return this.#page(
          "prompts",
          this.#visible(caller, view, "prompts", this.#catalog.prompts()),
          req,
        );
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

  /** Edge-answered methods of the stateless era (the channel adds `resultType` and `_meta` serverInfo). */
  #modernLocal(
    req: JsonRpcRequest,
    caller: Caller,
    view: TargetView | undefined,
  ): Record<string, unknown> {
    const c = this.#catalog;
    switch (req.method) {
      case "server/discover":
        return {
          supportedVersions: [...ALL_PROTOCOL_VERSIONS],
          capabilities: this.capabilities(),
          ...(this.#cfg.instructions ? { instructions: this.#cfg.instructions } : {}),
          // What it says is the same for every caller; it changes when a kind appears or goes.
          ttlMs: this.#cfg.discoverTtlMs,
          cacheScope: "public",
        };
      case "tools/list":
        return {
          ...this.#page("tools", this.#visible(caller, view, "tools", c.tools()), req),
          ...c.listHint("tools"),
        };
      case "resources/list":
        return {
          ...this.#page("resources", this.#visible(caller, view, "resources", c.resources()), req),
          ...c.listHint("resources"),
        };
      case "resources/templates/list":
        return {
          ...this.#page(
            "resourceTemplates",
            this.#visible(caller, view, "resourceTemplates", c.resourceTemplates()),
            req,
          ),
          ...c.listHint("resourceTemplates"),
        };
      case "prompts/list":
        return {
          ...this.#page("prompts", this.#visible(caller, view, "prompts", c.prompts()), req),
          ...c.listHint("prompts"),
        };
      default:
        throw new McpError(ErrorCode.MethodNotFound, `Method not found: ${req.method}`);
    }
  }

  /** A list as the caller may see it through `view` (everything without a policy or view). */
  #visible<T>(
    caller: Caller,
    view: TargetView | undefined,
    kind: ListedKind,
    items: readonly T[],
  ): readonly T[] {
    const allowed = this.policy ? this.policy.filter(caller, kind, items) : items;
    return view ? view.filter(caller, kind, allowed) : allowed;
  }

  #page(key: string, items: readonly unknown[], req: JsonRpcRequest): Record<string, unknown> {
    const params = parse(PaginatedParamsSchema, req.params);
    let offset = 0;
    if (params?.cursor !== undefined) {
      offset = decodeCursor(params.cursor);
    }
    const size = this.#cfg.pageSize;
    const page = items.slice(offset, offset + size);
    const out: Record<string, unknown> = { [key]: page };
    if (offset + size < items.length) out["nextCursor"] = encodeCursor(offset + size);
    return out;
  }

  async #route(
    session: SessionRecord,
    req: JsonRpcRequest,
    stream: StreamContext,
    obs: RequestObservation | undefined,
    onAnswer?: (json: string) => void,
  ): Promise<Observed> {
    const target = this.#target(req, isModernEra(session.protocolVersion));
    obs?.routed(target);
    const meta = (req.params?.["_meta"] ?? {}) as Record<string, unknown>;
    const timeout = requestBudget(
      meta,
      Date.now(),
      this.#cfg.requestTimeoutMs,
      this.#cfg.maxRequestTimeoutMs,
    );
    const release: (outcome?: RouteOutcome, err?: unknown) => void =
      this.admission?.admit(session, req, target, timeout) ?? (() => undefined);
    try {
      if (this.#router.correlator.full) {
        throw rejection(ErrorCode.Overloaded, "edge has too many requests in flight", 1_000);
      }
    } catch (err) {
      release("refused", err);
      throw err;
    }
    const requestId = nextRequestId();
    const now = Date.now();
    const deadline = now + timeout;
    const key = clientKey(session.id, req.id);
    this.#byClientId.set(key, requestId);
    const outbound = stream.outboundSession ?? session.id;
    const modern = isModernEra(session.protocolVersion);
    const timedOut = () =>
      new McpError(ErrorCode.RequestTimeout, `Request timed out after ${timeout} ms`, {
        timeoutMs: timeout,
      });
    // The deadline timer and in-flight count; the answer itself reaches the sink via the router.
    const answered = this.#router.correlator.wait(requestId, deadline, timedOut);
    answered.catch(() => undefined);
    const envelope: RequestEnvelope = {
      requestId,
      session: session.id,
      principal: session.principal,
      protocolVersion: session.protocolVersion,
      deadline,
      startBy: this.#cfg.maxQueueMs ? Math.min(deadline, now + this.#cfg.maxQueueMs) : undefined,
      replyTo: subjects.outbound(outbound, stream.id),
      logLevel: session.logLevel,
      targetKind: target.kind,
      target: target.name,
      edge: this.#cfg.edgeId,
      receivedAt: now,
      traceparent: traceValue(meta["traceparent"]),
      tracestate: traceValue(meta["tracestate"]),
      clientCapabilities: capabilityNames(session.clientCapabilities),
      clientInfo: modern ? implementationOf(session.clientInfo) : undefined,
      claims: this.policy?.exposed(stream.caller),
    };
    this.#metrics?.inFlight(1);
    const headers = encodeEnvelope(envelope);
    const publishDone = obs?.publishing(
      headers,
      subjects.request(target.pool, target.kind, target.name),
      requestId,
    );
    // The publish is started here, in order with this connection's earlier publishes, but its
    // PubAck is not awaited: a channel that processes a connection's messages in order
    // (sockets) moves on to the next message at once. A refusal rejects `accepted`.
    // Never wait on the broker past the request's deadline (nor past the client's 10 s default).
    const accepted = publishRequest(
      this.#bus,
      target.pool,
      envelope,
      stream.raw ?? JSON.stringify(req),
      Math.max(1, Math.min(PUBLISH_TIMEOUT_MS, deadline - Date.now())),
      headers,
    ).then(
      () => publishDone?.(),
      (err: unknown) => {
        publishDone?.(err);
        // A publish that only failed because the deadline came is answered as the timeout it is.
        const mapped = Date.now() >= deadline ? timedOut() : publishFailure(err, 1_000);
        if (isFault(mapped, "internal")) this.#log.error({ err }, "publish failed");
        // The request may be queued after all: this refusal is its answer, not a worker's.
        if (publishMayHaveLanded(err)) void this.#router.claim(outbound, stream.id, requestId);
        throw mapped;
      },
    );
    accepted.catch(() => undefined);
    let outcome: RouteOutcome = "ok";
    let refusal: McpError | Fault | undefined;
    /** What the edge must still answer once the request settled (its deadline passed), if anything. */
    const settled: Promise<OutboundMessage | "cancelled" | undefined> = accepted
      .then(
        () =>
          answered.then(
            (msg) => {
              outcome = poolOutcome(msg.json);
              onAnswer?.(msg.json);
              return undefined;
            },
            (err: unknown) => {
              if (isFault(err, "cancelled")) {
                outcome = "cancelled";
                return "cancelled" as const;
              }
              outcome = wireError(err).code === ErrorCode.RequestTimeout ? "timeout" : "failed";
              return errorMessage(req.id, err);
            },
          ),
        (err: McpError | Fault) => {
          refusal = err;
          this.#router.correlator.reject(requestId, err);
          return undefined;
        },
      )
      .finally(() => {
        this.#metrics?.inFlight(-1);
        if (this.#byClientId.get(key) === requestId) this.#byClientId.delete(key);
        if (refusal) release("refused", refusal);
        else release(outcome);
      });
    const done = settled
      .then((end) => {
        // A cancelled request gets no answer; its slot is claimed so a result racing the cancel
        // is dropped (unless it was retained first). Everything up to the claim runs in the
        // microtasks after the deadline: no worker answer arrives unclaimed in between.
        if (end === "cancelled")
          return this.#router.claim(outbound, stream.id, requestId).then(() => undefined);
        if (end) return this.#answer(outbound, stream, requestId, end);
        return undefined;
      })
      .catch((err: unknown) => this.#log.error({ err }, "answering a request failed"));
    // For the observer: the worker's answer, or the edge's (deadline, refusal); a cancel rejects.
    const response = accepted.then(
      () =>
        answered.then(
          (msg) => msg,
          (err: unknown) =>
            isFault(err, "cancelled") ? Promise.reject(err) : errorMessage(req.id, err),
        ),
      (err: unknown) => errorMessage(req.id, err),
    );
    response.catch(() => undefined);
    return { dispatched: { accepted, done }, response };
  }

  #target(req: JsonRpcRequest, modern: boolean): { kind: TargetKind; name: string; pool: string } {
    switch (req.method) {
      case "tools/call": {
        const { name } = parse(CallToolParamsSchema, req.params);
        const pool = this.#catalog.toolPool(name);
        if (pool) return { kind: "tool", name, pool };
        if (this.#catalog.recentlyGone("tool", name)) {
          throw new Fault("no_worker", `no worker is serving tool ${name}`);
        }
        throw new McpError(ErrorCode.InvalidParams, `Unknown tool: ${name}`);
      }
      case "resources/read": {
        const { uri } = parse(ReadResourceParamsSchema, req.params);
        const pool = this.#catalog.resourcePool(uri);
        if (pool) return { kind: "resource", name: uri, pool };
        if (this.#catalog.recentlyGone("resource", uri)) {
          throw new Fault("no_worker", `no worker is serving resource ${uri}`);
        }
        // 2026-07-28 standardises resource-not-found on -32602 (SEP-2164); older revisions keep -32002.
        throw new McpError(
          modern ? ErrorCode.InvalidParams : ErrorCode.ResourceNotFound,
          "Resource not found",
          { uri },
        );
      }
      case "prompts/get": {
        const { name } = parse(GetPromptParamsSchema, req.params);
        const pool = this.#catalog.promptPool(name);
        if (pool) return { kind: "prompt", name, pool };
        if (this.#catalog.recentlyGone("prompt", name)) {
          throw new Fault("no_worker", `no worker is serving prompt ${name}`);
        }
        throw new McpError(ErrorCode.InvalidParams, `Unknown prompt: ${name}`);
      }
      default: {
        const { ref } = parse(CompleteParamsSchema, req.params);
        const name = ref.type === "ref/prompt" ? ref.name : ref.uri;
        const pool =
          ref.type === "ref/prompt"
            ? this.#catalog.promptPool(ref.name)
            : this.#catalog.templatePool(ref.uri);
        if (pool) return { kind: "complete", name, pool };
        if (this.#catalog.recentlyGone(ref.type === "ref/prompt" ? "prompt" : "template", name)) {
          throw new Fault("no_worker", `no worker is serving ${name}`);
        }
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
        if (p.success) this.cancel(session, p.data.requestId, p.data.reason);
        return;
      }
      default:
        return;
    }
  }

  /**
   * Cancels the request `requestId` (the client's JSON-RPC id) of `session` everywhere: the
   * notice reaches the worker running it (which aborts the handler) and the edge waiting for
   * it (which answers nothing and drops a result that races the cancel).
   */
  cancel(session: SessionRecord, requestId: RequestId, reason?: string): void {
    // Applied here at once too (this edge's listener or waiting request), not only when the notice comes back.
    this.#cancelLocal(session.id, requestId, reason);
    const notice: CancelNotice = { session: session.id, principal: session.principal, requestId };
    if (reason) notice.reason = reason;
    this.#bus.nc.publish(cancelContract.subject(notice), cancelContract.encode(notice));
  }

  /**
   * A client's answer to a server->client request: routed to the waiting worker on a subject
   * derived from the authenticated principal and the session, never from the session id alone.
   */
  clientResponse(session: SessionRecord, r: JsonRpcResponse): void {
    if (!isServerRequestId(r.id)) return;
    this.#bus.nc.publish(
      subjects.clientReply(session.principal, session.id, r.id),
      JSON.stringify(r),
    );
  }

  /** Ends a session everywhere and frees what it held (subscriptions, local delivery). */
  async end(session: SessionRecord): Promise<void> {
    await this.sessions.delete(session);
    this.#router.forget(session.id);
    for await (const k of distinctKeys(this.#bus.kv.subscriptions, `*.${session.id}`)) {
      await this.#bus.kv.subscriptions.purge(k);
    }
  }

  async #fanOutResourceUpdate(uri: string): Promise<void> {
    try {
      const json = JSON.stringify({
        jsonrpc: "2.0",
        method: "notifications/resources/updated",
        params: { uri },
      });
      for await (const key of distinctKeys(this.#bus.kv.subscriptions, subscriptionPrefix(uri))) {
        const session = key.slice(key.indexOf(".") + 1);
        await this.#bus.publisher.publish(subjects.outbound(session, STANDALONE_STREAM), json, {
          headers: outboundHeaders("notification", eventId(STANDALONE_STREAM, nextEventToken())),
        });
      }
    } catch (err) {
      this.#log.warn({ err }, "resource update fan-out failed");
    }
  }
}

/** A dispatched request and, for the observer, its answer (a cancel rejects it). */
interface Observed {
  dispatched: Dispatched;
  response: Promise<OutboundMessage>;
}

/** What an edge-answered request's dispatch returns: answered (to the sink) already. */
const ANSWERED: Dispatched = { accepted: Promise.resolve(), done: Promise.resolve() };

/** The request's caller; a session's own principal when the transport passed none. */
function callerOf(session: SessionRecord, stream: StreamContext): Caller {
  return (
    stream.caller ?? {
      principal: session.principal,
      quotaKey: session.quotaKey ?? session.principal,
      anonymous: false,
      scopes: [],
      claims: {},
    }
  );
}

/**
 * A routed request's budget in ms from now: the client's `_meta["io.mcpq/timeoutMs"]` (else the
 * default), never more than the cap, and never past `_meta["io.mcpq/deadline"]` (epoch ms) when
 * the client states one. A relative timeout starts when the edge reads the request, so time the
 * request spent in socket buffers before that is invisible; a client on the edge's clock (same
 * host, or synchronised clocks) can state the absolute deadline instead. Zero or less means the
 * deadline passed before the edge read the request (admission refuses it as overload).
 */
export function requestBudget(
  meta: Record<string, unknown>,
  now: number,
  defaultMs: number,
  maxMs: number,
): number {
  const asked = Number(meta[MCPQ_META.timeoutMs]);
  const timeout = Math.min(Number.isFinite(asked) && asked > 0 ? asked : defaultMs, maxMs);
  const deadline = Number(meta[MCPQ_META.deadline]);
  return Number.isFinite(deadline) && deadline > 0
    ? Math.min(timeout, Math.floor(deadline - now))
    : timeout;
}

const TRACE_MAX = 512;
/** W3C trace context is printable ASCII; a value with anything else is ignored, as W3C asks. */
const TRACE_CHARS = /^[\x20-\x7e]*$/;
/**
 * A client's `_meta` trace context value fit for a header: a bounded string of printable ASCII.
 * A CR or LF would otherwise reach the envelope, whose header encoding refuses it (the call was
 * answered -32603).
 */
function traceValue(v: unknown): string | undefined {
  return typeof v === "string" && v.length <= TRACE_MAX && TRACE_CHARS.test(v) ? v : undefined;
}

/** A self-reported client identity fit for a header: both fields strings, bounded. */
function implementationOf(
  info: Record<string, unknown>,
): { name: string; version: string } | undefined {
  const { name, version } = info;
  return typeof name === "string" &&
    typeof version === "string" &&
    name.length + version.length <= 512
    ? { name, version }
    : undefined;
}

function clientKey(session: string, id: RequestId): string {
  return `${session}\u0000${typeof id}:${id}`;
}

function parse<T extends z.ZodType>(schema: T, raw: unknown): z.output<T> {
  const r = schema.safeParse(raw);
  if (!r.success)
    throw new McpError(ErrorCode.InvalidParams, `Invalid params: ${z.prettifyError(r.error)}`);
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

function localMessage(
  id: RequestId,
  result: Record<string, unknown>,
  json?: string,
): OutboundMessage {
  return {
    eventId: undefined,
    kind: "response",
    requestId: undefined,
    json: json ?? JSON.stringify(resultResponse(id, result)),
  };
}
