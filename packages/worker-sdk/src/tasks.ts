import { ErrorCode, McpError, isModernEra, type JsonRpcErrorObject } from "@mcpq/protocol";
import {
  TASKS_CAPABILITY,
  TASKS_EXTENSION,
  TaskStore,
  isTerminal,
  newTaskId,
  taskOwner,
  taskView,
  legacyTaskView,
  type RequestEnvelope,
  type TaskRecord,
} from "@mcpq/bus";
import type { AskOptions, HandlerContext } from "./context.js";
import {
  CAPABILITY_OF,
  defaultInputKey,
  isInputResponse,
  missingCapability,
  type InputMethod,
} from "./mrtr.js";

/**
 * Long-running tools as tasks (MCP tasks extension `io.modelcontextprotocol/tasks`, SEP-2663,
 * protocol 2026-07-28), worker side.
 *
 * A tool defined with `task` becomes a task when the client negotiated the extension (in the
 * request's `_meta` client capabilities): the worker stores the task in the broker (KV
 * `mcpq_tasks`), answers the `tools/call` with a `CreateTaskResult` (`resultType: "task"`,
 * `taskId`, `status`, `createdAt`, `lastUpdatedAt`, `ttlMs`, `pollIntervalMs`) and keeps running
 * the handler; its result (`completed`, a tool error included as `result.isError`), protocol
 * error (`failed`) or cancellation (`cancelled`) is written to the task, and only then is the
 * request acked. While it runs, `ctx.elicit()`, `ctx.sample()` and `ctx.listRoots()` park the task
 * in `input_required` with the question under `inputRequests` and wait for the client's
 * `tasks/update`, which may reach any edge. `tasks/cancel` on any edge aborts `ctx.signal`.
 */

/** The `task` option of `defineTool`. */
export interface ToolTaskOptions {
  /**
   * `optional`: a client that did not negotiate the tasks extension gets a plain result (the
   * handler runs synchronously); `required`: it gets -32021 (Missing Required Client Capability).
   * Listed as the tool's `execution.taskSupport`.
   */
  support: "optional" | "required";
  /**
   * When the call becomes a task: `call` (default) before the handler runs; `handler` when the
   * handler calls `ctx.startTask()` — until then it runs as a plain request, so it can gather
   * input with MRTR rounds first and then go on as a task (a call that never starts one answers
   * synchronously).
   */
  start?: "call" | "handler";
  /** How long the task stays readable after its creation (ms; at most MCPQ_TASK_TTL_MS, the default). */
  ttlMs?: number;
  /** Suggested `tasks/get` polling interval (ms). Default 1000. */
  pollIntervalMs?: number;
}

const DEFAULT_POLL_INTERVAL_MS = 1_000;
/** Most input requests one task has open at once. */
const MAX_OPEN_INPUTS = 32;
const MAX_KEY_LENGTH = 128;

/** What a task run needs from its worker. */
export interface TaskRunDeps {
  store: TaskStore;
  /** MCPQ_TASK_TTL_MS: the longest task lifetime. */
  maxTtlMs: number;
  /** Publishes the `tools/call` answer (the CreateTaskResult) on the request's stream. */
  respond(result: Record<string, unknown>): Promise<void>;
  /** The task started: the handler may now run until `untilMs` (epoch ms) instead of the request deadline. */
  extendUntil(untilMs: number): void;
  /** Fires when the task is cancelled (or the handler is otherwise aborted). */
  signal: AbortSignal;
}

/**
 * The task a `tools/call` may become, for a tool with a `task` option; undefined when it cannot
 * be one. 2026-07-28: when the client negotiated the extension (else an optional tool runs
 * synchronously and a required one throws -32021). 2025-11-25 and older (experimental tasks):
 * when the request asks for one with `params.task` (`{ ttl? }`); a required tool called without
 * it throws -32601, as that revision says.
 */
export function taskRunFor(
  env: RequestEnvelope,
  opts: ToolTaskOptions | undefined,
  params: Record<string, unknown> | undefined,
  deps: TaskRunDeps,
): TaskRun | undefined {
  if (!opts) return undefined;
  if (!isModernEra(env.protocolVersion)) {
    const asked = params?.["task"];
    if (typeof asked !== "object" || asked === null) {
      if (opts.support === "optional") return undefined;
      throw new McpError(
        ErrorCode.MethodNotFound,
        "Tool requires task-augmented execution (params.task)",
      );
    }
    const ttl = (asked as { ttl?: unknown }).ttl;
    return new TaskRun(
      env,
      {
        ...opts,
        start: "call",
        ...(typeof ttl === "number" && ttl > 0
          ? { ttlMs: Math.min(Math.floor(ttl), opts.ttlMs ?? ttl) }
          : {}),
      },
      deps,
      true,
    );
  }
  if (!env.clientCapabilities?.includes(TASKS_CAPABILITY)) {
    if (opts.support === "optional") return undefined;
    throw new McpError(
      ErrorCode.MissingRequiredClientCapability,
      `Tool requires the ${TASKS_EXTENSION} extension (declare it in the request's client capabilities)`,
      { requiredCapabilities: { extensions: { [TASKS_EXTENSION]: {} } } },
    );
  }
  return new TaskRun(env, opts, deps);
}

