import { randomBytes } from "node:crypto";
import { z } from "zod";
import {
  ROOT_CONTEXT,
  SpanKind,
  SpanStatusCode,
  trace,
  type Span,
  type TextMapPropagator,
  type Tracer,
} from "@opentelemetry/api";
import {
  CallToolParamsSchema,
  CompleteParamsSchema,
  ErrorCode,
  GetPromptParamsSchema,
  McpError,
  ReadResourceParamsSchema,
  isModernEra,
  matchUriTemplate,
  silentLogger,
  rejection,
  Cancelled,
  isFault,
  toWireError,
  type CacheHint,
  type Catalog,
  type JsonRpcErrorObject,
  type Logger,
  type RequestId,
} from "@mcpq/protocol";
import {
  BUCKETS,
  H,
  STREAMS,
  decodeEnvelope,
  ensurePoolConsumer,
  poolConsumer,
  registryKey,
  subjects,
  assertPoolName,
  cancelContract,
  registryContract,
  startLivenessBeats,
  SelfHeal,
  type Bus,
  type CancelNotice,
  type JsMsg,
  type RequestEnvelope,
  type Subscription,
  TaskStore,
} from "@mcpq/bus";
import {
  createContext,
  publishInvalidation,
  publishResponse,
  type HandlerContext,
} from "./context.js";
import { MRTR_METHODS, MrtrRound } from "./mrtr.js";
import { abandonTask, taskRunFor, type TaskRun } from "./tasks.js";
import { claimRequestState } from "./used-states.js";
import { LazyAbort } from "./lazy-abort.js";
import {
  createRequestStateSealer,
  paramsDigest,
  randomRequestStateKey,
  type RequestStateSealer,
} from "./request-state.js";
import {
  catalogOf,
  entryCacheHint,
  type CallToolResult,
  type CatalogDefinition,
  type CompletionResult,
  type ContentBlock,
  type ResourceDefinition,
  type ResourceReadOutput,
  type ResourceTemplateDefinition,
  type AnyToolDefinition,
  type AnyPromptDefinition,
} from "./define.js";

/**
 * What a finished request was, for per-tool metrics: the tool or prompt it named (raw names;
 * the service bounds label values) and the semantic-convention `error.type` ("" on success,
 * `tool_error` for an isError result, `cancelled`, else the JSON-RPC error code).
 */
interface HandledDetail {
  tool?: string | undefined;
  prompt?: string | undefined;
  errorType: string;
}

/** Counters a worker reports; services back them with prom-client. */
export interface WorkerMetrics {
  inFlight(n: number): void;
  handled(
    method: string,
    outcome: "ok" | "error" | "cancelled" | "timeout",
    seconds: number,
    detail: HandledDetail,
  ): void;
  expired(): void;
  redelivered(): void;
  /** Time the request waited in MCPQ_REQ: from its publish (the stream's timestamp) to this worker starting it. */
  queueWait?(seconds: number): void;
}

/**
 * Tracing a worker does when given one (the service owns the SDK): a consumer span per
 * delivered request, continued from the W3C context in its NATS headers, and a handler span.
 */
export interface WorkerTracing {
  tracer: Tracer;
  propagator: TextMapPropagator;
}

/** One finished request as handed to the recorder (replay). */
export interface RecordEntry {
  envelope: RequestEnvelope;
  request: { id: RequestId; method: string; params?: Record<string, unknown> };
  response: { result?: Record<string, unknown>; error?: JsonRpcErrorObject } | null;
  outcome: "ok" | "error" | "cancelled" | "timeout";
  workerId: string;
  pool: string;
  startedAt: number;
  durationMs: number;
  replayable: boolean;
  /** Notifications published on the request's stream before the response (at most 100). */
  notifications?: Record<string, unknown>[];
}

export interface WorkerOptions {
  bus: Bus;
  /** Pool name: workers of one pool share a durable consumer and its subjects. */
  pool: string;
  catalogs: CatalogDefinition[];
  /** Requests handled at once by this process (bounds memory and the pull buffer). Default 64. */
  concurrency?: number;
  /** Upper bound on one handler run (ms); the request deadline may cut it shorter. Default 30 000. */
  handlerTimeoutMs?: number;
  workerId?: string;
  logger?: Logger;
  metrics?: WorkerMetrics;
  tracing?: WorkerTracing;
  /** Called after each response is published (recording for replay). Must not throw. */
  recorder?: (entry: RecordEntry) => void;
  /**
   * Shadow worker (a candidate deployment for `mcpq replay --against`): it registers with
   * `shadow: true`, so replay can find it, but edges never route client traffic to it.
   */
  shadow?: boolean;
  /**
   * Liveness beat interval (ms, core NATS): edges judge the worker dead after four missed
   * beats, far sooner than the registry TTL. Default 500; 0 = no beats (edges then fall back to
   * the registry TTL for this worker).
   */
  livenessMs?: number;
  /**
   * Period of the self-heal check of streams, buckets and the pool consumer (ms); they are also
   * checked after every reconnect. Default 2000; 0 = only after reconnects.
   */
  healCheckMs?: number;
  /** false: self-heal only checks streams and buckets, never creates them (MCPQ_PROVISION=off). */
  provision?: boolean;
  /** Sealing of MRTR `requestState` (protocol 2026-07-28); see `RequestStateOptions`. */
  requestState?: RequestStateOptions;
  /**
   * Live tasks one principal may hold in the broker's task store (all workers together): a
   * tools/call that would start one more is answered with a retryable -32010 naming
   * MCPQ_TASKS_MAX_PER_PRINCIPAL. 0 = no bound. Default 100.
   */
  tasksMaxPerPrincipal?: number;
}

