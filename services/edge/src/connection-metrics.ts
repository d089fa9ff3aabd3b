import { Counter, Gauge, type Registry } from "@mcpq/observability";
import type { ConnectionMetrics } from "./core/connection-limiter.js";

/** Prometheus backing of the connection limiter: open connections and refusals per transport. */
export function connectionMetrics(registry: Registry): ConnectionMetrics {
  const open = new Gauge({
    name: "mcpq_edge_connections",
    help: "Open client connections (HTTP requests in flight, streams, sockets) per transport",
    labelNames: ["transport"] as const,
    registers: [registry],
  });
  const refused = new Counter({
    name: "mcpq_edge_connections_refused_total",
    help: "Connections refused because MCPQ_MAX_CONNECTIONS were open",
    labelNames: ["transport"] as const,
    registers: [registry],
  });
  return {
    opened: (transport) => open.inc({ transport }),
    closed: (transport) => open.dec({ transport }),
    refused: (transport) => refused.inc({ transport }),
  };
}
