import { constants as http2 } from "node:http2";
import { fileURLToPath } from "node:url";
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import { GRPC_PROTO_URL, type JsonRpcFrame } from "@mcpq/protocol";
import { isAuthFailure, type Caller } from "../core/auth.js";
import type { EdgePort } from "../core/edge-port.js";
import type { SocketChannel, SocketCloseReason } from "../core/socket-channel.js";
import type { EdgeConfig } from "../env.js";
import { listenGrpc } from "./grpc-listener.js";
import { CLOSE_GRACE_MS, type ListeningTransport } from "./socket-common.js";

/** The settings the gRPC transport reads. */
export type GrpcConfig = Pick<
  EdgeConfig,
  | "host"
  | "grpcPort"
  | "maxMessageBytes"
  | "socketIdleTimeoutMs"
  | "socketHandshakeTimeoutMs"
  | "maxConnectionsPerClient"
>;

type SessionCall = grpc.ServerDuplexStream<JsonRpcFrame, JsonRpcFrame>;

/** Loads `mcpq.v1.Mcp` from the .proto shipped with @mcpq/protocol. */
function loadMcpService(): grpc.ServiceDefinition {
  const def = protoLoader.loadSync(fileURLToPath(GRPC_PROTO_URL), {
    keepCase: true,
    defaults: true,
  });
  const pkg = grpc.loadPackageDefinition(def) as unknown as {
    mcpq: { v1: { Mcp: grpc.ServiceClientConstructor } };
  };
  return pkg.mcpq.v1.Mcp.service;
}

const STATUS_FOR: Record<SocketCloseReason, grpc.status> = {
  "slow consumer": grpc.status.RESOURCE_EXHAUSTED,
  shutdown: grpc.status.UNAVAILABLE,
  unauthorized: grpc.status.UNAUTHENTICATED,
  timeout: grpc.status.DEADLINE_EXCEEDED,
};

/**
 * MCP over gRPC: `mcpq.v1.Mcp/Session`, a bidirectional stream of `JsonRpcFrame { string json }`,
 * one JSON-RPC message per frame. Metadata `authorization: Bearer <token>` authenticates
 * (UNAUTHENTICATED otherwise). Connection limit: RESOURCE_EXHAUSTED "too many connections";
 * slow consumer: RESOURCE_EXHAUSTED "slow consumer"; shutdown: UNAVAILABLE. Framing only.
 */
