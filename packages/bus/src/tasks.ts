import { randomBytes } from "node:crypto";
import { z } from "zod";
import type { JetStreamManager } from "@nats-io/jetstream";
import type { KV, KvEntry } from "@nats-io/kv";
import { ErrorCode, McpError, rejection } from "@mcpq/protocol";
import { BUCKETS, digestToken } from "./subjects.js";
import { isWrongLastSequence } from "./errors.js";
import { countKeys, eraseKey } from "./kv-keys.js";

/**
 * Tasks of the MCP tasks extension (`io.modelcontextprotocol/tasks`, SEP-2663) as the broker
 * holds them: one record per task in the KV bucket `mcpq_tasks` under `t.<task id>`, so every
 * edge answers `tasks/get`, `tasks/update` and `tasks/cancel` for every task, and a task
 * outlives the edge that created it. The worker running the task creates the record, writes its
 * input requests and its end (result, error or cancellation) into it; edges write client input
 * (`tasks/update`) and cancellation. Every change is a compare-and-set on the key's revision;
 * a terminal status never changes again. Beside each task, `r.<request id>` names the task of the
 * request that created it: a redelivery of that request (its worker died) continues the same task.
 * While a task is live (not ended, not expired), `p.<owner digest>.<task id>` counts it against
 * its principal's quota (MCPQ_TASKS_MAX_PER_PRINCIPAL), so one principal cannot fill the store
 * for everyone; the key is erased when the task ends and ages out with the bucket's max_age.
 * The bucket's max_age, max_msgs (three keys per task) and max_bytes bound lifetime, count and
 * size (MCPQ_TASK_TTL_MS, MCPQ_TASKS_MAX, MCPQ_TASKS_MAX_BYTES).
 */

/** The extension's identifier (capabilities.extensions key, client and server side). */
export const TASKS_EXTENSION = "io.modelcontextprotocol/tasks";

/**
 * How the envelope's client-capability list (`Mcpq-Client-Capabilities`) says the client
 * negotiated the tasks extension: beside the top-level capability names.
 */
export const TASKS_CAPABILITY = `extensions/${TASKS_EXTENSION}`;

const TASK_STATUSES = ["working", "input_required", "completed", "failed", "cancelled"] as const;
export type TaskStatus = (typeof TASK_STATUSES)[number];

/** Whether a status is final (completed, failed, cancelled): it never changes again. */
export function isTerminal(status: TaskStatus): boolean {
  return status === "completed" || status === "failed" || status === "cancelled";
}

const plainObject = z.record(z.string(), z.unknown());

const TaskRecordSchema = z.object({
  v: z.literal(1),
  taskId: z.string().min(1).max(64),
  /** Digest of the principal that created it (`digestToken`); only it may see the task. */
  owner: z.string().min(1).max(64),
  status: z.enum(TASK_STATUSES),
  statusMessage: z.string().max(1024).optional(),
  createdAt: z.number(),
  lastUpdatedAt: z.number(),
  /** How long after `createdAt` the task stays readable (ms; at most MCPQ_TASK_TTL_MS). */
  ttlMs: z.number().int().positive(),
  pollIntervalMs: z.number().int().positive().optional(),
  /** The cancellation scope of the request running it (its envelope session) and its internal id. */
  session: z.string().min(1).max(512),
  requestId: z.string().min(1).max(256),
  /** Completed: the tool's result. */
  result: plainObject.optional(),
  /** Failed: the JSON-RPC error. */
  error: z
    .object({ code: z.number(), message: z.string(), data: z.unknown().optional() })
    .optional(),
  /** Input required: what the task waits for, by key (`{ method, params }`). */
  inputRequests: z.record(z.string(), plainObject).optional(),
  /** Client answers (tasks/update) the worker has not taken yet, by key. */
  inputResponses: z.record(z.string(), plainObject).optional(),
});
export type TaskRecord = z.infer<typeof TaskRecordSchema>;

/** KV key of a task. */
const taskKey = (taskId: string) => `t.${taskId}`;
/** KV key of the index entry request (envelope id) -> task id, so a redelivery finds its task. */
const requestKey = (requestId: string) => `r.${requestId}`;
/** KV key that counts a live task against its owner's quota (erased when the task ends). */
const ownerKey = (rec: Pick<TaskRecord, "owner" | "taskId">) => `p.${rec.owner}.${rec.taskId}`;

/** Live tasks one principal may hold by default (MCPQ_TASKS_MAX_PER_PRINCIPAL). */
export const DEFAULT_TASKS_MAX_PER_PRINCIPAL = 100;
const REQUEST_ID = /^[A-Za-z0-9_-]{1,256}$/;

