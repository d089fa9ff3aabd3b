import { randomBytes } from "node:crypto";
import {
  ErrorCode,
  McpError,
  RESUME_METHOD,
  SESSION_ID_META_KEY,
  ResumeParamsSchema,
  classifyMessage,
  eventMarker,
  parseJson,
  salvageId,
  toWireError,
  type JsonRpcRequest,
  type Logger,
  type RequestId,
  type ResumeResult,
} from "@mcpq/protocol";
import { STANDALONE_STREAM, type Bus } from "@mcpq/bus";
import type { ConnectionKind } from "./connection-limiter.js";
import { parseEventId, type OutboundMessage, type StreamSink } from "./outbound.js";
import { isAuthFailure, type Caller } from "./auth.js";
import { SendBuffer } from "./send-buffer.js";
import { SocketTimeouts } from "./socket-timeouts.js";
import { RequestCancelled, type Dispatched, type SessionCore } from "./session-core.js";
import type { SessionRecord } from "./session-store.js";
import type { OutboundRouter } from "./outbound.js";

/** Why the edge ends a connection; each transport says it in its own terms (docs/transports.md). */
export type SocketCloseReason = "slow consumer" | "shutdown" | "unauthorized" | "timeout";

/**
 * What a message-per-frame transport (WebSocket, TCP, gRPC, legacy SSE) provides: it frames
 * and writes one JSON-RPC message, reports what it holds unsent, and closes.
 */
export interface SocketFramer {
  /** Writes one JSON-RPC message. `eventId` is set for retained messages (SSE writes it as `id:`). */
  write(json: string, eventId: string | undefined): void;
  /** Bytes accepted for this connection but not yet handed to the network. */
  readonly bufferedBytes: number;
  /** Ends the connection, telling the peer `reason` where the transport can. */
  close(reason: SocketCloseReason): void;
  /** Backpressure on the inbound side while many messages wait to be processed. */
  pauseReading?(): void;
  resumeReading?(): void;
}

export interface SocketSessionOptions {
  transport: ConnectionKind;
  /** The caller authenticated at connect time, or null when it comes in-band (`$/mcpq/resume`). */
  caller: Caller | null;
  /** Whether `$/mcpq/resume` and `$/mcpq/event` markers are offered (not on legacy SSE, which has `id:`). */
  resumable: boolean;
  /** Bytes the connection may hold unsent before it is cut off as a slow consumer. */
  maxSendBufferBytes: number;
  /** Checks an in-band credential (`$/mcpq/resume` `authorization`); used when `caller` is null. */
  authenticate(authorization: string | undefined): Promise<Caller | { status: number; description: string }>;
  log: Logger;
  onSlowConsumer?: () => void;
  /** Handshake and idle clocks (socket-timeouts.ts); none on legacy SSE (HTTP has its own). */
  timeouts?: { handshakeMs: number; idleMs: number };
  /** Edge-wide buffer accounting (BufferBudget account): told what the connection holds unsent. */
  account?: { set(bytes: number): void; close(): void };
}

/** The parts of the edge runtime a socket session uses. */
export interface SocketRuntime {
  core: SessionCore;
  router: OutboundRouter;
  bus: Bus;
}

/** Inbound messages that may wait for processing before the transport stops reading. */
const INBOUND_HIGH_WATER = 64;

/**
 * One connection of a message-per-frame transport, bound to at most one MCP session. It is the
 * connection's stream (stream id = connection id): every request sent on it is routed with
 * that stream, and the router delivers the stream's messages here in JetStream order,
 * responses included, so event ids on a connection are monotonic and a resume after the last
 * one seen loses and repeats nothing. Session-level messages (the standalone stream) arrive
 * here too. Inbound messages are processed in order up to dispatch (a cancel never overtakes
 * its request); responses are awaited concurrently.
 *
 * Closing the connection does not end the session: it stays resumable from any edge until it
 * idles out (MCPQ_SESSION_IDLE_TTL_MS); its messages stay in MCPQ_OUT for MCPQ_OUT_MAX_AGE_MS.
 */
