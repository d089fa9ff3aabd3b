import { EdgeTasks } from "./core/tasks.js";
import { connectBus, INBOX_PREFIX, openCacheBucket, type Bus } from "@mcpq/bus";
import {
  Counter,
  Gauge,
  createMetricsRegistry,
  startTracing,
  type Registry,
} from "@mcpq/observability";
import { cacheMetrics } from "./cache/cache-metrics.js";
import { ResponseCache } from "./cache/response-cache.js";
import type { Logger } from "@mcpq/protocol";
import { EdgeAdmission } from "./core/admission.js";
import { EdgeAuth } from "./core/auth.js";
import { withBrokerLimits } from "./core/broker-limits.js";
import { loadPolicyFile } from "./core/policy.js";
import { BufferBudget } from "./core/buffer-budget.js";
import { startBusStats } from "./core/bus-stats.js";
import { CatalogView } from "./core/catalog.js";
import { ConnectionLimiter } from "./core/connection-limiter.js";
import { edgePort, type EdgePort } from "./core/edge-port.js";
import { connectionMetrics } from "./connection-metrics.js";
import { OutboundRouter } from "./core/outbound.js";
import { SessionCore } from "./core/session-core.js";
import { SessionStore } from "./core/session-store.js";
import type { EdgeConfig } from "./env.js";
import { edgeMetrics, type EdgeMetrics } from "./metrics.js";
import { overloadMetrics } from "./overload-metrics.js";
import { edgeTelemetry, type EdgeTelemetry } from "./request-telemetry.js";
import { EdgeHealing } from "./self-heal.js";
import { SharedRateLimits } from "./shared-limits.js";

/** Everything an edge runs on, built once and shared by all transports. */
export interface EdgeRuntime {
  config: Readonly<EdgeConfig>;
  bus: Bus;
  catalog: CatalogView;
  router: OutboundRouter;
  core: SessionCore;
  registry: Registry;
  metrics: EdgeMetrics;
  /** Edge-wide count of client connections, shared by every transport (MCPQ_MAX_CONNECTIONS). */
  connections: ConnectionLimiter;
  /** Edge-wide accounting of bytes held for clients; transports `open()` one account per stream/socket. */
  buffers: BufferBudget;
  /** What transports are given (channels, connection and buffer accounting, their metrics). */
  edge: EdgePort;
  /** The response cache (also set as `core.cache`) when MCPQ_CACHE is on; see docs/caching.md. */
  cache: ResponseCache | undefined;
  /** Admission control (also set as `core.admission`); see docs/overload.md. */
  admission: EdgeAdmission;
  /** Request telemetry (also `core.observer`): spans, per-tool metrics, access log. */
  telemetry: EdgeTelemetry;
  /** Broker health, self-heal and worker liveness (services/edge/src/self-heal.ts). */
  healing: EdgeHealing;
  /** Cluster-wide tools/call rate limits (undefined when off). */
  sharedLimits: SharedRateLimits | undefined;
  /** Bearer credentials (static tokens, OAuth JWT / introspection); see core/auth.ts. */
  auth: EdgeAuth;
  log: Logger;
  close(): Promise<void>;
}

const SERVER_VERSION = "0.1.0";

