import type { IncomingMessage } from "node:http";
import type { Duplex } from "node:stream";
import type { FastifyInstance } from "fastify";
import { WebSocketServer, type WebSocket } from "ws";
import { ErrorCode } from "@mcpq/protocol";
import type { Caller } from "../core/auth.js";
import type { EdgePort } from "../core/edge-port.js";
import type { SocketChannel, SocketCloseReason, SocketPort } from "../core/socket-channel.js";
import type { EdgeConfig } from "../env.js";
import { guardHttp, refusal } from "./http-guard.js";
import { CLOSE_GRACE_MS, refuseUpgrade, tickBatched } from "./socket-common.js";

/** The subprotocol a client must offer (`Sec-WebSocket-Protocol: mcp`). */
const WS_SUBPROTOCOL = "mcp";

/** Close codes the edge uses (RFC 6455 §7.4.1). */
const WS_CLOSE = {
  /** The edge is shutting down: resume on another edge. */
  goingAway: 1001,
  /** Binary frame received: this transport carries JSON text only. */
  unsupportedData: 1003,
  /** Slow consumer (reason "slow consumer") or failed in-band authentication. */
  policyViolation: 1008,
  /** The edge has MCPQ_MAX_CONNECTIONS open: try again later (reason "too many connections"). */
  tryAgainLater: 1013,
} as const;

export interface WebSocketOptions {
  edge: EdgePort;
  config: Pick<
    EdgeConfig,
    "allowedHosts" | "allowedOrigins" | "maxMessageBytes" | "socketIdleTimeoutMs"
  >;
  path?: string;
}

/**
 * MCP over WebSocket on the HTTP server's port (`ws://HOST:PORT/ws`, subprotocol `mcp`): one
 * JSON-RPC message per text frame, `initialize` over the socket opens a session, or
 * `$/mcpq/resume` attaches to one. The upgrade passes the same Host/Origin/bearer checks as
 * every HTTP request (refused with 403/401 before upgrading). Framing only; the socket session
 * does the rest.
 */
export async function websocketTransport(
  app: FastifyInstance,
  opts: WebSocketOptions,
): Promise<void> {
  const { edge, config } = opts;
  const path = opts.path ?? "/ws";
  const wss = new WebSocketServer({
    noServer: true,
    maxPayload: config.maxMessageBytes,
    perMessageDeflate: false,
    handleProtocols: (offered) => (offered.has(WS_SUBPROTOCOL) ? WS_SUBPROTOCOL : false),
  });
  const live = new Set<SocketChannel>();

  const onUpgrade = (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    void upgrade(req, socket, head).catch((err: unknown) => {
      edge.log.error({ err }, "websocket upgrade failed");
      socket.destroy();
    });
  };
  const upgrade = async (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    const url = new URL(req.url ?? "/", "http://edge");
    if (url.pathname !== path)
      return refuseUpgrade(socket, refusal(404, ErrorCode.InvalidRequest, "Not Found"));
    const guard = await guardHttp(req, { config, auth: edge.auth });
    if ("status" in guard) return refuseUpgrade(socket, guard);
    if (socket.destroyed) return;
    const offered = String(req.headers["sec-websocket-protocol"] ?? "")
      .split(",")
      .map((s) => s.trim());
    if (!offered.includes(WS_SUBPROTOCOL)) {
      return refuseUpgrade(
        socket,
        refusal(
          400,
          ErrorCode.InvalidRequest,
          `Bad Request: the WebSocket subprotocol '${WS_SUBPROTOCOL}' is required`,
        ),
      );
    }
    const release = edge.connections.tryAcquire("ws", req.socket.remoteAddress);
    wss.handleUpgrade(req, socket, head, (ws) => {
      if (!release) {
        ws.close(WS_CLOSE.tryAgainLater, "too many connections");
        return;
      }
      serve(ws, req, socket, guard.caller, release);
    });
  };

  const serve = (
    ws: WebSocket,
    req: IncomingMessage,
    socket: Duplex,
    caller: Caller,
    release: () => void,
  ) => {
    const port = new WsPort(ws, socket);
    const session = edge.socket(port, {
      transport: "ws",
      caller,
      address: req.socket.remoteAddress,
    });
    live.add(session);
    edge.metrics.openStreams.inc({ transport: "ws" });
    socket.on("drain", () => session.drained());
    ws.on("message", (data, isBinary) => {
      if (isBinary) {
        ws.close(WS_CLOSE.unsupportedData, "text frames only");
        return;
      }
      session.receive(
        (Array.isArray(data)
          ? Buffer.concat(data)
          : Buffer.isBuffer(data)
            ? data
            : Buffer.from(data)
        ).toString("utf8"),
      );
    });
    ws.on("error", (err) => edge.log.debug({ err }, "websocket error"));
    // A live client answers pings (every client library does, unasked), so a quiet but live
    // connection never idles out; a dead or silent peer does (MCPQ_SOCKET_IDLE_TIMEOUT_MS).
    const idleMs = config.socketIdleTimeoutMs;
    const heartbeat =
      idleMs > 0 ? setInterval(() => ws.ping(), Math.max(50, Math.floor(idleMs / 3))) : undefined;
    heartbeat?.unref();
    ws.on("pong", () => session.noteActivity());
    ws.once("close", () => {
      clearInterval(heartbeat);
      port.closed();
      session.transportClosed();
      live.delete(session);
      edge.metrics.openStreams.dec({ transport: "ws" });
      release();
    });
  };

  app.server.on("upgrade", onUpgrade);
  // Upgraded sockets are no longer the HTTP server's: close them before it waits for them.
  app.addHook("preClose", async () => {
    app.server.off("upgrade", onUpgrade);
    for (const s of live) s.close("shutdown");
    for (const ws of wss.clients) ws.terminate();
    wss.close();
  });
}

/**
 * The socket port of one WebSocket connection (a class, not an object of closures: an edge
 * holds one per connection).
 */
class WsPort implements SocketPort {
  readonly write: (json: string) => void;
  #grace: NodeJS.Timeout | undefined;

  constructor(
    private readonly ws: WebSocket,
    socket: Duplex,
  ) {
    this.write = tickBatched(socket, (json) => ws.send(json));
  }

  get bufferedBytes(): number {
    return this.ws.bufferedAmount;
  }

  close(reason: SocketCloseReason): void {
    this.ws.close(
      reason === "shutdown" || reason === "timeout" ? WS_CLOSE.goingAway : WS_CLOSE.policyViolation,
      reason,
    );
    // A reader that stopped reading never completes the closing handshake.
    this.#grace = setTimeout(() => this.ws.terminate(), CLOSE_GRACE_MS);
    this.#grace.unref();
  }

  pauseReading(): void {
    this.ws.pause();
  }

  resumeReading(): void {
    this.ws.resume();
  }

  /** The connection is gone: no grace period left to wait out. */
  closed(): void {
    clearTimeout(this.#grace);
  }
}