/**
 * How a worker seals the `requestState` of multi round-trip requests. A retry may reach any
 * worker of the pool, so all of them need the same `keys`: the first key seals, every key opens
 * (rotation). Without keys a worker makes a random one, which only it can open (warned at start).
 */
export interface RequestStateOptions {
  /** Shared secrets, at least 32 characters each; the first seals, all open. */
  keys?: readonly string[];
  /** How long a sealed state stays valid (ms). Default: the bus limits' `requestStateTtlMs` (MCPQ_REQUEST_STATE_TTL_MS, 10 minutes). */
  ttlMs?: number;
  /** Longest `requestState` accepted or produced (characters). Default 65 536. */
  maxBytes?: number;
}

export const DEFAULT_REQUEST_STATE_MAX_BYTES = 65_536;

type Inflight = { controller: LazyAbort; principal: string };

/**
 * Pulls requests for its pool from JetStream, runs handlers with bounded concurrency, publishes
 * each response on the request's outbound subject and only then acks. A request whose deadline
 * passed is terminated without running. A crash before the ack means redelivery after `ack_wait`;
 * long handlers extend it with `working()`.
 */
export class Worker {
  readonly workerId: string;
  readonly pool: string;
  #catalog!: Catalog;
  readonly #opts: Required<Pick<WorkerOptions, "concurrency" | "handlerTimeoutMs">> & WorkerOptions;
  readonly #log: Logger;
  readonly #tools = new Map<string, AnyToolDefinition>();
  readonly #resources = new Map<string, ResourceDefinition>();
  readonly #templates: ResourceTemplateDefinition[] = [];
  readonly #prompts = new Map<string, AnyPromptDefinition>();
  readonly #sealer: RequestStateSealer;
  /** `resources/read` caching hints (2026-07-28), per resource and template definition. */
  readonly #readHints = new Map<ResourceDefinition | ResourceTemplateDefinition, CacheHint>();
  readonly #inflight = new Map<string, Inflight>();
  /** Internal request id (envelope) -> its #inflight key, for cancels that name only that. */
  readonly #byInternal = new Map<string, string>();
  /**
   * Cancels for requests this worker was not running (yet): a cancel can overtake its request
   * while it still waits in MCPQ_REQ. Remembered briefly (bounded) so the request is then dropped
   * unrun instead of running for nobody. Request ids are never reused within a session.
   */
  readonly #cancelledEarly = new Map<string, { principal: string; until: number }>();
  #running = 0;
  #stopped = false;
  #heartbeat: NodeJS.Timeout | undefined;
  #cancelSub: Subscription | undefined;
  #messages: { stop(): void; close(): Promise<void | Error> } | undefined;
  #loop: Promise<void> | undefined;
  #heal: SelfHeal | undefined;
  #stopBeats: ((opts?: { silent?: boolean }) => void) | undefined;
  #slotWaiters: (() => void)[] = [];
  #taskStore: TaskStore | undefined;

