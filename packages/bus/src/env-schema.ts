import { z } from "zod";
import { busAuthProblems, type BusAuth } from "./auth.js";
import { DEFAULT_BUS_LIMITS, defaultStorage, type BusLimits } from "./limits.js";

const int = (def: number) => z.coerce.number().int().nonnegative().default(def);
/** JetStream allows 1-5 replicas; 0 (the overrides' default) means "MCPQ_REPLICAS". */
const replicas = (min: 0 | 1, def: number) => z.coerce.number().int().min(min).max(5).default(def);

/**
 * Environment variables every service shares for the broker (same names on edges and workers,
 * so both provision identical streams). Services merge this shape into their own `env.ts`;
 * this package never reads `process.env` itself.
 */
export const busEnvShape = {
  MCPQ_NATS_URL: z.string().default("nats://127.0.0.1:4222"),
  MCPQ_SESSION_IDLE_TTL_MS: int(DEFAULT_BUS_LIMITS.sessionIdleTtlMs),
  MCPQ_REGISTRY_TTL_MS: int(DEFAULT_BUS_LIMITS.registryTtlMs),
  /** Tasks extension (KV mcpq_tasks): longest task lifetime after its last change, count and size bounds. */
  MCPQ_TASK_TTL_MS: z.coerce.number().int().min(1_000).default(DEFAULT_BUS_LIMITS.taskTtlMs),
  MCPQ_TASKS_MAX: z.coerce.number().int().min(1).default(DEFAULT_BUS_LIMITS.tasksMax),
  MCPQ_TASKS_MAX_BYTES: z.coerce.number().int().min(1024).default(DEFAULT_BUS_LIMITS.tasksMaxBytes),
  MCPQ_TASK_MAX_BYTES: z.coerce.number().int().min(1024).default(DEFAULT_BUS_LIMITS.taskMaxBytes),
  /**
   * MRTR: how long a sealed `requestState` is valid (ms). Workers seal with it; the used-state
   * bucket (single use) remembers a used state this long. Shared so edges provision the same bucket.
   */
  MCPQ_REQUEST_STATE_TTL_MS: z.coerce
    .number()
    .int()
    .min(1_000)
    .default(DEFAULT_BUS_LIMITS.requestStateTtlMs),
  MCPQ_USED_STATES_MAX_BYTES: z.coerce
    .number()
    .int()
    .min(1024)
    .default(DEFAULT_BUS_LIMITS.usedStatesMaxBytes),
  MCPQ_REQ_STREAM_MAX_MSGS: int(DEFAULT_BUS_LIMITS.requestStreamMaxMsgs),
  MCPQ_REQ_STREAM_MAX_BYTES: int(DEFAULT_BUS_LIMITS.requestStreamMaxBytes),
  MCPQ_REQ_MAX_PER_TARGET: int(DEFAULT_BUS_LIMITS.requestStreamMaxPerTarget),
  MCPQ_REQ_MAX_AGE_MS: int(DEFAULT_BUS_LIMITS.requestMaxAgeMs),
  /** Unset: memory at 1 replica, file when replicated (defaultStorage). */
  MCPQ_REQ_STORAGE: z.enum(["file", "memory"]).optional(),
  MCPQ_MAX_MESSAGE_BYTES: int(DEFAULT_BUS_LIMITS.maxMessageBytes),
  MCPQ_OUT_MAX_AGE_MS: int(DEFAULT_BUS_LIMITS.outboundMaxAgeMs),
  MCPQ_OUT_MAX_BYTES: int(DEFAULT_BUS_LIMITS.outboundMaxBytes),
  MCPQ_OUT_STORAGE: z.enum(["file", "memory"]).optional(),
  MCPQ_REPLICAS: replicas(1, DEFAULT_BUS_LIMITS.replicas),
  MCPQ_REQ_REPLICAS: replicas(0, 0),
  MCPQ_OUT_REPLICAS: replicas(0, 0),
  MCPQ_REC_REPLICAS: replicas(0, 0),
  MCPQ_KV_REPLICAS: replicas(0, 0),
  MCPQ_REC_MAX_AGE_MS: int(DEFAULT_BUS_LIMITS.recordMaxAgeMs),
  MCPQ_REC_MAX_BYTES: int(DEFAULT_BUS_LIMITS.recordMaxBytes),
  MCPQ_ACK_WAIT_MS: int(DEFAULT_BUS_LIMITS.ackWaitMs),
  MCPQ_MAX_ACK_PENDING: int(DEFAULT_BUS_LIMITS.maxAckPending),
  MCPQ_MAX_DELIVER: int(DEFAULT_BUS_LIMITS.maxDeliver),
  /**
   * Self-heal (self-heal.ts): how often edges and workers check that every stream, bucket and
   * consumer they use exists and re-provision what is missing (ms); also after every reconnect.
   * 0 = only after reconnects.
   */
  MCPQ_HEAL_CHECK_MS: int(2_000),
  /**
   * `off`: create and change no stream or bucket, only use them (a worker holding the
   * least-privilege `worker` credential, which may not; the edges provision).
   */
  MCPQ_PROVISION: z.enum(["on", "off"]).default("on"),
  // Broker credentials and TLS (docs/broker.md): one scheme at most, TLS with any of them.
  MCPQ_NATS_USER: z.string().min(1).optional(),
  MCPQ_NATS_PASSWORD: z.string().min(1).optional(),
  MCPQ_NATS_TOKEN: z.string().min(1).optional(),
  /** An nkey seed (`SU…`) or the path of a file holding one. */
  MCPQ_NATS_NKEY_SEED: z.string().min(1).optional(),
  /** Path of a `.creds` file (JWT + seed). */
  MCPQ_NATS_CREDS: z.string().min(1).optional(),
  MCPQ_NATS_TLS_CA: z.string().min(1).optional(),
  MCPQ_NATS_TLS_CERT: z.string().min(1).optional(),
  MCPQ_NATS_TLS_KEY: z.string().min(1).optional(),
  /** `off` turns off coalescing of NATS socket writes per event-loop iteration (see batchWrites). */
  MCPQ_NATS_WRITE_BATCHING: z.enum(["on", "off"]).default("on"),
};
export const BusEnvSchema = z.object(busEnvShape);

