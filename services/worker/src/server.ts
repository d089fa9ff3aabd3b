import { createServer, type Server } from "node:http";
import { connectBus, INBOX_PREFIX } from "@mcpq/bus";
import { Gauge, Counter, Histogram, createLogger, createMetricsRegistry, type Registry } from "@mcpq/observability";
import type { Logger } from "@mcpq/protocol";
import { Worker, createRecorder, type CatalogDefinition, type RecorderMetrics, type WorkerMetrics } from "@mcpq/worker-sdk";
import { resolveCatalogs } from "./catalogs/index.js";
import { loadWorkerConfig, type WorkerConfig } from "./env.js";

export interface RunningWorker {
  worker: Worker;
  registry: Registry;
  close(): Promise<void>;
}

function workerMetrics(registry: Registry): WorkerMetrics {
  const inFlight = new Gauge({ name: "mcpq_worker_concurrency_in_use", help: "Handlers running now", registers: [registry] });
  const handled = new Counter({ name: "mcpq_worker_requests_total", help: "Requests handled by outcome", labelNames: ["method", "outcome"] as const, registers: [registry] });
  const latency = new Histogram({ name: "mcpq_worker_handler_seconds", help: "Handler time", labelNames: ["method"] as const, registers: [registry], buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 30] });
  const expired = new Counter({ name: "mcpq_worker_deadline_expired_total", help: "Requests dropped unrun because their deadline passed", registers: [registry] });
  const redelivered = new Counter({ name: "mcpq_worker_redeliveries_total", help: "Requests received again after another delivery was not acked", registers: [registry] });
  return {
    inFlight: (n) => inFlight.set(n),
    handled: (method, outcome, s) => {
      handled.inc({ method, outcome });
      latency.observe({ method }, s);
    },
    expired: () => expired.inc(),
    redelivered: () => redelivered.inc(),
  };
}

function recorderMetrics(registry: Registry): RecorderMetrics {
  const records = new Counter({ name: "mcpq_worker_records_total", help: "Finished requests by what recording did with them (stored, sampled_out, dropped, failed)", labelNames: ["result"] as const, registers: [registry] });
  return { record: (result) => records.inc({ result }) };
}

/**
 * Connects, starts a Worker for the configured catalogs (or `opts.catalogs`, e.g. a test-local
 * catalog), records finished requests to MCPQ_REC unless MCPQ_RECORD=off, optionally serves /metrics.
 */
export async function startWorker(config: Readonly<WorkerConfig>, logger?: Logger, opts: { catalogs?: CatalogDefinition[] } = {}): Promise<RunningWorker> {
  const log = logger ?? (createLogger({ name: "mcpq-worker", level: config.logLevel }) as unknown as Logger);
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
  const registry = createMetricsRegistry("mcpq_worker", { pool: config.pool });
  const recorder = config.record.enabled
    ? createRecorder({
        bus,
        sample: config.record.sample,
        redact: config.record.redact,
        notifications: config.record.notifications,
        logger: log,
        metrics: recorderMetrics(registry),
      })
    : undefined;
  const worker = new Worker({
    bus,
    pool: config.pool,
    catalogs: opts.catalogs ?? resolveCatalogs(config.catalogs),
    ...(recorder ? { recorder } : {}),
    ...(config.shadow ? { shadow: true } : {}),
    concurrency: config.concurrency,
    handlerTimeoutMs: config.handlerTimeoutMs,
    requestState: config.requestState,
    logger: log,
    metrics: workerMetrics(registry),
  });
  await worker.start();
  let server: Server | undefined;
  if (config.metricsPort > 0) {
    server = createServer((req, res) => {
      if (req.url !== "/metrics") return void res.writeHead(404).end();
      void registry.metrics().then((body) => res.writeHead(200, { "content-type": registry.contentType }).end(body));
    });
    await new Promise<void>((r) => server!.listen(config.metricsPort, "127.0.0.1", r));
  }
  return {
    worker,
    registry,
    async close() {
      server?.close();
      await worker.stop();
      await recorder?.flush();
      await bus.close();
    },
  };
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