  constructor(opts: WorkerOptions) {
    this.#opts = { concurrency: 64, handlerTimeoutMs: 30_000, ...opts };
    this.pool = assertPoolName(opts.pool);
    this.workerId = opts.workerId ?? `w-${randomBytes(6).toString("hex")}`;
    this.#log = (opts.logger ?? silentLogger).child({ workerId: this.workerId, pool: this.pool });
    this.#load();
    const keys = opts.requestState?.keys?.filter((k) => k !== "") ?? [];
    if (keys.length === 0) {
      this.#log.warn(
        { setting: "MCPQ_REQUEST_STATE_KEYS" },
        "no request-state key configured: this worker seals MRTR requestState with a random key of its own, so a retry that reaches another worker is refused; give every worker of the pool the same key (MCPQ_REQUEST_STATE_KEYS)",
      );
    }
    this.#sealer = createRequestStateSealer({
      keys: keys.length > 0 ? keys : [randomRequestStateKey()],
      // The shared MCPQ_REQUEST_STATE_TTL_MS by default: the used-state bucket keeps states as long.
      ttlMs: opts.requestState?.ttlMs ?? opts.bus.limits.requestStateTtlMs,
      maxBytes: opts.requestState?.maxBytes ?? DEFAULT_REQUEST_STATE_MAX_BYTES,
    });
  }

  /** What this worker serves, as advertised in the registry. */
  get catalog(): Catalog {
    return this.#catalog;
  }

  /** (Re)reads the catalog definitions into the dispatch maps and the advertised catalog. */
  #load(): void {
    this.#tools.clear();
    this.#resources.clear();
    this.#templates.length = 0;
    this.#prompts.clear();
    this.#readHints.clear();
    for (const c of this.#opts.catalogs) {
      for (const t of c.tools ?? []) this.#tools.set(t.name, t);
      for (const r of c.resources ?? []) {
        this.#resources.set(r.uri, r);
        this.#readHints.set(r, entryCacheHint(c, "resources", r));
      }
      for (const t of c.resourceTemplates ?? []) {
        this.#templates.push(t);
        this.#readHints.set(t, entryCacheHint(c, "resourceTemplates", t));
      }
      for (const p of c.prompts ?? []) this.#prompts.set(p.name, p);
    }
    this.#catalog = catalogOf(this.#opts.catalogs);
  }

  /**
   * Re-reads the catalog definitions (entries added, removed or changed in place) and advertises
   * the result at once; edges see the registry change and send `notifications/<kind>/list_changed`.
   */
  async catalogChanged(): Promise<void> {
    this.#load();
    await this.#advertise();
  }

  get inFlight(): number {
    return this.#running;
  }

  /**
   * Provisions the pool consumer, advertises the catalog and starts pulling. Self-heal keeps
   * them in place: after a reconnect or when a stream, bucket or the consumer was lost (memory
   * storage across a broker restart, a purge), they are provisioned again, the catalog is
   * advertised at once and pulling resumes on the new consumer, without a restart.
   */
  async start(): Promise<void> {
    const { bus } = this.#opts;
    await ensurePoolConsumer(bus.jsm, this.pool, bus.limits);
    this.#cancelSub = bus.nc.subscribe(cancelContract.all, {
      callback: (_e, m) => {
        const notice = cancelContract.decode(m.data);
        if (notice) this.#onCancel(notice);
      },
    });
    await this.#advertise();
    const beat = Math.max(250, Math.floor(bus.limits.registryTtlMs / 3));
    this.#heartbeat = setInterval(() => void this.#advertise(), beat);
    this.#heartbeat.unref();
    await this.#consume();
    const livenessMs = this.#opts.livenessMs ?? 500;
    if (livenessMs > 0 && !this.#opts.shadow)
      this.#stopBeats = startLivenessBeats(bus.nc, this.pool, this.workerId, livenessMs);
    const consumer = poolConsumer(this.pool);
    this.#heal = new SelfHeal(bus, {
      checkMs: this.#opts.healCheckMs ?? 2_000,
      provision: this.#opts.provision !== false,
      // Without provisioning rights a worker may look up only what it uses (docs/broker.md roles).
      ...(this.#opts.provision === false
        ? { streams: [STREAMS.requests, `KV_${BUCKETS.registry}`] }
        : {}),
      log: this.#log,
      consumers: () => [
        {
          stream: STREAMS.requests,
          name: consumer,
          ensure: () => ensurePoolConsumer(bus.jsm, this.pool, bus.limits),
        },
      ],
    });
    this.#heal.on("reconnected", () => void this.#advertise());
    this.#heal.on("healed", (r) => {
      if (
        r.recreated.includes(`KV_${BUCKETS.registry}`) ||
        r.missing.includes(`KV_${BUCKETS.registry}`)
      )
        void this.#advertise();
      const lost = [...r.recreated, ...r.missing, ...r.moved];
      if (lost.includes(STREAMS.requests) || lost.includes(`${STREAMS.requests}/${consumer}`)) {
        // The consumer the pull loop reads died with the stream: pull from the new one now
        // rather than after the client's missed-heartbeat detection (tens of seconds).
        void this.#consume().catch((err: unknown) =>
          this.#log.warn({ err }, "could not resume pulling; the next check retries"),
        );
      }
    });
    await this.#heal.start();
    this.#log.info(
      { tools: this.catalog.tools.length, concurrency: this.#opts.concurrency },
      "worker started",
    );
  }

  /** The worker's self-heal (its `report` is the latest round of checks). */
  get heal(): SelfHeal | undefined {
    return this.#heal;
  }

  /** (Re)starts the pull loop on the pool consumer, replacing a previous one. */
  async #consume(): Promise<void> {
    if (this.#stopped) return;
    const { bus } = this.#opts;
    const consumer = await bus.js.consumers.get(STREAMS.requests, poolConsumer(this.pool));
    // Pulls expire after 5 s (not the client's 30 s): a pull parked on a consumer leader that died
    // is replaced within seconds even when self-heal has not noticed the move yet.
    const messages = await consumer.consume({
      max_messages: this.#opts.concurrency,
      expires: 5_000,
    });
    const previous = this.#messages;
    this.#messages = messages;
    previous?.stop();
    const workingEvery = Math.max(250, Math.floor(bus.limits.ackWaitMs / 3));
    const loop = (async () => {
      for await (const m of messages) {
        if (this.#running >= this.#opts.concurrency) {
          // Waiting for a slot counts against ack_wait too: keep the claim on this request.
          const keep = setInterval(() => m.working(), workingEvery);
          await this.#slotOrStartBy(m);
          clearInterval(keep);
        }
        // Past its start-by time (a first delivery), #handle refuses it unrun without a slot.
        void this.#handle(m);
      }
    })().catch((err: unknown) => this.#log.error({ err }, "consume loop ended"));
    this.#loop = previous ? Promise.all([this.#loop, loop]).then(() => undefined) : loop;
  }

  /**
   * Waits for a free slot, or until the request's start-by time (the edge's MCPQ_MAX_QUEUE_MS)
   * passes on a first delivery: a pulled request is refused then, not held until a long handler
   * frees a slot. The requests behind it in the pull buffer follow at once (theirs passed too).
   */
  async #slotOrStartBy(m: JsMsg): Promise<void> {
    const startBy = m.info.deliveryCount === 1 ? Number(m.headers?.get(H.startBy)) : NaN;
    let free!: () => void;
    const freed = new Promise<void>((r) => this.#slotWaiters.push((free = r)));
    if (!(startBy > 0)) return freed;
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<void>((r) => {
      // +1 ms: a timer may fire within the millisecond before its due time.
      timer = setTimeout(r, Math.max(0, startBy - Date.now() + 1));
    });
    await Promise.race([freed, late]);
    clearTimeout(timer);
    const i = this.#slotWaiters.indexOf(free);
    if (i >= 0) this.#slotWaiters.splice(i, 1);
  }

  /**
   * Graceful stop: leave the registry, stop pulling, let running handlers finish (bounded by
   * `graceMs`); anything unfinished is redelivered to another worker after `ack_wait`.
   */
  async stop(graceMs = 10_000): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    this.#heal?.stop();
    clearInterval(this.#heartbeat);
    await this.#opts.bus.kv.registry
      .delete(registryKey(this.pool, this.workerId))
      .catch(() => undefined);
    this.#messages?.stop();
    const until = Date.now() + graceMs;
    while (this.#running > 0 && Date.now() < until) await new Promise((r) => setTimeout(r, 20));
    this.#cancelSub?.unsubscribe();
    await this.#loop;
    // Beats until running handlers are done, so edges do not fail calls that are finishing.
    this.#stopBeats?.();
  }

  /** Announces `notifications/resources/updated` for `uri` to all subscribed sessions. */
  resourceUpdated(uri: string): void {
    this.#opts.bus.nc.publish(subjects.resourceUpdated, JSON.stringify({ uri }));
  }

  /** Evicts edge-cached results of entries tagged with any of `tags` (as `ctx.invalidate`). */
  invalidate(tags: string[]): void {
    publishInvalidation(this.#opts.bus, tags);
  }

  async #advertise(): Promise<void> {
    if (this.#stopped) return;
    const entry = {
      workerId: this.workerId,
      pool: this.pool,
      heartbeatAt: Date.now(),
      ttlMs: this.#opts.bus.limits.registryTtlMs,
      catalog: this.catalog,
      ...(this.#opts.shadow ? { shadow: true } : {}),
    };
    await this.#opts.bus.kv.registry
      .put(registryKey(this.pool, this.workerId), registryContract.encode(entry))
      .catch((err: unknown) => this.#log.warn({ err }, "registry heartbeat failed"));
  }

  #onCancel(n: CancelNotice): void {
    const key =
      n.internalId !== undefined
        ? (this.#byInternal.get(n.internalId) ?? internalKey(n.session, n.internalId))
        : inflightKey(n.session, n.requestId);
    const f = this.#inflight.get(key);
    if (f) {
      if (f.principal === n.principal) f.controller.abort(new Cancelled(n.reason));
      return;
    }
    const now = Date.now();
    if (this.#cancelledEarly.size >= CANCEL_MEMORY_MAX) {
      for (const [k, v] of this.#cancelledEarly) if (v.until <= now) this.#cancelledEarly.delete(k);
      const oldest = this.#cancelledEarly.keys().next().value;
      if (this.#cancelledEarly.size >= CANCEL_MEMORY_MAX && oldest !== undefined)
        this.#cancelledEarly.delete(oldest);
    }
    this.#cancelledEarly.set(key, { principal: n.principal, until: now + CANCEL_MEMORY_MS });
  }

  async #handle(m: JsMsg): Promise<void> {
    const { bus, metrics } = this.#opts;
    const env = decodeEnvelope(m.headers);
    if (!env) {
      this.#log.warn({ subject: m.subject }, "malformed envelope; dropping message");
      // Ack, not term: on a work-queue stream only an ack removes the message, and a message
      // that can never be processed must not occupy the bounded queue.
      m.ack();
      return;
    }
    if (Date.now() >= env.deadline) {
      // Never run work nobody waits for: the edge has already answered with a timeout.
      metrics?.expired();
      // A task its dead worker left (the client polls it): failed, not `working` until its TTL.
      // Only a task tool can have made one, so other expired requests (a storm's backlog) are
      // acked without a KV lookup each.
      if (env.targetKind === "tool" && this.#tools.get(env.target)?.task !== undefined)
        await abandonTask(this.#tasks(), env).catch((err: unknown) =>
          this.#log.warn({ err }, "could not fail an abandoned task"),
        );
      m.ack();
      return;
    }
    if (m.info.deliveryCount > 1) metrics?.redelivered();
    metrics?.queueWait?.(Math.max(0, Date.now() - m.info.timestampNanos / 1e6) / 1000);
    let request: { id: RequestId; method: string; params?: Record<string, unknown> };
    try {
      request = JSON.parse(m.string()) as typeof request;
    } catch {
      m.ack();
      return;
    }
    if (env.startBy !== undefined && m.info.deliveryCount === 1 && Date.now() >= env.startBy) {
      // Waited in the queue past the edge's queue-time bound: answer with the explicit, retryable
      // refusal instead of starting it behind a backlog. Only on a first delivery, which no worker
      // can have started, so the refusal's "safe to retry" holds (a redelivery may have run part).
      metrics?.expired();
      const waited = Math.max(0, Date.now() - env.receivedAt);
      const refusal = rejection(
        ErrorCode.Overloaded,
        `request waited ${waited} ms in the queue, longer than the edge allows before a worker starts it`,
        QUEUED_TOO_LONG_RETRY_MS,
      );
      try {
        await publishResponse(bus, env, {
          jsonrpc: "2.0",
          id: request.id,
          error: toWireError(refusal),
        });
        m.ack();
      } catch (err) {
        this.#log.warn({ err }, "refusal publish failed; nak for redelivery");
        m.nak(1_000);
      }
      return;
    }
    const target = targetNames(request.method, request.params);
    const consumerSpan = this.#opts.tracing
      ? this.#consumerSpan(this.#opts.tracing, m, env, request)
      : undefined;
    const earlyKey = this.#cancelledEarly.has(internalKey(env.session, env.requestId))
      ? internalKey(env.session, env.requestId)
      : inflightKey(env.session, request.id);
    const early = this.#cancelledEarly.get(earlyKey);
    if (early && early.principal === env.principal && early.until > Date.now()) {
      // Cancelled while queued: the edge already ended the client's wait; nothing to answer.
      this.#cancelledEarly.delete(earlyKey);
      metrics?.handled(request.method, "cancelled", 0, { ...target, errorType: "cancelled" });
      consumerSpan?.end();
      m.ack();
      return;
    }
    this.#running++;
    metrics?.inFlight(this.#running);
    const startedAt = Date.now();
    const key = inflightKey(env.session, request.id);
    const controller = new LazyAbort();
    this.#inflight.set(key, { controller, principal: env.principal });
    this.#byInternal.set(env.requestId, key);
    const budget = Math.min(this.#opts.handlerTimeoutMs, env.deadline - startedAt);
    let timer = setTimeout(
      () =>
        controller.abort(
          new McpError(ErrorCode.RequestTimeout, `Request timed out after ${budget} ms`),
        ),
      budget,
    );
    const working = setInterval(
      () => m.working(),
      Math.max(250, Math.floor(bus.limits.ackWaitMs / 3)),
    );
    const meta = (request.params?.["_meta"] ?? {}) as Record<string, unknown>;
    const related: Record<string, unknown>[] | undefined = this.#opts.recorder ? [] : undefined;
    const modern = isModernEra(env.protocolVersion);
    let round: MrtrRound | undefined;
    let roundError: unknown;
    if (modern && MRTR_METHODS.has(request.method)) {
      try {
        round = this.#beginRound(env, request.method, request.params ?? {});
      } catch (err) {
        roundError = err;
      }
    }
    const scope = createContext(
      bus,
      env,
      request.id,
      meta,
      controller,
      (kind, body) => {
        if (related && kind === "notification" && related.length < 100)
          related.push(body as Record<string, unknown>);
      },
      round,
      () => this.catalogChanged(),
    );
    // A long-running tool's call may become a task (tasks.ts); it then runs until its ttlMs.
    let task: TaskRun | undefined;
    if (request.method === "tools/call")
      try {
        task = this.#taskRun(env, request, scope.publish, controller, (until) => {
          clearTimeout(timer);
          timer = setTimeout(
            () =>
              controller.abort(new McpError(ErrorCode.RequestTimeout, "Task ran past its ttlMs")),
            Math.max(0, until - Date.now()),
          );
        });
      } catch (err) {
        roundError ??= err;
      }
    let response: { result?: Record<string, unknown>; error?: JsonRpcErrorObject } | null = null;
    let outcome: RecordEntry["outcome"] = "ok";
    let errorType = "";
    const handlerSpan =
      consumerSpan?.isRecording() && this.#opts.tracing
        ? this.#opts.tracing.tracer.startSpan(
            (target.tool ?? target.prompt)
              ? `${request.method} ${target.tool ?? target.prompt}`
              : request.method,
            { kind: SpanKind.INTERNAL, attributes: handlerAttributes(env, request, target) },
            trace.setSpan(ROOT_CONTEXT, consumerSpan),
          )
        : undefined;
    try {
      if (roundError !== undefined) throw roundError;
      if (round?.stateToken !== undefined)
        await claimRequestState(bus.kv.usedStates, round.stateToken, env.requestId, (reason) =>
          this.#log.info(
            { method: request.method, target: env.target, reason },
            "requestState refused",
          ),
        );
      if (task?.startsWithCall) {
        await task.start();
        // A tasks/cancel may come as soon as the client has the task: then the handler never runs.
        controller.throwIfAborted();
      }
      const result = await abortable(
        this.#dispatch(request.method, request.params ?? {}, task?.context(scope.ctx) ?? scope.ctx),
        controller,
      );
      response = { result: finishResult(result, round, modern) };
      if (result["isError"] === true && !round?.pending) {
        outcome = "error";
        errorType = "tool_error";
      }
    } catch (err) {
      const cancelled = controller.aborted && isFault(controller.reason, "cancelled");
      if (cancelled) {
        outcome = "cancelled";
        errorType = "cancelled";
      } else if (
        round &&
        !round.fatal &&
        round.pending &&
        !controller.aborted &&
        !(err instanceof McpError)
      ) {
        // The handler stopped at an unanswered input request: the round ends asking for it and
        // the retry runs the handler again with the answer. A protocol error it raised (-32021
        // for a capability the client lacks, say) is its answer instead: asking cannot help.
        try {
          response = { result: round.inputRequired() };
        } catch (e) {
          outcome = "error";
          const wire = toWireError(e);
          response = { error: wire };
          errorType = String(wire.code);
        }
      } else {
        const e = round?.fatal ?? err;
        outcome =
          e instanceof McpError && e.code === ErrorCode.RequestTimeout ? "timeout" : "error";
        if (!(e instanceof McpError))
          this.#log.error({ err: e, method: request.method }, "handler failed");
        else if (e === round?.fatal && e.code === ErrorCode.InternalError)
          this.#log.error({ err: e, method: request.method }, "handler misused input requests");
        const wire = toWireError(e);
        response = { error: wire };
        errorType = String(wire.code);
      }
    } finally {
      clearTimeout(timer);
      clearInterval(working);
      this.#inflight.delete(key);
      this.#byInternal.delete(env.requestId);
    }
    if (handlerSpan) endWithOutcome(handlerSpan, errorType, response?.error?.message);
    let acked = false;
    try {
      // A task's end is stored in the task (its CreateTaskResult was the response), then acked.
      if (task?.started) await task.finish(outcome === "cancelled" ? "cancelled" : response);
      else if (outcome !== "cancelled" && response) {
        await scope.publish("response", { jsonrpc: "2.0", id: request.id, ...response });
      }
      m.ack();
      acked = true;
    } catch (err) {
      // The response is not stored: let another delivery try again (at-least-once; the edge dedups).
      this.#log.warn({ err }, "response publish failed; nak for redelivery");
      m.nak(1_000);
    } finally {
      this.#running--;
      metrics?.inFlight(this.#running);
      metrics?.handled(request.method, outcome, (Date.now() - startedAt) / 1000, {
        ...target,
        errorType,
      });
      this.#slotWaiters.shift()?.();
      if (consumerSpan) {
        if (!acked)
          consumerSpan.setStatus({
            code: SpanStatusCode.ERROR,
            message: "response not stored; nak",
          });
        consumerSpan.end();
      }
    }
    // Only what a client actually got is recorded; a nak'ed request is recorded on its redelivery.
    if (this.#opts.recorder && acked) {
      try {
        this.#opts.recorder({
          envelope: env,
          request,
          response,
          outcome,
          workerId: this.workerId,
          pool: this.pool,
          startedAt,
          durationMs: Date.now() - startedAt,
          replayable: this.#replayable(request),
          notifications: related,
        });
      } catch (err) {
        this.#log.warn({ err }, "recorder failed");
      }
    }
  }

  /** The CONSUMER span of one delivery, continued from the edge's producer span (NATS headers). */
  #consumerSpan(
    t: WorkerTracing,
    m: JsMsg,
    env: RequestEnvelope,
    request: { id: RequestId; method: string },
  ): Span {
    const h = m.headers;
    const parent = h
      ? t.propagator.extract(ROOT_CONTEXT, h, {
          keys: (c) => c.keys(),
          get: (c, k) => c.get(k) || undefined,
        })
      : ROOT_CONTEXT;
    const span = t.tracer.startSpan(
      `process mcpq.req.${this.pool}`,
      { kind: SpanKind.CONSUMER },
      parent,
    );
    // Attributes only when sampled (the edge's decision travels in the traceparent flags).
    if (span.isRecording()) {
      span.setAttributes({
        "messaging.system": "nats",
        "messaging.operation.name": "process",
        "messaging.operation.type": "process",
        "messaging.destination.name": m.subject,
        "messaging.consumer.group.name": this.pool,
        "messaging.message.id": env.requestId,
        "messaging.message.body.size": m.data.length,
        "mcpq.delivery.count": m.info.deliveryCount,
        "mcp.method.name": request.method,
        "mcp.session.id": env.session,
      });
    }
    return span;
  }

  /** Reads the MRTR fields of a modern-era request; throws -32602 for a malformed or refused state. */
  #beginRound(env: RequestEnvelope, method: string, params: Record<string, unknown>): MrtrRound {
    const binding = {
      principal: env.principal,
      method,
      target: env.target,
      digest: paramsDigest(params),
    };
    return MrtrRound.begin(params, binding, this.#sealer, env.clientCapabilities, (reason) =>
      this.#log.info({ method, target: env.target, reason }, "requestState refused"),
    );
  }

  /** The task this tools/call may become (tasks.ts); throws -32021 for a task-only tool without the extension. */
  #taskRun(
    env: RequestEnvelope,
    request: { id: RequestId; params?: Record<string, unknown> },
    publish: (kind: "response", body: unknown) => Promise<void>,
    abort: LazyAbort,
    extendUntil: (untilMs: number) => void,
  ): TaskRun | undefined {
    const tool = this.#tools.get(String(request.params?.["name"]));
    return taskRunFor(env, tool?.task, request.params, {
      store: this.#tasks(),
      maxTtlMs: this.#opts.bus.limits.taskTtlMs,
      respond: (result) => publish("response", { jsonrpc: "2.0", id: request.id, result }),
      extendUntil,
      // Read only when the call is a task that waits: a plain call builds no AbortSignal.
      get signal() {
        return abort.signal;
      },
    });
  }

  #tasks(): TaskStore {
    return (this.#taskStore ??= new TaskStore(this.#opts.bus.kv.tasks, this.#opts.bus.jsm, {
      maxPerPrincipal: this.#opts.tasksMaxPerPrincipal,
    }));
  }

  #replayable(request: { method: string; params?: Record<string, unknown> }): boolean {
    if (request.method !== "tools/call") return true;
    const t = this.#tools.get(String(request.params?.["name"]));
    return t ? (t.replayable ?? !t.annotations?.destructiveHint) : true;
  }

  async #dispatch(
    method: string,
    params: Record<string, unknown>,
    ctx: HandlerContext,
  ): Promise<Record<string, unknown>> {
    switch (method) {
      case "tools/call":
        return this.#callTool(params, ctx);
      case "resources/read":
        return this.#readResource(params, ctx);
      case "prompts/get":
        return this.#getPrompt(params, ctx);
      case "completion/complete":
        return this.#complete(params, ctx);
      default:
        throw new McpError(ErrorCode.MethodNotFound, `Method not found: ${method}`);
    }
  }

  async #callTool(
    raw: Record<string, unknown>,
    ctx: HandlerContext,
  ): Promise<Record<string, unknown>> {
    const params = parseParams(CallToolParamsSchema, raw);
    const tool = this.#tools.get(params.name);
    if (!tool) throw new McpError(ErrorCode.InvalidParams, `Unknown tool: ${params.name}`);
    const args = tool.input.safeParse(params.arguments ?? {});
    if (!args.success) {
      return {
        content: [
          {
            type: "text",
            text: `Invalid arguments for tool ${tool.name}: ${z.prettifyError(args.error)}`,
          },
        ],
        isError: true,
      };
    }
    let out: CallToolResult | string | ContentBlock[];
    try {
      out = await tool.handler(args.data, ctx);
    } catch (err) {
      if (err instanceof McpError || ctx.signal.aborted) throw err;
      // A tool's own failure is a tool-execution error the model can see; no stack crosses the wire.
      const message = err instanceof Error ? err.message : "tool failed";
      return { content: [{ type: "text", text: message }], isError: true };
    }
    const result: CallToolResult =
      typeof out === "string"
        ? { content: [{ type: "text", text: out }] }
        : Array.isArray(out)
          ? { content: out }
          : out;
    if (tool.output && !result.isError) {
      const checked = tool.output.safeParse(result.structuredContent);
      if (!checked.success) {
        this.#log.error(
          { tool: tool.name, issues: checked.error.issues },
          "structuredContent violates outputSchema",
        );
        throw new McpError(ErrorCode.InternalError, "Internal error");
      }
      if (!result.content || result.content.length === 0) {
        result.content = [{ type: "text", text: JSON.stringify(result.structuredContent) }];
      }
    }
    return result as unknown as Record<string, unknown>;
  }

  async #readResource(
    raw: Record<string, unknown>,
    ctx: HandlerContext,
  ): Promise<Record<string, unknown>> {
    const { uri } = parseParams(ReadResourceParamsSchema, raw);
    const modern = isModernEra(ctx.protocolVersion);
    // 2026-07-28: a read result carries its caching hints (the resource's, else its template's).
    const withHints = (
      def: ResourceDefinition | ResourceTemplateDefinition,
      result: Record<string, unknown>,
    ) => (modern ? { ...result, ...this.#readHints.get(def) } : result);
    const direct = this.#resources.get(uri);
    if (direct)
      return withHints(direct, {
        contents: normaliseContents(await direct.read(ctx), uri, direct.mimeType),
      });
    for (const t of this.#templates) {
      const vars = matchUriTemplate(t.uriTemplate, uri);
      if (vars)
        return withHints(t, {
          contents: normaliseContents(await t.read(vars, uri, ctx), uri, t.mimeType),
        });
    }
    // 2026-07-28 standardises on -32602 (SEP-2164); older revisions keep -32002.
    throw new McpError(
      modern ? ErrorCode.InvalidParams : ErrorCode.ResourceNotFound,
      "Resource not found",
      { uri },
    );
  }

  async #getPrompt(
    raw: Record<string, unknown>,
    ctx: HandlerContext,
  ): Promise<Record<string, unknown>> {
    const params = parseParams(GetPromptParamsSchema, raw);
    const prompt = this.#prompts.get(params.name);
    if (!prompt) throw new McpError(ErrorCode.InvalidParams, `Unknown prompt: ${params.name}`);
    let args: unknown = params.arguments ?? {};
    if (prompt.args) {
      const parsed = prompt.args.safeParse(args);
      if (!parsed.success) {
        throw new McpError(
          ErrorCode.InvalidParams,
          `Invalid arguments for prompt ${prompt.name}: ${z.prettifyError(parsed.error)}`,
        );
      }
      args = parsed.data;
    }
    return (await prompt.get(args as never, ctx)) as unknown as Record<string, unknown>;
  }

  async #complete(
    raw: Record<string, unknown>,
    ctx: HandlerContext,
  ): Promise<Record<string, unknown>> {
    const params = parseParams(CompleteParamsSchema, raw);
    const completers =
      params.ref.type === "ref/prompt"
        ? this.#prompts.get(params.ref.name)?.complete
        : this.#templates.find((t) => t.uriTemplate === (params.ref as { uri: string }).uri)
            ?.complete;
    const fn = completers?.[params.argument.name];
    if (!fn) return { completion: { values: [] } };
    const out = await fn(
      params.argument.value,
      { arguments: params.context?.arguments ?? {} },
      ctx,
    );
    const res: CompletionResult = Array.isArray(out) ? { values: out } : out;
    // The spec caps a completion response at 100 values.
    const values = res.values.slice(0, 100);
    const completion: Record<string, unknown> = { values };
    if (res.total !== undefined) completion["total"] = res.total;
    if (res.hasMore !== undefined || res.values.length > 100)
      completion["hasMore"] = res.hasMore ?? true;
    return { completion };
  }
}