export class SocketSession implements StreamSink {
  readonly streamId = randomBytes(6).toString("hex");
  readonly receivesResponses = true;
  #session: SessionRecord | undefined;
  #principal: string | null;
  #caller: Caller | null;
  #markers = false;
  #closed = false;
  readonly #releases: (() => void)[] = [];
  #chain: Promise<void> = Promise.resolve();
  #waiting = 0;
  #paused = false;
  /** Inbound messages not yet fully handled (requests: until their response is written). */
  #outstanding = 0;
  #idleWaiters: (() => void)[] = [];
  /** The send-buffer bound (MCPQ_MAX_SEND_BUFFER_BYTES), the same rule as SSE streams'. */
  readonly #sendBuffer: SendBuffer;
  readonly #timeouts: SocketTimeouts | undefined;

  constructor(
    private readonly rt: SocketRuntime,
    private readonly framer: SocketFramer,
    private readonly opts: SocketSessionOptions,
  ) {
    this.#caller = opts.caller;
    this.#principal = opts.caller?.principal ?? null;
    this.#sendBuffer = new SendBuffer({
      maxBytes: opts.maxSendBufferBytes,
      held: () => framer.bufferedBytes,
      cutOff: (held) => this.#cutOff(held),
    });
    this.#timeouts = opts.timeouts
      ? new SocketTimeouts(opts.timeouts, () => this.#outstanding > 0, () => this.close("timeout"))
      : undefined;
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** The bound session's id, once initialized or resumed. */
  get sessionId(): string | undefined {
    return this.#session?.id;
  }

  /** Resolves once every message received so far has been answered (a client half-closed). */
  idle(): Promise<void> {
    return this.#outstanding === 0 || this.#closed
      ? Promise.resolve()
      : new Promise((r) => this.#idleWaiters.push(r));
  }

  #done(): void {
    if (--this.#outstanding === 0) for (const w of this.#idleWaiters.splice(0)) w();
  }

  /**
   * Accepts one inbound frame (JSON text). Processing is ordered; the transport may read on.
   * Frames that arrive after the edge closed the connection (slow consumer) are still
   * dispatched: their answers cannot go out here, but they stay resumable.
   */
  receive(text: string): void {
    this.#timeouts?.activity();
    this.#outstanding++;
    let handed = false;
    const finish = () => {
      if (!handed) this.#done();
    };
    if (++this.#waiting >= INBOUND_HIGH_WATER && !this.#paused) {
      this.#paused = true;
      this.framer.pauseReading?.();
    }
    this.#chain = this.#chain
      .then(() => {
        return this.#handle(text, (response) => {
          // A dispatched request stays outstanding until its response settles.
          handed = true;
          void response.finally(() => this.#done());
        });
      })
      .catch((err: unknown) => this.opts.log.error({ err }, "socket message failed"))
      .finally(() => {
        finish();
        if (--this.#waiting < INBOUND_HIGH_WATER / 2 && this.#paused) {
          this.#paused = false;
          this.framer.resumeReading?.();
        }
      });
  }

  /**
   * Router side: one message of a stream this connection reads, in stream order. (A worker's
   * answer to a request the edge already answered never gets here: the router drops it.)
   */
  send(msg: OutboundMessage): void {
    if (this.#closed) return;
    this.#write(
      msg.json,
      msg.eventId,
      this.#markers && msg.eventId ? eventMarker(msg.eventId) : undefined,
    );
  }

  /** Ends the connection from the edge's side (slow consumer, shutdown, failed auth). */
  close(reason: SocketCloseReason): void {
    if (this.#closed) return;
    this.framer.close(reason);
    this.transportClosed();
  }

  /** The transport reports the connection gone: stop delivering; the session stays resumable. */
  transportClosed(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#timeouts?.stop();
    this.opts.account?.close();
    for (const w of this.#idleWaiters.splice(0)) w();
    this.#sendBuffer.close();
    for (const release of this.#releases.splice(0)) release();
  }

  /** The peer showed it is alive without a message (a WebSocket pong): the idle clock restarts. */
  noteActivity(): void {
    this.#timeouts?.activity();
  }

  /** The transport reports progress draining its send buffer (socket `drain`). */
  drained(): void {
    if (this.#closed) return;
    this.opts.account?.set(this.framer.bufferedBytes);
    this.#sendBuffer.drained();
  }

  /**
   * Resolves once at most half the send-buffer bound is held (a replay waits on it between
   * messages); a reader that makes no room in time is cut off (see SendBuffer).
   */
  ready(): Promise<void> {
    return this.#sendBuffer.ready();
  }

  /**
   * Writes one message (after its event marker, if any), unless the connection still holds more
   * than the bound from earlier writes: then it is cut off instead (SendBuffer's rule: one large
   * message to a reader that keeps up is never a reason).
   */
  #write(json: string, eventId: string | undefined, marker?: string): boolean {
    if (this.#closed || !this.#sendBuffer.admit()) return false;
    if (marker !== undefined) this.framer.write(marker, undefined);
    this.framer.write(json, eventId);
    this.#timeouts?.activity();
    this.opts.account?.set(this.framer.bufferedBytes);
    return true;
  }

  #cutOff(held: number): void {
    this.opts.log.warn({ transport: this.opts.transport, buffered: held }, "slow consumer cut off");
    this.opts.onSlowConsumer?.();
    this.close("slow consumer");
  }

  #reply(id: RequestId | null, err: unknown): void {
    if (!(err instanceof McpError))
      this.opts.log.error({ err }, "unexpected error before dispatch");
    this.#respond(id, JSON.stringify({ jsonrpc: "2.0", id, error: toWireError(err) }));
  }

  /**
   * Writes the edge's own answer to a request. When the connection is already gone (cut off,
   * dropped) the answer is parked on the connection's stream in MCPQ_OUT instead
   * (OutboundRouter.publishAnswer), so the resumed connection receives it like any worker's
   * answer.
   */
  #respond(id: RequestId | null, json: string): void {
    if (this.#write(json, undefined)) return;
    const session = this.#session;
    if (id === null || !session) return;
    void this.rt.router.publishAnswer(session.id, this.streamId, json);
  }

  async #handle(text: string, handOff: (response: Promise<unknown>) => void): Promise<void> {
    let value: unknown;
    try {
      value = parseJson(text);
    } catch (err) {
      return this.#reply(null, err);
    }
    if (Array.isArray(value)) {
      return this.#reply(
        null,
        new McpError(
          ErrorCode.InvalidRequest,
          "Invalid Request: JSON-RPC batches are not supported on this transport",
        ),
      );
    }
    let msg;
    try {
      msg = classifyMessage(value);
    } catch (err) {
      return this.#reply(salvageId(value), err);
    }
    if (msg.kind === "request" && msg.message.method === RESUME_METHOD && this.opts.resumable) {
      return this.#resume(msg.message);
    }
    const principal = this.#principal;
    if (principal === null) {
      if (msg.kind === "request") {
        this.#reply(
          msg.message.id,
          new McpError(
            ErrorCode.Forbidden,
            `Unauthorized: send ${RESUME_METHOD} with an authorization first`,
          ),
        );
      }
      return;
    }
    if (msg.kind === "request" && msg.message.method === "initialize") {
      if (this.#session)
        return this.#reply(
          msg.message.id,
          new McpError(ErrorCode.InvalidRequest, "Session already initialized"),
        );
      try {
        const { session, json } = await this.rt.core.initialize(principal, msg.message, this.#caller ?? undefined);
        this.#write(withSessionId(json, session.id), undefined);
        this.#bind(session);
      } catch (err) {
        this.#reply(msg.message.id, err);
      }
      return;
    }
    let session: SessionRecord | null;
    try {
      session = await this.#current(principal);
    } catch (err) {
      // The broker could not be asked (a -32010 refusal): answer it rather than drop it.
      if (msg.kind === "request") this.#reply(msg.message.id, err);
      return;
    }
    if (!session) {
      if (msg.kind === "request") {
        const known = this.#session !== undefined;
        this.#reply(
          msg.message.id,
          known
            ? new McpError(ErrorCode.InvalidRequest, "Session not found", {
                reason: "session_not_found",
              })
            : new McpError(
                ErrorCode.InvalidRequest,
                `Bad Request: send initialize (or ${RESUME_METHOD}) first`,
              ),
        );
      }
      return;
    }
    switch (msg.kind) {
      case "notification":
        return this.rt.core.notification(session, msg.message);
      case "response":
        return this.rt.core.clientResponse(session, msg.message);
      default:
        return this.#dispatch(session, msg.message, text, handOff);
    }
  }

  /** The bound session, reloaded through the store's cache (sees log-level changes, expiry, deletion). */
  async #current(principal: string): Promise<SessionRecord | null> {
    if (!this.#session) return null;
    const fresh = await this.rt.core.sessions.get(this.#session.id, principal);
    if (fresh) this.#session = fresh;
    return fresh;
  }

  async #dispatch(
    session: SessionRecord,
    req: JsonRpcRequest,
    raw: string,
    handOff: (response: Promise<unknown>) => void,
  ): Promise<void> {
    let d: Dispatched;
    try {
      // No sink here: this connection is attached to its stream for its whole life.
      d = await this.rt.core.dispatch(session, req, { id: this.streamId, raw, caller: this.#caller ?? undefined });
    } catch (err) {
      if (!(err instanceof RequestCancelled)) this.#reply(req.id, err);
      return;
    }
    // The request stays outstanding until its answer is written (or handed to the stream).
    // A deadline answer goes out through the stream after claiming the request's response slot
    // (SessionCore.finalMessage); messages with an event id came through the router, which
    // delivers this connection's responses itself.
    handOff(
      this.rt.core.finalMessage(session, this.streamId, d).then(
        (out) => (out && out.eventId === undefined ? this.#respond(req.id, out.json) : undefined),
        (err: unknown) => this.opts.log.error({ err }, "response failed"),
      ),
    );
  }

  async #resume(req: JsonRpcRequest): Promise<void> {
    if (this.#closed) return;
    const p = ResumeParamsSchema.safeParse(req.params ?? {});
    if (!p.success)
      return this.#reply(
        req.id,
        new McpError(
          ErrorCode.InvalidParams,
          `Invalid params: ${p.error.issues[0]?.message ?? "malformed"}`,
        ),
      );
    if (this.#session)
      return this.#reply(
        req.id,
        new McpError(ErrorCode.InvalidRequest, `${RESUME_METHOD} must come before initialize`),
      );
    if (this.#principal === null) {
      const caller = await this.opts.authenticate(p.data.authorization);
      if (isAuthFailure(caller as Caller)) {
        this.#reply(
          req.id,
          new McpError(ErrorCode.Forbidden, "Unauthorized: a valid bearer token is required"),
        );
        this.close("unauthorized");
        return;
      }
      this.#caller = caller as Caller;
      this.#principal = this.#caller.principal;
    }
    const ids =
      p.data.lastEventId === undefined
        ? []
        : Array.isArray(p.data.lastEventId)
          ? p.data.lastEventId
          : [p.data.lastEventId];
    const positions = ids.map(parseEventId);
    if (positions.some((x) => x === null))
      return this.#reply(
        req.id,
        new McpError(ErrorCode.InvalidParams, "Invalid params: malformed lastEventId"),
      );
    if (p.data.sessionId === undefined) {
      this.#markers = true;
      this.#write(
        JSON.stringify({
          jsonrpc: "2.0",
          id: req.id,
          result: { streamId: this.streamId } satisfies ResumeResult,
        }),
        undefined,
      );
      return;
    }
    const session = await this.rt.core.sessions.get(p.data.sessionId, this.#principal);
    if (!session)
      return this.#reply(
        req.id,
        new McpError(ErrorCode.InvalidRequest, "Session not found", {
          reason: "session_not_found",
        }),
      );
    this.#markers = true;
    const result: ResumeResult = {
      streamId: this.streamId,
      sessionId: session.id,
      protocolVersion: session.protocolVersion,
    };
    this.#write(JSON.stringify({ jsonrpc: "2.0", id: req.id, result }), undefined);
    this.#bind(session);
    // Replays run beside live traffic: the connection keeps accepting requests meanwhile.
    const streams = new Set<string>();
    for (const pos of positions) {
      if (!pos || pos.stream === this.streamId || streams.has(pos.stream)) continue;
      streams.add(pos.stream);
      void this.rt.router.resume(session.id, pos.stream, pos.token, this).then(
        (release) => (this.#closed ? release() : this.#releases.push(release)),
        (err: unknown) => this.opts.log.warn({ err }, "resume failed"),
      );
    }
  }

  #bind(session: SessionRecord): void {
    this.#session = session;
    this.#timeouts?.bound();
    if (this.#closed) return;
    this.#releases.push(this.rt.router.attach(session.id, this.streamId, this));
    // Socket clients have no GET stream: session-level messages (resource updates, list
    // changes) come on the connection.
    this.#releases.push(this.rt.router.attach(session.id, STANDALONE_STREAM, this));
  }
}

/** Adds the session id to a socket transport's InitializeResult (`_meta`, see SESSION_ID_META_KEY). */
function withSessionId(json: string, sessionId: string): string {
  const msg = JSON.parse(json) as { result?: Record<string, unknown> };
  if (!msg.result) return json;
  msg.result["_meta"] = {
    ...(msg.result["_meta"] as Record<string, unknown> | undefined),
    [SESSION_ID_META_KEY]: sessionId,
  };
  return JSON.stringify(msg);
}
