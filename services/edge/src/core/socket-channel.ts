import { randomBytes } from "node:crypto";
import {
  ErrorCode,
  McpError,
  RESUME_METHOD,
  SESSION_ID_META_KEY,
  ResumeParamsSchema,
  CancelledParamsSchema,
  eventMarker,
  type ClassifiedMessage,
  type JsonRpcNotification,
  type JsonRpcRequest,
  type ModernMeta,
  type RequestId,
  type ResumeResult,
} from "@mcpq/protocol";
import { STANDALONE_STREAM, parseEventId } from "@mcpq/bus";
import { Channel, type ChannelDeps } from "./channel.js";
import type { ConnectionKind } from "./connection-limiter.js";
import { shapeModernAnswer, type AnswerShape } from "./modern-answers.js";
import type { OutboundMessage, StreamSink } from "./outbound.js";
import { isAuthFailure, type Caller } from "./auth.js";
import { SocketTimeouts } from "./socket-timeouts.js";
import { SendBuffer } from "./send-buffer.js";
import type { Dispatched } from "./session-core.js";
import { errorMessage, isUnexpected } from "./http-errors.js";
import type { SessionRecord } from "./session-store.js";

/** Why the edge ends a connection; each transport says it in its own terms (docs/transports.md). */
export type SocketCloseReason = "slow consumer" | "shutdown" | "unauthorized" | "timeout";

/**
 * The port a message-per-frame transport (WebSocket, TCP, gRPC, legacy SSE) gives its channel:
 * it frames and writes one JSON-RPC message, reports what it holds unsent, closes, and pauses
 * reading. That is all a transport does; the channel does the rest.
 */
export interface SocketPort {
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

export interface SocketChannelOptions {
  transport: ConnectionKind;
  /** The caller authenticated at connect time, or null when it comes in-band (`$/mcpq/resume`). */
  caller: Caller | null;
  /** Whether `$/mcpq/resume` and `$/mcpq/event` markers are offered (not on legacy SSE, which has `id:`). */
  resumable: boolean;
  /** Bytes the connection may hold unsent before it is cut off as a slow consumer. */
  maxSendBufferBytes: number;
  /** Checks an in-band credential (`$/mcpq/resume` `authorization`); used when `caller` is null. */
  authenticate(
    authorization: string | undefined,
  ): Promise<Caller | { status: number; description: string }>;
  /** Handshake and idle clocks (socket-timeouts.ts); none on legacy SSE (HTTP has its own). */
  timeouts?: { handshakeMs: number; idleMs: number };
  onSlowConsumer?: () => void;
  /** Edge-wide buffer accounting (BufferBudget account): told what the connection holds unsent. */
  account?: { set(bytes: number): void; close(): void };
}

/** Inbound messages that may wait for processing before the transport stops reading. */
const INBOUND_HIGH_WATER = 64;

/**
 * The channel of one connection of a message-per-frame transport, bound to at most one MCP
 * session. It is the connection's stream (stream id = connection id): every request sent on it
 * is routed with that stream, and every message of the stream reaches `send` in JetStream
 * order, responses included, so event ids on a connection are monotonic and a resume after the
 * last one seen loses and repeats nothing. Session-level messages (the standalone stream)
 * arrive here too. Inbound messages are processed in order up to dispatch (a cancel never
 * overtakes its request); responses are awaited concurrently.
 *
 * Closing the connection does not end the session: it stays resumable from any edge until it
 * idles out (MCPQ_SESSION_IDLE_TTL_MS); its messages stay in MCPQ_OUT for MCPQ_OUT_MAX_AGE_MS.
 * The channel stays the reader of its streams until the requests it dispatched are answered,
 * so their answers are still counted here (and edge answers parked for the resume).
 */
export class SocketChannel extends Channel implements StreamSink {
  readonly streamId = randomBytes(6).toString("hex");
  #session: SessionRecord | undefined;
  #principal: string | null;
  #caller: Caller | null;
  readonly #timeouts: SocketTimeouts | undefined;
  #markers = false;
  #closed = false;
  readonly #releases: (() => void)[] = [];
  #chain: Promise<void> = Promise.resolve();
  /** Set while one inbound message is processed: hands its dispatched request's completion over. */
  #handOff: ((response: Promise<unknown>) => void) | undefined;
  /**
   * Stateless-era requests of this connection awaiting their answer: client id -> how it is
   * completed. Created on the first one (most connections are of one era; an edge holds 100K).
   */
  #modernShapes: Map<string, AnswerShape> | undefined;
  /** Whether this connection reads its stream on the edge's stateless-era outbound session. */
  #modernAttached = false;
  #waiting = 0;
  #paused = false;
  /** Inbound messages not yet fully handled (requests: until their response is written). */
  #outstanding = 0;
  #idleWaiters: (() => void)[] = [];
  /** The send-buffer bound (MCPQ_MAX_SEND_BUFFER_BYTES), the same rule as SSE streams'. */
  readonly #sendBuffer: SendBuffer;

