import { randomBytes } from "node:crypto";
import { z } from "zod";
import { busAuthFromEnv, busEnvShape, busLimitsFromEnv } from "@mcpq/bus";
import { telemetryConfigFromEnv, telemetryEnvShape } from "@mcpq/observability";
import { deepFreeze, type DeepReadonly } from "@mcpq/protocol";
import type { OAuthConfig } from "./core/auth.js";

const int = (def: number) => z.coerce.number().int().nonnegative().default(def);
/** A TCP port, 0-65535 (0 = random), named with its variable when out of range. */
const port = () => z.coerce.number().int().min(0).max(65_535, "expected a port number 0-65535");
const list = (def: string) =>
  z
    .string()
    .default(def)
    .transform((s) =>
      s
        .split(",")
        .map((x) => x.trim())
        .filter(Boolean),
    );
const flag = (def: boolean) =>
  z
    .enum(["true", "false", "1", "0", "yes", "no", "on", "off"])
    .default(def ? "true" : "false")
    .transform((v) => v === "true" || v === "1" || v === "yes" || v === "on");

/**
 * Every edge setting, parsed once at boot (a bad environment fails fast) and frozen.
 * The README's configuration table lists the same variables.
 */
export const EdgeEnvSchema = z.object({
  ...busEnvShape,
  ...telemetryEnvShape,
  MCPQ_HOST: z.string().default("127.0.0.1"),
  MCPQ_PORT: port().default(8080),
  MCPQ_EDGE_ID: z
    .string()
    .regex(/^[A-Za-z0-9_-]+$/)
    .optional(),
  MCPQ_LOG_LEVEL: z
    .enum(["trace", "debug", "info", "warn", "error", "fatal", "silent"])
    .default("info"),
  /** Host header allow-list (DNS-rebinding protection); `*` disables the check. Ports are ignored. */
  MCPQ_ALLOWED_HOSTS: list("localhost,127.0.0.1,[::1]"),
  /** Origin allow-list; entries may end in `:*` for any port; `*` allows all. */
  MCPQ_ALLOWED_ORIGINS: list(
    "http://localhost:*,http://127.0.0.1:*,http://[::1]:*,https://localhost:*",
  ),
  /** `token=principal` pairs; when set, every request needs `Authorization: Bearer <token>`. */
  MCPQ_AUTH_TOKENS: z.string().default(""),
  /** Request body / message limit; never more than the broker's max_payload less envelope room (found at start-up). */
  MCPQ_MAX_BODY_BYTES: int(4 * 1024 * 1024),
  /** Longest tool/prompt name or resource URI (UTF-8 bytes) a request may name (-32602 beyond); 0 = no bound. */
  MCPQ_MAX_NAME_BYTES: int(2_048),
  MCPQ_REQUEST_TIMEOUT_MS: int(30_000),
  MCPQ_MAX_REQUEST_TIMEOUT_MS: int(300_000),
  MCPQ_MAX_SESSIONS_PER_PRINCIPAL: int(10_000),
  MCPQ_SESSION_CACHE_MS: int(5_000),
  MCPQ_PAGE_SIZE: int(100),
  /** Stateless era: `ttlMs` of server/discover results (lists and reads carry what their catalogs declare). */
  MCPQ_DISCOVER_TTL_MS: int(60_000),
  /** Stateless era: open `subscriptions/listen` streams per edge (-32010 beyond). */
  MCPQ_MAX_LISTENERS: int(10_000),
  /** 2025-11-25 tasks: `tasks/result` calls waiting for a task's end at once per edge (-32010 beyond). */
  MCPQ_MAX_TASK_WAITS: int(1_000),
  MCPQ_SSE_KEEPALIVE_MS: int(15_000),
  MCPQ_SSE_RETRY_MS: int(1_000),
  /**
   * How long a POST's SSE stream may hold its status line and priming event for the response
   * (ms; 0 = write them at once): a response within it leaves with them in one socket write.
   */
  MCPQ_SSE_HOLD_MS: int(50),
  /**
   * V8's old-generation growth between full collections, in percent over the live heap
   * (`--heap-growing-percent`), set when `mcpq edge` starts; 0 = V8's own factor (up to 4x).
   * With V8's own, a 10,000-connection edge held about as much garbage as live connection
   * state; 20 halves its RSS per connection for more full collections under call load
   * (docs/bench/conn-flood.md): a setting for connection-heavy edges.
   */
  MCPQ_HEAP_GROWING_PERCENT: int(0),
  /** Transports besides Streamable HTTP (docs/transports.md): WebSocket `/ws`, legacy SSE `/sse`, raw TCP, gRPC. */
  MCPQ_ENABLE_WS: flag(true),
  MCPQ_ENABLE_SSE: flag(true),
  MCPQ_ENABLE_TCP: flag(true),
  MCPQ_ENABLE_GRPC: flag(true),
  /** Newline-delimited JSON-RPC over TCP; default 8090, or 0 (random) when MCPQ_PORT is 0. */
  MCPQ_TCP_PORT: port().optional(),
  /** gRPC `mcpq.v1.Mcp/Session`; default 50051, or 0 (random) when MCPQ_PORT is 0. */
  MCPQ_GRPC_PORT: port().optional(),
  /** Open client connections per edge across all transports (HTTP requests in flight, sockets, streams); 0 = unlimited. */
  MCPQ_MAX_CONNECTIONS: int(10_000),
  /** Connections one client address may hold open at once (MCPQ_MAX_CONNECTIONS stays for the rest); 0 = no per-client bound. */
  MCPQ_MAX_CONNECTIONS_PER_CLIENT: int(1_000),
  /** Time a client has to send an HTTP request's headers (Node headersTimeout). */
  MCPQ_HTTP_HEADERS_TIMEOUT_MS: int(10_000),
  /** Time a client has to send a whole HTTP request, body included (Node requestTimeout); 0 = none. */
  MCPQ_HTTP_REQUEST_TIMEOUT_MS: int(30_000),
  /**
   * How long an idle keep-alive HTTP connection stays open between requests. Longer than clients'
   * own idle limits (undici 4 s, load balancers 60 s), so a client never reuses a connection the
   * edge is closing at that moment (a reset request).
   */
  MCPQ_HTTP_KEEPALIVE_TIMEOUT_MS: int(72_000),
  /** WebSocket/TCP/gRPC: time a new connection has to initialize or resume a session; 0 = none. */
  MCPQ_SOCKET_HANDSHAKE_TIMEOUT_MS: int(10_000),
  /** WebSocket/TCP/gRPC: a connection with nothing in flight that sends nothing for this long is closed (resumable); 0 = never. */
  MCPQ_SOCKET_IDLE_TIMEOUT_MS: int(300_000),
  /** OAuth 2.1 resource server (docs/security.md): the authorization server's issuer; unset = OAuth off. */
  MCPQ_OAUTH_ISSUER: z.string().url().optional(),
  /** The issuer's JWKS; unset = discovered from its metadata. */
  MCPQ_OAUTH_JWKS_URL: z.string().url().optional(),
  /** This server's canonical resource URI (token audience, RFC 8707/9728), e.g. https://mcp.example.com/mcp. */
  MCPQ_RESOURCE_URL: z.string().url().optional(),
  /** Scopes every token needs (403 insufficient_scope otherwise), space- or comma-separated. */
  MCPQ_OAUTH_REQUIRED_SCOPES: z.string().default(""),
  /** Scopes advertised in the protected-resource metadata (default: the required ones). */
  MCPQ_OAUTH_SCOPES_SUPPORTED: z.string().default(""),
  MCPQ_OAUTH_PRINCIPAL_CLAIM: z.string().default("sub"),
  MCPQ_OAUTH_CLOCK_TOLERANCE_S: int(30),
  MCPQ_OAUTH_JWKS_CACHE_MS: int(600_000),
  /** Least time between key-set refetches caused by an unknown key id (key rotation). */
  MCPQ_OAUTH_JWKS_COOLDOWN_MS: int(30_000),
  /** RFC 7662 introspection endpoint for opaque tokens (with the edge's client credentials). */
  MCPQ_OAUTH_INTROSPECTION_URL: z.string().url().optional(),
  MCPQ_OAUTH_CLIENT_ID: z.string().default(""),
  MCPQ_OAUTH_CLIENT_SECRET: z.string().default(""),
  MCPQ_OAUTH_INTROSPECTION_CACHE_MS: int(30_000),
  MCPQ_OAUTH_HTTP_TIMEOUT_MS: int(5_000),
  /** Authorization policy file (JSON, docs/security.md): which callers may use which tools, resources, prompts. */
  MCPQ_POLICY_FILE: z.string().optional(),
  /** Bytes one connection or stream may leave unsent before its reader is cut off as a slow consumer. */
  MCPQ_MAX_SEND_BUFFER_BYTES: int(8 * 1024 * 1024),
  /** Global in-flight cap: routed requests this edge may have waiting at once (-32010 / 503 beyond). */
  MCPQ_MAX_PENDING_REQUESTS: int(2_048),
  /** Routed requests one session may have waiting at once (-32011 / 429 beyond); 0 = unlimited. */
  MCPQ_MAX_IN_FLIGHT_PER_SESSION: int(512),
  /** tools/call token-bucket refill per principal (per session when anonymous), per second; 0 = off. */
  MCPQ_TOOL_RATE_PER_SEC: z.coerce.number().nonnegative().default(200),
  /** tools/call token-bucket size (calls allowed at once before the rate applies). */
  MCPQ_TOOL_RATE_BURST: int(400),
  /** Edge-wide budget for bytes held in send buffers and outbound queues (-32010 / 503 beyond); 0 = off. */
  MCPQ_MAX_BUFFERED_BYTES: int(128 * 1024 * 1024),
  /** Consecutive timeouts / internal errors of this many different callers that open a pool's circuit (one caller's never do); 0 = no breaker. */
  MCPQ_CIRCUIT_FAILURES: int(5),
  /** How long an open circuit fails fast (-32012 / 503) before a half-open probe (doubles per failed probe, max 30 s). */
  MCPQ_CIRCUIT_OPEN_MS: int(2_000),
  /** Queue-time admission: refuse requests predicted to miss their deadline once a pool has this many in flight; 0 = off. */
  MCPQ_POOL_QUEUE_MIN: int(64),
  /**
   * Longest admitted work may wait for a worker to start it (ms), whatever its deadline; 0 = the
   * deadline alone. 1.5 s leaves room for the call itself within a 2 s admitted latency.
   */
  MCPQ_MAX_QUEUE_MS: int(1_500),
  /** Event-loop lag (ms) above which new requests are refused at once (-32010 / 503); 0 = off. */
  MCPQ_MAX_EVENT_LOOP_LAG_MS: int(1_000),
  /** Period of MCPQ_REQ stream / pool consumer polling for metrics; 0 = off. */
  MCPQ_BUS_STATS_MS: int(5_000),
  /**
   * Longest a client waits on an unresponsive broker: a broker operation unanswered this long
   * triggers a probe, and a failed probe (same bound) answers -32010 (HTTP 503 + Retry-After);
   * a disconnected broker is refused at once. See services/edge/src/broker-health.ts.
   */
  MCPQ_BROKER_UNAVAILABLE_MS: z.coerce.number().int().positive().default(1_000),
  /**
   * Cluster-wide tools/call rate limits: how often each edge tells the others (core NATS) how
   * many tokens it granted per principal, so every edge charges them (ms); 0 = per-edge limits.
   */
  MCPQ_SHARED_LIMITS_MS: int(250),
  /** Edge response cache (docs/caching.md): `off` answers every request from a worker. */
  MCPQ_CACHE: z.enum(["on", "off"]).default("on"),
  /** L1 (per edge, LRU): most entries (0 = no L1) and bytes. */
  MCPQ_CACHE_L1_MAX_ENTRIES: int(10_000),
  MCPQ_CACHE_L1_MAX_BYTES: int(64 * 1024 * 1024),
  /** L2 (the shared `mcpq_cache` KV bucket): `off` = L1 only; its byte bound and storage. */
  MCPQ_CACHE_L2: z.enum(["on", "off"]).default("on"),
  MCPQ_CACHE_L2_MAX_BYTES: int(256 * 1024 * 1024),
  MCPQ_CACHE_L2_STORAGE: z.enum(["file", "memory"]).default("memory"),
  /** Upper bound of one L2 lookup; slower counts as a miss. */
  MCPQ_CACHE_L2_TIMEOUT_MS: int(100),
  /** Caps every declared ttlMs; also the L2 bucket's max_age. */
  MCPQ_CACHE_MAX_TTL_MS: int(10 * 60_000),
  /** Results larger than this (bytes of JSON) are not cached. */
  MCPQ_CACHE_MAX_ENTRY_BYTES: int(256 * 1024),
  /** Single-flight: distinct keys with a miss in flight, and requests waiting on one. */
  MCPQ_CACHE_MAX_FLIGHTS: int(10_000),
  MCPQ_CACHE_MAX_WAITERS: int(1_000),
});
type EdgeEnv = z.infer<typeof EdgeEnvSchema>;

