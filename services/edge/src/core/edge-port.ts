import type { Logger } from "@mcpq/protocol";
import type { EdgeAuth } from "./auth.js";
import type { BufferBudget } from "./buffer-budget.js";
import type { ChannelDeps } from "./channel.js";
import type { ConnectionKind, ConnectionLimiter } from "./connection-limiter.js";
import { HttpPostChannel, httpDelete, httpGet, type HttpExchange } from "./http-channel.js";
import { SocketChannel, type SocketPort } from "./socket-channel.js";
import type { Caller } from "./auth.js";

/** Gauges and counters labelled by transport that transports move themselves. */
interface TransportMetrics {
  openStreams: {
    inc(labels: { transport: string }): void;
    dec(labels: { transport: string }): void;
  };
  slowConsumers: { inc(labels: { transport: string }): void };
}

/** The socket-channel settings an edge applies to every socket transport. */
interface SocketSettings {
  /** Bytes a connection may hold unsent before it is cut off (MCPQ_MAX_SEND_BUFFER_BYTES). */
  maxSendBufferBytes: number;
  /** MCPQ_SOCKET_HANDSHAKE_TIMEOUT_MS / MCPQ_SOCKET_IDLE_TIMEOUT_MS (socket-timeouts.ts). */
  socketHandshakeTimeoutMs: number;
  socketIdleTimeoutMs: number;
}

/**
 * All a transport gets from the edge: channels to hand its messages to (one per socket
 * connection, one per HTTP exchange), the edge-wide connection and buffer accounting, its
 * metrics and a logger. Transports never see the session core, the router or the bus.
 */
export interface EdgePort {
  readonly log: Logger;
  readonly connections: ConnectionLimiter;
  readonly buffers: BufferBudget;
  readonly metrics: TransportMetrics;
  /** Bearer credentials (static tokens, OAuth): what HTTP guards and in-band authentication check. */
  readonly auth: EdgeAuth;
  /**
   * Opens the channel of one socket connection. `caller` is the one authenticated at connect
   * time, or null when it comes in-band (`$/mcpq/resume`, checked against `address` as the
   * anonymous quota key); `resumable` (default true) offers `$/mcpq/resume` and event markers
   * (not on legacy SSE).
   */
  socket(
    port: SocketPort,
    opts: {
      transport: ConnectionKind;
      caller: Caller | null;
      address?: string | undefined;
      resumable?: boolean;
    },
  ): SocketChannel;
  /** One Streamable HTTP POST through its channel; settles once answered (the SSE stream ended). */
  post(x: HttpExchange, body: string): Promise<void>;
  /**
   * One Streamable HTTP GET (standalone or resumed stream); settles once the stream is open or
   * refused (the stream's end releases what it held).
   */
  get(x: HttpExchange): Promise<void>;
  /** One Streamable HTTP DELETE (end the session). */
  delete(x: HttpExchange): Promise<void>;
}

export interface EdgePortOptions {
  deps: ChannelDeps;
  connections: ConnectionLimiter;
  buffers: BufferBudget;
  metrics: TransportMetrics;
  auth: EdgeAuth;
  /** Telemetry of an error answered before dispatch (the request error metric, access log). */
  onError: (err: unknown, method: string | undefined) => void;
  sockets: SocketSettings;
}

/** Builds the edge port transports are given (runtime.ts builds one per edge). */
export function edgePort(o: EdgePortOptions): EdgePort {
  const { deps } = o;
  // One logger (a pino child), deps object and slow-consumer counter per transport, not per connection.
  const perTransport = new Map<ConnectionKind, { deps: ChannelDeps; onSlowConsumer: () => void }>();
  const ofTransport = (transport: ConnectionKind) => {
    let t = perTransport.get(transport);
    if (!t) {
      t = {
        deps: { ...deps, log: deps.log.child({ transport }) },
        onSlowConsumer: () => o.metrics.slowConsumers.inc({ transport }),
      };
      perTransport.set(transport, t);
    }
    return t;
  };
  return {
    log: deps.log,
    connections: o.connections,
    buffers: o.buffers,
    metrics: o.metrics,
    auth: o.auth,
    socket(port, { transport, caller, address, resumable = true }) {
      const shared = ofTransport(transport);
      return new SocketChannel(shared.deps, port, {
        transport,
        caller,
        resumable,
        maxSendBufferBytes: o.sockets.maxSendBufferBytes,
        authenticate: (authorization) => o.auth.authenticate(authorization, address),
        // gRPC has HTTP/2 keepalive for dead peers, and a quiet call may be a client waiting for
        // notifications: only the handshake clock. WebSocket pongs count as activity (websocket.ts).
        ...(transport === "sse"
          ? {}
          : {
              timeouts: {
                handshakeMs: o.sockets.socketHandshakeTimeoutMs,
                idleMs: transport === "grpc" ? 0 : o.sockets.socketIdleTimeoutMs,
              },
            }),
        onSlowConsumer: shared.onSlowConsumer,
        account: o.buffers.open(),
      });
    },
    post: (x, body) => new HttpPostChannel(deps, x, o.onError).run(body),
    get: (x) => httpGet(deps, x),
    delete: (x) => httpDelete(deps, x),
  };
}
