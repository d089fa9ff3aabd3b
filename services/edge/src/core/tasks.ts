import { z } from "zod";
import {
  ErrorCode,
  McpError,
  rejection,
  type JsonRpcRequest,
  type ToolDescriptor,
} from "@mcpq/protocol";
import {
  TASKS_CAPABILITY,
  TASKS_EXTENSION,
  TaskStore,
  cancelContract,
  isTerminal,
  legacyTaskView,
  taskView,
  type Bus,
  type CancelNotice,
} from "@mcpq/bus";
import type { SessionRecord } from "./session-store.js";
import type { TaskRecord } from "@mcpq/bus";

/**
 * The tasks extension (`io.modelcontextprotocol/tasks`, SEP-2663) at the edge: `tasks/get`,
 * `tasks/update` and `tasks/cancel` of the stateless era, answered from the broker's task store
 * (KV `mcpq_tasks`), so any edge answers for any task, whichever edge created it and whether that
 * edge still runs. Workers create tasks and write their ends (packages/worker-sdk/src/tasks.ts).
 *
 * - A request whose `_meta` client capabilities do not declare the extension gets -32021
 *   (Missing Required Client Capability) naming it in `data.requiredCapabilities`.
 * - A task of another principal, an expired one and an unknown id are all -32602 "Task not
 *   found" (ids cannot be probed).
 * - `tasks/get`: the Task (`taskId`, `status`, `createdAt`, `lastUpdatedAt`, `ttlMs`,
 *   `pollIntervalMs`), with `result` once completed, `error` once failed and `inputRequests`
 *   while input is required.
 * - `tasks/update`: answers (`inputResponses`) to open input requests are handed to the worker
 *   through the task; keys the task does not wait for are ignored; the task is `working` again
 *   once none is open. Acked with an empty result.
 * - `tasks/cancel`: a running task becomes `cancelled` (sticky) and the worker running it is told
 *   on the cancel subject (its handler's `ctx.signal` aborts); a terminal task is left as it is.
 *   Acked with an empty result.
 * `tasks/result` and `tasks/list` do not exist in this version of the extension (-32601).
 */

export const TASK_METHODS: ReadonlySet<string> = new Set([
  "tasks/get",
  "tasks/update",
  "tasks/cancel",
]);

/**
 * The 2025-11-25 era's (experimental) task methods this edge answers for sessions: `tasks/get`,
 * `tasks/result`, `tasks/cancel` (no `tasks/list`: a principal's tasks are not enumerable here,
 * and the capability does not say `list`).
 */
export const LEGACY_TASK_METHODS: ReadonlySet<string> = new Set([
  "tasks/get",
  "tasks/result",
  "tasks/cancel",
]);

const TaskParamsSchema = z.object({ taskId: z.string().min(1).max(256) }).loose();
const UpdateParamsSchema = z
  .object({
    taskId: z.string().min(1).max(256),
    inputResponses: z.record(z.string().max(128), z.record(z.string(), z.unknown())),
  })
  .loose();

/** Whether the request's client capabilities declare the tasks extension. */
function negotiated(caps: Record<string, unknown> | undefined): boolean {
  const ext = caps?.["extensions"];
  if (typeof ext !== "object" || ext === null) return false;
  const v = (ext as Record<string, unknown>)[TASKS_EXTENSION];
  return typeof v === "object" && v !== null;
}

/**
 * The envelope's client-capability list (`Mcpq-Client-Capabilities`): the top-level capability
 * names, and `extensions/io.modelcontextprotocol/tasks` when the client declared the extension
 * (workers decide from it whether a call may become a task).
 */
export function capabilityNames(caps: Record<string, unknown> | undefined): string[] {
  const names = Object.keys(caps ?? {});
  if (negotiated(caps)) names.push(TASKS_CAPABILITY);
  return names;
}

function notFound(): McpError {
  return new McpError(ErrorCode.InvalidParams, "Task not found");
}

function parse<T extends z.ZodType>(schema: T, raw: unknown): z.output<T> {
  const r = schema.safeParse(raw);
  if (!r.success)
    throw new McpError(ErrorCode.InvalidParams, `Invalid params: ${z.prettifyError(r.error)}`);
  return r.data;
}

