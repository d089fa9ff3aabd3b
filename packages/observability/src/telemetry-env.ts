import { z } from "zod";
import { DEFAULT_MAX_LABEL_NAMES } from "./labels.js";
import { otelEnvShape, tracingConfigFromEnv, type OtelEnv, type TracingConfig } from "./tracing.js";

/**
 * Telemetry settings shared by edges and workers, spread into each service's `env.ts` schema:
 * the standard OTEL_* variables, the access log, and the bound on per-name metric labels.
 */
export const telemetryEnvShape = {
  ...otelEnvShape,
  /**
   * Level of the per-request access log line; `off` disables it. Default `debug`: invisible at
   * the default MCPQ_LOG_LEVEL=info, since a synchronous line per request cost 5 % CPU per call
   * (loadtests otel-overhead). HTTP refusals (401, 403) are logged at `info` or above regardless.
   */
  MCPQ_ACCESS_LOG_LEVEL: z.enum(["off", "debug", "info", "warn"]).default("debug"),
  /** Share of requests that get an access log line, in [0, 1]. */
  MCPQ_ACCESS_LOG_SAMPLE: z.coerce.number().min(0).max(1).default(1),
  /** Distinct tool/prompt names per metric label; names beyond (or unknown to the registry) are `_other`. */
  MCPQ_METRICS_MAX_NAMES: z.coerce.number().int().positive().default(DEFAULT_MAX_LABEL_NAMES),
};

/** Resolved telemetry settings (a service config's `telemetry`). */
export interface TelemetryConfig {
  /** Off (undefined) unless an OTLP endpoint is configured. */
  tracing: TracingConfig | undefined;
  accessLog: { level: "off" | "debug" | "info" | "warn"; sample: number };
  maxLabelNames: number;
}

export function telemetryConfigFromEnv(
  env: OtelEnv & {
    MCPQ_ACCESS_LOG_LEVEL: TelemetryConfig["accessLog"]["level"];
    MCPQ_ACCESS_LOG_SAMPLE: number;
    MCPQ_METRICS_MAX_NAMES: number;
  },
  defaults: { serviceName: string; instanceId: string },
): TelemetryConfig {
  return {
    tracing: tracingConfigFromEnv(env, defaults),
    accessLog: { level: env.MCPQ_ACCESS_LOG_LEVEL, sample: env.MCPQ_ACCESS_LOG_SAMPLE },
    maxLabelNames: env.MCPQ_METRICS_MAX_NAMES,
  };
}
