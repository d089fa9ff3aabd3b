/**
 * Location and names of the gRPC transport's contract (`proto/mcpq.proto`, shipped next to
 * `dist/`). Only a URL is computed here; loading the file is the transport's business.
 */

/** `file:` URL of `mcpq.proto`; resolves from `src/` and from the built `dist/` alike. */
export const GRPC_PROTO_URL: URL = new URL("../proto/mcpq.proto", import.meta.url);

/** Fully qualified gRPC names of the transport (`package mcpq.v1; service Mcp { rpc Session }`). */
export const GRPC_NAMES = {
  package: "mcpq.v1",
  service: "Mcp",
  method: "Session",
  /** The HTTP/2 path a client calls. */
  path: "/mcpq.v1.Mcp/Session",
} as const;

/** The single message type of the transport: one JSON-RPC message as JSON text. */
export interface JsonRpcFrame {
  json: string;
}
