import type { Bus } from "@mcpq/bus";
import type { Logger } from "@mcpq/protocol";
import type { EdgeConfig } from "../env.js";

/**
 * Room kept for the request envelope (NATS headers: ids, principal, target name up to
 * MCPQ_MAX_NAME_BYTES, exposed claims) within one broker message.
 */
const ENVELOPE_HEADROOM_BYTES = 16 * 1024;

/**
 * The edge's message limit (`maxMessageBytes`) is the smaller of MCPQ_MAX_BODY_BYTES and what the
 * broker accepts: nats-server's `max_payload` (1 MiB unless configured; see `nc.info`) and the
 * request stream's message size (MCPQ_MAX_MESSAGE_BYTES), less the envelope's room. A larger message is refused at the edge (HTTP 413, a batch item's -32600,
 * WebSocket close 1009, a TCP error line, gRPC RESOURCE_EXHAUSTED), never accepted and failed
 * after the publish. An HTTP body (a batch) may still be up to MCPQ_MAX_BODY_BYTES.
 */
export function withBrokerLimits(
  cfg: Readonly<EdgeConfig>,
  bus: Bus,
  log: Logger,
): Readonly<EdgeConfig> {
  const serverMax = bus.nc.info?.max_payload;
  const maxPayload =
    serverMax && serverMax > 0
      ? Math.min(serverMax, bus.limits.maxMessageBytes)
      : bus.limits.maxMessageBytes;
  if (!maxPayload || maxPayload <= 0) return cfg;
  const brokerLimit = Math.max(1024, maxPayload - ENVELOPE_HEADROOM_BYTES);
  if (cfg.maxMessageBytes > 0 && cfg.maxMessageBytes <= brokerLimit) return cfg;
  // Only the envelope's room taken off (the defaults: 4 MiB bodies, 4 MiB stream messages) is
  // expected; a configured limit above what the broker takes at all deserves a warning.
  const level = cfg.maxMessageBytes > maxPayload ? "warn" : "info";
  log[level](
    {
      configured: cfg.maxMessageBytes,
      brokerMaxPayload: serverMax,
      streamMaxMessage: bus.limits.maxMessageBytes,
      effective: brokerLimit,
    },
    level === "warn"
      ? "MCPQ_MAX_BODY_BYTES exceeds what the broker takes (max_payload, MCPQ_MAX_MESSAGE_BYTES); single messages are held to the broker's limit"
      : "single messages are held to the broker's limit less the envelope's room",
  );
  return Object.freeze({ ...cfg, maxMessageBytes: brokerLimit });
}

/** Whether one message's text is over `limit` UTF-8 bytes (0 = no limit). */
export function overMessageLimit(text: string, limit: number): boolean {
  if (limit <= 0 || text.length * 3 <= limit) return false;
  return text.length > limit || Buffer.byteLength(text, "utf8") > limit;
}
