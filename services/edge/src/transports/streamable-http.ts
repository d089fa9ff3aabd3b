import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import { ErrorCode } from "@mcpq/protocol";
import type { EdgePort } from "../core/edge-port.js";
import type { HttpExchange, HttpStream } from "../core/http-channel.js";
import type { TargetView } from "../core/policy.js";
import type { Caller } from "../core/auth.js";
import type { EdgeConfig } from "../env.js";
import { guardHttp, refusal, type HttpRefusal } from "./http-guard.js";
import { SseStream, type SseOptions } from "./sse-stream.js";

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

  const shared: ExchangeShared = {
    maxMessageBytes: config.maxMessageBytes,
    view: opts.view,
    edge,
    sse: {
      maxBufferedBytes: config.maxSendBufferBytes,
      keepaliveMs: config.sseKeepaliveMs,
      onSlowConsumer: () => edge.metrics.slowConsumers.inc({ transport: "http" }),
      buffers: edge.buffers,
      retryMs: config.sseRetryMs,
      holdMs: config.sseHoldMs,
    },
    streamClosed: () => edge.metrics.openStreams.dec({ transport: "http" }),
  };
  const guard = { config, auth: edge.auth };
  const exchange = (
    req: FastifyRequest,
    reply: FastifyReply,
    caller: Caller,
    accepts: HttpExchange["accepts"],
  ): HttpExchange => new FastifyExchange(req, reply, caller, accepts, shared);

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

/** What every exchange of one Streamable HTTP endpoint shares (built once per endpoint). */
interface ExchangeShared {
  maxMessageBytes: number;
  view: TargetView | undefined;
  edge: EdgePort;
  sse: SseOptions;
  /** Counts an opened stream's end (one function for every stream of the endpoint). */
  streamClosed: () => void;
}

/**
 * The exchange port of one request: headers in, a plain answer or an SSE stream out. A class,
 * not an object of closures: one is built per request, and its stream lives as long as a held
 * GET (an edge holds 100K of those).
 */
class FastifyExchange implements HttpExchange {
  #stream: ReplySseStream | undefined;
  readonly maxMessageBytes: number;
  readonly view: TargetView | undefined;

  constructor(
    private readonly req: FastifyRequest,
    private readonly reply: FastifyReply,
    readonly caller: Caller,
    readonly accepts: HttpExchange["accepts"],
    private readonly shared: ExchangeShared,
  ) {
    this.maxMessageBytes = shared.maxMessageBytes;
    this.view = shared.view;
  }

  get principal(): string {
    return this.caller.principal;
  }

  header(name: string): string | string[] | undefined {
    return this.req.headers[name];
  }

  answer(status: number, headers: Record<string, string>, json?: string): void {
    void this.reply.code(status).headers(headers);
    if (json === undefined) void this.reply.send();
    else void this.reply.type("application/json").send(json);
  }

  stream(): HttpStream {
    return (this.#stream ??= new ReplySseStream(this.reply, this.shared));
  }

  onAbort(cb: () => void): () => void {
    const res = this.reply.raw;
    const onClose = () => {
      if (!res.writableFinished) cb();
    };
    res.once("close", onClose);
    return () => res.off("close", onClose);
  }
}

/** An exchange's SSE stream: opening it takes the response over from fastify and counts the stream. */
class ReplySseStream extends SseStream implements HttpStream {
  constructor(
    private readonly reply: FastifyReply,
    private readonly shared: ExchangeShared,
  ) {
    super(reply.raw, shared.sse);
  }

  protected override opened(): void {
    this.reply.hijack();
    this.shared.edge.metrics.openStreams.inc({ transport: "http" });
    this.onClosed(this.shared.streamClosed);
  }
}