/** The tool or prompt a routed request names (raw; the service bounds label values). */
function targetNames(
  method: string,
  params: Record<string, unknown> | undefined,
): { tool?: string; prompt?: string } {
  const name = params?.["name"];
  if (method === "tools/call" && typeof name === "string") return { tool: name };
  if (method === "prompts/get" && typeof name === "string") return { prompt: name };
  if (method === "completion/complete") {
    const ref = params?.["ref"] as { type?: unknown; name?: unknown } | undefined;
    if (ref?.type === "ref/prompt" && typeof ref.name === "string") return { prompt: ref.name };
  }
  return {};
}

/** MCP semantic-convention attributes of the handler span (attribute names copied as strings). */
function handlerAttributes(
  env: RequestEnvelope,
  request: { id: RequestId; method: string; params?: Record<string, unknown> },
  target: { tool?: string; prompt?: string },
): Record<string, string> {
  const a: Record<string, string> = {
    "mcp.method.name": request.method,
    "mcp.session.id": env.session,
    "mcp.protocol.version": env.protocolVersion,
    "jsonrpc.request.id": String(request.id),
  };
  if (target.tool) {
    a["gen_ai.tool.name"] = target.tool;
    a["gen_ai.operation.name"] = "execute_tool";
  }
  if (target.prompt) a["gen_ai.prompt.name"] = target.prompt;
  const uri = request.params?.["uri"];
  if (request.method === "resources/read" && typeof uri === "string") a["mcp.resource.uri"] = uri;
  return a;
}

