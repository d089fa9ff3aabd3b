import { randomBytes } from "node:crypto";
import { z } from "zod";
import { busEnvShape, busLimitsFromEnv, type BusLimits } from "@mcpq/bus";

const int = (def: number) => z.coerce.number().int().nonnegative().default(def);
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

/**
 * Every edge setting, parsed once at boot (a bad environment fails fast) and frozen.
 * The README's configuration table lists the same variables.
 */
export const EdgeEnvSchema = z.object({
  ...busEnvShape,
  MCPQ_HOST: z.string().default("127.0.0.1"),
  MCPQ_PORT: int(8080),
  MCPQ_EDGE_ID: z.string().regex(/^[A-Za-z0-9_-]+$/).optional(),
  MCPQ_LOG_LEVEL: z.enum(["trace", "debug", "info", "warn", "error", "fatal", "silent"]).default("info"),
  /** Host header allow-list (DNS-rebinding protection); `*` disables the check. Ports are ignored. */
  MCPQ_ALLOWED_HOSTS: list("localhost,127.0.0.1,[::1]"),
  /** Origin allow-list; entries may end in `:*` for any port; `*` allows all. */
  MCPQ_ALLOWED_ORIGINS: list("http://localhost:*,http://127.0.0.1:*,http://[::1]:*,https://localhost:*"),
  /** `token=principal` pairs; when set, every request needs `Authorization: Bearer <token>`. */
  MCPQ_AUTH_TOKENS: z.string().default(""),
  MCPQ_MAX_BODY_BYTES: int(4 * 1024 * 1024),
  MCPQ_REQUEST_TIMEOUT_MS: int(30_000),
  MCPQ_MAX_REQUEST_TIMEOUT_MS: int(300_000),
  MCPQ_MAX_SESSIONS_PER_PRINCIPAL: int(10_000),
  MCPQ_SESSION_CACHE_MS: int(5_000),
  MCPQ_PAGE_SIZE: int(100),
  MCPQ_SSE_KEEPALIVE_MS: int(15_000),
  MCPQ_SSE_RETRY_MS: int(1_000),
  MCPQ_MAX_PENDING_REQUESTS: int(20_000),
});
export type EdgeEnv = z.infer<typeof EdgeEnvSchema>;

/** Resolved, validated edge configuration. */
export interface EdgeConfig {
  natsUrl: string;
  host: string;
  port: number;
  edgeId: string;
  logLevel: EdgeEnv["MCPQ_LOG_LEVEL"];
  allowedHosts: string[];
  allowedOrigins: string[];
  /** token -> principal; empty means unauthenticated mode (principal "anonymous"). */
  authTokens: ReadonlyMap<string, string>;
  maxBodyBytes: number;
  requestTimeoutMs: number;
  maxRequestTimeoutMs: number;
  maxSessionsPerPrincipal: number;
  sessionCacheMs: number;
  pageSize: number;
  sseKeepaliveMs: number;
  sseRetryMs: number;
  maxPendingRequests: number;
  busLimits: BusLimits;
}

export function parseAuthTokens(spec: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const pair of spec.split(",").map((s) => s.trim()).filter(Boolean)) {
    const i = pair.lastIndexOf("=");
    if (i <= 0 || i === pair.length - 1) throw new Error("MCPQ_AUTH_TOKENS entries must be token=principal");
    out.set(pair.slice(0, i), pair.slice(i + 1));
  }
  return out;
}

/** Parses an environment (default: process.env) into a frozen config; throws listing every bad key. */
export function loadEdgeConfig(env: Record<string, string | undefined> = process.env, overrides: Partial<EdgeConfig> = {}): Readonly<EdgeConfig> {
  const r = EdgeEnvSchema.safeParse(env);
  if (!r.success) {
    throw new Error(`invalid edge environment: ${r.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`).join("; ")}`);
  }
  const e = r.data;
  const cfg: EdgeConfig = {
    natsUrl: e.MCPQ_NATS_URL,
    host: e.MCPQ_HOST,
    port: e.MCPQ_PORT,
    edgeId: e.MCPQ_EDGE_ID ?? `e-${randomBytes(5).toString("hex")}`,
    logLevel: e.MCPQ_LOG_LEVEL,
    allowedHosts: e.MCPQ_ALLOWED_HOSTS,
    allowedOrigins: e.MCPQ_ALLOWED_ORIGINS,
    authTokens: parseAuthTokens(e.MCPQ_AUTH_TOKENS),
    maxBodyBytes: e.MCPQ_MAX_BODY_BYTES,
    requestTimeoutMs: e.MCPQ_REQUEST_TIMEOUT_MS,
    maxRequestTimeoutMs: e.MCPQ_MAX_REQUEST_TIMEOUT_MS,
    maxSessionsPerPrincipal: e.MCPQ_MAX_SESSIONS_PER_PRINCIPAL,
    sessionCacheMs: e.MCPQ_SESSION_CACHE_MS,
    pageSize: Math.max(1, e.MCPQ_PAGE_SIZE),
    sseKeepaliveMs: e.MCPQ_SSE_KEEPALIVE_MS,
    sseRetryMs: e.MCPQ_SSE_RETRY_MS,
    maxPendingRequests: e.MCPQ_MAX_PENDING_REQUESTS,
    busLimits: busLimitsFromEnv(e),
    ...overrides,
  };
  return Object.freeze(cfg);
}