/** A fresh task id: 128 random bits (unguessable; never derived from anything a client sent). */
export function newTaskId(): string {
  return randomBytes(16).toString("base64url");
}

/** The owner digest a record keeps for `principal`. */
export function taskOwner(principal: string): string {
  return digestToken(`task-owner\u0000${principal}`);
}

const TASK_ID = /^[A-Za-z0-9_-]{1,64}$/;

/** Most compare-and-set attempts of one change before it is given up (other writers keep winning). */
const CAS_ATTEMPTS = 16;

/** A decoded record, or null when the value is not one (ignored, never thrown). */
function decodeTask(e: KvEntry | null): TaskRecord | null {
  if (!e || e.operation !== "PUT") return null;
  try {
    const r = TaskRecordSchema.safeParse(e.json());
    return r.success ? r.data : null;
  } catch {
    return null;
  }
}

/**
 * Whether a KV write failed because the bucket is full (max_msgs or max_bytes, discard new) or
 * the record is larger than the bucket allows.
 */
function isFull(err: unknown): boolean {
  const m = err instanceof Error ? err.message : String(err);
  return /maximum (messages|bytes)|message size exceeds|resource limits exceeded|insufficient resources/i.test(
    m,
  );
}

/** How long a refused task creation suggests waiting before a retry (`data.retryAfterMs`). */
const RETRY_AFTER_MS = 5_000;

/** Options of a `TaskStore`. */
export interface TaskStoreOptions {
  /**
   * Live tasks one principal may hold (MCPQ_TASKS_MAX_PER_PRINCIPAL): `create` beyond it is
   * refused. 0 = no per-principal bound. Default `DEFAULT_TASKS_MAX_PER_PRINCIPAL`.
   */
  maxPerPrincipal?: number;
}

/** The task store over the `mcpq_tasks` bucket: create, read (owner-checked), change by CAS, watch. */
export class TaskStore {
  readonly #maxPerPrincipal: number;

  constructor(
    private readonly kv: KV,
    /** Counts and erases the per-principal keys (stream info and purge of the bucket's stream). */
    private readonly jsm: JetStreamManager,
    opts: TaskStoreOptions = {},
  ) {
    this.#maxPerPrincipal = opts.maxPerPrincipal ?? DEFAULT_TASKS_MAX_PER_PRINCIPAL;
  }

  /**
   * Stores a new task. Resolves once it is stored (a `tasks/get` for it then resolves on any
   * edge). Rejects with a retryable -32010 (`data.retryAfterMs`) when its principal holds
   * `maxPerPrincipal` live tasks already (MCPQ_TASKS_MAX_PER_PRINCIPAL; counted in the broker, so
   * across workers; creates of one principal racing on several workers can each see the count
   * below the bound and overshoot it by that many) or when the bucket is full (MCPQ_TASKS_MAX /
   * MCPQ_TASKS_MAX_BYTES). A refused or failed create leaves none of its keys behind.
   */
  async create(rec: TaskRecord): Promise<void> {
    if (
      this.#maxPerPrincipal > 0 &&
      (await countKeys(this.jsm, BUCKETS.tasks, `p.${rec.owner}.*`)) >= this.#maxPerPrincipal
    )
      throw rejection(
        ErrorCode.Overloaded,
        "too many live tasks for this principal (MCPQ_TASKS_MAX_PER_PRINCIPAL); try again when one has ended",
        RETRY_AFTER_MS,
      );
    const written: string[] = [];
    try {
      await this.kv.create(requestKey(rec.requestId), rec.taskId);
      written.push(requestKey(rec.requestId));
      await this.kv.create(taskKey(rec.taskId), JSON.stringify(rec));
      written.push(taskKey(rec.taskId));
      await this.kv.create(ownerKey(rec), "");
    } catch (err) {
      // Half a task would hold a slot of the store (and of the principal's quota) until the
      // bucket's max_age, and its request key would make a redelivery look for a task that
      // never was.
      for (const key of written)
        await eraseKey(this.jsm, BUCKETS.tasks, key).catch(() => undefined);
      if (isFull(err))
        throw rejection(
          ErrorCode.Overloaded,
          "the task store is full (MCPQ_TASKS_MAX / MCPQ_TASKS_MAX_BYTES); try again later",
          RETRY_AFTER_MS,
        );
      throw err;
    }
  }

  /**
   * The task `taskId` as `principal` may see it: null when it does not exist, expired (past
   * its `ttlMs`), or belongs to another principal (indistinguishable, so ids cannot be probed).
   */
  async get(taskId: string, principal: string): Promise<TaskRecord | null> {
    const found = await this.#read(taskId);
    if (!found || found.rec.owner !== taskOwner(principal)) return null;
    return found.rec;
  }

