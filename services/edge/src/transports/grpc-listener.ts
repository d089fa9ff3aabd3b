import { createServer, type Socket } from "node:net";
import * as grpc from "@grpc/grpc-js";
import { ConnectionLimiter } from "../core/connection-limiter.js";
import type { Logger } from "@mcpq/protocol";
import type { EdgeConfig } from "../env.js";

/**
 * The gRPC port's own TCP listener, handing accepted connections to grpc-js
 * (`createConnectionInjector`), so the edge bounds connections before HTTP/2 sees them: at most
 * MCPQ_MAX_CONNECTIONS_PER_CLIENT raw connections per client address (calls are counted by the
 * shared limiter as well), and a connection that opens no call within
 * MCPQ_SOCKET_HANDSHAKE_TIMEOUT_MS is dropped. grpc-js's own idle limit
 * (`grpc.max_connection_idle_ms`) only starts once a client has sent the HTTP/2 preface, so a
 * socket that never sent it (slowloris) stayed open for good. `callStarted` (with the call's
 * peer) stops a connection's clock.
 */
export async function listenGrpc(
  server: grpc.Server,
  log: Logger,
  config: Pick<
    EdgeConfig,
    "host" | "grpcPort" | "socketHandshakeTimeoutMs" | "maxConnectionsPerClient"
  >,
): Promise<{ port: number; callStarted(peer: string): void; close(): Promise<void> }> {
  const clocks = new Map<string, NodeJS.Timeout>();
  const injector = server.createConnectionInjector(grpc.ServerCredentials.createInsecure());
  const perClient = new ConnectionLimiter(0, undefined, undefined, config.maxConnectionsPerClient);
  const sockets = new Set<Socket>();
  const tcp = createServer({ noDelay: true }, (socket) => {
    socket.on("error", (err) => log.debug({ err }, "grpc socket error"));
    const release = perClient.tryAcquire("grpc", socket.remoteAddress);
    if (!release) {
      socket.destroy();
      return;
    }
    sockets.add(socket);
    const key = peerKey(socket.remoteAddress, socket.remotePort);
    socket.once("close", () => {
      sockets.delete(socket);
      clearTimeout(clocks.get(key));
      clocks.delete(key);
      release();
    });
    if (config.socketHandshakeTimeoutMs > 0) {
      const clock = setTimeout(() => socket.destroy(), config.socketHandshakeTimeoutMs);
      clock.unref();
      clocks.set(key, clock);
    }
    injector.injectConnection(socket);
  });
  await new Promise<void>((resolve, reject) => {
    tcp.once("error", reject);
    tcp.listen({ host: config.host, port: config.grpcPort, backlog: 4096 }, () => {
      tcp.off("error", reject);
      resolve();
    });
  });
  const addr = tcp.address();
  return {
    port: typeof addr === "object" && addr ? addr.port : config.grpcPort,
    callStarted(peer) {
      const m = /^(?:ipv[46]:)?\[?(.+?)\]?:(\d+)$/.exec(peer);
      const key = m ? peerKey(m[1], Number(m[2])) : peer;
      clearTimeout(clocks.get(key));
      clocks.delete(key);
    },
    async close() {
      const closed = new Promise<void>((resolve) => tcp.close(() => resolve()));
      injector.drain(1_000);
      for (const s of sockets) s.destroySoon();
      injector.destroy();
      await closed;
    },
  };
}

function peerKey(address: string | undefined, port: number | undefined): string {
  return `${(address ?? "").replace(/^::ffff:/, "")}|${String(port)}`;
}
