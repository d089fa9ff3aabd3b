import { z } from "zod";
import { BusEnvSchema, busEnvShape, busLimitsFromEnv, type BusLimits } from "@mcpq/bus";

/** Worker settings, parsed once at boot and frozen. The README's configuration table lists them. */
export const WorkerEnvSchema = z.object({
  ...busEnvShape,
  /** Comma-separated catalog names to serve (see services/worker/src/catalogs). */
  MCPQ_CATALOGS: z.string().default("example"),
  /** Pool name; defaults to the sorted catalog names joined by "_", so equal catalogs share a pool. */
  MCPQ_POOL: z.string().regex(/^[A-Za-z0-9_-]+$/).optional(),
  MCPQ_WORKER_CONCURRENCY: z.coerce.number().int().positive().default(64),
  MCPQ_HANDLER_TIMEOUT_MS: z.coerce.number().int().positive().default(30_000),
  MCPQ_LOG_LEVEL: z.enum(["trace", "debug", "info", "warn", "error", "fatal", "silent"]).default("info"),
  /** Port for the worker's /metrics endpoint on 127.0.0.1; 0 disables it. */
  MCPQ_WORKER_METRICS_PORT: z.coerce.number().int().nonnegative().default(0),
});

export interface WorkerConfig {
  natsUrl: string;
  catalogs: string[];
  pool: string;
  concurrency: number;
  handlerTimeoutMs: number;
  logLevel: string;
  metricsPort: number;
  busLimits: BusLimits;
}

export function loadWorkerConfig(env: Record<string, string | undefined> = process.env, overrides: Partial<WorkerConfig> = {}): Readonly<WorkerConfig> {
  const r = WorkerEnvSchema.safeParse(env);
  if (!r.success) {
    throw new Error(`invalid worker environment: ${r.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`).join("; ")}`);
  }
  const e = r.data;
  const catalogs = overrides.catalogs ?? e.MCPQ_CATALOGS.split(",").map((s) => s.trim()).filter(Boolean);
  const cfg: WorkerConfig = {
    natsUrl: e.MCPQ_NATS_URL,
    catalogs,
    pool: e.MCPQ_POOL ?? [...catalogs].sort().join("_"),
    concurrency: e.MCPQ_WORKER_CONCURRENCY,
    handlerTimeoutMs: e.MCPQ_HANDLER_TIMEOUT_MS,
    logLevel: e.MCPQ_LOG_LEVEL,
    metricsPort: e.MCPQ_WORKER_METRICS_PORT,
    busLimits: busLimitsFromEnv(BusEnvSchema.parse(env)),
    ...overrides,
  };
  return Object.freeze(cfg);
}