/**
 * A request whose deadline passed before its redelivery could run (its worker died): the task it
 * created, if any and not finished, fails with -32603 instead of staying `working` until its TTL.
 */
export async function abandonTask(store: TaskStore, env: RequestEnvelope): Promise<void> {
  const rec = await store.ofRequest(env.requestId, env.principal);
  if (!rec || isTerminal(rec.status)) return;
  await store.update(rec.taskId, (r) => {
    if (isTerminal(r.status)) return undefined;
    r.status = "failed";
    r.error = {
      code: ErrorCode.InternalError,
      message: "the worker running this task stopped before it finished",
    };
    delete r.inputRequests;
    delete r.inputResponses;
    return r;
  });
}

/** One tools/call that is (or may become) a task. */
export class TaskRun {
  #starting: Promise<void> | undefined;
  #taskId: string | undefined;
  #stopWatch: (() => void) | undefined;
  #watching: Promise<void> | undefined;
  readonly #waiting = new Map<
    string,
    {
      method: InputMethod;
      resolve: (r: Record<string, unknown>) => void;
      reject: (e: unknown) => void;
    }
  >();
  readonly #counters = new Map<InputMethod, number>();

  constructor(
    private readonly env: RequestEnvelope,
    private readonly opts: ToolTaskOptions,
    private readonly deps: TaskRunDeps,
    /** 2025-11-25 experimental tasks: `{ task }` answers; no input requests (they would need tasks/result streams). */
    private readonly legacy = false,
  ) {}

  /** Whether the call becomes a task before its handler runs. */
  get startsWithCall(): boolean {
    return (this.opts.start ?? "call") === "call";
  }

  /** Whether the task exists (the client got its CreateTaskResult). */
  get started(): boolean {
    return this.#taskId !== undefined;
  }

  /**
   * Creates the task (stored before the client hears of it: a `tasks/get` right after the
   * CreateTaskResult resolves on any edge) and answers the call with it. Idempotent.
   */
  start(): Promise<void> {
    this.#starting ??= this.#start();
    return this.#starting;
  }

  async #start(): Promise<void> {
    // A delivery of a request that made its task already (its worker died before the ack; the
    // delivery count is no proof, a recreated consumer starts it again at 1).
    const prior = await this.deps.store.ofRequest(this.env.requestId, this.env.principal);
    if (prior) {
      // The client has this task already (the answer below is a duplicate the stream drops):
      // run the handler again under it. A terminal task keeps its end (finish never overwrites it).
      await this.deps.respond(this.#created(prior));
      this.#taskId = prior.taskId;
      this.deps.extendUntil(prior.createdAt + prior.ttlMs);
      return;
    }
    const now = Date.now();
    const ttlMs = Math.max(1, Math.min(this.opts.ttlMs ?? this.deps.maxTtlMs, this.deps.maxTtlMs));
    const rec: TaskRecord = {
      v: 1,
      taskId: newTaskId(),
      owner: taskOwner(this.env.principal),
      status: "working",
      createdAt: now,
      lastUpdatedAt: now,
      ttlMs,
      pollIntervalMs: this.opts.pollIntervalMs ?? DEFAULT_POLL_INTERVAL_MS,
      session: this.env.session,
      requestId: this.env.requestId,
    };
    await this.deps.store.create(rec);
    await this.deps.respond(this.#created(rec));
    this.#taskId = rec.taskId;
    this.deps.extendUntil(now + ttlMs);
  }

  /** The call's answer: the CreateTaskResult of the request's era. */
  #created(rec: TaskRecord): Record<string, unknown> {
    return this.legacy ? { task: legacyTaskView(rec) } : { resultType: "task", ...taskView(rec) };
  }

  /**
   * The handler's context for this call: `startTask()` starts the task; once it is started,
   * `elicit`, `sample` and `listRoots` are task input requests (below).
   */
  context(base: HandlerContext): HandlerContext {
    return {
      ...base,
      startTask: () => this.start(),
      elicit: (p, o) => (this.started ? this.ask("elicitation/create", p, o) : base.elicit(p, o)),
      sample: (p, o) =>
        this.started ? this.ask("sampling/createMessage", p, o) : base.sample(p, o),
      listRoots: (o) => (this.started ? this.ask("roots/list", undefined, o) : base.listRoots(o)),
    };
  }