function endWithOutcome(span: Span, errorType: string, message: string | undefined): void {
  if (errorType !== "" && errorType !== "cancelled") {
    span.setAttribute("error.type", errorType);
    if (errorType !== "tool_error") span.setAttribute("rpc.response.status_code", errorType);
    span.setStatus({ code: SpanStatusCode.ERROR, ...(message ? { message } : {}) });
  }
  span.end();
}

/** How long, and how many, cancels of requests not (yet) running here are remembered. */
/** Retry hint of a request refused for waiting past the queue-time bound: about one queue drain. */
const QUEUED_TOO_LONG_RETRY_MS = 1_000;
const CANCEL_MEMORY_MS = 5 * 60_000;
const CANCEL_MEMORY_MAX = 10_000;

/** Where a cancel naming only the internal id is remembered until its request arrives. */
function internalKey(session: string, internalId: string): string {
  return `${session}\u0001${internalId}`;
}

function inflightKey(session: string, id: RequestId): string {
  return `${session}\u0000${typeof id}:${id}`;
}

/**
 * The result a handler's completed run answers with: in the 2026-07-28 era an `input_required`
 * result when an input request is still unanswered (the handler may have caught its rejection),
 * the round's protocol error when an answer was malformed, else the result with
 * `resultType: "complete"`. Older revisions get the result unchanged.
 */
