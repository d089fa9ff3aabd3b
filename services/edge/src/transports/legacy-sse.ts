import { randomBytes } from "node:crypto";
import type { FastifyInstance, FastifyReply } from "fastify";
import { ErrorCode } from "@mcpq/protocol";
import { overMessageLimit } from "../core/broker-limits.js";
import type { EdgePort } from "../core/edge-port.js";
import type { SocketChannel } from "../core/socket-channel.js";
import type { EdgeConfig } from "../env.js";
import { guardHttp, refusal, type HttpRefusal } from "./http-guard.js";
import { SseStream } from "./sse-stream.js";

export interface LegacySseOptions {
  edge: EdgePort;
  config: Pick<
    EdgeConfig,
    "allowedHosts" | "allowedOrigins" | "sseKeepaliveMs" | "maxMessageBytes"
  >;
  ssePath?: string;
  messagesPath?: string;
}

/**
 * The HTTP+SSE transport of protocol revision 2024-11-05 (what older clients and the official
 * SDK's `SSEClientTransport` speak): `GET /sse` opens the server->client stream and sends an
 * `endpoint` event naming `/messages?sessionId=<connection>`; the client POSTs each message
 * there (202) and every answer arrives on the stream. The connection lives on the edge that
 * holds the GET, so POSTs must reach that edge (sticky routing); it is not resumable.
 */
export async function legacySse(app: FastifyInstance, opts: LegacySseOptions): Promise<void> {
  const { edge, config } = opts;
  const ssePath = opts.ssePath ?? "/sse";
  const messagesPath = opts.messagesPath ?? "/messages";
  const conns = new Map<string, { session: SocketChannel; principal: string }>();
  const refuse = (reply: FastifyReply, r: HttpRefusal) =>
    reply.code(r.status).headers(r.headers).send(r.body);

  app.get(ssePath, async (req, reply) => {
    const guard = await guardHttp(req, { config, auth: edge.auth });
    if ("status" in guard) return refuse(reply, guard);
    const id = randomBytes(16).toString("base64url");
    // The socket session enforces the send-buffer bound (one place for every transport).
    const sse = new SseStream(reply.raw, {
      maxBufferedBytes: Number.POSITIVE_INFINITY,
      keepaliveMs: config.sseKeepaliveMs,
    });
    const session = edge.socket(
      {
        write: (json, eventId) =>
          sse.send({ eventId, kind: "notification", requestId: undefined, json }),
        get bufferedBytes() {
          return reply.raw.writableLength;
        },
        close: (reason) => (reason === "slow consumer" ? sse.cutOff() : sse.end()),
      },
      {
        transport: "sse",
        caller: guard.caller,
        address: req.socket.remoteAddress,
        resumable: false,
      },
    );
    reply.hijack();
    edge.metrics.openStreams.inc({ transport: "sse" });
    sse.open({});
    reply.raw.write(`event: endpoint\ndata: ${messagesPath}?sessionId=${id}\n\n`);
    reply.raw.on("drain", () => session.drained());
    conns.set(id, { session, principal: guard.principal });
    sse.onClosed(() => {
      conns.delete(id);
      session.transportClosed();
      edge.metrics.openStreams.dec({ transport: "sse" });
    });
  });

  app.post(messagesPath, async (req, reply) => {
    const guard = await guardHttp(req, { config, auth: edge.auth });
    if ("status" in guard) return refuse(reply, guard);
    const id = (req.query as { sessionId?: unknown }).sessionId;
    const conn = typeof id === "string" ? conns.get(id) : undefined;
    // Another principal's connection is indistinguishable from a missing one.
    if (!conn || conn.principal !== guard.principal || conn.session.closed) {
      return refuse(reply, refusal(404, ErrorCode.InvalidRequest, "Session not found"));
    }
    if (typeof req.body !== "string" || req.body === "") {
      return refuse(reply, refusal(400, ErrorCode.ParseError, "Parse error: empty body"));
    }
    if (overMessageLimit(req.body, config.maxMessageBytes)) {
      return refuse(
        reply,
        refusal(
          413,
          ErrorCode.InvalidRequest,
          "Payload Too Large",
          {},
          { maxBytes: config.maxMessageBytes },
        ),
      );
    }
    conn.session.receive(req.body);
    return reply.code(202).type("text/plain").send("Accepted");
  });

  app.addHook("preClose", async () => {
    for (const { session } of conns.values()) session.close("shutdown");
  });
}