  /** The task the request `requestId` (envelope id) created, as `principal` may see it; null when none. */
  async ofRequest(requestId: string, principal: string): Promise<TaskRecord | null> {
    if (!REQUEST_ID.test(requestId)) return null;
    const e = await this.kv.get(requestKey(requestId));
    if (!e || e.operation !== "PUT") return null;
    return this.get(e.string(), principal);
  }

  async #read(taskId: string): Promise<{ rec: TaskRecord; revision: number } | null> {
    if (!TASK_ID.test(taskId)) return null;
    const e = await this.kv.get(taskKey(taskId));
    const rec = decodeTask(e);
    if (!rec || !e) return null;
    if (Date.now() >= rec.createdAt + rec.ttlMs) {
      // Expired before the bucket's max_age (a tool's ttlMs is shorter): it counts no more.
      await this.#uncount(rec);
      return null;
    }
    return { rec, revision: e.revision };
  }

  /**
   * Stops counting a task against its principal's quota (it ended or expired). Best effort: the
   * task's end is stored already, and a key left behind ages out with the bucket's max_age; the
   * next change that finds the task terminal tries again.
   */
  async #uncount(rec: TaskRecord): Promise<void> {
    await eraseKey(this.jsm, BUCKETS.tasks, ownerKey(rec)).catch(() => undefined);
  }

  /**
   * Changes a task by compare-and-set: `change` gets a copy of the stored record and returns
   * the new one, or undefined to leave it as it is (e.g. it is terminal already). Retried when
   * another writer changed it in between. Resolves with the record as stored afterwards (null
   * when the task is gone). A record too large for the bucket rejects with -32603 "task result
   * too large" (the caller may store a smaller one instead). A task found or left terminal (or
   * expired) stops counting against its principal's quota.
   */
  async update(
    taskId: string,
    change: (rec: TaskRecord) => TaskRecord | undefined,
  ): Promise<TaskRecord | null> {
    for (let attempt = 0; attempt < CAS_ATTEMPTS; attempt++) {
      const found = await this.#read(taskId);
      if (!found) return null;
      const next = change(structuredClone(found.rec));
      if (!next) {
        if (isTerminal(found.rec.status)) await this.#uncount(found.rec);
        return found.rec;
      }
      next.lastUpdatedAt = Date.now();
      try {
        await this.kv.update(taskKey(taskId), JSON.stringify(next), found.revision);
        if (isTerminal(next.status)) await this.#uncount(next);
        return next;
      } catch (err) {
        if (isWrongLastSequence(err)) continue;
        if (isFull(err))
          throw new McpError(ErrorCode.InternalError, "task record too large for the task store");
        throw err;
      }
    }
    throw new McpError(ErrorCode.InternalError, "task changed concurrently too often");
  }

  /**
   * Calls `onChange` with every stored version of the task from now on (the current one first),
   * until the returned stop function is called.
   */
  async watch(taskId: string, onChange: (rec: TaskRecord) => void): Promise<() => void> {
    const it = await this.kv.watch({ key: taskKey(taskId) });
    void (async () => {
      for await (const e of it) {
        const rec = decodeTask(e);
        if (rec) onChange(rec);
      }
    })().catch(() => undefined);
    return () => it.stop();
  }
}

/** The Task fields of a record as the wire has them (CreateTaskResult, tasks/get). */
export function taskView(rec: TaskRecord): Record<string, unknown> {
  const out: Record<string, unknown> = {
    taskId: rec.taskId,
    status: rec.status,
    createdAt: new Date(rec.createdAt).toISOString(),
    lastUpdatedAt: new Date(rec.lastUpdatedAt).toISOString(),
    ttlMs: rec.ttlMs,
  };
  if (rec.statusMessage !== undefined) out["statusMessage"] = rec.statusMessage;
  if (rec.pollIntervalMs !== undefined) out["pollIntervalMs"] = rec.pollIntervalMs;
  return out;
}

/**
 * The 2025-11-25 (experimental tasks) wire form of a task: `ttl` and `pollInterval` in ms, as
 * that revision names them (CreateTaskResult `{ task }`, tasks/get, tasks/cancel).
 */
export function legacyTaskView(rec: TaskRecord): Record<string, unknown> {
  const out: Record<string, unknown> = {
    taskId: rec.taskId,
    status: rec.status,
    createdAt: new Date(rec.createdAt).toISOString(),
    lastUpdatedAt: new Date(rec.lastUpdatedAt).toISOString(),
    ttl: rec.ttlMs,
  };
  if (rec.statusMessage !== undefined) out["statusMessage"] = rec.statusMessage;
  if (rec.pollIntervalMs !== undefined) out["pollInterval"] = rec.pollIntervalMs;
  return out;
}