function finishResult(
  result: Record<string, unknown>,
  round: MrtrRound | undefined,
  modern: boolean,
): Record<string, unknown> {
  if (round?.fatal) throw round.fatal;
  if (round?.pending) return round.inputRequired();
  return modern ? { ...result, resultType: "complete" } : result;
}

function parseParams<T extends z.ZodType>(schema: T, raw: unknown): z.output<T> {
  const r = schema.safeParse(raw);
  if (!r.success)
    throw new McpError(ErrorCode.InvalidParams, `Invalid params: ${z.prettifyError(r.error)}`);
  return r.data;
}

function abortable<T>(p: Promise<T>, abort: LazyAbort): Promise<T> {
  if (abort.aborted) return Promise.reject(abort.reason as Error);
  return new Promise<T>((resolve, reject) => {
    const stop = abort.onAbort(() => reject(abort.reason as Error));
    p.then(
      (v) => {
        stop();
        resolve(v);
      },
      (e: unknown) => {
        stop();
        reject(e as Error);
      },
    );
  });
}

function normaliseContents(out: ResourceReadOutput, uri: string, mimeType?: string): unknown[] {
  const list = Array.isArray(out) ? out : [out];
  return list.map((c) => {
    const withUri = "uri" in c ? c : { uri, ...c };
    return mimeType && !("mimeType" in withUri && withUri.mimeType)
      ? { ...withUri, mimeType }
      : withUri;
  });
}
