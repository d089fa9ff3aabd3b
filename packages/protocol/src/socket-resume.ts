import { z } from "zod";
import { MCPQ_META } from "./mcp.js";

/**
 * mcpq's resumption extension for message-per-frame transports (WebSocket, raw TCP, gRPC).
 * Methods under `$/` are implementation-specific (the LSP convention): a peer that does not
 * know them ignores the notification or answers -32601. See docs/transports.md.
 */

/**
 * Client -> server request, sent first on a connection. Turns on event markers for the
 * connection, authenticates (where the transport has no headers) and, with `sessionId`,
 * attaches the connection to an existing session and replays each stream named by
 * `lastEventId` after that event.
 */
export const RESUME_METHOD = "$/mcpq/resume";

/**
 * Server -> client notification announcing the event id of the message that immediately
 * follows it on the connection. A client records the id only once that message has arrived,
 * so a connection lost in between replays the message instead of losing it.
 */
export const EVENT_METHOD = "$/mcpq/event";

export const ResumeParamsSchema = z
  .object({
    /** The session to attach to; omitted to only turn on event markers before `initialize`. */
    sessionId: z.string().min(1).max(256).optional(),
    /** The last event id seen per stream (`<stream>_<token>`); `<stream>_0` replays a stream from its start. */
    lastEventId: z
      .union([z.string().min(1).max(256), z.array(z.string().min(1).max(256)).max(32)])
      .optional(),
    /** `Bearer <token>`, for transports without connection headers (raw TCP). */
    authorization: z.string().max(4096).optional(),
  })
  .loose();

/** Result of `$/mcpq/resume`. */
export interface ResumeResult {
  /** This connection's stream id: its messages carry event ids `<streamId>_<token>`. */
  streamId: string;
  sessionId?: string;
  protocolVersion?: string;
}

/**
 * Socket transports have no response headers: the InitializeResult carries the new session's id
 * in `_meta["io.mcpq/sessionId"]`, which a client passes to `$/mcpq/resume` after a reconnect.
 */
export const SESSION_ID_META_KEY = MCPQ_META.sessionId;

/** The `$/mcpq/event` marker for one event id, as JSON text. */
export function eventMarker(eventId: string): string {
  return JSON.stringify({ jsonrpc: "2.0", method: EVENT_METHOD, params: { id: eventId } });
}
