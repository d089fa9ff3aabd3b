import { ROOT_CONTEXT, SpanKind, SpanStatusCode, trace, type Span } from "@opentelemetry/api";
import {
  ATTR,
  BoundedLabel,
  TOOL_ERROR,
  contextFromMeta,
  injectIntoHeaders,
  mcpSpanName,
  methodLabel,
  operationDurationHistogram,
  requestAttributes,
  targetOf,
  type RequestMetrics,
  type Registry,
  type TelemetryConfig,
  type Tracing,
} from "@mcpq/observability";
import { Fault, McpError, isFault, type JsonRpcRequest, type Logger } from "@mcpq/protocol";
import type { MsgHdrs, TargetKind } from "@mcpq/bus";
import type { CatalogView } from "./core/catalog.js";
import type { OutboundMessage } from "./core/outbound.js";
import type { RequestObservation, RequestObserver } from "./core/request-observer.js";
import { wireError } from "./core/http-errors.js";
import { REFUSAL_CODES, classifyAnswer, type RequestOutcome } from "./core/answer-outcome.js";
import type { SessionRecord } from "./core/session-store.js";

/** Longest tool/prompt name an access log line carries (names come from clients). */
const MAX_LOGGED_NAME = 128;

export interface EdgeTelemetryOptions {
  config: TelemetryConfig;
  registry: Registry;
  requests: RequestMetrics;
  catalog: CatalogView;
  /** Counts a refusal the admission control did not see (`mcpq_edge_rejected_total{reason}`). */
  rejected(reason: "no_worker"): void;
  log: Logger;
  /** Set when OTEL_* configures an exporter; without it no span work is done at all. */
  tracing: Tracing | undefined;
}

/** The edge's request telemetry: the core's observer plus what transports report themselves. */
export interface EdgeTelemetry {
  readonly observer: RequestObserver;
  /**
   * An error a transport answers for a request it never dispatched (unparseable message,
   * session lookup failed with the broker down) or that dispatch refused; counted once: errors
   * the observer already counted are skipped.
   */
  transportError(
    method: string | undefined,
    err: unknown,
    session?: { id: string; principal: string },
  ): void;
  /** An HTTP refusal before any JSON-RPC processing (401 Unauthorized, 403): access log only. */
  httpRefusal(status: number, info: { method: string; path: string }): void;
  readonly tracing: Tracing | undefined;
}

/**
 * Builds the edge's request telemetry: `mcpq_edge_requests_total{method,outcome}`,
 * `mcpq_edge_request_duration_seconds{method}`, `mcpq_edge_errors_total{code}`,
 * `mcp_server_operation_duration_seconds{…,service="edge"}`, the edge's spans (server span per
 * request, producer span per publish, delivery span per answer) and the access log line.
 * Label values are bounded: methods MCP does not define, and tool/prompt names the registry
 * does not know (or beyond MCPQ_METRICS_MAX_NAMES), are `_other`.
 */