const TCP_PORT_OFFSET = 8090 - 8080;
const GRPC_PORT_OFFSET = 50051 - 8080;
function derivedPort(httpPort: number, offset: number): number {
  const port = httpPort + offset;
  // Past the port range (a high HTTP port), fall back to a random port; the edge logs it.
  return httpPort === 0 || port > 65_535 ? 0 : port;
}

export function parseAuthTokens(spec: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const pair of spec
    .split(",")
    .map((s) => s.trim())
    .filter(Boolean)) {
    const i = pair.lastIndexOf("=");
    if (i <= 0 || i === pair.length - 1)
      throw new Error("MCPQ_AUTH_TOKENS entries must be token=principal");
    out.set(pair.slice(0, i), pair.slice(i + 1));
  }
  return out;
}

const scopeList = (s: string) => s.split(/[\s,]+/).filter(Boolean);

function oauthFromEnv(e: EdgeEnv): OAuthConfig | undefined {
  if (!e.MCPQ_OAUTH_ISSUER) return undefined;
  if (!e.MCPQ_RESOURCE_URL)
    throw new Error(
      "invalid edge environment: MCPQ_RESOURCE_URL is required with MCPQ_OAUTH_ISSUER (the token audience)",
    );
  const required = scopeList(e.MCPQ_OAUTH_REQUIRED_SCOPES);
  const supported = scopeList(e.MCPQ_OAUTH_SCOPES_SUPPORTED);
  if (e.MCPQ_OAUTH_INTROSPECTION_URL && !e.MCPQ_OAUTH_CLIENT_ID) {
    throw new Error(
      "invalid edge environment: MCPQ_OAUTH_CLIENT_ID is required with MCPQ_OAUTH_INTROSPECTION_URL",
    );
  }
  return {
    issuer: e.MCPQ_OAUTH_ISSUER,
    jwksUrl: e.MCPQ_OAUTH_JWKS_URL,
    resource: e.MCPQ_RESOURCE_URL,
    requiredScopes: required,
    scopesSupported: supported.length > 0 ? supported : required,
    principalClaim: e.MCPQ_OAUTH_PRINCIPAL_CLAIM,
    clockToleranceSec: e.MCPQ_OAUTH_CLOCK_TOLERANCE_S,
    jwksCacheMs: e.MCPQ_OAUTH_JWKS_CACHE_MS,
    jwksCooldownMs: e.MCPQ_OAUTH_JWKS_COOLDOWN_MS,
    introspection: e.MCPQ_OAUTH_INTROSPECTION_URL
      ? {
          url: e.MCPQ_OAUTH_INTROSPECTION_URL,
          clientId: e.MCPQ_OAUTH_CLIENT_ID,
          clientSecret: e.MCPQ_OAUTH_CLIENT_SECRET,
          cacheMs: e.MCPQ_OAUTH_INTROSPECTION_CACHE_MS,
          maxCached: 10_000,
        }
      : undefined,
    httpTimeoutMs: e.MCPQ_OAUTH_HTTP_TIMEOUT_MS,
  };
}

