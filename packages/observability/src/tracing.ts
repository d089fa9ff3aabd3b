import {
  ROOT_CONTEXT,
  trace,
  type Context,
  type Span,
  type TextMapGetter,
  type TextMapPropagator,
  type TextMapSetter,
  type Tracer,
} from "@opentelemetry/api";
import { W3CTraceContextPropagator } from "@opentelemetry/core";
import { OTLPTraceExporter as OTLPJsonTraceExporter } from "@opentelemetry/exporter-trace-otlp-http";
import { OTLPTraceExporter as OTLPProtoTraceExporter } from "@opentelemetry/exporter-trace-otlp-proto";
import { resourceFromAttributes } from "@opentelemetry/resources";
import {
  AlwaysOffSampler,
  AlwaysOnSampler,
  BasicTracerProvider,
  BatchSpanProcessor,
  ParentBasedSampler,
  TraceIdRatioBasedSampler,
  type Sampler,
  type SpanExporter,
} from "@opentelemetry/sdk-trace-base";
import { z } from "zod";

/**
 * The standard OpenTelemetry variables a service's `env.ts` spreads into its schema (packages
 * never read process.env; the service parses and hands the result to `tracingConfigFromEnv`).
 * Only traces are exported, over OTLP/HTTP (protobuf, the spec's default, or JSON); gRPC is refused.
 */
export const otelEnvShape = {
  OTEL_SDK_DISABLED: z.enum(["true", "false"]).default("false"),
  /** `otlp` (the default once an endpoint is set) or `none`. */
  OTEL_TRACES_EXPORTER: z.enum(["otlp", "none"]).optional(),
  OTEL_EXPORTER_OTLP_ENDPOINT: z.url().optional(),
  OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: z.url().optional(),
  /** `k=v,k2=v2` (e.g. an authorization header for a hosted collector). */
  OTEL_EXPORTER_OTLP_HEADERS: z.string().optional(),
  OTEL_EXPORTER_OTLP_TRACES_HEADERS: z.string().optional(),
  OTEL_EXPORTER_OTLP_TIMEOUT: z.coerce.number().int().positive().default(10_000),
  OTEL_EXPORTER_OTLP_PROTOCOL: z.enum(["http/protobuf", "http/json"]).optional(),
  OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: z.enum(["http/protobuf", "http/json"]).optional(),
  OTEL_TRACES_SAMPLER: z
    .enum([
      "always_on",
      "always_off",
      "traceidratio",
      "parentbased_always_on",
      "parentbased_always_off",
      "parentbased_traceidratio",
    ])
    .default("parentbased_always_on"),
  OTEL_TRACES_SAMPLER_ARG: z.coerce.number().min(0).max(1).optional(),
  OTEL_SERVICE_NAME: z.string().min(1).optional(),
  /** `k=v,k2=v2` added to the resource (e.g. `deployment.environment.name=prod`). */
  OTEL_RESOURCE_ATTRIBUTES: z.string().optional(),
  /** Spans held for export at most (beyond: dropped, never blocking a request). */
  OTEL_BSP_MAX_QUEUE_SIZE: z.coerce.number().int().positive().default(2048),
  OTEL_BSP_MAX_EXPORT_BATCH_SIZE: z.coerce.number().int().positive().default(512),
  OTEL_BSP_SCHEDULE_DELAY: z.coerce.number().int().positive().default(5000),
};
/** Parsed `otelEnvShape` values. */
export type OtelEnv = z.output<z.ZodObject<typeof otelEnvShape>>;

/** What `startTracing` needs; `undefined` from `tracingConfigFromEnv` means tracing is off. */
export interface TracingConfig {
  serviceName: string;
  /** `service.instance.id` (edge id, worker id). */
  instanceId: string;
  /** Full OTLP/HTTP traces URL (`…/v1/traces`). */
  url: string;
  headers: Record<string, string>;
  /** OTLP/HTTP body encoding. */
  protocol: "http/protobuf" | "http/json";
  timeoutMs: number;
  sampler: OtelEnv["OTEL_TRACES_SAMPLER"];
  samplerArg: number;
  resourceAttributes: Record<string, string>;
  maxQueueSize: number;
  maxExportBatchSize: number;
  scheduleDelayMs: number;
}

/**
 * Tracing settings from parsed `otelEnvShape` values: off (undefined) when the SDK is disabled,
 * the exporter is `none`, or no OTLP endpoint is configured, so a service without a collector
 * pays nothing (its hooks see no tracer and skip all span work).
 */
export function tracingConfigFromEnv(
  env: OtelEnv,
  defaults: { serviceName: string; instanceId: string },
): TracingConfig | undefined {
  if (env.OTEL_SDK_DISABLED === "true" || env.OTEL_TRACES_EXPORTER === "none") return undefined;
  const url =
    env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT ??
    (env.OTEL_EXPORTER_OTLP_ENDPOINT
      ? `${env.OTEL_EXPORTER_OTLP_ENDPOINT.replace(/\/+$/, "")}/v1/traces`
      : undefined);
  if (!url) return undefined;
  return {
    serviceName: env.OTEL_SERVICE_NAME ?? defaults.serviceName,
    instanceId: defaults.instanceId,
    url,
    headers: {
      ...parseKeyValues(env.OTEL_EXPORTER_OTLP_HEADERS),
      ...parseKeyValues(env.OTEL_EXPORTER_OTLP_TRACES_HEADERS),
    },
    protocol:
      env.OTEL_EXPORTER_OTLP_TRACES_PROTOCOL ?? env.OTEL_EXPORTER_OTLP_PROTOCOL ?? "http/protobuf",
    timeoutMs: env.OTEL_EXPORTER_OTLP_TIMEOUT,
    sampler: env.OTEL_TRACES_SAMPLER,
    samplerArg: env.OTEL_TRACES_SAMPLER_ARG ?? 1,
    resourceAttributes: parseKeyValues(env.OTEL_RESOURCE_ATTRIBUTES),
    maxQueueSize: env.OTEL_BSP_MAX_QUEUE_SIZE,
    maxExportBatchSize: Math.min(env.OTEL_BSP_MAX_EXPORT_BATCH_SIZE, env.OTEL_BSP_MAX_QUEUE_SIZE),
    scheduleDelayMs: env.OTEL_BSP_SCHEDULE_DELAY,
  };
}

