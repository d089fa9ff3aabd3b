/**
 * Location and names of the gRPC transport's contract (`proto/mcpq.proto`, shipped next to
 * `dist/`). Only a URL is computed here; loading the file is the transport's business.
 */

/** `file:` URL of `mcpq.proto`; resolves from `src/` and from the built `dist/` alike. */
export const GRPC_PROTO_URL: URL = new URL("../proto/mcpq.proto", import.meta.url);

/** The single message type of the transport: one JSON-RPC message as JSON text. */
export interface JsonRpcFrame {
  json: string;
}