  readonly #port: SocketPort;
  readonly #opts: SocketChannelOptions;

  constructor(deps: ChannelDeps, port: SocketPort, opts: SocketChannelOptions) {
    super(deps);
    this.#port = port;
    this.#opts = opts;
    this.#caller = opts.caller;
    this.#principal = opts.caller?.principal ?? null;
    this.#timeouts = opts.timeouts
      ? new SocketTimeouts(
          opts.timeouts,
          () => this.#outstanding > 0,
          () => this.close("timeout"),
        )
      : undefined;
    this.#sendBuffer = new SendBuffer({
      maxBytes: opts.maxSendBufferBytes,
      held: () => port.bufferedBytes,
      cutOff: (held) => this.#cutOff(held),
    });
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
    if (--this.#outstanding > 0) return;
    for (const w of this.#idleWaiters.splice(0)) w();
    if (this.#closed) this.#releaseStreams();
  }

  #releaseStreams(): void {
    for (const release of this.#releases.splice(0)) release();
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
      this.#port.pauseReading?.();
    }
    this.#chain = this.#chain
      .then(() => {
        this.#handOff = (response) => {
          // A dispatched request stays outstanding until its response settles.
          handed = true;
          void response.finally(() => this.#done());
        };
        return this.inbound(text);
      })
      .catch((err: unknown) => this.deps.log.error({ err }, "socket message failed"))
      .finally(() => {
        finish();
        if (--this.#waiting < INBOUND_HIGH_WATER / 2 && this.#paused) {
          this.#paused = false;
          this.#port.resumeReading?.();
        }
      });
  }

  /**
   * StreamSink: one message of a stream this connection reads, in stream order, responses
   * included. (A worker's answer to a request the edge already answered never gets here: the
   * router drops it.) An answer the edge made itself (no event id) that cannot be written,
   * because the connection is gone or cut off, is parked on the connection's stream in MCPQ_OUT
   * (OutboundRouter.publishAnswer), so the resumed connection receives it like any worker's.
   */
  send(msg: OutboundMessage): void {
    if (msg.kind === "response" && this.#modernShapes?.size) msg = this.#shaped(msg);
    if (
      this.#write(
        msg.json,
        msg.eventId,
        this.#markers && msg.eventId ? eventMarker(msg.eventId) : undefined,
      )
    )
      return;
    const session = this.#session;
    if (msg.kind === "response" && msg.eventId === undefined && session) {
      void this.deps.router.publishAnswer(session.id, this.streamId, msg.json);
    }
  }

  /** A stateless-era request's answer, completed (`resultType`, serverInfo, caching hints). */
  #shaped(msg: OutboundMessage): OutboundMessage {
    let id: unknown;
    try {
      id = (JSON.parse(msg.json) as { id?: unknown }).id;
    } catch {
      return msg;
    }
    const key = idKey(id);
    const shape = this.#modernShapes?.get(key);
    if (!shape) return msg;
    this.#modernShapes!.delete(key);
    const out = shapeModernAnswer(msg, shape);
    // Stateless-era answers on a resumable connection keep their event id (its marker protocol).
    return { ...out, eventId: msg.eventId };
  }

