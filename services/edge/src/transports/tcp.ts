import { createServer, type Server, type Socket } from "node:net";
import { StringDecoder } from "node:string_decoder";
import { ErrorCode } from "@mcpq/protocol";
import { looksLikeHttp } from "./tcp-guard.js";
import type { EdgePort } from "../core/edge-port.js";
import type { SocketChannel } from "../core/socket-channel.js";
import type { EdgeConfig } from "../env.js";
import {
  CLOSE_GRACE_MS,
  closeLine,
  tickBatched,
  type ListeningTransport,
} from "./socket-common.js";

/** The settings the TCP transport reads. */
export type TcpConfig = Pick<EdgeConfig, "host" | "tcpPort" | "maxMessageBytes">;

/**
 * MCP over raw TCP: newline-delimited JSON-RPC (one message per `\n`-terminated UTF-8 line,
 * `\r\n` tolerated). With credentials required (MCPQ_AUTH_TOKENS or OAuth) the first message
 * must be `$/mcpq/resume` with `authorization: "Bearer <token>"`. TCP has no Host or Origin
 * header to check, so a first line that looks like HTTP (a browser page posting to the port) is
 * answered `400` and the socket closed before anything runs. Refusals and edge-side closes are a
 * JSON-RPC error line with id null, then the socket ends. Framing only; the socket session does
 * the rest.
 */
export async function startTcpTransport(
  edge: EdgePort,
  config: TcpConfig,
): Promise<ListeningTransport> {
  const live = new Map<Socket, SocketChannel>();
  const maxLine = config.maxMessageBytes;
  const retryAfterMs = edge.connections.retryAfterMs;

  const server: Server = createServer({ noDelay: true }, (socket) => {
    socket.on("error", (err) => edge.log.debug({ err }, "tcp socket error"));
    const release = edge.connections.tryAcquire("tcp", socket.remoteAddress);
    if (!release) {
      socket.end(`${closeLine("too many connections", retryAfterMs)}\n`);
      return;
    }
    let grace: NodeJS.Timeout | undefined;
    const endWith = (line: string) => {
      socket.end(`${line}\n`);
      grace = setTimeout(() => socket.destroy(), CLOSE_GRACE_MS);
      grace.unref();
    };
    const session = edge.socket(
      {
        write: tickBatched(socket, (json) => void socket.write(`${json}\n`)),
        get bufferedBytes() {
          return socket.writableLength;
        },
        close: (reason) => endWith(closeLine(reason, retryAfterMs)),
        pauseReading: () => socket.pause(),
        resumeReading: () => socket.resume(),
      },
      // Anonymous mode: the caller is known at once (keyed by the client's address).
      {
        transport: "tcp",
        caller: edge.auth.anonymous(socket.remoteAddress) ?? null,
        address: socket.remoteAddress,
      },
    );
    live.set(socket, session);
    edge.metrics.openStreams.inc({ transport: "tcp" });

    const decoder = new StringDecoder("utf8");
    let partial = "";
    let first = true;
    const tooLarge = () => {
      partial = "";
      socket.removeAllListeners("data");
      session.transportClosed();
      endWith(
        JSON.stringify({
          jsonrpc: "2.0",
          id: null,
          error: {
            code: ErrorCode.InvalidRequest,
            message: `Invalid Request: message larger than ${maxLine} bytes`,
          },
        }),
      );
    };
    const refuseHttp = () => {
      partial = "";
      socket.removeAllListeners("data");
      session.transportClosed();
      const body = JSON.stringify({
        jsonrpc: "2.0",
        id: null,
        error: {
          code: ErrorCode.InvalidRequest,
          message: "Bad Request: this port speaks newline-delimited JSON-RPC, not HTTP",
        },
      });
      socket.end(
        `HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`,
      );
      grace = setTimeout(() => socket.destroy(), CLOSE_GRACE_MS);
      grace.unref();
    };
    socket.on("data", (chunk: Buffer) => {
      let text = partial + decoder.write(chunk);
      let nl: number;
      while ((nl = text.indexOf("\n")) >= 0) {
        const line = text.slice(0, nl).replace(/\r$/, "");
        text = text.slice(nl + 1);
        if (line.length > maxLine) return tooLarge();
        if (line.trim() === "") continue;
        if (first && looksLikeHttp(line)) return refuseHttp();
        first = false;
        session.receive(line);
      }
      partial = text;
      if (first && looksLikeHttp(partial)) return refuseHttp();
      if (partial.length > maxLine) tooLarge();
    });
    socket.on("drain", () => session.drained());
    socket.once("close", () => {
      clearTimeout(grace);
      session.transportClosed();
      live.delete(socket);
      edge.metrics.openStreams.dec({ transport: "tcp" });
      release();
    });
  });

  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen({ host: config.host, port: config.tcpPort, backlog: 4096 }, () => {
      server.off("error", reject);
      resolve();
    });
  });
  const addr = server.address();
  return {
    port: typeof addr === "object" && addr ? addr.port : config.tcpPort,
    async close() {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      for (const [socket, session] of live) {
        session.close("shutdown");
        socket.destroySoon();
      }
      await closed;
    },
  };
}
