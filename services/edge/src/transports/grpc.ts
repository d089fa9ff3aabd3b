import { constants as http2 } from "node:http2";
import { fileURLToPath } from "node:url";
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import { GRPC_PROTO_URL, type JsonRpcFrame } from "@mcpq/protocol";
import { principalOf } from "../core/security.js";
import type { EdgePort } from "../core/edge-port.js";
import type { SocketChannel, SocketCloseReason } from "../core/socket-channel.js";
import type { EdgeConfig } from "../env.js";
import { CLOSE_GRACE_MS, type ListeningTransport } from "./socket-common.js";

/** The settings the gRPC transport reads. */
export type GrpcConfig = Pick<EdgeConfig, "host" | "grpcPort" | "maxBodyBytes" | "authTokens">;

type SessionCall = grpc.ServerDuplexStream<JsonRpcFrame, JsonRpcFrame>;

/** Loads `mcpq.v1.Mcp` from the .proto shipped with @mcpq/protocol. */
export function loadMcpService(): grpc.ServiceDefinition {
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
};

/**
 * MCP over gRPC: `mcpq.v1.Mcp/Session`, a bidirectional stream of `JsonRpcFrame { string json }`,
 * one JSON-RPC message per frame. Metadata `authorization: Bearer <token>` authenticates
 * (UNAUTHENTICATED otherwise). Connection limit: RESOURCE_EXHAUSTED "too many connections";
 * slow consumer: RESOURCE_EXHAUSTED "slow consumer"; shutdown: UNAVAILABLE. Framing only.
 */
export async function startGrpcTransport(edge: EdgePort, config: GrpcConfig): Promise<ListeningTransport> {
  const live = new Set<SocketChannel>();
  const server = new grpc.Server({
    "grpc.max_receive_message_length": config.maxBodyBytes,
    "grpc.keepalive_time_ms": 30_000,
    "grpc.keepalive_timeout_ms": 10_000,
  });

  const session = (call: SessionCall) => {
    let failed = false;
    const fail = (code: grpc.status, details: string) => {
      if (failed) return;
      failed = true;
      call.emit("error", { code, details, metadata: new grpc.Metadata() });
    };
    const auth = call.metadata.get("authorization")[0];
    const principal = principalOf(
      typeof auth === "string" ? auth : undefined,
      config.authTokens,
    );
    if (principal === null)
      return fail(grpc.status.UNAUTHENTICATED, "a valid bearer token is required");
    const release = edge.connections.tryAcquire("grpc");
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
      { transport: "grpc", principal },
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
  const host = config.host.includes(":") ? `[${config.host}]` : config.host;
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync(
      `${host}:${config.grpcPort}`,
      grpc.ServerCredentials.createInsecure(),
      (err, p) => (err ? reject(err) : resolve(p)),
    ),
  );
  return {
    port,
    async close() {
      for (const s of live) s.close("shutdown");
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
