import { z } from "zod";
import { BusEnvSchema, busAuthFromEnv, busEnvShape, busLimitsFromEnv, parsePathPatterns, type BusAuth, type BusLimits } from "@mcpq/bus";
import {
  DEFAULT_REQUEST_STATE_MAX_BYTES,
  DEFAULT_REQUEST_STATE_TTL_MS,
  MIN_REQUEST_STATE_KEY_LENGTH,
  parseSampleSpec,
} from "@mcpq/worker-sdk";

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
  /** Record each finished request and its response in MCPQ_REC for `mcpq replay` (docs/replay.md). */
  MCPQ_RECORD: z.enum(["on", "off"]).default("on"),
  /** Per-target sampling, e.g. `*=1,echo=0.1` (rate in [0, 1]; an exact name beats a wildcard). */
  MCPQ_RECORD_SAMPLE: z.string().default("").superRefine(parses((v) => parseSampleSpec(v))),
  /** Comma-separated JSON paths masked before storing, relative to params (`arguments.password`) or the response (`result.x`). */
  MCPQ_RECORD_REDACT: z.string().default("").superRefine(parses((v) => parsePathPatterns(v.split(",")))),
  /** Also record the notifications (progress, logs) sent before each response. */
  MCPQ_RECORD_NOTIFICATIONS: z.enum(["on", "off"]).default("off"),
  /** Shadow worker: a candidate for `mcpq replay --against`; registered, never routed client traffic. */
  MCPQ_WORKER_SHADOW: z.enum(["on", "off"]).default("off"),
  /**
   * Comma-separated secrets (>= 32 characters each) sealing MRTR `requestState` (protocol
   * 2026-07-28). Every worker of a pool needs the same list: the first seals, all open (rotation).
   * Empty: a random per-process key (a retry reaching another worker is then refused).
   */
  MCPQ_REQUEST_STATE_KEYS: z
    .string()
    .default("")
    .refine((v) => splitList(v).every((k) => k.length >= MIN_REQUEST_STATE_KEY_LENGTH), {
      message: `every key needs at least ${MIN_REQUEST_STATE_KEY_LENGTH} characters`,
    }),
  /** How long a sealed `requestState` stays valid (ms). */
  MCPQ_REQUEST_STATE_TTL_MS: z.coerce.number().int().positive().default(DEFAULT_REQUEST_STATE_TTL_MS),
  /** Longest `requestState` a worker accepts or produces (characters). */
  MCPQ_REQUEST_STATE_MAX_BYTES: z.coerce.number().int().min(1024).default(DEFAULT_REQUEST_STATE_MAX_BYTES),
});

function splitList(v: string): string[] {
  return v.split(",").map((s) => s.trim()).filter(Boolean);
}

function parses(fn: (v: string) => unknown) {
  return (v: string, ctx: z.RefinementCtx) => {
    try {
      fn(v);
    } catch (err) {
      ctx.addIssue({ code: "custom", message: err instanceof Error ? err.message : String(err) });
    }
  };
}

export interface WorkerConfig {
  natsUrl: string;
  /** MCPQ_NATS_USER/PASSWORD/TOKEN/NKEY_SEED/CREDS/TLS_* (docs/broker.md); undefined = anonymous. */
  natsAuth: BusAuth | undefined;
  /** MCPQ_PROVISION: create/reconcile streams and buckets at connect (off with the `worker` credential). */
  provision: boolean;
  /** MCPQ_NATS_WRITE_BATCHING */
  natsWriteBatching: boolean;
  catalogs: string[];
  pool: string;
  concurrency: number;
  handlerTimeoutMs: number;
  logLevel: string;
  metricsPort: number;
  busLimits: BusLimits;
  record: { enabled: boolean; sample: string; redact: string[]; notifications: boolean };
  shadow: boolean;
  /** MCPQ_REQUEST_STATE_* (never logged: the keys are secrets). */
  requestState: { keys: string[]; ttlMs: number; maxBytes: number };
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
    natsAuth: busAuthFromEnv(e),
    provision: e.MCPQ_PROVISION === "on",
    natsWriteBatching: e.MCPQ_NATS_WRITE_BATCHING === "on",
    catalogs,
    pool: e.MCPQ_POOL ?? [...catalogs].sort().join("_"),
    concurrency: e.MCPQ_WORKER_CONCURRENCY,
    handlerTimeoutMs: e.MCPQ_HANDLER_TIMEOUT_MS,
    logLevel: e.MCPQ_LOG_LEVEL,
    metricsPort: e.MCPQ_WORKER_METRICS_PORT,
    busLimits: busLimitsFromEnv(BusEnvSchema.parse(env)),
    record: {
      enabled: e.MCPQ_RECORD === "on",
      sample: e.MCPQ_RECORD_SAMPLE,
      redact: e.MCPQ_RECORD_REDACT.split(",").map((s) => s.trim()).filter(Boolean),
      notifications: e.MCPQ_RECORD_NOTIFICATIONS === "on",
    },
    shadow: e.MCPQ_WORKER_SHADOW === "on",
    requestState: { keys: splitList(e.MCPQ_REQUEST_STATE_KEYS), ttlMs: e.MCPQ_REQUEST_STATE_TTL_MS, maxBytes: e.MCPQ_REQUEST_STATE_MAX_BYTES },
    ...overrides,
  };
  return Object.freeze(cfg);
}
