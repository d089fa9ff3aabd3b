import { Counter, Gauge, requestMetrics, type Registry } from "@mcpq/observability";
import type { CoreMetrics } from "./core/session-core.js";

/** Prometheus metrics of one edge, wired into the session core's hooks. */
export function edgeMetrics(registry: Registry) {
  const req = requestMetrics(registry, "mcpq_edge");
  const sessionsCreated = new Counter({
    name: "mcpq_edge_sessions_created_total",
    help: "Sessions initialized on this edge",
    registers: [registry],
  });
  const openStreams = new Gauge({
    name: "mcpq_edge_open_streams",
    help: "Open SSE/socket streams on this edge",
    labelNames: ["transport"] as const,
    registers: [registry],
  });
  const slowConsumers = new Counter({
    name: "mcpq_edge_slow_consumers_total",
    help: "Readers cut off because their send buffer was full",
    labelNames: ["transport"] as const,
    registers: [registry],
  });
  const workers = new Gauge({
    name: "mcpq_edge_registry_workers",
    help: "Live workers in the registry view",
    registers: [registry],
  });
  const lateResponses = new Counter({
    name: "mcpq_edge_late_responses_dropped_total",
    help: "Worker answers dropped because an edge had already answered the request (deadline, cancellation)",
    registers: [registry],
  });
  // Request counts, latencies and errors are recorded by the request telemetry (request-telemetry.ts).
  const core: CoreMetrics = {
    inFlight(delta) {
      req.inFlight.inc(delta);
    },
    sessionsCreated() {
      sessionsCreated.inc();
    },
  };
  return { core, openStreams, slowConsumers, workers, lateResponses, requests: req };
}
export type EdgeMetrics = ReturnType<typeof edgeMetrics>;
