import { connectBus, INBOX_PREFIX, openCacheBucket, type Bus } from "@mcpq/bus";
import { cacheMetrics } from "./cache/cache-metrics.js";
import { ResponseCache } from "./cache/response-cache.js";
import { createMetricsRegistry, type Registry } from "@mcpq/observability";
import type { Logger } from "@mcpq/protocol";
import { EdgeAdmission } from "./core/admission.js";
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
  log: Logger;
  close(): Promise<void>;
}

export const SERVER_VERSION = "0.1.0";

export async function createEdgeRuntime(config: Readonly<EdgeConfig>, log: Logger): Promise<EdgeRuntime> {
  const bus = await connectBus({
    url: config.natsUrl,
    auth: config.natsAuth,
    inboxPrefix: INBOX_PREFIX.edge,
    provision: config.provision,
    log: log.child({ component: "provision" }),
    name: `edge-${config.edgeId}`,
    limits: config.busLimits,
    batchWrites: config.natsWriteBatching,
  });
  const registry = createMetricsRegistry("mcpq_edge", { edge: config.edgeId });
  const metrics = edgeMetrics(registry);
  const catalog = new CatalogView(bus, log.child({ component: "catalog" }));
  await catalog.start();
  metrics.workers.set(catalog.workerCount);
  catalog.on("changed", () => metrics.workers.set(catalog.workerCount));
  const router = new OutboundRouter({
    bus,
    maxPending: config.maxPendingRequests,
    log: log.child({ component: "outbound" }),
    // An answered id matters only until its worker's late answer arrives, right after the
    // deadline (the worker aborts then): about as many as the session may have in flight.
    maxAnsweredPerSession: config.maxInFlightPerSession > 0 ? config.maxInFlightPerSession : undefined,
    onLateResponse: () => metrics.lateResponses.inc(),
  });
  const sessions = new SessionStore(bus, { cacheMs: config.sessionCacheMs });
  const core = new SessionCore({
    bus,
    config: {
      edgeId: config.edgeId,
      requestTimeoutMs: config.requestTimeoutMs,
      maxRequestTimeoutMs: config.maxRequestTimeoutMs,
      maxSessionsPerPrincipal: config.maxSessionsPerPrincipal,
      pageSize: config.pageSize,
      discoverTtlMs: config.discoverTtlMs,
      maxListeners: config.maxListeners,
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
  const overload = overloadMetrics(registry, { buffers, inFlight: () => admission.inFlight }, log.child({ component: "admission" }));
  const admission = new EdgeAdmission(
    {
      maxInFlight: config.maxPendingRequests,
      maxInFlightPerSession: config.maxInFlightPerSession,
      toolRatePerSec: config.toolRatePerSec,
      toolBurst: config.toolRateBurst,
      circuitFailures: config.circuitFailures,
      circuitOpenMs: config.circuitOpenMs,
      poolQueueMin: config.poolQueueMin,
    },
    buffers,
    overload.admission,
  );
  core.admission = admission;
  const cache = config.cache ? await createCache(config, bus, catalog, registry, log) : undefined;
  core.cache = cache;
  const stopBusStats = startBusStats(bus, config.busStatsMs, overload.busStats, log.child({ component: "bus-stats" }));
  core.start();
  const connections = new ConnectionLimiter(config.maxConnections, connectionMetrics(registry));
  const edge = edgePort({
    deps: { core, router, log },
    connections,
    buffers,
    metrics,
    onError: (code) => metrics.core.error(code),
    sockets: { maxSendBufferBytes: config.maxSendBufferBytes, authTokens: config.authTokens },
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
    buffers,
    admission,
    cache,
    log,
    async close() {
      stopBusStats();
      cache?.stop();
      admission.close();
      catalog.stop();
      await bus.close();
    },
  };
}

async function createCache(config: Readonly<EdgeConfig>, bus: Bus, catalog: CatalogView, registry: Registry, log: Logger): Promise<ResponseCache> {
  const c = config.cache!;
  const l2 = c.l2
    ? await openCacheBucket(bus, { maxBytes: c.l2.maxBytes, maxAgeMs: c.maxTtlMs, storage: c.l2.storage, maxValueBytes: c.maxEntryBytes + 32 }, { log })
    : undefined;
  // L2 gauges come from the bucket's status when scraped.
  const metrics = cacheMetrics(registry, () => cache.collectL2());
  const cache = new ResponseCache({ config: c, bus, catalog, l2, log: log.child({ component: "cache" }), metrics });
  cache.start();
  return cache;
}
