import { createServer, type Server } from "node:http";
import { INBOX_PREFIX, STREAMS, connectBus, poolConsumer, type Bus } from "@mcpq/bus";
import {
  BoundedLabel,
  Gauge,
  Counter,
  Histogram,
  createLogger,
  createMetricsRegistry,
  methodLabel,
  operationDurationHistogram,
  startTracing,
  type Registry,
} from "@mcpq/observability";
import type { Logger } from "@mcpq/protocol";
import {
  Worker,
  createRecorder,
  type CatalogDefinition,
  type RecorderMetrics,
  type WorkerMetrics,
} from "@mcpq/worker-sdk";
import { resolveCatalogs } from "./catalogs/index.js";
import { loadWorkerConfig, type WorkerConfig } from "./env.js";

export interface RunningWorker {
  worker: Worker;
  /** The worker's broker connection (closed by `close()`). */
  bus: Bus;
  registry: Registry;
  /** Bound port of the /metrics, /healthz, /readyz listener, when MCPQ_WORKER_METRICS_PORT is set. */
  port?: number;
  close(): Promise<void>;
}

/**
 * The worker's metrics. Method labels are bounded by `methodLabel`, tool/prompt names to those
 * the worker's catalogs define (at most `maxNames`; anything else `_other`).
 */
function workerMetrics(
  registry: Registry,
  known: { tools: Set<string>; prompts: Set<string> },
  maxNames: number,
): WorkerMetrics {
  const operation = operationDurationHistogram(registry);
  const tools = new BoundedLabel(maxNames, (n) => known.tools.has(n));
  const prompts = new BoundedLabel(maxNames, (n) => known.prompts.has(n));
  const errorTypes = new BoundedLabel(maxNames, () => true);
  const queueWait = new Histogram({
    name: "mcpq_worker_queue_wait_seconds",
    help: "Time a request waited in MCPQ_REQ, from its publish (stream timestamp) to this worker starting it",
    registers: [registry],
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
  });
  const inFlight = new Gauge({
    name: "mcpq_worker_concurrency_in_use",
    help: "Handlers running now",
    registers: [registry],
  });
  const handled = new Counter({
    name: "mcpq_worker_requests_total",
    help: "Requests handled by outcome",
    labelNames: ["method", "outcome"] as const,
    registers: [registry],
  });
  const latency = new Histogram({
    name: "mcpq_worker_handler_seconds",
    help: "Handler time",
    labelNames: ["method"] as const,
    registers: [registry],
    buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 30],
  });
  const expired = new Counter({
    name: "mcpq_worker_deadline_expired_total",
    help: "Requests dropped unrun because their deadline passed",
    registers: [registry],
  });
  const redelivered = new Counter({
    name: "mcpq_worker_redeliveries_total",
    help: "Requests received again after another delivery was not acked",
    registers: [registry],
  });
  return {
    inFlight: (n) => inFlight.set(n),
    handled: (method, outcome, s, detail) => {
      const m = methodLabel(method);
      handled.inc({
        method: m,
        outcome: detail.errorType === "tool_error" ? "tool_error" : outcome,
      });
      latency.observe({ method: m }, s);
      operation.observe(
        {
          mcp_method_name: m,
          gen_ai_tool_name: tools.value(detail.tool),
          gen_ai_prompt_name: prompts.value(detail.prompt),
          error_type: detail.errorType === "" ? "" : errorTypes.value(detail.errorType),
          service: "worker",
        },
        s,
      );
    },
    queueWait: (s) => queueWait.observe(s),
    expired: () => expired.inc(),
    redelivered: () => redelivered.inc(),
  };
}

function recorderMetrics(registry: Registry): RecorderMetrics {
  const records = new Counter({
    name: "mcpq_worker_records_total",
    help: "Finished requests by what recording did with them (stored, sampled_out, dropped, failed)",
    labelNames: ["result"] as const,
    registers: [registry],
  });
  return { record: (result) => records.inc({ result }) };
}

/**
 * Connects, starts a Worker for the configured catalogs (or `opts.catalogs`, e.g. a test-local
 * catalog), records finished requests to MCPQ_REC unless MCPQ_RECORD=off, optionally serves /metrics.
 */
