import type { Logger } from "@mcpq/protocol";
import { Counter, Gauge, type Registry } from "@mcpq/observability";
import type { AdmissionMetrics, CircuitState } from "./core/admission.js";
import type { BufferBudget } from "./core/buffer-budget.js";
import type { BusStatsSink } from "./core/bus-stats.js";

const CIRCUIT_VALUE: Record<CircuitState, number> = { closed: 0, half_open: 1, open: 2 };

/**
 * Prometheus metrics of every overload decision on one edge (see docs/overload.md):
 * admissions, rejections by reason, edge-side deadline expiries, circuit states, buffered bytes,
 * and the broker-side queue figures polled by `startBusStats`.
 */
export function overloadMetrics(
  registry: Registry,
  sources: { buffers: BufferBudget; inFlight: () => number; maxEventLoopLagMs?: () => number },
  log?: Pick<Logger, "warn" | "info">,
) {
  const admittedTotal = new Counter({
    name: "mcpq_edge_admitted_total",
    help: "Routed requests admitted, by target kind",
    labelNames: ["kind"] as const,
    registers: [registry],
  });
  const rejectedTotal = new Counter({
    name: "mcpq_edge_rejected_total",
    help: "Requests refused with a retryable error, by reason (expired_unread, pool_saturated, session_in_flight, edge_in_flight, fair_share, buffered_bytes, rate_limited, circuit_open, stream_full, target_queue_full, broker_unavailable, no_worker, other)",
    labelNames: ["reason"] as const,
    registers: [registry],
  });
  const expiredTotal = new Counter({
    name: "mcpq_edge_deadline_expired_total",
    help: "Requests answered -32001 because their deadline passed on this edge",
    registers: [registry],
  });
  const circuitState = new Gauge({
    name: "mcpq_edge_circuit_state",
    help: "Circuit per worker pool: 0 closed, 1 half-open, 2 open",
    labelNames: ["pool"] as const,
    registers: [registry],
  });
  const circuitOpened = new Counter({
    name: "mcpq_edge_circuit_opened_total",
    help: "Times a pool's circuit opened",
    labelNames: ["pool"] as const,
    registers: [registry],
  });
  new Gauge({
    name: "mcpq_edge_buffered_bytes",
    help: "Bytes held for clients in send buffers and outbound queues across the edge",
    registers: [registry],
    collect() {
      this.set(sources.buffers.bytes);
    },
  });
  new Gauge({
    name: "mcpq_edge_admission_in_flight",
    help: "Routed requests admitted and not yet finished (the MCPQ_MAX_PENDING_REQUESTS cap applies)",
    registers: [registry],
    collect() {
      this.set(sources.inFlight());
    },
  });
  new Gauge({
    name: "mcpq_edge_event_loop_lag_seconds",
    help: "Largest event-loop lag measured since the previous scrape (the MCPQ_MAX_EVENT_LOOP_LAG_MS check; 0 when off)",
    registers: [registry],
    collect() {
      this.set((sources.maxEventLoopLagMs?.() ?? 0) / 1000);
    },
  });
  const streamMessages = new Gauge({
    name: "mcpq_edge_request_stream_messages",
    help: "Messages queued in MCPQ_REQ (polled)",
    registers: [registry],
  });
  const streamBytes = new Gauge({
    name: "mcpq_edge_request_stream_bytes",
    help: "Bytes queued in MCPQ_REQ (polled)",
    registers: [registry],
  });
  const poolPending = new Gauge({
    name: "mcpq_edge_pool_pending",
    help: "Requests of a pool not yet delivered to a worker (polled consumer num_pending)",
    labelNames: ["pool"] as const,
    registers: [registry],
  });
  const poolAckPending = new Gauge({
    name: "mcpq_edge_pool_ack_pending",
    help: "Requests delivered to a pool's workers and not yet acked (polled; bounded by MCPQ_MAX_ACK_PENDING)",
    labelNames: ["pool"] as const,
    registers: [registry],
  });
  const poolWaiting = new Gauge({
    name: "mcpq_edge_pool_waiting_pulls",
    help: "Pull requests waiting on a pool consumer (polled; 0 means no worker is pulling)",
    labelNames: ["pool"] as const,
    registers: [registry],
  });

  const admission: AdmissionMetrics = {
    admitted: (kind) => admittedTotal.inc({ kind }),
    rejected: (reason) => rejectedTotal.inc({ reason }),
    expired: () => expiredTotal.inc(),
    circuit: (pool, state) => {
      circuitState.set({ pool }, CIRCUIT_VALUE[state]);
      if (state === "open") {
        circuitOpened.inc({ pool });
        log?.warn(
          { pool },
          "circuit opened: the pool's workers are failing or absent; refusing its requests",
        );
      } else if (state === "closed") log?.info({ pool }, "circuit closed: the pool answers again");
    },
  };
  const busStats: BusStatsSink = {
    stream(messages, bytes) {
      streamMessages.set(messages);
      streamBytes.set(bytes);
    },
    consumers(pools) {
      poolPending.reset();
      poolAckPending.reset();
      poolWaiting.reset();
      for (const p of pools) {
        poolPending.set({ pool: p.pool }, p.pending);
        poolAckPending.set({ pool: p.pool }, p.ackPending);
        poolWaiting.set({ pool: p.pool }, p.waiting);
      }
    },
  };
  return { admission, busStats };
}
