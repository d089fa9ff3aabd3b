import { pino, type DestinationStream, type Logger as PinoLogger, type LoggerOptions } from "pino";
import {
  AggregatorRegistry,
  Counter,
  Gauge,
  Histogram,
  Registry,
  collectDefaultMetrics,
} from "prom-client";

/** Paths pino masks wherever they appear in a log object (secrets never reach logs). */
const REDACT_PATHS = [
  "authorization",
  "headers.authorization",
  "req.headers.authorization",
  "*.authorization",
  "token",
  "*.token",
  "password",
  "*.password",
  "natsUrl",
];

/** The service logger: JSON to stdout, secrets redacted, errors under `err`. */
export function createLogger(
  opts: { name: string; level?: string; pretty?: boolean } & LoggerOptions,
  /** Where lines go instead of stdout (tests capture them). */
  destination?: DestinationStream,
): PinoLogger {
  const { name, level, ...rest } = opts;
  const options: LoggerOptions = {
    name,
    level: level ?? "info",
    redact: { paths: REDACT_PATHS, censor: "[redacted]" },
    serializers: { err: pino.stdSerializers.err },
    ...rest,
  };
  return destination ? pino(options, destination) : pino(options);
}

/** A registry with default process metrics (including process_resident_memory_bytes). */
export function createMetricsRegistry(labels: Record<string, string> = {}): Registry {
  const registry = new Registry();
  registry.setDefaultLabels(labels);
  collectDefaultMetrics({ register: registry, prefix: "" });
  return registry;
}

/**
 * Request metrics every service exposes: count, latency, in-flight, errors by code. `method`
 * values must go through `methodLabel` (bounded); `outcome` is one of ok, tool_error, error,
 * rejected, cancelled (see docs/observability.md for how they add up).
 */
export function requestMetrics(registry: Registry, prefix: string) {
  return {
    requests: new Counter({
      name: `${prefix}_requests_total`,
      help: "JSON-RPC requests handled, by method and outcome (ok, tool_error, error, rejected, cancelled)",
      labelNames: ["method", "outcome"] as const,
      registers: [registry],
    }),
    latency: new Histogram({
      name: `${prefix}_request_duration_seconds`,
      help: "Request latency from receipt to response, by method",
      labelNames: ["method"] as const,
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers: [registry],
    }),
    inFlight: new Gauge({
      name: `${prefix}_requests_in_flight`,
      help: "Requests currently being handled",
      registers: [registry],
    }),
    errors: new Counter({
      name: `${prefix}_errors_total`,
      help: "JSON-RPC errors returned, by code",
      labelNames: ["code"] as const,
      registers: [registry],
    }),
  };
}

export type RequestMetrics = ReturnType<typeof requestMetrics>;

export { AggregatorRegistry, Counter, Gauge, Histogram, Registry };
export type { PinoLogger };

export { BoundedLabel, methodLabel, operationDurationHistogram } from "./labels.js";
export { ATTR, TOOL_ERROR, mcpSpanName, requestAttributes, targetOf } from "./semconv.js";
export { contextFromMeta, injectIntoHeaders, startTracing, type Tracing } from "./tracing.js";
export {
  telemetryConfigFromEnv,
  telemetryEnvShape,
  type TelemetryConfig,
} from "./telemetry-env.js";