/** The edge's side of the tasks extension (one per edge; `SessionCore.tasks`). */
export class EdgeTasks {
  readonly #store: TaskStore;
  #waits = 0;

  constructor(
    private readonly bus: Pick<Bus, "nc" | "kv" | "jsm">,
    /** Longest `tasks/result` wait (ms; MCPQ_REQUEST_TIMEOUT_MS): it answers -32001 after it. */
    private readonly resultWaitMs: number,
    /** MCPQ_MAX_TASK_WAITS: `tasks/result` calls waiting at once (each watches its task). */
    private readonly maxWaits: number,
  ) {
    // Edges create no tasks (workers do), so no per-principal bound applies here.
    this.#store = new TaskStore(bus.kv.tasks, bus.jsm);
  }

  /**
   * 2025-11-25 sessions: `capabilities.tasks` of the initialize result when a tool of the catalog
   * supports tasks (task-augmented `tools/call`, `tasks/cancel`).
   */
  legacyCapabilities(tools: readonly ToolDescriptor[]): Record<string, unknown> {
    const some = tools.some(
      (t) => t.execution?.taskSupport === "optional" || t.execution?.taskSupport === "required",
    );
    return some ? { tasks: { cancel: {}, requests: { tools: { call: {} } } } } : {};
  }

  /**
   * A 2025-11-25 session's `tasks/get` (the Task, `ttl`/`pollInterval` in ms), `tasks/result`
   * (waits for the end, at most `resultWaitMs`: the tool's result with
   * `_meta["io.modelcontextprotocol/related-task"]`, or the task's JSON-RPC error) and
   * `tasks/cancel` (the cancelled Task; -32602 for a terminal one). Unknown or another
   * principal's task: -32602.
   */
  async answerLegacy(
    session: SessionRecord,
    req: JsonRpcRequest,
  ): Promise<Record<string, unknown>> {
    const { taskId } = parse(TaskParamsSchema, req.params);
    const rec = await this.#store.get(taskId, session.principal);
    if (!rec) throw notFound();
    switch (req.method) {
      case "tasks/get":
        return legacyTaskView(rec);
      case "tasks/cancel": {
        if (isTerminal(rec.status))
          throw new McpError(ErrorCode.InvalidParams, `Cannot cancel a task that is ${rec.status}`);
        await this.#cancel(session, taskId);
        const after = await this.#store.get(taskId, session.principal);
        return legacyTaskView(after ?? rec);
      }
      default: {
        const end = await this.#ended(taskId, session.principal, rec);
        const related = { "io.modelcontextprotocol/related-task": { taskId } };
        if (end.status === "completed" && end.result) {
          const meta = (end.result["_meta"] ?? {}) as Record<string, unknown>;
          return { ...end.result, _meta: { ...meta, ...related } };
        }
        if (end.status === "failed" && end.error)
          throw new McpError(end.error.code, end.error.message, end.error.data);
        throw new McpError(ErrorCode.InternalError, `Task ${taskId} was ${end.status}`);
      }
    }
  }

