import { randomBytes } from "node:crypto";
import { z } from "zod";
import {
  DEFAULT_TASKS_MAX_PER_PRINCIPAL,
  busAuthFromEnv,
  busEnvShape,
  busLimitsFromEnv,
  parsePathPatterns,
} from "@mcpq/bus";
import { telemetryConfigFromEnv, telemetryEnvShape } from "@mcpq/observability";
import { deepFreeze, type DeepReadonly } from "@mcpq/protocol";
import {
  DEFAULT_REQUEST_STATE_MAX_BYTES,
  MIN_REQUEST_STATE_KEY_LENGTH,
  parseSampleSpec,
} from "@mcpq/worker-sdk";

/** Worker settings, parsed once at boot and frozen. The README's configuration table lists them. */
export const WorkerEnvSchema = z.object({
  ...busEnvShape,
  ...telemetryEnvShape,
  /** Comma-separated catalog names to serve (see services/worker/src/catalogs). */
  MCPQ_CATALOGS: z.string().default("example"),
  /** Pool name; defaults to the sorted catalog names joined by "_", so equal catalogs share a pool. */
  MCPQ_POOL: z
    .string()
    .regex(/^[A-Za-z0-9_-]+$/)
    .optional(),
  MCPQ_WORKER_CONCURRENCY: z.coerce.number().int().positive().default(64),
  MCPQ_HANDLER_TIMEOUT_MS: z.coerce.number().int().positive().default(30_000),
  MCPQ_LOG_LEVEL: z
    .enum(["trace", "debug", "info", "warn", "error", "fatal", "silent"])
    .default("info"),
  /** Port of the worker's HTTP listener (/metrics, /healthz, /readyz); 0 disables it. */
  MCPQ_WORKER_METRICS_PORT: z.coerce
    .number()
    .int()
    .min(0)
    .max(65_535, "expected a port number 0-65535")
    .default(0),
  /** Interface of that listener (loopback unless a scraper elsewhere needs it, e.g. compose). */
  MCPQ_WORKER_METRICS_HOST: z.string().default("127.0.0.1"),
  /** Period of the pool consumer's lag polling (mcpq_worker_consumer_lag_messages); 0 = off. */
  MCPQ_WORKER_LAG_POLL_MS: z.coerce.number().int().nonnegative().default(5_000),
  /** Record each finished request and its response in MCPQ_REC for `mcpq replay` (docs/replay.md). */
  MCPQ_RECORD: z.enum(["on", "off"]).default("on"),
  /** Per-target sampling, e.g. `*=1,echo=0.1` (rate in [0, 1]; an exact name beats a wildcard). */
  MCPQ_RECORD_SAMPLE: z
    .string()
    .default("")
    .superRefine(parses((v) => parseSampleSpec(v))),
  /** Comma-separated JSON paths masked before storing, relative to params (`arguments.password`) or the response (`result.x`). */
  MCPQ_RECORD_REDACT: z
    .string()
    .default("")
    .superRefine(parses((v) => parsePathPatterns(v.split(",")))),
  /** Targets (`*` wildcards) whose records keep values under common secret keys (password, token, api_key, …) in clear; masked by default. */
  MCPQ_RECORD_KEEP_SECRETS: z.string().default(""),
  /** Also record the notifications (progress, logs) sent before each response. */
  MCPQ_RECORD_NOTIFICATIONS: z.enum(["on", "off"]).default("off"),
  /** Shadow worker: a candidate for `mcpq replay --against`; registered, never routed client traffic. */
  MCPQ_WORKER_SHADOW: z.enum(["on", "off"]).default("off"),
  /** Liveness beat interval (ms, core NATS); edges judge the worker dead after 4 missed beats. 0 = off. */
  MCPQ_WORKER_LIVENESS_MS: z.coerce.number().int().nonnegative().default(500),
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
  // MCPQ_REQUEST_STATE_TTL_MS is a shared broker setting (busEnvShape): it also bounds the
  // used-state bucket that makes a state single use.
  /** Longest `requestState` a worker accepts or produces (characters). */
  MCPQ_REQUEST_STATE_MAX_BYTES: z.coerce
    .number()
    .int()
    .min(1024)
    .default(DEFAULT_REQUEST_STATE_MAX_BYTES),
  /**
   * Live tasks (tasks extension) one principal may hold in the broker, counted across workers;
   * one more is refused with a retryable -32010. 0 = no per-principal bound.
   */
  MCPQ_TASKS_MAX_PER_PRINCIPAL: z.coerce
    .number()
    .int()
    .nonnegative()
    .default(DEFAULT_TASKS_MAX_PER_PRINCIPAL),
});