export async function startGrpcTransport(
  edge: EdgePort,
  config: GrpcConfig,
): Promise<ListeningTransport> {
  const live = new Set<SocketChannel>();
  // Set once listening; calls only arrive after that.
  const port: { listener?: Awaited<ReturnType<typeof listenGrpc>> } = {};
  const server = new grpc.Server({
    "grpc.max_receive_message_length": config.maxMessageBytes,
    "grpc.keepalive_time_ms": 30_000,
    "grpc.keepalive_timeout_ms": 10_000,
    // An HTTP/2 connection with no call open is closed (slowloris), and one that never
    // completes its handshake is dropped by grpc-js's own connection timeout.
    ...(config.socketIdleTimeoutMs > 0
      ? { "grpc.max_connection_idle_ms": config.socketIdleTimeoutMs }
      : {}),
  });

  const session = (call: SessionCall) => {
    void open(call).catch((err: unknown) => {
      edge.log.error({ err }, "grpc session failed");
      call.emit("error", {
        code: grpc.status.INTERNAL,
        details: "internal error",
        metadata: new grpc.Metadata(),
      });
    });
  };
  const open = async (call: SessionCall) => {
    let failed = false;
    const fail = (code: grpc.status, details: string) => {
      if (failed) return;
      failed = true;
      call.emit("error", { code, details, metadata: new grpc.Metadata() });
    };
    const auth = call.metadata.get("authorization")[0];
    port.listener?.callStarted(call.getPeer());
    const address = peerAddress(call.getPeer());
    const caller = await edge.auth.authenticate(
      typeof auth === "string" ? auth : undefined,
      address,
    );
    if (isAuthFailure(caller))
      return fail(
        caller.status === 403 ? grpc.status.PERMISSION_DENIED : grpc.status.UNAUTHENTICATED,
        caller.status === 403 ? caller.description : "a valid bearer token is required",
      );
    const release = edge.connections.tryAcquire("grpc", address);
    if (!release) return fail(grpc.status.RESOURCE_EXHAUSTED, "too many connections");

    // Frames are objects to the stream: count their bytes until HTTP/2 has taken them.
    let pending = 0;
    let grace: NodeJS.Timeout | undefined;
    let ended = false;
    const s = edge.socket(
      {
        write: (json) => {
          const bytes = Buffer.byteLength(json);
          pending += bytes;
          call.write({ json }, () => {
            pending -= bytes;
            s.drained();
          });
        },
        get bufferedBytes() {
          return pending;
        },
        close: (reason) => {
          if (reason !== "slow consumer") {
            fail(STATUS_FOR[reason], reason);
          } else {
            // Once a status is sent grpc-js reads nothing more, so a slow consumer's call keeps
            // taking requests (they run and their answers stay resumable) until the client
            // half-closes or the grace period ends; then the status follows the frames already
            // queued.
            call.once("end", () => fail(STATUS_FOR[reason], reason));
          }
          // A reader that never reads again would never see the status: its HTTP/2 stream is
          // reset after a second grace period.
          grace = setTimeout(() => {
            fail(STATUS_FOR[reason], reason);
            grace = setTimeout(() => resetStream(call), CLOSE_GRACE_MS);
            grace.unref();
          }, CLOSE_GRACE_MS);
          grace.unref();
        },
        pauseReading: () => call.pause(),
        resumeReading: () => call.resume(),
      },
      { transport: "grpc", caller: caller satisfies Caller, address },
    );
    live.add(s);
    edge.metrics.openStreams.inc({ transport: "grpc" });
    const done = () => {
      if (ended) return;
      ended = true;
      clearTimeout(grace);
      s.transportClosed();
      live.delete(s);
      edge.metrics.openStreams.dec({ transport: "grpc" });
      release();
    };
    call.on("data", (frame: JsonRpcFrame) => s.receive(frame.json));
    // The client half-closed: it sends nothing more; end once everything it sent is answered.
    call.on("end", () => {
      void s.idle().then(() => {
        if (!s.closed) call.end();
      });
    });
    call.on("cancelled", done);
    call.on("close", done);
    call.on("finish", done);
    call.on("error", () => done());
  };

  server.addService(loadMcpService(), { Session: session });
  const listener = (port.listener = await listenGrpc(server, edge.log, config));
  return {
    port: listener.port,
    async close() {
      for (const s of live) s.close("shutdown");
      // Stops accepting; the shutdown below ends the calls still open.
      void listener.close();
      await new Promise<void>((resolve) => {
        const force = setTimeout(() => {
          server.forceShutdown();
          resolve();
        }, 2_000);
        force.unref();
        server.tryShutdown(() => {
          clearTimeout(force);
          resolve();
        });
      });
    },
  };
}

/**
 * Resets the HTTP/2 stream under a call (CANCEL). grpc-js has no public server-side cancel; this
 * reaches its internal stream when the shape is as expected and does nothing otherwise.
 */
function resetStream(call: SessionCall): void {
  const stream = (
    call as unknown as { call?: { stream?: { close?: (code: number) => void; closed?: boolean } } }
  ).call?.stream;
  if (stream && !stream.closed && typeof stream.close === "function")
    stream.close(http2.NGHTTP2_CANCEL);
}

/** The client address in a grpc-js peer string (`ipv4:127.0.0.1:5000`, `ipv6:[::1]:5000`). */
function peerAddress(peer: string): string {
  const m = /^(?:ipv4:|ipv6:)?\[?([^\]]+?)\]?:\d+$/.exec(peer);
  return m ? m[1]! : peer;
}