/** `k=v,k2=v2` (values percent-decoded, as the OTel spec says for these variables). */
function parseKeyValues(s: string | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const part of (s ?? "").split(",")) {
    const i = part.indexOf("=");
    if (i <= 0) continue;
    const k = part.slice(0, i).trim();
    const v = part.slice(i + 1).trim();
    try {
      out[k] = decodeURIComponent(v);
    } catch {
      out[k] = v;
    }
  }
  return out;
}

/**
 * A service's tracing: its own provider (never registered globally, so several services in one
 * process — tests, `mcpq dev` — keep their own resource), the tracer packages accept, and the
 * W3C propagator for NATS headers and `_meta`.
 */
export interface Tracing {
  readonly tracer: Tracer;
  readonly propagator: TextMapPropagator;
  /** Exports what is queued (tests; shutdown does it too). */
  forceFlush(): Promise<void>;
  shutdown(): Promise<void>;
}

/**
 * Starts tracing with a batching OTLP/HTTP exporter, protobuf or JSON (or `exporter`, e.g. the SDK's in-memory
 * one). Spans are queued up to `maxQueueSize` and dropped beyond it, never blocking a request.
 */
export function startTracing(cfg: TracingConfig, exporter?: SpanExporter): Tracing {
  const opts = { url: cfg.url, headers: cfg.headers, timeoutMillis: cfg.timeoutMs };
  const exp =
    exporter ??
    (cfg.protocol === "http/json"
      ? new OTLPJsonTraceExporter(opts)
      : new OTLPProtoTraceExporter(opts));
  const provider = new BasicTracerProvider({
    resource: resourceFromAttributes({
      ...cfg.resourceAttributes,
      "service.name": cfg.serviceName,
      "service.instance.id": cfg.instanceId,
    }),
    sampler: buildSampler(cfg.sampler, cfg.samplerArg),
    // Attribute values include client-chosen names: bounded like every other label.
    spanLimits: { attributeValueLengthLimit: 1024, attributeCountLimit: 64 },
    spanProcessors: [
      new BatchSpanProcessor(exp, {
        maxQueueSize: cfg.maxQueueSize,
        maxExportBatchSize: cfg.maxExportBatchSize,
        scheduledDelayMillis: cfg.scheduleDelayMs,
        exportTimeoutMillis: cfg.timeoutMs,
      }),
    ],
  });
  return {
    tracer: provider.getTracer("mcpq"),
    propagator: new W3CTraceContextPropagator(),
    forceFlush: () => provider.forceFlush(),
    shutdown: () => provider.shutdown(),
  };
}

function buildSampler(name: TracingConfig["sampler"], arg: number): Sampler {
  switch (name) {
    case "always_on":
      return new AlwaysOnSampler();
    case "always_off":
      return new AlwaysOffSampler();
    case "traceidratio":
      return new TraceIdRatioBasedSampler(arg);
    case "parentbased_always_off":
      return new ParentBasedSampler({ root: new AlwaysOffSampler() });
    case "parentbased_traceidratio":
      return new ParentBasedSampler({ root: new TraceIdRatioBasedSampler(arg) });
    default:
      return new ParentBasedSampler({ root: new AlwaysOnSampler() });
  }
}

/** A plain `{traceparent, tracestate}` record (`params._meta`, envelope fields). */
const recordGetter: TextMapGetter<Record<string, unknown>> = {
  keys: (c) => Object.keys(c),
  get: (c, k) => (typeof c[k] === "string" ? c[k] : undefined),
};

/** NATS message headers (`MsgHdrs`): `get` returns "" for a missing key. */
interface HeaderLike {
  get(k: string): string;
  set(k: string, v: string): void;
  keys(): string[];
}
const headerSetter: TextMapSetter<HeaderLike> = { set: (h, k, v) => h.set(k, v) };

/**
 * The remote parent a client stated in `params._meta` (`traceparent`, `tracestate`; SEP-414),
 * or ROOT_CONTEXT when absent or malformed (the propagator validates the format).
 */
export function contextFromMeta(
  propagator: TextMapPropagator,
  meta: Record<string, unknown> | undefined,
): Context {
  if (!meta || typeof meta["traceparent"] !== "string") return ROOT_CONTEXT;
  return propagator.extract(ROOT_CONTEXT, meta, recordGetter);
}

/** Writes `span`'s context into NATS headers, replacing a forwarded client `traceparent`. */
export function injectIntoHeaders(propagator: TextMapPropagator, span: Span, h: HeaderLike): void {
  propagator.inject(trace.setSpan(ROOT_CONTEXT, span), h, headerSetter);
}

export type { Context, Span, SpanExporter, TextMapPropagator };
