/**
 * Broker-side bounds. Every stream and consumer mcpq creates is bounded by these; services
 * build them from their env and pass them in (packages never read process.env).
 */
export interface BusLimits {
  /** MCPQ_REQ: queued (unanswered) requests. Full => publish refused => explicit overload rejection. */
  requestStreamMaxMsgs: number;
  requestStreamMaxBytes: number;
  /**
   * MCPQ_REQ: queued requests per target (one tool, resource or prompt subject; discard-new per
   * subject), so one hot target cannot fill the queue every pool shares. 0 = no per-target bound.
   */
  requestStreamMaxPerTarget: number;
  /** Largest single message (request or response) accepted by the broker. */
  maxMessageBytes: number;
  requestStorage: StorageChoice;
  /**
   * MCPQ_REQ: age after which a queued request is discarded. Nobody waits for it any more (it is
   * longer than any deadline), so this only bounds what exhausted `max_deliver` leaves behind.
   */
  requestMaxAgeMs: number;
  /** JetStream duplicate window for publish retries (ms). */
  duplicateWindowMs: number;
  /** MCPQ_OUT: how long server->client messages stay resumable (ms) and its size bound. */
  outboundMaxAgeMs: number;
  outboundMaxBytes: number;
  outboundStorage: StorageChoice;
  /** MCPQ_REC: the replay window of recorded request/response pairs. */
  recordMaxAgeMs: number;
  recordMaxBytes: number;
  /** Pool consumers: redelivery after this long without ack or `working()` (ms). */
  ackWaitMs: number;
  /** Pool consumers: most un-acked requests handed out to a pool at once. */
  maxAckPending: number;
  /** Pool consumers: deliveries before a request is given up (the edge times it out). */
  maxDeliver: number;
  /**
   * Replicas of every stream and KV bucket (MCPQ_REPLICAS): 1 on a single server, 3 (or 5) on a
   * JetStream cluster. A stream or bucket whose own count below is 0 uses this one.
   */
  replicas: number;
  /** MCPQ_REQ replicas (MCPQ_REQ_REPLICAS); 0 = `replicas`. */
  requestReplicas: number;
  /** MCPQ_OUT replicas (MCPQ_OUT_REPLICAS); 0 = `replicas`. */
  outboundReplicas: number;
  /** MCPQ_REC replicas (MCPQ_REC_REPLICAS); 0 = `replicas`. */
  recordReplicas: number;
  /** KV buckets' replicas (MCPQ_KV_REPLICAS: sessions, registry, subscriptions, tasks, used states); 0 = `replicas`. */
  kvReplicas: number;
  /** KV: a session expires after this long without activity (ms). */
  sessionIdleTtlMs: number;
  /** KV: a worker disappears from the registry this long after its last heartbeat (ms). */
  registryTtlMs: number;
  /**
   * KV mcpq_tasks (tasks extension): no task outlives this after its last change (ms, the
   * bucket's max_age); a task's own `ttlMs` is at most this.
   */
  taskTtlMs: number;
  /** KV mcpq_tasks: most tasks kept at once (the bucket's max_msgs is three times it; creating one more is refused). */
  tasksMax: number;
  /** KV mcpq_tasks: bytes the bucket may hold (creating a task beyond it is refused). */
  tasksMaxBytes: number;
  /** KV mcpq_tasks: largest task record (its result included; a larger result fails the task). */
  taskMaxBytes: number;
  /**
   * KV mcpq_used_states: how long a used MRTR `requestState` is remembered (ms): the workers'
   * request-state TTL (MCPQ_REQUEST_STATE_TTL_MS), so a state is refused on reuse until it expires.
   */
  requestStateTtlMs: number;
  /** KV mcpq_used_states: bytes the bucket may hold. */
  usedStatesMaxBytes: number;
}

export const DEFAULT_BUS_LIMITS: Readonly<BusLimits> = Object.freeze({
  requestStreamMaxMsgs: 100_000,
  requestStreamMaxBytes: 256 * 1024 * 1024,
  requestStreamMaxPerTarget: 10_000,
  maxMessageBytes: 4 * 1024 * 1024,
  // Memory: a queued request lives for at most its deadline and the edge answers it (-32001) if
  // the broker restarts; file storage cost 2.3x throughput on nats 2.9 (see loadtests/README.md).
  requestStorage: "memory",
  requestMaxAgeMs: 15 * 60_000,
  duplicateWindowMs: 120_000,
  outboundMaxAgeMs: 5 * 60_000,
  outboundMaxBytes: 512 * 1024 * 1024,
  outboundStorage: "memory",
  recordMaxAgeMs: 24 * 60 * 60_000,
  recordMaxBytes: 1024 * 1024 * 1024,
  // Short: a dead worker's request reaches another worker well before a 30 s deadline. Workers
  // extend it with `working()` every third of it while a handler runs or waits for a slot.
  ackWaitMs: 5_000,
  maxAckPending: 1_000,
  maxDeliver: 5,
  sessionIdleTtlMs: 30 * 60_000,
  registryTtlMs: 15_000,
  taskTtlMs: 60 * 60_000,
  tasksMax: 10_000,
  tasksMaxBytes: 256 * 1024 * 1024,
  taskMaxBytes: 1024 * 1024,
  requestStateTtlMs: 10 * 60_000,
  usedStatesMaxBytes: 64 * 1024 * 1024,
  replicas: 1,
  requestReplicas: 0,
  outboundReplicas: 0,
  recordReplicas: 0,
  kvReplicas: 0,
});

/** Where a stream's messages live: `file` survives a broker restart, `memory` does not. */
export type StorageChoice = "file" | "memory";

/**
 * The storage MCPQ_REQ and MCPQ_OUT get when MCPQ_REQ_STORAGE / MCPQ_OUT_STORAGE are unset:
 * memory on one replica (nothing survives that server's restart anyway and file storage cost
 * 2.3x throughput on nats 2.9), file once replicated — a cluster exists to survive restarts,
 * and a memory replica that restarts comes back empty, so a whole-cluster restart (an upgrade,
 * a power cut) would lose every queued request and every resumable message.
 */
export function defaultStorage(replicas: number): StorageChoice {
  return replicas > 1 ? "file" : "memory";
}