function splitList(v: string): string[] {
  return v
    .split(",")
    .map((s) => s.trim())
    .filter(Boolean);
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

type WorkerEnv = z.infer<typeof WorkerEnvSchema>;

/** The worker configuration a parsed environment describes; `WorkerConfig` is its inferred type. */
function configFromEnv(e: WorkerEnv, catalogs: readonly string[], workerId: string) {
  return {
    natsUrl: e.MCPQ_NATS_URL,
    /** MCPQ_NATS_USER/PASSWORD/TOKEN/NKEY_SEED/CREDS/TLS_* (docs/broker.md); undefined = anonymous. */
    natsAuth: busAuthFromEnv(e),
    /** MCPQ_PROVISION: create/reconcile streams and buckets at connect (off with the `worker` credential). */
    provision: e.MCPQ_PROVISION === "on",
    /** MCPQ_NATS_WRITE_BATCHING */
    natsWriteBatching: e.MCPQ_NATS_WRITE_BATCHING === "on",
    catalogs: [...catalogs],
    pool: e.MCPQ_POOL ?? [...catalogs].sort().join("_"),
    concurrency: e.MCPQ_WORKER_CONCURRENCY,
    handlerTimeoutMs: e.MCPQ_HANDLER_TIMEOUT_MS,
    logLevel: e.MCPQ_LOG_LEVEL as string,
    metricsPort: e.MCPQ_WORKER_METRICS_PORT,
    metricsHost: e.MCPQ_WORKER_METRICS_HOST,
    lagPollMs: e.MCPQ_WORKER_LAG_POLL_MS,
    /** Worker id (also `service.instance.id` of its spans). */
    workerId,
    telemetry: telemetryConfigFromEnv(e, { serviceName: "mcpq-worker", instanceId: workerId }),
    busLimits: busLimitsFromEnv(e),
    record: {
      enabled: e.MCPQ_RECORD === "on",
      sample: e.MCPQ_RECORD_SAMPLE,
      redact: e.MCPQ_RECORD_REDACT.split(",")
        .map((s) => s.trim())
        .filter(Boolean),
      keepSecretsFor: e.MCPQ_RECORD_KEEP_SECRETS.split(",")
        .map((s) => s.trim())
        .filter(Boolean),
      notifications: e.MCPQ_RECORD_NOTIFICATIONS === "on",
    },
    shadow: e.MCPQ_WORKER_SHADOW === "on",
    /** MCPQ_WORKER_LIVENESS_MS */
    livenessMs: e.MCPQ_WORKER_LIVENESS_MS,
    /** MCPQ_HEAL_CHECK_MS */
    healCheckMs: e.MCPQ_HEAL_CHECK_MS,
    /** MCPQ_TASKS_MAX_PER_PRINCIPAL */
    tasksMaxPerPrincipal: e.MCPQ_TASKS_MAX_PER_PRINCIPAL,
    /** MCPQ_REQUEST_STATE_* (never logged: the keys are secrets). */
    requestState: {
      keys: splitList(e.MCPQ_REQUEST_STATE_KEYS),
      ttlMs: e.MCPQ_REQUEST_STATE_TTL_MS,
      maxBytes: e.MCPQ_REQUEST_STATE_MAX_BYTES,
    },
  };
}

/** Resolved, validated worker configuration (deep read-only: loadWorkerConfig freezes it). */
export type WorkerConfig = DeepReadonly<ReturnType<typeof configFromEnv>>;

/** Parses an environment (default: process.env) into a deep-frozen config; throws listing every bad key. */
export function loadWorkerConfig(
  env: Record<string, string | undefined> = process.env,
  overrides: Partial<WorkerConfig> = {},
): WorkerConfig {
  const r = WorkerEnvSchema.safeParse(env);
  if (!r.success) {
    throw new Error(
      `invalid worker environment: ${r.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`).join("; ")}`,
    );
  }
  const e = r.data;
  const catalogs =
    overrides.catalogs ??
    e.MCPQ_CATALOGS.split(",")
      .map((s) => s.trim())
      .filter(Boolean);
  const workerId = overrides.workerId ?? `w-${randomBytes(6).toString("hex")}`;
  return deepFreeze({ ...configFromEnv(e, catalogs, workerId), ...overrides });
}