/**
 * The connection's credentials from the MCPQ_NATS_* settings; undefined when none is set
 * (anonymous, as on a development server).
 * @throws Error naming the settings that contradict each other.
 */
export function busAuthFromEnv(e: BusEnv): BusAuth | undefined {
  const a: BusAuth = {
    user: e.MCPQ_NATS_USER,
    password: e.MCPQ_NATS_PASSWORD,
    token: e.MCPQ_NATS_TOKEN,
    nkeySeed: e.MCPQ_NATS_NKEY_SEED,
    credsFile: e.MCPQ_NATS_CREDS,
    tlsCa: e.MCPQ_NATS_TLS_CA,
    tlsCert: e.MCPQ_NATS_TLS_CERT,
    tlsKey: e.MCPQ_NATS_TLS_KEY,
  };
  if (Object.values(a).every((v) => v === undefined)) return undefined;
  const problems = busAuthProblems(a);
  if (problems.length) throw new Error(`invalid NATS credentials: ${problems.join("; ")}`);
  return Object.freeze(a);
}
export type BusEnv = z.infer<typeof BusEnvSchema>;

export function busLimitsFromEnv(e: BusEnv): BusLimits {
  const req = e.MCPQ_REQ_REPLICAS || e.MCPQ_REPLICAS;
  const out = e.MCPQ_OUT_REPLICAS || e.MCPQ_REPLICAS;
  return {
    replicas: e.MCPQ_REPLICAS,
    requestReplicas: e.MCPQ_REQ_REPLICAS,
    outboundReplicas: e.MCPQ_OUT_REPLICAS,
    recordReplicas: e.MCPQ_REC_REPLICAS,
    kvReplicas: e.MCPQ_KV_REPLICAS,
    sessionIdleTtlMs: e.MCPQ_SESSION_IDLE_TTL_MS,
    registryTtlMs: e.MCPQ_REGISTRY_TTL_MS,
    taskTtlMs: e.MCPQ_TASK_TTL_MS,
    tasksMax: e.MCPQ_TASKS_MAX,
    tasksMaxBytes: e.MCPQ_TASKS_MAX_BYTES,
    taskMaxBytes: e.MCPQ_TASK_MAX_BYTES,
    requestStateTtlMs: e.MCPQ_REQUEST_STATE_TTL_MS,
    usedStatesMaxBytes: e.MCPQ_USED_STATES_MAX_BYTES,
    requestStreamMaxMsgs: e.MCPQ_REQ_STREAM_MAX_MSGS,
    requestStreamMaxBytes: e.MCPQ_REQ_STREAM_MAX_BYTES,
    requestStreamMaxPerTarget: e.MCPQ_REQ_MAX_PER_TARGET,
    requestStorage: e.MCPQ_REQ_STORAGE ?? defaultStorage(req),
    requestMaxAgeMs: e.MCPQ_REQ_MAX_AGE_MS,
    maxMessageBytes: e.MCPQ_MAX_MESSAGE_BYTES,
    duplicateWindowMs: DEFAULT_BUS_LIMITS.duplicateWindowMs,
    outboundMaxAgeMs: e.MCPQ_OUT_MAX_AGE_MS,
    outboundMaxBytes: e.MCPQ_OUT_MAX_BYTES,
    outboundStorage: e.MCPQ_OUT_STORAGE ?? defaultStorage(out),
    recordMaxAgeMs: e.MCPQ_REC_MAX_AGE_MS,
    recordMaxBytes: e.MCPQ_REC_MAX_BYTES,
    ackWaitMs: e.MCPQ_ACK_WAIT_MS,
    maxAckPending: e.MCPQ_MAX_ACK_PENDING,
    maxDeliver: e.MCPQ_MAX_DELIVER,
  };
}
