import { STATUS_CODES } from "node:http";
import type { Duplex } from "node:stream";
import { corkPerTurn } from "@mcpq/bus";
import { ErrorCode } from "@mcpq/protocol";
import type { Caller } from "../core/auth.js";
import type { ConnectionKind } from "../core/connection-limiter.js";
import {
  SocketSession,
  type SocketCloseReason,
  type SocketFramer,
} from "../core/socket-session.js";
import type { EdgeRuntime } from "../runtime.js";
import type { HttpRefusal } from "./http-guard.js";

/** A socket transport's session bound to the edge runtime's core, router, limits and metrics. */
export function openSocketSession(
  rt: EdgeRuntime,
  framer: SocketFramer,
  transport: ConnectionKind,
  caller: Caller | null,
  resumable = true,
  /** The client's address (the anonymous quota key of an in-band authentication). */
  address?: string,
): SocketSession {
  return new SocketSession(rt, framer, {
    transport,
    caller,
    resumable,
    maxSendBufferBytes: rt.config.maxSendBufferBytes,
    authenticate: (authorization) => rt.auth.authenticate(authorization, address),
    // gRPC has HTTP/2 keepalive for dead peers, and a quiet call may be a client waiting for
    // notifications: only the handshake clock. WebSocket pongs count as activity (websocket.ts).
    timeouts:
      transport === "sse"
        ? undefined
        : {
            handshakeMs: rt.config.socketHandshakeTimeoutMs,
            idleMs: transport === "grpc" ? 0 : rt.config.socketIdleTimeoutMs,
          },
    log: rt.log.child({ transport }),
    onSlowConsumer: () => rt.metrics.slowConsumers.inc({ transport }),
    account: rt.buffers.open(),
  });
}

/**
 * Wraps a socket writer so that everything written during one tick (one socket read and the
 * promise chains it starts) leaves in a single write: the socket is corked at the first write
 * and uncorked when the tick's callbacks and microtasks are done. Under load a connection's
 * answers come in bursts, and a syscall per answer was half of an edge's CPU in a storm.
 */
export function tickBatched(socket: { cork(): void; uncork(): void }, write: (text: string) => void): (text: string) => void {
  const beforeWrite = corkPerTurn(socket, process.nextTick);
  return (text) => {
    beforeWrite();
    write(text);
  };
}

/** A transport listening on its own port (TCP, gRPC): the bound port and a stop. */
export interface ListeningTransport {
  port: number;
  close(): Promise<void>;
}

/** How long a connection the edge is closing may take to say goodbye before it is dropped. */
export const CLOSE_GRACE_MS = 10_000;

/**
 * The JSON-RPC error line a line-oriented transport (TCP) writes before closing: id null,
 * a retryable code where a later retry can help.
 */
export function closeLine(
  reason: SocketCloseReason | "too many connections",
  retryAfterMs: number,
): string {
  const error =
    reason === "too many connections"
      ? {
          code: ErrorCode.Overloaded,
          message: "Overloaded: too many connections",
          data: { retryAfterMs },
        }
      : reason === "slow consumer"
        ? {
            code: ErrorCode.Overloaded,
            message:
              "Slow consumer: the connection stopped reading; resume the session on a new connection",
            data: { reason: "slow_consumer" },
          }
        : reason === "shutdown"
          ? {
              code: ErrorCode.Unavailable,
              message: "Edge shutting down: resume the session on another edge",
              data: { retryAfterMs },
            }
          : reason === "timeout"
            ? {
                code: ErrorCode.InvalidRequest,
                message: "Timeout: no session was opened in time, or the connection was idle; resume the session on a new connection",
                data: { reason: "timeout" },
              }
            : { code: ErrorCode.Forbidden, message: "Unauthorized" };
  return JSON.stringify({ jsonrpc: "2.0", id: null, error });
}

/** Answers an HTTP upgrade with a plain HTTP refusal (JSON-RPC body) and closes the socket. */
export function refuseUpgrade(socket: Duplex, r: HttpRefusal): void {
  const body = JSON.stringify(r.body);
  const headers = Object.entries({
    ...r.headers,
    "content-type": "application/json",
    "content-length": String(Buffer.byteLength(body)),
    connection: "close",
  })
    .map(([k, v]) => `${k}: ${v}\r\n`)
    .join("");
  socket.on("error", () => undefined);
  socket.end(`HTTP/1.1 ${r.status} ${STATUS_CODES[r.status] ?? ""}\r\n${headers}\r\n${body}`);
}