  /**
   * A task input request: stored under `inputRequests[key]` (the task is `input_required` while
   * any is open); resolves with the client's `tasks/update` answer for the key. Rejects with
   * -32021 when the client lacks the capability, -32602 for a malformed answer, and with the
   * abort reason when the task is cancelled.
   */
  async ask(
    method: InputMethod,
    params: Record<string, unknown> | undefined,
    opts?: AskOptions,
  ): Promise<Record<string, unknown>> {
    const taskId = this.#taskId!;
    if (this.legacy)
      throw new McpError(
        ErrorCode.InternalError,
        `${method} is not available in a ${this.env.protocolVersion} task (the 2026-07-28 tasks extension has input requests)`,
      );
    const caps = this.env.clientCapabilities;
    if (caps && !caps.includes(CAPABILITY_OF[method])) throw missingCapability(method);
    const n = (this.#counters.get(method) ?? 0) + 1;
    this.#counters.set(method, n);
    const key = opts?.key ?? defaultInputKey(method, n);
    if (key.length === 0 || key.length > MAX_KEY_LENGTH)
      throw new McpError(
        ErrorCode.InternalError,
        `input request key must be 1-${MAX_KEY_LENGTH} characters`,
      );
    if (this.#waiting.has(key))
      throw new McpError(
        ErrorCode.InternalError,
        `input request key ${JSON.stringify(key)} is already open`,
      );
    if (this.#waiting.size >= MAX_OPEN_INPUTS)
      throw new McpError(
        ErrorCode.InternalError,
        `more than ${MAX_OPEN_INPUTS} open input requests`,
      );
    this.deps.signal.throwIfAborted();
    const answer = new Promise<Record<string, unknown>>((resolve, reject) => {
      this.#waiting.set(key, { method, resolve, reject });
    });
    const onAbort = () => this.#waiting.get(key)?.reject(this.deps.signal.reason);
    this.deps.signal.addEventListener("abort", onAbort, { once: true });
    try {
      await this.deps.store.update(taskId, (r) => {
        if (isTerminal(r.status)) return undefined;
        r.inputRequests = { ...r.inputRequests, [key]: { method, params: params ?? {} } };
        r.status = "input_required";
        return r;
      });
      await this.#watch(taskId);
      return await answer;
    } finally {
      this.deps.signal.removeEventListener("abort", onAbort);
      this.#waiting.delete(key);
    }
  }

  /** Watches the task for answers (one watch per run, from the first ask to the end). */
  #watch(taskId: string): Promise<void> {
    this.#watching ??= this.deps.store
      .watch(taskId, (rec) => this.#answers(taskId, rec))
      .then((stop) => {
        this.#stopWatch = stop;
      });
    return this.#watching;
  }

  /** Takes the answers for this run's open input requests out of the task (CAS) and resolves them. */
  #answers(taskId: string, rec: TaskRecord): void {
    const ready = Object.keys(rec.inputResponses ?? {}).filter((k) => this.#waiting.has(k));
    if (ready.length === 0) return;
    let taken: Record<string, Record<string, unknown>> = {};
    void this.deps.store
      .update(taskId, (r) => {
        taken = {};
        for (const k of ready) {
          const v = r.inputResponses?.[k];
          if (v === undefined) continue;
          taken[k] = v;
          delete r.inputResponses![k];
        }
        return Object.keys(taken).length > 0 ? r : undefined;
      })
      .then(
        () => {
          for (const [k, v] of Object.entries(taken)) {
            const w = this.#waiting.get(k);
            if (!w) continue;
            if (isInputResponse(w.method, v)) w.resolve(v);
            else
              w.reject(
                new McpError(
                  ErrorCode.InvalidParams,
                  `Invalid params: inputResponses[${JSON.stringify(k)}] is not a valid ${w.method} result`,
                ),
              );
          }
        },
        (err: unknown) => {
          for (const k of ready) this.#waiting.get(k)?.reject(err);
        },
      );
  }

  /**
   * Writes how the task ended — the tool's result (`completed`), a JSON-RPC error (`failed`) or
   * `cancelled` — unless it is terminal already (cancelled by the client first). Rejects when
   * the store cannot be written (the caller leaves the request unacked for redelivery).
   */
  async finish(
    end: { result?: Record<string, unknown>; error?: JsonRpcErrorObject } | null | "cancelled",
  ): Promise<void> {
    this.#stopWatch?.();
    const taskId = this.#taskId!;
    const write = (
      status: TaskRecord["status"],
      result?: Record<string, unknown>,
      error?: TaskRecord["error"],
    ) =>
      this.deps.store.update(taskId, (r) => {
        if (isTerminal(r.status)) return undefined;
        r.status = status;
        delete r.inputRequests;
        delete r.inputResponses;
        if (result) r.result = result;
        if (error) r.error = error;
        return r;
      });
    if (end === "cancelled") {
      await write("cancelled");
      return;
    }
    if (end?.result) {
      // The inlined result is the tool's own: the envelope fields belong to tasks/get.
      const { resultType: _t, ...result } = end.result;
      try {
        await write("completed", result);
      } catch (err) {
        if (!(err instanceof McpError)) throw err;
        await write("failed", undefined, { code: err.code, message: err.message });
      }
      return;
    }
    const e = end?.error ?? { code: ErrorCode.InternalError, message: "Internal error" };
    await write("failed", undefined, {
      code: e.code,
      message: e.message,
      ...(e.data === undefined ? {} : { data: e.data }),
    });
  }
}
