import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import { ErrorCode } from "@mcpq/protocol";
import type { EdgePort } from "../core/edge-port.js";
import type { HttpExchange, HttpStream } from "../core/http-channel.js";
import type { TargetView } from "../core/policy.js";
import type { Caller } from "../core/auth.js";
import type { EdgeConfig } from "../env.js";
import { guardHttp, refusal, type HttpRefusal } from "./http-guard.js";
import { SseStream } from "./sse-stream.js";

/** Options of the Streamable HTTP transport. */
export interface StreamableHttpOptions {
  edge: EdgePort;
  config: Pick<
    EdgeConfig,
    | "allowedHosts"
    | "allowedOrigins"
    | "sseKeepaliveMs"
    | "sseRetryMs"
    | "sseHoldMs"
    | "maxSendBufferBytes"
    | "maxMessageBytes"
  >;
  path?: string;
  /** A virtual server's subset of the catalog (`/mcp/<name>`, docs/security.md). */
  view?: TargetView;
}

/**
 * MCP Streamable HTTP (2025-11-25, negotiating down to 2024-11-05) on one endpoint:
 * POST (one message or, for 2025-03-26 and older, a batch) -> SSE or JSON; GET -> standalone or
 * resumed SSE stream; DELETE -> end session. Only framing lives here (Host/Origin/bearer
 * checks, Accept, the SSE stream over the raw response); each exchange's channel does the rest.
 */
export async function streamableHttp(
  app: FastifyInstance,
  opts: StreamableHttpOptions,
): Promise<void> {
  const { edge, config } = opts;
  const path = opts.path ?? "/mcp";
  const refuse = (reply: FastifyReply, r: HttpRefusal) =>
    reply.code(r.status).headers(r.headers).send(r.body);

  /** The exchange port of one request: headers in, a plain answer or an SSE stream out. */
  const guard = { config, auth: edge.auth };
  const exchange = (
    req: FastifyRequest,
    reply: FastifyReply,
    caller: Caller,
    accepts: HttpExchange["accepts"],
  ): HttpExchange => {
    let stream: HttpStream | undefined;
    return {
      principal: caller.principal,
      caller,
      maxMessageBytes: config.maxMessageBytes,
      ...(opts.view ? { view: opts.view } : {}),
      accepts,
      header: (name) => req.headers[name],
      answer(status, headers, json) {
        void reply.code(status).headers(headers);
        if (json === undefined) void reply.send();
        else void reply.type("application/json").send(json);
      },
      stream: () => (stream ??= sseStream(reply)),
      onAbort(cb) {
        const onClose = () => {
          if (!reply.raw.writableFinished) cb();
        };
        reply.raw.once("close", onClose);
        return () => reply.raw.off("close", onClose);
      },
    };
  };

  const sseStream = (reply: FastifyReply): HttpStream => {
    const sse = new SseStream(reply.raw, {
      maxBufferedBytes: config.maxSendBufferBytes,
      keepaliveMs: config.sseKeepaliveMs,
      onSlowConsumer: () => edge.metrics.slowConsumers.inc({ transport: "http" }),
      buffers: edge.buffers,
      retryMs: config.sseRetryMs,
    });
    return {
      get closed() {
        return sse.closed;
      },
      send: (m) => sse.send(m),
      ready: () => sse.ready(),
      reconnect: (retryMs) => sse.reconnect(retryMs),
      finish: (m) => sse.finish(m),
      end: () => sse.end(),
      whenClosed: () => sse.whenClosed(),
      closeWithRetry: (retryMs) => sse.closeWithRetry(retryMs ?? config.sseRetryMs),
      open(headers, primingEventId, answerDue) {
        reply.hijack();
        edge.metrics.openStreams.inc({ transport: "http" });
        void sse.whenClosed().then(() => edge.metrics.openStreams.dec({ transport: "http" }));
        sse.open(
          headers,
          primingEventId,
          primingEventId ? config.sseRetryMs : undefined,
          answerDue ? config.sseHoldMs : 0,
        );
      },
    };
  };

  app.post(path, async (req, reply) => {
    const auth = await guardHttp(req, guard);
    if ("status" in auth) return refuse(reply, auth);
    const accept = String(req.headers.accept ?? "").toLowerCase(); // media types are case-insensitive
    const sse = accept.includes("text/event-stream") || accept.includes("*/*");
    const json = accept.includes("application/json") || accept.includes("*/*");
    if (!sse && !json) {
      return refuse(
        reply,
        refusal(
          406,
          ErrorCode.InvalidRequest,
          "Not Acceptable: Accept must include application/json or text/event-stream",
        ),
      );
    }
    await edge.post(exchange(req, reply, auth.caller, { sse, json }), req.body as string);
    return reply;
  });

  app.get(path, async (req, reply) => {
    const auth = await guardHttp(req, guard);
    if ("status" in auth) return refuse(reply, auth);
    if (
      !String(req.headers.accept ?? "")
        .toLowerCase()
        .includes("text/event-stream")
    ) {
      return refuse(
        reply,
        refusal(
          406,
          ErrorCode.InvalidRequest,
          "Not Acceptable: GET requires Accept: text/event-stream",
        ),
      );
    }
    await edge.get(exchange(req, reply, auth.caller, { sse: true, json: false }));
    return reply;
  });

  app.delete(path, async (req, reply) => {
    const auth = await guardHttp(req, guard);
    if ("status" in auth) return refuse(reply, auth);
    await edge.delete(exchange(req, reply, auth.caller, { sse: false, json: true }));
    return reply;
  });
}
