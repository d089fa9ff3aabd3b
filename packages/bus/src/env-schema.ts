import { z } from "zod";
import { DEFAULT_BUS_LIMITS, type BusLimits } from "./limits.js";

const int = (def: number) => z.coerce.number().int().nonnegative().default(def);

/**
 * Environment variables every service shares for the broker (same names on edges and workers,
 * so both provision identical streams). Services merge this shape into their own `env.ts`;
 * this package never reads `process.env` itself.
 */
export const busEnvShape = {
  MCPQ_NATS_URL: z.string().default("nats://127.0.0.1:4222"),
  MCPQ_SESSION_IDLE_TTL_MS: int(DEFAULT_BUS_LIMITS.sessionIdleTtlMs),
  MCPQ_REGISTRY_TTL_MS: int(DEFAULT_BUS_LIMITS.registryTtlMs),
  MCPQ_REQ_STREAM_MAX_MSGS: int(DEFAULT_BUS_LIMITS.requestStreamMaxMsgs),
  MCPQ_REQ_STREAM_MAX_BYTES: int(DEFAULT_BUS_LIMITS.requestStreamMaxBytes),
  MCPQ_REQ_MAX_PER_TARGET: int(DEFAULT_BUS_LIMITS.requestStreamMaxPerTarget),
  MCPQ_REQ_MAX_AGE_MS: int(DEFAULT_BUS_LIMITS.requestMaxAgeMs),
  MCPQ_REQ_STORAGE: z.enum(["file", "memory"]).default(DEFAULT_BUS_LIMITS.requestStorage),
  MCPQ_MAX_MESSAGE_BYTES: int(DEFAULT_BUS_LIMITS.maxMessageBytes),
  MCPQ_OUT_MAX_AGE_MS: int(DEFAULT_BUS_LIMITS.outboundMaxAgeMs),
  MCPQ_OUT_MAX_BYTES: int(DEFAULT_BUS_LIMITS.outboundMaxBytes),
  MCPQ_OUT_STORAGE: z.enum(["file", "memory"]).default(DEFAULT_BUS_LIMITS.outboundStorage),
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
  /** `off` turns off coalescing of NATS socket writes per event-loop iteration (see batchWrites). */
  MCPQ_NATS_WRITE_BATCHING: z.enum(["on", "off"]).default("on"),
};
export const BusEnvSchema = z.object(busEnvShape);
export type BusEnv = z.infer<typeof BusEnvSchema>;

export function busLimitsFromEnv(e: BusEnv): BusLimits {
  return {
    sessionIdleTtlMs: e.MCPQ_SESSION_IDLE_TTL_MS,
    registryTtlMs: e.MCPQ_REGISTRY_TTL_MS,
    requestStreamMaxMsgs: e.MCPQ_REQ_STREAM_MAX_MSGS,
    requestStreamMaxBytes: e.MCPQ_REQ_STREAM_MAX_BYTES,
    requestStreamMaxPerTarget: e.MCPQ_REQ_MAX_PER_TARGET,
    requestStorage: e.MCPQ_REQ_STORAGE,
    requestMaxAgeMs: e.MCPQ_REQ_MAX_AGE_MS,
    maxMessageBytes: e.MCPQ_MAX_MESSAGE_BYTES,
    duplicateWindowMs: DEFAULT_BUS_LIMITS.duplicateWindowMs,
    outboundMaxAgeMs: e.MCPQ_OUT_MAX_AGE_MS,
    outboundMaxBytes: e.MCPQ_OUT_MAX_BYTES,
    outboundStorage: e.MCPQ_OUT_STORAGE,
    recordMaxAgeMs: e.MCPQ_REC_MAX_AGE_MS,
    recordMaxBytes: e.MCPQ_REC_MAX_BYTES,
    ackWaitMs: e.MCPQ_ACK_WAIT_MS,
    maxAckPending: e.MCPQ_MAX_ACK_PENDING,
    maxDeliver: e.MCPQ_MAX_DELIVER,
  };
}
