import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import {
  DEFAULT_HTTP_PROTOCOL_VERSION,
  ErrorCode,
  McpError,
  allowsBatching,
  classifyMessage,
  isSupportedProtocolVersion,
  parseJson,
  salvageId,
  toWireError,
  type ClassifiedMessage,
  type JsonRpcRequest,
  type ProtocolVersion,
} from "@mcpq/protocol";
import { STANDALONE_STREAM, STREAMS, H, idGenerator, subjects } from "@mcpq/bus";
import type { Caller } from "../core/auth.js";
import { overMessageLimit } from "../core/broker-limits.js";
import type { TargetView } from "../core/policy.js";
import { PRIMING_TOKEN, parseEventId, type OutboundMessage } from "../core/outbound.js";
import { RequestCancelled, type Dispatched } from "../core/session-core.js";
import type { SessionRecord } from "../core/session-store.js";
import type { EdgeRuntime } from "../runtime.js";
import { guardHttp, refusal, statusFor, type HttpRefusal } from "./http-guard.js";
import { SseStream, requestStreamSink } from "./sse-stream.js";

const SESSION_HEADER = "mcp-session-id";
const VERSION_HEADER = "mcp-protocol-version";

/** Options of the Streamable HTTP transport. */
export interface StreamableHttpOptions {
  runtime: EdgeRuntime;
  path?: string;
  /** Bytes an SSE reader may leave unread before it is cut off. */
  maxStreamBufferBytes?: number;
  /** A virtual server's subset of the catalog (`/mcp/<name>`, docs/security.md). */
  view?: TargetView;
}

/**
 * MCP Streamable HTTP (2025-11-25, negotiating down to 2024-11-05) on one endpoint:
 * POST (one message or, for 2025-03-26 and older, a batch) -> SSE or JSON; GET -> standalone or
 * resumed SSE stream; DELETE -> end session. Only framing lives here; the session core does the rest.
 */
