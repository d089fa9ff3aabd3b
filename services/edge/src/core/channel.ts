import {
  ErrorCode,
  McpError,
  classifyMessage,
  declaredVersion,
  isSupportedProtocolVersion,
  modernMeta,
  parseJson,
  salvageId,
  type ClassifiedMessage,
  type JsonRpcNotification,
  type JsonRpcRequest,
  type Logger,
  type ModernMeta,
  type RequestId,
} from "@mcpq/protocol";
import type { OutboundRouter } from "./outbound.js";
import type { SessionCore } from "./session-core.js";
import type { SessionRecord } from "./session-store.js";

/** What every channel runs on: the session core, the router, a logger. */
export interface ChannelDeps {
  core: SessionCore;
  router: OutboundRouter;
  log: Logger;
}

/**
 * The inbound pipeline of one client connection, the same for every transport: parse ->
 * classify -> auth -> era -> session -> dispatch -> reply. The era is decided per message: a
 * stateless-era (2026-07-28) request carries its client in `_meta` and gets a synthetic session
 * (no lookup); a legacy one belongs to the session `initialize` opened. A socket connection is one long-lived
 * channel (SocketChannel); a Streamable HTTP POST is one short-lived channel (HttpPostChannel).
 * The steps that differ between them (where the principal and the session come from, how an
 * error is answered, what a stream is) are the subclass's; the order of the steps is here only.
 * Transports never see this: they hand a channel text and give it a port to write to.
 */
export abstract class Channel {
  constructor(protected readonly deps: ChannelDeps) {}

  /** One inbound message (JSON text) through the pipeline; settles once it is dispatched or answered. */
  protected async inbound(text: string): Promise<void> {
    let value: unknown;
    try {
      value = parseJson(text);
    } catch (err) {
      return this.refuse(null, err);
    }
    if (Array.isArray(value)) return this.batch(value);
    if (this.oversize(text)) return;
    let msg: ClassifiedMessage;
    try {
      msg = classifyMessage(value);
    } catch (err) {
      return this.refuse(salvageId(value), err);
    }
    if (await this.intercept(msg)) return;
    const principal = this.principal();
    if (principal === null) {
      if (msg.kind === "request") this.refuse(msg.message.id, this.unauthenticated());
      return;
    }
    if (this.modern(msg)) return this.#modern(principal, msg, text);
    if (msg.kind === "request" && msg.message.method === "initialize")
      return this.initialize(principal, msg.message);
    const session = await this.session(principal, msg);
    if (!session) return;
    switch (msg.kind) {
      case "notification":
        await this.deps.core.notification(session, msg.message);
        return this.accepted();
      case "response":
        this.deps.core.clientResponse(session, msg.message);
        return this.accepted();
      default:
        return this.request(session, msg.message, text);
    }
  }

  /** The stateless-era branch: no session lookup; `_meta` says who the client is. */
  async #modern(principal: string, msg: ClassifiedMessage, text: string): Promise<void> {
    switch (msg.kind) {
      case "response":
        // Input for a request comes back in the retry's `inputResponses` (MRTR), never as a response.
        return this.refuse(
          msg.message.id,
          new McpError(
            ErrorCode.InvalidRequest,
            "Invalid Request: clients send no responses in protocol 2026-07-28",
          ),
          400,
        );
      case "notification":
        await this.modernNotification(principal, msg.message);
        return this.accepted();
      default: {
        let meta: ModernMeta;
        try {
          meta = this.modernMeta(msg.message);
        } catch (err) {
          // A malformed `_meta` is a malformed request: 400 on HTTP (-32602, -32020 or -32022).
          return this.refuse(msg.message.id, err, 400);
        }
        return this.modernRequest(principal, meta, msg.message, text);
      }
    }
  }

  /**
   * Whether `msg` is of the stateless era. Default (sockets, stdio): it declares a revision in
   * `_meta` that is not a legacy one, or it is `server/discover` or `subscriptions/listen`.
   */
  protected modern(msg: ClassifiedMessage): boolean {
    if (msg.kind === "response") return false;
    const declared = declaredVersion(msg.message.params);
    if (declared !== undefined) return !isSupportedProtocolVersion(declared);
    return (
      msg.kind === "request" &&
      (msg.message.method === "server/discover" || msg.message.method === "subscriptions/listen")
    );
  }
  /** Validates a stateless-era request's `_meta` (and, on HTTP, its metadata headers). */
  protected modernMeta(req: JsonRpcRequest): ModernMeta {
    return modernMeta(req.params);
  }
  /** A stateless-era notification (on HTTP there is none the server acts on: a closed stream is the cancel). */
  protected modernNotification(_principal: string, _n: JsonRpcNotification): Promise<void> | void {}
  /** A stateless-era request with its validated `_meta`: dispatch it on a synthetic session. */
  protected abstract modernRequest(
    principal: string,
    meta: ModernMeta,
    req: JsonRpcRequest,
    raw: string,
  ): Promise<void>;

  /** A single message over the transport's message limit: answered here (true) before anything runs. */
  protected oversize(_text: string): boolean {
    return false;
  }

  /** The authenticated principal; null when it must still come in-band (then requests are refused). */
  protected abstract principal(): string | null;
  /** The refusal of a request sent before the channel authenticated. */
  protected unauthenticated(): McpError {
    return new McpError(ErrorCode.Forbidden, "Unauthorized: a valid bearer token is required");
  }
  /** Messages a channel handles before auth (the socket resume); true when handled. */
  protected intercept(_msg: ClassifiedMessage): Promise<boolean> | boolean {
    return false;
  }
  /** A JSON-RPC batch (an array). */
  protected abstract batch(items: unknown[]): Promise<void> | void;
  /** `initialize`: opens a session and answers it. */
  protected abstract initialize(principal: string, req: JsonRpcRequest): Promise<void>;
  /** The session a message belongs to; null once the channel has answered why there is none. */
  protected abstract session(
    principal: string,
    msg: ClassifiedMessage,
  ): Promise<SessionRecord | null>;
  /** A notification or a client response was taken (HTTP answers 202). */
  protected accepted(): void {}
  /** A request: dispatch it on the channel's stream and see it answered. */
  protected abstract request(
    session: SessionRecord,
    req: JsonRpcRequest,
    raw: string,
  ): Promise<void>;
  /**
   * Answers a message the pipeline refused (or that failed before dispatch) with `err`;
   * `status` is the HTTP status where the transport has one (else it follows from the code).
   */
  protected abstract refuse(id: RequestId | null, err: unknown, status?: number): void;
}
