import type { Bus } from "@mcpq/bus";
import type { Logger } from "@mcpq/protocol";
import type { EdgeConfig } from "../env.js";

/**
 * Room kept for the request envelope (NATS headers: ids, principal, target name up to
 * MCPQ_MAX_NAME_BYTES, exposed claims) within one broker message.
 */
export const ENVELOPE_HEADROOM_BYTES = 16 * 1024;

/**
 * The edge's message limit is the smaller of MCPQ_MAX_BODY_BYTES and what the broker accepts:
 * nats-server's `max_payload` (1 MiB unless configured; see `nc.info`) less the envelope's
 * room. A larger body is refused before it is read to the end (HTTP 413, WebSocket close 1009,
 * a TCP error line, gRPC RESOURCE_EXHAUSTED), never accepted and failed after the publish.
 */
export function withBrokerLimits(cfg: Readonly<EdgeConfig>, bus: Bus, log: Logger): Readonly<EdgeConfig> {
  const maxPayload = bus.nc.info?.max_payload;
  if (!maxPayload || maxPayload <= 0) return cfg;
  const brokerLimit = Math.max(1024, maxPayload - ENVELOPE_HEADROOM_BYTES);
  if (cfg.maxBodyBytes > 0 && cfg.maxBodyBytes <= brokerLimit) return cfg;
  log.warn(
    { configured: cfg.maxBodyBytes, brokerMaxPayload: maxPayload, effective: brokerLimit },
    "MCPQ_MAX_BODY_BYTES exceeds the broker's max_payload; using the broker's limit",
  );
  return Object.freeze({ ...cfg, maxBodyBytes: brokerLimit });
}