export async function streamableHttp(app: FastifyInstance, opts: StreamableHttpOptions): Promise<void> {
  const rt = opts.runtime;
  const path = opts.path ?? "/mcp";
  const maxBuffered = opts.maxStreamBufferBytes ?? 8 * 1024 * 1024;
  const sseOptions = () => ({
    maxBufferedBytes: maxBuffered,
    keepaliveMs: rt.config.sseKeepaliveMs,
    onSlowConsumer: () => rt.metrics.slowConsumers.inc({ transport: "http" }),
    buffers: rt.buffers,
    retryMs: rt.config.sseRetryMs,
  });

  const refuse = (reply: FastifyReply, r: HttpRefusal) => reply.code(r.status).headers(r.headers).send(r.body);

  const sendError = (reply: FastifyReply, id: JsonRpcRequest["id"] | null, err: unknown) => {
    const wire = toWireError(err);
    if (!(err instanceof McpError)) rt.log.error({ err }, "unexpected error before dispatch");
    const { status, headers } = err instanceof McpError ? statusFor(err) : { status: 500, headers: {} };
    rt.metrics.core.error(wire.code);
    return reply.code(status).headers(headers).type("application/json").send({ jsonrpc: "2.0", id, error: wire });
  };

  /** Resolves the session of a non-initialize request, or the refusal the spec prescribes. */
  const sessionOf = async (req: FastifyRequest, principal: string): Promise<{ session: SessionRecord; version: ProtocolVersion } | HttpRefusal> => {
    const id = req.headers[SESSION_HEADER];
    if (typeof id !== "string" || id === "") {
      return refusal(400, ErrorCode.InvalidRequest, "Bad Request: Mcp-Session-Id header is required");
    }
    const header = req.headers[VERSION_HEADER];
    const version = header === undefined ? DEFAULT_HTTP_PROTOCOL_VERSION : header;
    if (typeof version !== "string" || !isSupportedProtocolVersion(version)) {
      return refusal(400, ErrorCode.InvalidRequest, `Bad Request: unsupported MCP-Protocol-Version ${String(version)}`);
    }
    const session = await rt.core.sessions.get(id, principal);
    if (!session) return refusal(404, -32001, "Session not found");
    return { session, version };
  };

  app.post(path, async (req, reply) => {
    const guard = await guardHttp(req, rt);
    if ("status" in guard) return refuse(reply, guard);
    const accept = String(req.headers.accept ?? "").toLowerCase(); // media types are case-insensitive
    const sseOk = accept.includes("text/event-stream") || accept.includes("*/*");
    const jsonOk = accept.includes("application/json") || accept.includes("*/*");
    if (!sseOk && !jsonOk) {
      return refuse(reply, refusal(406, ErrorCode.InvalidRequest, "Not Acceptable: Accept must include application/json or text/event-stream"));
    }
    let value: unknown;
    try {
      value = parseJson(req.body as string);
    } catch (err) {
      return sendError(reply, null, err);
    }
    if (!Array.isArray(value) && overMessageLimit(req.body as string, rt.config.maxMessageBytes)) {
      return refuse(reply, refusal(413, ErrorCode.InvalidRequest, "Payload Too Large", {}, { maxBytes: rt.config.maxMessageBytes }));
    }

    if (Array.isArray(value)) return handleBatch(req, reply, guard.caller, value, sseOk);

    let msg: ClassifiedMessage;
    try {
      msg = classifyMessage(value);
    } catch (err) {
      return sendError(reply, salvageId(value), err);
    }

    if (msg.kind === "request" && msg.message.method === "initialize") {
      try {
        const { session, json } = await rt.core.initialize(guard.principal, msg.message, guard.caller);
        return reply.code(200).header(SESSION_HEADER, session.id).type("application/json").send(json);
      } catch (err) {
        return sendError(reply, msg.message.id, err);
      }
    }

    const s = await sessionOf(req, guard.principal);
    if ("status" in s) return refuse(reply, s);
    const { session } = s;

    if (msg.kind === "notification") {
      await rt.core.notification(session, msg.message);
      return reply.code(202).send();
    }
    if (msg.kind === "response") {
      rt.core.clientResponse(session, msg.message);
      return reply.code(202).send();
    }

    const request = msg.message;
    const streamId = newStreamId();
    if (!sseOk) {
      // JSON-only client: no related messages can be delivered; the response is the body.
      try {
        const d = await rt.core.dispatch(session, request, { id: streamId, raw: req.body as string, caller: guard.caller, view: opts.view });
        await d.published; // a broker refusal is a 503/429, not a 200 with an error inside
        const out = await d.response;
        return reply.code(200).type("application/json").send(out.json);
      } catch (err) {
        if (err instanceof RequestCancelled) return reply.code(204).send();
        return sendError(reply, request.id, err);
      }
    }

    const sse = new SseStream(reply.raw, sseOptions());
    // The stream's reader until the stream ends, not only while the request waits: its answer
    // may come through the stream after the request settled (SessionCore.finalMessage).
    const release = rt.router.attach(session.id, streamId, requestStreamSink(sse));
    let dispatched: Dispatched;
    try {
      dispatched = await rt.core.dispatch(session, request, { id: streamId, raw: req.body as string, caller: guard.caller, view: opts.view });
      await dispatched.published; // a broker refusal is a 503/429 before the stream opens
    } catch (err) {
      release();
      return sendError(reply, request.id, err);
    }
    reply.hijack();
    rt.metrics.openStreams.inc({ transport: "http" });
    const priming = supportsPriming(session.protocolVersion) ? `${streamId}_${PRIMING_TOKEN}` : undefined;
    sse.open({ [SESSION_HEADER]: session.id }, priming, priming ? rt.config.sseRetryMs : undefined);
    try {
      // A worker's answer, written here; or null: the answer went out through the stream (the
      // edge's deadline answer after claiming the request's response slot, or the worker's
      // answer that was retained first), or none (cancelled).
      const out = await rt.core.finalMessage(session, streamId, dispatched);
      if (out) sse.finish(out);
    } catch (err) {
      rt.log.error({ err }, "response failed");
    } finally {
      sse.end();
      release();
      rt.metrics.openStreams.dec({ transport: "http" });
    }
  });

  const handleBatch = async (req: FastifyRequest, reply: FastifyReply, caller: Caller, items: unknown[], sseOk: boolean) => {
    if (items.length === 0) return sendError(reply, null, new McpError(ErrorCode.InvalidRequest, "Invalid Request: empty batch"));
    const s = await sessionOf(req, caller.principal);
    if ("status" in s) return refuse(reply, s);
    const { session } = s;
    if (!allowsBatching(session.protocolVersion)) {
      return sendError(reply, null, new McpError(ErrorCode.InvalidRequest, `Invalid Request: JSON-RPC batches are not supported in protocol version ${session.protocolVersion}`));
    }
    const streamId = newStreamId();
    const sse = sseOk ? new SseStream(reply.raw, sseOptions()) : undefined;
    // As for one request: the stream's reader until it ends (its answers may come through it).
    const release = sse ? rt.router.attach(session.id, streamId, sse) : () => undefined;
    const responses: Promise<OutboundMessage | null>[] = [];
    for (const item of items) {
      let m: ClassifiedMessage;
      try {
        if (overMessageLimit(JSON.stringify(item), rt.config.maxMessageBytes)) {
          throw new McpError(ErrorCode.InvalidRequest, `Invalid Request: message larger than ${rt.config.maxMessageBytes} bytes`);
        }
        m = classifyMessage(item);
      } catch (err) {
        responses.push(Promise.resolve(errorOut(salvageId(item), err)));
        continue;
      }
      if (m.kind === "notification") await rt.core.notification(session, m.message);
      else if (m.kind === "response") rt.core.clientResponse(session, m.message);
      else if (m.message.method === "initialize") {
        responses.push(Promise.resolve(errorOut(m.message.id, new McpError(ErrorCode.InvalidRequest, "initialize must not be part of a batch"))));
      } else {
        const id = m.message.id;
        responses.push(
          rt.core
            .dispatch(session, m.message, { id: streamId, caller, view: opts.view })
            // A JSON body carries every answer; on a stream, see the single request above.
            .then((d) => (sse ? rt.core.finalMessage(session, streamId, d) : d.response))
            .catch((err: unknown) => (err instanceof RequestCancelled ? null : errorOut(id, err))),
        );
      }
    }
    if (responses.length === 0) {
      release();
      return reply.code(202).send();
    }
    if (!sse) {
      const outs = (await Promise.all(responses)).filter((o): o is OutboundMessage => o !== null);
      return reply.code(200).type("application/json").send(`[${outs.map((o) => o.json).join(",")}]`);
    }
    reply.hijack();
    sse.open({ [SESSION_HEADER]: session.id });
    await Promise.all(responses.map((p) => p.then((o) => o && sse.send(o))));
    sse.end();
    release();
  };

  app.get(path, async (req, reply) => {
    const guard = await guardHttp(req, rt);
    if ("status" in guard) return refuse(reply, guard);
    if (!String(req.headers.accept ?? "").toLowerCase().includes("text/event-stream")) {
      return refuse(reply, refusal(406, ErrorCode.InvalidRequest, "Not Acceptable: GET requires Accept: text/event-stream"));
    }
    const s = await sessionOf(req, guard.principal);
    if ("status" in s) return refuse(reply, s);
    const { session } = s;
    const lastEventId = req.headers["last-event-id"];
    const resumeFrom = typeof lastEventId === "string" ? parseEventId(lastEventId) : null;
    if (typeof lastEventId === "string" && !resumeFrom) {
      return refuse(reply, refusal(400, ErrorCode.InvalidRequest, "Bad Request: malformed Last-Event-ID"));
    }
    const sse = new SseStream(reply.raw, sseOptions());
    reply.hijack();
    rt.metrics.openStreams.inc({ transport: "http" });
    const stream = resumeFrom?.stream ?? STANDALONE_STREAM;
    let priming: string | undefined;
    if (!resumeFrom && supportsPriming(session.protocolVersion)) {
      // Prime with the newest retained event so a later resume replays only what follows it.
      const last = await rt.bus.jsm.streams
        .getMessage(STREAMS.outbound, { last_by_subj: subjects.outbound(session.id, STANDALONE_STREAM) })
        .catch(() => null);
      priming = last?.header.get(H.event) || `${STANDALONE_STREAM}_${PRIMING_TOKEN}`;
    }
    sse.open({ [SESSION_HEADER]: session.id }, priming, priming ? rt.config.sseRetryMs : undefined);
    // A resumed request stream ends with its response; the standalone stream stays open.
    const sink =
      stream === STANDALONE_STREAM
        ? sse
        : {
            get closed() {
              return sse.closed;
            },
            send(m: OutboundMessage) {
              sse.send(m);
              if (m.kind === "response") sse.end();
            },
            // The replay is paced by the reader (see SendBuffer).
            ready: () => sse.ready(),
            // A resumed stream is resumable again: the worker may close it once more (polling).
            reconnect(retryMs: number | undefined) {
              sse.closeWithRetry(retryMs ?? rt.config.sseRetryMs);
            },
          };
    const release = resumeFrom
      ? await rt.router.resume(session.id, stream, resumeFrom.token, sink)
      : rt.router.attach(session.id, stream, sink);
    const stopKeepAlive = rt.core.sessions.keepAlive(session);
    await sse.whenClosed();
    stopKeepAlive();
    release();
    rt.metrics.openStreams.dec({ transport: "http" });
  });

  app.delete(path, async (req, reply) => {
    const guard = await guardHttp(req, rt);
    if ("status" in guard) return refuse(reply, guard);
    const s = await sessionOf(req, guard.principal);
    if ("status" in s) return refuse(reply, s);
    await rt.core.end(s.session);
    return reply.code(200).send();
  });
}

/** Stream ids are hex (no "_", the event-id separator), unique per edge process and prefix. */
const nextStreamId = idGenerator("hex");

function newStreamId(): string {
  return nextStreamId();
}

function supportsPriming(v: ProtocolVersion): boolean {
  return v >= "2025-11-25";
}

function errorOut(id: JsonRpcRequest["id"] | null, err: unknown): OutboundMessage {
  return { eventId: undefined, kind: "response", requestId: undefined, json: JSON.stringify({ jsonrpc: "2.0", id, error: toWireError(err) }) };
}