export async function createEdgeRuntime(
  configured: Readonly<EdgeConfig>,
  log: Logger,
): Promise<EdgeRuntime> {
  const bus = await connectBus({
    url: configured.natsUrl,
    auth: configured.natsAuth,
    inboxPrefix: INBOX_PREFIX.edge,
    provision: configured.provision,
    log: log.child({ component: "provision" }),
    name: `edge-${configured.edgeId}`,
    limits: configured.busLimits,
    batchWrites: configured.natsWriteBatching,
  });
  // A message the broker would refuse must be refused at the door (413 / a clear error), not
  // accepted and failed with -32603 after the publish: the body limit is the broker's real one.
  const config = withBrokerLimits(configured, bus, log);
  const policy = config.policyFile ? await loadPolicyFile(config.policyFile) : undefined;
  const registry = createMetricsRegistry({ edge: config.edgeId });
  const metrics = edgeMetrics(registry);
  const catalog = new CatalogView(bus, log.child({ component: "catalog" }));
  await catalog.start();
  const faultAnswers = new Counter({
    name: "mcpq_edge_fault_answers_total",
    help: "Waiting requests the edge answered itself because of a fault: no_worker (-32012, the pool's last worker died), request_lost (-32010, the broker lost the queued request), not_started (-32010, no worker took it before its start-by time)",
    labelNames: ["reason"] as const,
    registers: [registry],
  });
  const healed = new Counter({
    name: "mcpq_edge_self_heal_total",
    help: "Streams, buckets (KV_<name>) and consumers (<stream>/<consumer>) self-heal found missing or re-created",
    labelNames: ["what"] as const,
    registers: [registry],
  });
  const healing = new EdgeHealing(bus, catalog, {
    unavailableMs: config.brokerUnavailableMs,
    healCheckMs: config.healCheckMs,
    maxQueueMs: config.maxQueueMs,
    log: log.child({ component: "self-heal" }),
    onFaultAnswer: (reason) => faultAnswers.inc({ reason }),
    onHealed: (what) => healed.inc({ what }),
  });
  await healing.start();
  metrics.workers.set(catalog.workerCount);
  catalog.on("changed", () => metrics.workers.set(catalog.workerCount));
  const router = new OutboundRouter({
    bus,
    maxPending: config.maxPendingRequests,
    log: log.child({ component: "outbound" }),
    // An answered id matters only until its worker's late answer arrives, right after the
    // deadline (the worker aborts then): about as many as the session may have in flight.
    maxAnsweredPerSession:
      config.maxInFlightPerSession > 0 ? config.maxInFlightPerSession : undefined,
    onLateResponse: () => metrics.lateResponses.inc(),
  });
  healing.correlator = router.correlator;
  // The session store and core reach the broker through the guarded view: while it is down
  // they refuse with -32010 at once instead of waiting for the client library's timeouts.
  const sessions = new SessionStore(healing.bus, { cacheMs: config.sessionCacheMs });
  const core = new SessionCore({
    bus: healing.bus,
    config: {
      edgeId: config.edgeId,
      requestTimeoutMs: config.requestTimeoutMs,
      maxQueueMs: config.maxQueueMs,
      maxRequestTimeoutMs: config.maxRequestTimeoutMs,
      maxSessionsPerPrincipal: config.maxSessionsPerPrincipal,
      pageSize: config.pageSize,
      discoverTtlMs: config.discoverTtlMs,
      maxListeners: config.maxListeners,
      maxNameBytes: config.maxNameBytes,
      serverName: "mcpq",
      serverVersion: SERVER_VERSION,
    },
    catalog,
    router,
    sessions,
    log: log.child({ component: "core" }),
    metrics: metrics.core,
  });
  const buffers = new BufferBudget(config.maxBufferedBytes);
  const overload = overloadMetrics(
    registry,
    {
      buffers,
      inFlight: () => admission.inFlight,
      maxEventLoopLagMs: () => admission.takeMaxEventLoopLagMs(),
    },
    log.child({ component: "admission" }),
  );
  const admission = new EdgeAdmission(
    {
      maxInFlight: config.maxPendingRequests,
      maxInFlightPerSession: config.maxInFlightPerSession,
      toolRatePerSec: config.toolRatePerSec,
      toolBurst: config.toolRateBurst,
      circuitFailures: config.circuitFailures,
      circuitOpenMs: config.circuitOpenMs,
      poolQueueMin: config.poolQueueMin,
      maxQueueMs: config.maxQueueMs,
      maxEventLoopLagMs: config.maxEventLoopLagMs,
    },
    buffers,
    overload.admission,
  );
  admission.gates.push((pool) => healing.gate(pool));
  core.admission = admission;
  const tracing = config.telemetry.tracing ? startTracing(config.telemetry.tracing) : undefined;
  const telemetry = edgeTelemetry({
    config: config.telemetry,
    registry,
    requests: metrics.requests,
    catalog,
    rejected: (reason) => overload.admission.rejected(reason),
    log: log.child({ component: "access" }),
    tracing,
  });
  core.observer = telemetry.observer;
  new Gauge({
    name: "mcpq_edge_broker_connected",
    help: "1 while the edge's NATS connection is up, 0 from a disconnect until it reconnected",
    registers: [registry],
    collect() {
      this.set(bus.connected ? 1 : 0);
    },
  });
  const shared =
    config.sharedLimitsMs > 0 && config.toolRatePerSec > 0
      ? new SharedRateLimits(bus.nc, admission, {
          edgeId: config.edgeId,
          intervalMs: config.sharedLimitsMs,
          refillMs: (Math.max(1, config.toolRateBurst) / config.toolRatePerSec) * 1000,
        })
      : undefined;
  shared?.start();
  core.policy = policy;
  const cache = config.cache ? await createCache(config, bus, catalog, registry, log) : undefined;
  core.cache = cache;
  core.tasks = new EdgeTasks(bus, config.requestTimeoutMs, config.maxTaskWaits);
  const stopBusStats = startBusStats(
    bus,
    config.busStatsMs,
    overload.busStats,
    log.child({ component: "bus-stats" }),
  );
  core.start();
  const connections = new ConnectionLimiter(
    config.maxConnections,
    connectionMetrics(registry),
    undefined,
    config.maxConnectionsPerClient,
  );
  const auth = new EdgeAuth({ staticTokens: config.authTokens, oauth: config.oauth });
  const edge = edgePort({
    deps: { core, router, log },
    connections,
    buffers,
    metrics,
    onError: (err, method) => telemetry.transportError(method, err),
    auth,
    sockets: {
      maxSendBufferBytes: config.maxSendBufferBytes,
      socketHandshakeTimeoutMs: config.socketHandshakeTimeoutMs,
      socketIdleTimeoutMs: config.socketIdleTimeoutMs,
    },
  });
  return {
    config,
    bus,
    catalog,
    router,
    core,
    registry,
    metrics,
    connections,
    edge,
    auth,
    buffers,
    admission,
    telemetry,
    healing,
    sharedLimits: shared,
    cache,
    log,
    async close() {
      stopBusStats();
      cache?.stop();
      shared?.stop();
      healing.stop();
      admission.close();
      catalog.stop();
      await bus.close();
      await tracing?.shutdown().catch(() => undefined);
    },
  };
}

async function createCache(
  config: Readonly<EdgeConfig>,
  bus: Bus,
  catalog: CatalogView,
  registry: Registry,
  log: Logger,
): Promise<ResponseCache> {
  const c = config.cache!;
  const l2 = c.l2
    ? await openCacheBucket(
        bus,
        {
          maxBytes: c.l2.maxBytes,
          maxAgeMs: c.maxTtlMs,
          storage: c.l2.storage,
          maxValueBytes: c.maxEntryBytes + 32,
        },
        { log },
      )
    : undefined;
  // L2 gauges come from the bucket's status when scraped.
  const metrics = cacheMetrics(registry, () => cache.collectL2());
  const cache = new ResponseCache({
    config: c,
    bus,
    catalog,
    l2,
    log: log.child({ component: "cache" }),
    metrics,
  });
  cache.start();
  return cache;
}