/**
 * The edge configuration a parsed environment describes; `EdgeConfig` is its inferred type, so a
 * new setting is one schema line and one line here. `httpPort` is the port TCP and gRPC follow.
 */
function configFromEnv(e: EdgeEnv, httpPort: number, edgeId: string) {
  return {
    natsUrl: e.MCPQ_NATS_URL,
    natsAuth: busAuthFromEnv(e),
    provision: e.MCPQ_PROVISION === "on",
    natsWriteBatching: e.MCPQ_NATS_WRITE_BATCHING === "on",
    host: e.MCPQ_HOST,
    port: e.MCPQ_PORT,
    edgeId,
    logLevel: e.MCPQ_LOG_LEVEL,
    allowedHosts: e.MCPQ_ALLOWED_HOSTS,
    allowedOrigins: e.MCPQ_ALLOWED_ORIGINS,
    /** token -> principal; empty means unauthenticated mode (principal "anonymous"). */
    authTokens: parseAuthTokens(e.MCPQ_AUTH_TOKENS) as ReadonlyMap<string, string>,
    maxBodyBytes: e.MCPQ_MAX_BODY_BYTES,
    maxMessageBytes: e.MCPQ_MAX_BODY_BYTES,
    maxNameBytes: e.MCPQ_MAX_NAME_BYTES,
    requestTimeoutMs: e.MCPQ_REQUEST_TIMEOUT_MS,
    maxRequestTimeoutMs: e.MCPQ_MAX_REQUEST_TIMEOUT_MS,
    maxSessionsPerPrincipal: e.MCPQ_MAX_SESSIONS_PER_PRINCIPAL,
    sessionCacheMs: e.MCPQ_SESSION_CACHE_MS,
    pageSize: Math.max(1, e.MCPQ_PAGE_SIZE),
    discoverTtlMs: e.MCPQ_DISCOVER_TTL_MS,
    maxListeners: e.MCPQ_MAX_LISTENERS,
    maxTaskWaits: e.MCPQ_MAX_TASK_WAITS,
    sseKeepaliveMs: e.MCPQ_SSE_KEEPALIVE_MS,
    sseRetryMs: e.MCPQ_SSE_RETRY_MS,
    sseHoldMs: e.MCPQ_SSE_HOLD_MS,
    heapGrowingPercent: e.MCPQ_HEAP_GROWING_PERCENT,
    enableWs: e.MCPQ_ENABLE_WS,
    enableSse: e.MCPQ_ENABLE_SSE,
    enableTcp: e.MCPQ_ENABLE_TCP,
    enableGrpc: e.MCPQ_ENABLE_GRPC,
    // An edge on a random HTTP port (tests, several edges per host) gets random socket ports too.
    // Unset TCP/gRPC ports follow the HTTP port (8080 -> 8090 and 50051), so a second edge
    // started with `--port 8081` gets 8091 and 50052 instead of colliding with the first.
    tcpPort: e.MCPQ_TCP_PORT ?? derivedPort(httpPort, TCP_PORT_OFFSET),
    grpcPort: e.MCPQ_GRPC_PORT ?? derivedPort(httpPort, GRPC_PORT_OFFSET),
    maxConnections: e.MCPQ_MAX_CONNECTIONS,
    maxConnectionsPerClient: e.MCPQ_MAX_CONNECTIONS_PER_CLIENT,
    httpHeadersTimeoutMs: e.MCPQ_HTTP_HEADERS_TIMEOUT_MS,
    httpRequestTimeoutMs: e.MCPQ_HTTP_REQUEST_TIMEOUT_MS,
    httpKeepAliveTimeoutMs: e.MCPQ_HTTP_KEEPALIVE_TIMEOUT_MS,
    socketHandshakeTimeoutMs: e.MCPQ_SOCKET_HANDSHAKE_TIMEOUT_MS,
    socketIdleTimeoutMs: e.MCPQ_SOCKET_IDLE_TIMEOUT_MS,
    oauth: oauthFromEnv(e),
    policyFile: e.MCPQ_POLICY_FILE,
    maxSendBufferBytes: e.MCPQ_MAX_SEND_BUFFER_BYTES,
    maxPendingRequests: e.MCPQ_MAX_PENDING_REQUESTS,
    maxInFlightPerSession: e.MCPQ_MAX_IN_FLIGHT_PER_SESSION,
    toolRatePerSec: e.MCPQ_TOOL_RATE_PER_SEC,
    toolRateBurst: e.MCPQ_TOOL_RATE_BURST,
    maxBufferedBytes: e.MCPQ_MAX_BUFFERED_BYTES,
    circuitFailures: e.MCPQ_CIRCUIT_FAILURES,
    circuitOpenMs: e.MCPQ_CIRCUIT_OPEN_MS,
    poolQueueMin: e.MCPQ_POOL_QUEUE_MIN,
    maxQueueMs: e.MCPQ_MAX_QUEUE_MS,
    maxEventLoopLagMs: e.MCPQ_MAX_EVENT_LOOP_LAG_MS,
    busStatsMs: e.MCPQ_BUS_STATS_MS,
    cache:
      e.MCPQ_CACHE === "off"
        ? undefined
        : {
            l1MaxEntries: e.MCPQ_CACHE_L1_MAX_ENTRIES,
            l1MaxBytes: e.MCPQ_CACHE_L1_MAX_BYTES,
            maxEntryBytes: e.MCPQ_CACHE_MAX_ENTRY_BYTES,
            maxTtlMs: Math.max(1, e.MCPQ_CACHE_MAX_TTL_MS),
            maxFlights: e.MCPQ_CACHE_MAX_FLIGHTS,
            maxWaiters: e.MCPQ_CACHE_MAX_WAITERS,
            l2TimeoutMs: Math.max(1, e.MCPQ_CACHE_L2_TIMEOUT_MS),
            l2:
              e.MCPQ_CACHE_L2 === "off"
                ? undefined
                : { maxBytes: e.MCPQ_CACHE_L2_MAX_BYTES, storage: e.MCPQ_CACHE_L2_STORAGE },
          },
    busLimits: busLimitsFromEnv(e),
    telemetry: telemetryConfigFromEnv(e, { serviceName: "mcpq-edge", instanceId: edgeId }),
    /** MCPQ_BROKER_UNAVAILABLE_MS */
    brokerUnavailableMs: e.MCPQ_BROKER_UNAVAILABLE_MS,
    /** MCPQ_HEAL_CHECK_MS */
    healCheckMs: e.MCPQ_HEAL_CHECK_MS,
    /** MCPQ_SHARED_LIMITS_MS */
    sharedLimitsMs: e.MCPQ_SHARED_LIMITS_MS,
  };
}

/** Resolved, validated edge configuration (deep read-only: loadEdgeConfig freezes it). */
export type EdgeConfig = DeepReadonly<ReturnType<typeof configFromEnv>>;

/** Parses an environment (default: process.env) into a deep-frozen config; throws listing every bad key. */
export function loadEdgeConfig(
  env: Record<string, string | undefined> = process.env,
  overrides: Partial<EdgeConfig> = {},
): EdgeConfig {
  const r = EdgeEnvSchema.safeParse(env);
  if (!r.success) {
    throw new Error(
      `invalid edge environment: ${r.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`).join("; ")}`,
    );
  }
  const e = r.data;
  const edgeId = overrides.edgeId ?? e.MCPQ_EDGE_ID ?? `e-${randomBytes(5).toString("hex")}`;
  return deepFreeze({ ...configFromEnv(e, overrides.port ?? e.MCPQ_PORT, edgeId), ...overrides });
}