export function edgeTelemetry(opts: EdgeTelemetryOptions): EdgeTelemetry {
  const { config, requests, catalog, log, tracing } = opts;
  const operation = operationDurationHistogram(opts.registry);
  const tools = new BoundedLabel(config.maxLabelNames, (n) => catalog.toolPool(n) !== undefined);
  const prompts = new BoundedLabel(
    config.maxLabelNames,
    (n) => catalog.promptPool(n) !== undefined,
  );
  // Codes come from workers too (a tool may throw any McpError): bounded like names.
  const codes = new BoundedLabel(config.maxLabelNames, () => true);
  const accessLevel = config.accessLog.level;
  const sample = config.accessLog.sample;
  const logLine =
    accessLevel === "off" ? undefined : (log[accessLevel] as Logger["info"]).bind(log);
  // Refusals before any JSON-RPC processing (a bad token) matter for security: at least info.
  const refusalLine =
    accessLevel === "off" ? undefined : (accessLevel === "warn" ? log.warn : log.info).bind(log);
  /** Errors already counted by an observation (a transport reports them again on its way out). */
  const counted = new WeakSet<object>();

  const record = (
    method: string,
    target: { tool?: string | undefined; prompt?: string | undefined },
    outcome: RequestOutcome,
    code: number | undefined,
    seconds: number,
  ) => {
    const m = methodLabel(method);
    requests.requests.inc({ method: m, outcome });
    requests.latency.observe({ method: m }, seconds);
    const codeLabel = code === undefined ? undefined : codes.value(String(code));
    if (codeLabel !== undefined) requests.errors.inc({ code: codeLabel });
    operation.observe(
      {
        mcp_method_name: m,
        gen_ai_tool_name: tools.value(target.tool),
        gen_ai_prompt_name: prompts.value(target.prompt),
        error_type:
          outcome === "tool_error"
            ? TOOL_ERROR
            : outcome === "cancelled"
              ? "cancelled"
              : (codeLabel ?? ""),
        service: "edge",
      },
      seconds,
    );
  };

  const access = (line: Record<string, unknown>) => {
    if (logLine && (sample >= 1 || Math.random() < sample)) logLine(line, "request");
  };

  class Observation implements RequestObservation {
    readonly #started = performance.now();
    readonly #target: { tool?: string; prompt?: string; uri?: string };
    readonly #span: Span | undefined;
    #routed: { kind: TargetKind; name: string; pool: string } | undefined;
    #done = false;

    constructor(
      private readonly session: SessionRecord | { principal: string; id?: undefined },
      private readonly req: JsonRpcRequest,
    ) {
      this.#target = targetOf(req.method, req.params);
      if (tracing) {
        const meta = req.params?.["_meta"] as Record<string, unknown> | undefined;
        const known = {
          tool:
            this.#target.tool !== undefined && catalog.toolPool(this.#target.tool)
              ? this.#target.tool
              : undefined,
          prompt:
            this.#target.prompt !== undefined && catalog.promptPool(this.#target.prompt)
              ? this.#target.prompt
              : undefined,
        };
        const span = tracing.tracer.startSpan(
          mcpSpanName(methodLabel(req.method), known),
          { kind: SpanKind.SERVER },
          contextFromMeta(tracing.propagator, meta),
        );
        // Attributes only for sampled spans: an unsampled request costs one id pair and a header.
        if (span.isRecording()) {
          span.setAttributes(requestAttributes(req.method, req.params, req.id));
          if (session.id !== undefined) {
            span.setAttribute(ATTR.mcpSessionId, session.id);
            span.setAttribute(ATTR.mcpProtocolVersion, (session as SessionRecord).protocolVersion);
          }
        }
        this.#span = span;
      }
    }

    routed(target: { kind: TargetKind; name: string; pool: string }): void {
      this.#routed = target;
    }

    publishing(headers: MsgHdrs, subject: string, requestId: string): (err?: unknown) => void {
      const parent = this.#span;
      if (!tracing || !parent) return noop;
      if (!parent.isRecording()) {
        // Not sampled: the worker only needs the decision (the flags of the server span's context).
        injectIntoHeaders(tracing.propagator, parent, headers);
        return noop;
      }
      const span = tracing.tracer.startSpan(
        `send mcpq.req.${this.#routed?.pool ?? "_"}`,
        {
          kind: SpanKind.PRODUCER,
          attributes: {
            [ATTR.messagingSystem]: "nats",
            [ATTR.messagingOperationName]: "send",
            [ATTR.messagingOperationType]: "send",
            [ATTR.messagingDestinationName]: subject,
            [ATTR.messagingMessageId]: requestId,
          },
        },
        trace.setSpan(ROOT_CONTEXT, parent),
      );
      // The worker continues from the producer span (replacing a forwarded client traceparent).
      injectIntoHeaders(tracing.propagator, span, headers);
      return (err?: unknown) => {
        if (err !== undefined) {
          span.setAttribute(ATTR.errorType, errorName(err));
          span.setStatus({ code: SpanStatusCode.ERROR });
        }
        span.end();
      };
    }

    answered(d: {
      response: Promise<OutboundMessage>;
      published?: Promise<void> | undefined;
    }): void {
      // A refusal of the publish is also thrown to the transport, which reports it again.
      d.published?.catch((err: unknown) => {
        if (typeof err === "object" && err !== null) counted.add(err);
      });
      d.response.then(
        (msg) => {
          const { outcome, code, message } = classifyAnswer(this.req.method, msg.json);
          this.#finish(outcome, code, message, true);
        },
        (err: unknown) => {
          if (isFault(err, "cancelled")) this.#finish("cancelled", undefined, undefined, false);
          else {
            const wire = wireError(err);
            this.#finish(
              REFUSAL_CODES.has(wire.code) ? "rejected" : "error",
              wire.code,
              wire.message,
              false,
            );
          }
        },
      );
    }

    refused(err: unknown): void {
      if (typeof err === "object" && err !== null) counted.add(err);
      const wire = wireError(err);
      // A target no live worker serves is refused before admission sees it.
      if (isFault(err, "no_worker") && this.#routed === undefined) opts.rejected("no_worker");
      this.#finish(
        REFUSAL_CODES.has(wire.code) ? "rejected" : "error",
        wire.code,
        wire.message,
        false,
      );
    }

    #finish(
      outcome: RequestOutcome,
      code: number | undefined,
      message: string | undefined,
      delivered: boolean,
    ): void {
      if (this.#done) return;
      this.#done = true;
      const seconds = (performance.now() - this.#started) / 1000;
      record(this.req.method, this.#target, outcome, code, seconds);
      const span = this.#span;
      if (span && tracing && span.isRecording()) {
        if (delivered && this.#routed) {
          // The answer came back through MCPQ_OUT; the edge writes it to the client next.
          tracing.tracer
            .startSpan(
              `process mcpq.out`,
              {
                kind: SpanKind.CONSUMER,
                attributes: {
                  [ATTR.messagingSystem]: "nats",
                  [ATTR.messagingOperationName]: "process",
                  [ATTR.messagingOperationType]: "process",
                  [ATTR.messagingDestinationName]: `mcpq.out.${this.session.id ?? ""}`,
                  [ATTR.mcpMethodName]: this.req.method,
                },
              },
              trace.setSpan(ROOT_CONTEXT, span),
            )
            .end();
        }
        if (outcome === "tool_error") {
          span.setAttribute(ATTR.errorType, TOOL_ERROR);
          span.setStatus({ code: SpanStatusCode.ERROR, message: "tool_error" });
        } else if (code !== undefined) {
          span.setAttribute(ATTR.errorType, String(code));
          span.setAttribute(ATTR.rpcResponseStatusCode, String(code));
          span.setStatus({ code: SpanStatusCode.ERROR, ...(message ? { message } : {}) });
        }
        span.end();
      }
      access({
        method: methodLabel(this.req.method),
        ...(this.#target.tool !== undefined
          ? { tool: this.#target.tool.slice(0, MAX_LOGGED_NAME) }
          : {}),
        ...(this.#target.prompt !== undefined
          ? { prompt: this.#target.prompt.slice(0, MAX_LOGGED_NAME) }
          : {}),
        outcome,
        ...(code !== undefined ? { code } : {}),
        durationMs: Math.round(seconds * 1e4) / 10,
        principal: this.session.principal,
        ...(this.session.id !== undefined ? { session: this.session.id } : {}),
        ...traceIdField(span, this.req),
      });
    }
  }

  return {
    tracing,
    observer: { begin: (session, req) => new Observation(session, req) },
    transportError(method, err, session) {
      if (typeof err === "object" && err !== null) {
        if (counted.has(err)) return;
        counted.add(err);
      }
      const wire = wireError(err);
      const outcome: RequestOutcome = REFUSAL_CODES.has(wire.code) ? "rejected" : "error";
      record(method ?? "", {}, outcome, wire.code, 0);
      access({
        method: methodLabel(method ?? ""),
        outcome,
        code: wire.code,
        ...(session ? { principal: session.principal, session: session.id } : {}),
      });
    },
    httpRefusal(status, info) {
      if (refusalLine && (sample >= 1 || Math.random() < sample)) {
        refusalLine(
          { status, httpMethod: info.method, path: info.path, outcome: "rejected" },
          "request",
        );
      }
    },
  };
}

const noop = () => undefined;

function errorName(err: unknown): string {
  if (err instanceof McpError) return String(err.code);
  if (err instanceof Fault) return err.kind;
  return err instanceof Error ? err.name : "error";
}

/** The trace id for the access log: the edge's span, else the client's `_meta.traceparent`. */
function traceIdField(span: Span | undefined, req: JsonRpcRequest): { traceId?: string } {
  if (span) return { traceId: span.spanContext().traceId };
  const tp = (req.params?.["_meta"] as Record<string, unknown> | undefined)?.["traceparent"];
  return typeof tp === "string" && /^[0-9a-f]{2}-[0-9a-f]{32}-/.test(tp)
    ? { traceId: tp.slice(3, 35) }
    : {};
}