export async function startWorker(
  config: Readonly<WorkerConfig>,
  logger?: Logger,
  opts: { catalogs?: CatalogDefinition[] } = {},
): Promise<RunningWorker> {
  const log =
    logger ?? (createLogger({ name: "mcpq-worker", level: config.logLevel }) as unknown as Logger);
  const bus = await connectBus({
    url: config.natsUrl,
    auth: config.natsAuth,
    inboxPrefix: INBOX_PREFIX.worker(config.pool),
    provision: config.provision,
    log: log.child({ component: "provision" }),
    name: `worker-${config.pool}`,
    limits: config.busLimits,
    batchWrites: config.natsWriteBatching,
  });
  const registry = createMetricsRegistry({ pool: config.pool });
  const tracing = config.telemetry.tracing ? startTracing(config.telemetry.tracing) : undefined;
  const catalogs = opts.catalogs ?? resolveCatalogs(config.catalogs);
  const known = {
    tools: new Set(catalogs.flatMap((c) => (c.tools ?? []).map((t) => t.name))),
    prompts: new Set(catalogs.flatMap((c) => (c.prompts ?? []).map((p) => p.name))),
  };
  const recorder = config.record.enabled
    ? createRecorder({
        bus,
        sample: config.record.sample,
        redact: config.record.redact,
        keepSecretsFor: config.record.keepSecretsFor,
        notifications: config.record.notifications,
        logger: log,
        metrics: recorderMetrics(registry),
      })
    : undefined;
  const worker = new Worker({
    bus,
    pool: config.pool,
    catalogs,
    workerId: config.workerId,
    ...(recorder ? { recorder } : {}),
    ...(config.shadow ? { shadow: true } : {}),
    concurrency: config.concurrency,
    handlerTimeoutMs: config.handlerTimeoutMs,
    livenessMs: config.livenessMs,
    healCheckMs: config.healCheckMs,
    provision: config.provision,
    requestState: config.requestState,
    tasksMaxPerPrincipal: config.tasksMaxPerPrincipal,
    logger: log,
    metrics: workerMetrics(registry, known, config.telemetry.maxLabelNames),
    ...(tracing ? { tracing: { tracer: tracing.tracer, propagator: tracing.propagator } } : {}),
  });
  brokerMetrics(registry, bus);
  const stopLag = pollConsumerLag(registry, bus, config.pool, config.lagPollMs, log);
  await worker.start();
  let stopping = false;
  let server: Server | undefined;
  if (config.metricsPort > 0) {
    server = createServer((req, res) => {
      const path = (req.url ?? "").split("?")[0];
      if (path === "/metrics") {
        void registry
          .metrics()
          .then((body) => res.writeHead(200, { "content-type": registry.contentType }).end(body));
        return;
      }
      if (path === "/healthz") return void json(res, 200, { status: "ok" });
      if (path === "/readyz") {
        const checks = { nats: bus.connected, stopping };
        const ready = bus.connected && !stopping;
        return void json(res, ready ? 200 : 503, { status: ready ? "ready" : "not ready", checks });
      }
      res.writeHead(404).end();
    });
    try {
      await new Promise<void>((resolve, reject) => {
        server!.once("error", reject);
        server!.listen(config.metricsPort, config.metricsHost, () => {
          server!.off("error", reject);
          resolve();
        });
      });
    } catch (err) {
      // A taken metrics port fails the start (reported by the caller), not the process.
      await worker.stop();
      await recorder?.flush();
      await bus.close();
      throw err;
    }
  }
  return {
    worker,
    bus,
    registry,
    ...(server ? { port: (server.address() as { port: number }).port } : {}),
    async close() {
      stopping = true;
      stopLag();
      server?.close();
      await worker.stop();
      await recorder?.flush();
      await bus.close();
      await tracing?.shutdown().catch(() => undefined);
    },
  };
}

function json(res: import("node:http").ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { "content-type": "application/json" }).end(JSON.stringify(body));
}

/** `mcpq_worker_broker_connected`: 1 while the NATS connection is up. */
function brokerMetrics(registry: Registry, bus: Bus): void {
  new Gauge({
    name: "mcpq_worker_broker_connected",
    help: "1 while the worker's NATS connection is up, 0 from a disconnect until it reconnected",
    registers: [registry],
    collect() {
      this.set(bus.connected ? 1 : 0);
    },
  });
}

/**
 * Polls the pool's durable consumer every `periodMs` for `mcpq_worker_consumer_lag_messages`
 * (requests not yet delivered to any worker of the pool) and `mcpq_worker_consumer_ack_pending`
 * (delivered, not yet acked). A failed poll (broker down) leaves the last values.
 */
function pollConsumerLag(
  registry: Registry,
  bus: Bus,
  pool: string,
  periodMs: number,
  log: Logger,
): () => void {
  if (periodMs <= 0) return () => undefined;
  const lag = new Gauge({
    name: "mcpq_worker_consumer_lag_messages",
    help: "Requests of this pool not yet delivered to a worker (polled consumer num_pending)",
    registers: [registry],
  });
  const ackPending = new Gauge({
    name: "mcpq_worker_consumer_ack_pending",
    help: "Requests of this pool delivered and not yet acked (polled)",
    registers: [registry],
  });
  let busy = false;
  const poll = async () => {
    if (busy) return;
    busy = true;
    try {
      const info = await bus.jsm.consumers.info(STREAMS.requests, poolConsumer(pool));
      lag.set(info.num_pending);
      ackPending.set(info.num_ack_pending);
    } catch (err) {
      log.debug({ err }, "consumer lag poll failed");
    } finally {
      busy = false;
    }
  };
  const timer = setInterval(() => void poll(), periodMs);
  timer.unref();
  void poll();
  return () => clearInterval(timer);
}

/** Runs a worker from the environment until SIGINT/SIGTERM (graceful: finishes running handlers). */
export async function main(overrides: Partial<WorkerConfig> = {}): Promise<RunningWorker> {
  const config = loadWorkerConfig(process.env, overrides);
  const running = await startWorker(config);
  const stop = async () => {
    await running.close().catch(() => undefined);
    process.exit(0);
  };
  process.once("SIGINT", () => void stop());
  process.once("SIGTERM", () => void stop());
  return running;
}