  /** The task once terminal (watched in the bucket), or -32001 after `resultWaitMs`. */
  async #ended(taskId: string, principal: string, rec: TaskRecord): Promise<TaskRecord> {
    if (isTerminal(rec.status)) return rec;
    if (this.#waits >= this.maxWaits)
      throw rejection(
        ErrorCode.Overloaded,
        "too many tasks/result calls waiting on this edge (MCPQ_MAX_TASK_WAITS)",
        1_000,
      );
    this.#waits++;
    let timer: NodeJS.Timeout | undefined;
    let done!: (r: TaskRecord) => void;
    const ended = new Promise<TaskRecord>((resolve, reject) => {
      done = resolve;
      timer = setTimeout(
        () =>
          reject(
            new McpError(
              ErrorCode.RequestTimeout,
              `Task ${taskId} did not end within ${this.resultWaitMs} ms`,
            ),
          ),
        this.resultWaitMs,
      );
    });
    ended.catch(() => undefined);
    const watching = this.#store.watch(taskId, (r) => {
      if (isTerminal(r.status)) done(r);
    });
    try {
      await watching;
      await ended;
      return (await this.#store.get(taskId, principal)) ?? (await ended);
    } finally {
      this.#waits--;
      clearTimeout(timer);
      // The watch stops once it exists, also when the wait ended first.
      void watching.then(
        (stop) => stop(),
        () => undefined,
      );
    }
  }

  /**
   * Adds `capabilities.extensions["io.modelcontextprotocol/tasks"]` (server/discover) when a
   * tool of the catalog supports tasks: only then can a task exist.
   */
  advertise(tools: readonly ToolDescriptor[], caps: Record<string, unknown>): void {
    const some = tools.some(
      (t) => t.execution?.taskSupport === "optional" || t.execution?.taskSupport === "required",
    );
    if (some) caps["extensions"] = { [TASKS_EXTENSION]: {} };
  }

  /** Answers a `tasks/*` request of a stateless-era request (`session` is its synthetic session). */
  async answer(session: SessionRecord, req: JsonRpcRequest): Promise<Record<string, unknown>> {
    if (!negotiated(session.clientCapabilities))
      throw new McpError(
        ErrorCode.MissingRequiredClientCapability,
        `${req.method} needs the ${TASKS_EXTENSION} extension (declare it in the request's client capabilities)`,
        { requiredCapabilities: { extensions: { [TASKS_EXTENSION]: {} } } },
      );
    switch (req.method) {
      case "tasks/get":
        return this.#get(session, parse(TaskParamsSchema, req.params).taskId);
      case "tasks/update":
        return this.#update(session, parse(UpdateParamsSchema, req.params));
      default:
        return this.#cancel(session, parse(TaskParamsSchema, req.params).taskId);
    }
  }

  async #get(session: SessionRecord, taskId: string): Promise<Record<string, unknown>> {
    const rec = await this.#store.get(taskId, session.principal);
    if (!rec) throw notFound();
    const out = taskView(rec);
    if (rec.status === "completed" && rec.result) out["result"] = rec.result;
    if (rec.status === "failed" && rec.error) out["error"] = rec.error;
    if (rec.status === "input_required" && rec.inputRequests)
      out["inputRequests"] = rec.inputRequests;
    return out;
  }

  async #update(
    session: SessionRecord,
    p: { taskId: string; inputResponses: Record<string, Record<string, unknown>> },
  ): Promise<Record<string, unknown>> {
    if (!(await this.#store.get(p.taskId, session.principal))) throw notFound();
    await this.#store.update(p.taskId, (r) => {
      if (isTerminal(r.status) || !r.inputRequests) return undefined;
      let changed = false;
      for (const [k, v] of Object.entries(p.inputResponses)) {
        if (!Object.hasOwn(r.inputRequests, k)) continue;
        delete r.inputRequests[k];
        (r.inputResponses ??= {})[k] = v;
        changed = true;
      }
      if (!changed) return undefined;
      if (Object.keys(r.inputRequests).length === 0) {
        delete r.inputRequests;
        r.status = "working";
      }
      return r;
    });
    return {};
  }

  async #cancel(session: SessionRecord, taskId: string): Promise<Record<string, unknown>> {
    const rec = await this.#store.get(taskId, session.principal);
    if (!rec) throw notFound();
    if (isTerminal(rec.status)) return {};
    const after = await this.#store.update(taskId, (r) => {
      if (isTerminal(r.status)) return undefined;
      r.status = "cancelled";
      delete r.inputRequests;
      delete r.inputResponses;
      return r;
    });
    if (after?.status === "cancelled") {
      // The worker running it (whichever) aborts the handler; it then leaves the task as it is.
      const notice: CancelNotice = {
        session: rec.session,
        principal: session.principal,
        requestId: rec.requestId,
        internalId: rec.requestId,
        reason: "tasks/cancel",
      };
      this.bus.nc.publish(cancelContract.subject(notice), cancelContract.encode(notice));
    }
    return {};
  }
}
