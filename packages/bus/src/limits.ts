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
  requestStorage: "file" | "memory";
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
  outboundStorage: "file" | "memory";
  /** MCPQ_REC: the replay window of recorded request/response pairs. */
  recordMaxAgeMs: number;
  recordMaxBytes: number;
  /** Pool consumers: redelivery after this long without ack or `working()` (ms). */
  ackWaitMs: number;
  /** Pool consumers: most un-acked requests handed out to a pool at once. */
  maxAckPending: number;
  /** Pool consumers: deliveries before a request is given up (the edge times it out). */
  maxDeliver: number;
  /** KV: a session expires after this long without activity (ms). */
  sessionIdleTtlMs: number;
  /** KV: a worker disappears from the registry this long after its last heartbeat (ms). */
  registryTtlMs: number;
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
});
