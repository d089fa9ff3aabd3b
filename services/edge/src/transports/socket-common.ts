import { STATUS_CODES } from "node:http";
import type { Duplex } from "node:stream";
import { ErrorCode } from "@mcpq/protocol";
import type { SocketCloseReason } from "../core/socket-channel.js";
import { corkPerTurn } from "../core/write-batching.js";
import type { HttpRefusal } from "./http-guard.js";

/**
 * Wraps a socket writer so that everything written during one tick (one socket read and the
 * promise chains it starts) leaves in a single write: the socket is corked at the first write
 * and uncorked when the tick's callbacks and microtasks are done. Under load a connection's
 * answers come in bursts, and a syscall per answer was half of an edge's CPU in a storm.
 */
export function tickBatched(
  socket: { cork(): void; uncork(): void },
  write: (text: string) => void,
): (text: string) => void {
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
                message:
                  "Timeout: no session was opened in time, or the connection was idle; resume the session on a new connection",
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