  /** Ends the connection from the edge's side (slow consumer, shutdown, failed auth). */
  close(reason: SocketCloseReason): void {
    if (this.#closed) return;
    this.#port.close(reason);
    this.transportClosed();
  }

  /** The transport reports the connection gone: stop delivering; the session stays resumable. */
  transportClosed(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#timeouts?.stop();
    this.#opts.account?.close();
    // Its subscriptions/listen streams end with the connection (answered by nothing).
    if (this.#modernAttached) this.deps.core.endScope(this.deps.core.modernScope(this.streamId));
    for (const w of this.#idleWaiters.splice(0)) w();
    this.#sendBuffer.close();
    if (this.#outstanding === 0) this.#releaseStreams();
  }

  /** The peer showed it is alive without a message (a WebSocket pong): the idle clock restarts. */
  noteActivity(): void {
    this.#timeouts?.activity();
  }

  /** The transport reports progress draining its send buffer (socket `drain`). */
  drained(): void {
    if (this.#closed) return;
    this.#opts.account?.set(this.#port.bufferedBytes);
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
    if (marker !== undefined) this.#port.write(marker, undefined);
    this.#port.write(json, eventId);
    this.#timeouts?.activity();
    this.#opts.account?.set(this.#port.bufferedBytes);
    return true;
  }

  #cutOff(held: number): void {
    this.deps.log.warn(
      { transport: this.#opts.transport, buffered: held },
      "slow consumer cut off",
    );
    this.#opts.onSlowConsumer?.();
    this.close("slow consumer");
  }

  /** Channel: an error answer, written on the connection (parked for the resume when it cannot be). */
  protected refuse(id: RequestId | null, err: unknown): void {
    if (isUnexpected(err)) this.deps.log.error({ err }, "unexpected error before dispatch");
    const answer = errorMessage(id, err);
    if (id === null) this.#write(answer.json, undefined);
    else this.send(answer);
  }

  protected principal(): string | null {
    return this.#principal;
  }

  protected override unauthenticated(): McpError {
    return new McpError(
      ErrorCode.Forbidden,
      `Unauthorized: send ${RESUME_METHOD} with an authorization first`,
    );
  }

  protected batch(): void {
    this.refuse(
      null,
      new McpError(
        ErrorCode.InvalidRequest,
        "Invalid Request: JSON-RPC batches are not supported on this transport",
      ),
    );
  }

  protected override async intercept(msg: ClassifiedMessage): Promise<boolean> {
    if (msg.kind !== "request" || msg.message.method !== RESUME_METHOD || !this.#opts.resumable)
      return false;
    await this.#resume(msg.message);
    return true;
  }

  protected async initialize(principal: string, req: JsonRpcRequest): Promise<void> {
    if (this.#session)
      return this.refuse(
        req.id,
        new McpError(ErrorCode.InvalidRequest, "Session already initialized"),
      );
    try {
      const { session, json } = await this.deps.core.initialize(
        principal,
        req,
        this.#caller ?? undefined,
      );
      this.#write(withSessionId(json, session.id), undefined);
      this.#bind(session);
    } catch (err) {
      this.refuse(req.id, err);
    }
  }

  protected async session(
    principal: string,
    msg: ClassifiedMessage,
  ): Promise<SessionRecord | null> {
    let session: SessionRecord | null;
    try {
      session = await this.#current(principal);
    } catch (err) {
      // The broker could not be asked (a -32010 refusal): answer it rather than drop it.
      if (msg.kind === "request") this.refuse(msg.message.id, err);
      return null;
    }
    if (!session && msg.kind === "request") {
      this.refuse(
        msg.message.id,
        this.#session !== undefined
          ? new McpError(ErrorCode.InvalidRequest, "Session not found", {
              reason: "session_not_found",
            })
          : new McpError(
              ErrorCode.InvalidRequest,
              `Bad Request: send initialize (or ${RESUME_METHOD}) first`,
            ),
      );
    }
    return session;
  }

  /** The bound session, reloaded through the store's cache (sees log-level changes, expiry, deletion). */
  async #current(principal: string): Promise<SessionRecord | null> {
    if (!this.#session) return null;
    const fresh = await this.deps.core.sessions.get(this.#session.id, principal);
    if (fresh) this.#session = fresh;
    return fresh;
  }

  /** A connection bound to a legacy session speaks that session's revision; otherwise per message. */
  protected override modern(msg: ClassifiedMessage): boolean {
    if (this.#session !== undefined) return false;
    // A cancel carries no `_meta`: it is of the era of the request it names.
    if (msg.kind === "notification" && msg.message.method === "notifications/cancelled") {
      return !!this.#modernShapes?.has(
        idKey((msg.message.params as { requestId?: unknown } | undefined)?.requestId),
      );
    }
    return super.modern(msg);
  }

  /** The stdio rules: `notifications/cancelled` cancels a stateless-era request of this connection. */
  protected override modernNotification(principal: string, n: JsonRpcNotification): void {
    if (n.method !== "notifications/cancelled") return;
    const p = CancelledParamsSchema.safeParse(n.params);
    if (!p.success) return;
    const { core } = this.deps;
    core.cancel(
      core.modernSession(principal, NO_META, this.streamId),
      p.data.requestId,
      p.data.reason,
    );
  }

  /**
   * A stateless-era request on this connection: its synthetic session is the connection's
   * (`m-<edge>-<connection>`, so `notifications/cancelled` finds it), its answers come on the
   * connection's stream of the edge's stateless-era outbound session.
   */
  protected async modernRequest(
    principal: string,
    meta: ModernMeta,
    req: JsonRpcRequest,
    raw: string,
  ): Promise<void> {
    const { core, router } = this.deps;
    const session = core.modernSession(principal, meta, this.streamId);
    let hold: (() => void) | undefined;
    if (this.#closed) hold = router.attach(core.modernOutbound, this.streamId, this);
    else if (!this.#modernAttached) {
      this.#modernAttached = true;
      this.#releases.push(router.attach(core.modernOutbound, this.streamId, this));
    }
    const key = idKey(req.id);
    const shape: AnswerShape = { serverInfo: core.serverInfo };
    const uri = req.method === "resources/read" ? req.params?.["uri"] : undefined;
    if (typeof uri === "string") shape.readHint = core.readHint(uri);
    (this.#modernShapes ??= new Map()).set(key, shape);
    let d: Dispatched;
    try {
      d = await core.dispatch(session, req, {
        id: this.streamId,
        raw,
        sink: this,
        outboundSession: core.modernOutbound,
        caller: this.#caller ?? undefined,
      });
    } catch (err) {
      hold?.();
      this.refuse(req.id, err);
      this.#modernShapes?.delete(key);
      return;
    }
    this.#handOff?.(
      d.accepted
        .then(
          () => d.done,
          (err: unknown) => {
            this.refuse(req.id, err);
            return d.done;
          },
        )
        .finally(() => {
          this.#modernShapes?.delete(key);
          hold?.();
        }),
    );
  }

  /** Channel: dispatches on the connection's stream (attached since the session was bound). */
  protected async request(session: SessionRecord, req: JsonRpcRequest, raw: string): Promise<void> {
    // Frames read before the connection went away are still dispatched; once its streams were
    // released, the request holds its own attachment until it is answered.
    const hold =
      this.#closed && this.#releases.length === 0
        ? this.deps.router.attach(session.id, this.streamId, this)
        : undefined;
    let d: Dispatched;
    try {
      d = await this.deps.core.dispatch(session, req, {
        id: this.streamId,
        raw,
        sink: this,
        caller: this.#caller ?? undefined,
      });
    } catch (err) {
      hold?.();
      this.refuse(req.id, err);
      return;
    }
    if (hold) void d.done.finally(hold);
    // The request stays outstanding until its answer reached this connection (or was parked).
    this.#handOff?.(
      d.accepted.then(
        () => d.done,
        (err: unknown) => {
          this.refuse(req.id, err);
          return d.done;
        },
      ),
    );
  }

  async #resume(req: JsonRpcRequest): Promise<void> {
    if (this.#closed) return;
    const p = ResumeParamsSchema.safeParse(req.params ?? {});
    if (!p.success)
      return this.refuse(
        req.id,
        new McpError(
          ErrorCode.InvalidParams,
          `Invalid params: ${p.error.issues[0]?.message ?? "malformed"}`,
        ),
      );
    if (this.#session)
      return this.refuse(
        req.id,
        new McpError(ErrorCode.InvalidRequest, `${RESUME_METHOD} must come before initialize`),
      );
    if (this.#principal === null) {
      const caller = await this.#opts.authenticate(p.data.authorization);
      if (isAuthFailure(caller as Caller)) {
        this.refuse(
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
      return this.refuse(
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
    const session = await this.deps.core.sessions.get(p.data.sessionId, this.#principal);
    if (!session)
      return this.refuse(
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
      void this.deps.router.resume(session.id, pos.stream, pos.token, this).then(
        (release) => (this.#closed ? release() : this.#releases.push(release)),
        (err: unknown) => this.deps.log.warn({ err }, "resume failed"),
      );
    }
  }

  #bind(session: SessionRecord): void {
    this.#session = session;
    this.#timeouts?.bound();
    if (this.#closed) return;
    this.#releases.push(this.deps.router.attach(session.id, this.streamId, this));
    // Socket clients have no GET stream: session-level messages (resource updates, list
    // changes) come on the connection.
    this.#releases.push(this.deps.router.attach(session.id, STANDALONE_STREAM, this));
  }
}

/** The `_meta` of a notification that only needs the connection's scope (a cancel). */
const NO_META: ModernMeta = {
  protocolVersion: "2026-07-28",
  clientCapabilities: {},
  clientInfo: undefined,
  logLevel: undefined,
  traceparent: undefined,
  tracestate: undefined,
};

function idKey(id: unknown): string {
  return `${typeof id}:${String(id)}`;
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
