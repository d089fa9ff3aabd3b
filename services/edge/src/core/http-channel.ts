import {
  DEFAULT_HTTP_PROTOCOL_VERSION,
  ErrorCode,
  McpError,
  NAMED_METHODS,
  allowsBatching,
  classifyMessage,
  decodeHeaderValue,
  declaredVersion,
  headerMatchesValue,
  headerMismatch,
  headerParams,
  isSupportedProtocolVersion,
  modernMeta,
  salvageId,
  type AnyProtocolVersion,
  type ClassifiedMessage,
  type JsonRpcRequest,
  type ModernMeta,
  type RequestId,
} from "@mcpq/protocol";
import {
  STANDALONE_STREAM,
  idGenerator,
  parseEventId,
  primingEventId,
  unretainedAnswerEventId,
} from "@mcpq/bus";
import type { Caller } from "./auth.js";
import { overMessageLimit } from "./broker-limits.js";
import { Channel, type ChannelDeps } from "./channel.js";
import type { TargetView } from "./policy.js";
import {
  errorMessage,
  isUnexpected,
  modernStatus,
  refusal,
  statusFor,
  wireError,
  type HttpRefusal,
} from "./http-errors.js";
import { errorCodeOf, shapeModernAnswer, type AnswerShape } from "./modern-answers.js";
import type { OutboundMessage, StreamSink } from "./outbound.js";
import type { Dispatched } from "./session-core.js";
import type { SessionRecord } from "./session-store.js";

const SESSION_HEADER = "mcp-session-id";

/**
 * An SSE stream as the HTTP transport frames it (SseStream): messages sent before `open()` are
 * queued; `finish` sends the last message and ends the stream.
 */
export interface HttpStream extends StreamSink {
  /**
   * Writes the status line and headers, a priming event when `primingEventId` is given, and what
   * was queued. `answerDue`: a request's stream whose response is expected soon; the transport
   * may hold the head briefly so both leave in one write (MCPQ_SSE_HOLD_MS).
   */
  open(headers: Record<string, string>, primingEventId?: string, answerDue?: boolean): void;
  finish(msg: OutboundMessage): void;
  end(): void;
  /** Ends the connection after telling the client to reconnect in `retryMs` (the transport's default when undefined). */
  closeWithRetry(retryMs: number | undefined): void;
  /** Runs `cb` once when the stream ends for any reason (at once if it has). */
  onClosed(cb: () => void): void;
}

/** The port of one HTTP exchange (a POST, GET or DELETE of Streamable HTTP) the transport gives its channel. */
export interface HttpExchange {
  /** The authenticated principal (the transport checked Host, Origin and the bearer token). */
  principal: string;
  /** Who it is (its credential's principal, quota key, scopes, claims). */
  caller: Caller;
  /** The virtual server the exchange came through (`/mcp/<name>`): its subset of the catalog. */
  view?: TargetView | undefined;
  /** Longest single JSON-RPC message accepted (bytes; the broker's limit; 0 = none). */
  maxMessageBytes: number;
  /** Header values the channel reads: `mcp-session-id`, `mcp-protocol-version`, `last-event-id`. */
  header(name: string): string | string[] | undefined;
  /** What the client accepts: an SSE stream, a JSON body. */
  accepts: { sse: boolean; json: boolean };
  /** A complete answer without a stream: status, headers and an optional JSON body. */
  answer(status: number, headers: Record<string, string>, json?: string): void;
  /** The exchange's SSE stream (created on first use; it queues messages until opened). */
  stream(): HttpStream;
  /**
   * Runs `cb` if the client goes away before the exchange was answered in full (the connection
   * closed first); returns the unsubscribe.
   */
  onAbort(cb: () => void): () => void;
}

/** Stream ids are hex (no "_", the event-id separator), unique per edge process and prefix. */
const nextStreamId = idGenerator("hex");

function supportsPriming(v: AnyProtocolVersion): boolean {
  return v >= "2025-11-25";
}

/**
 * Resolves the session of a Streamable HTTP exchange that is not an initialize, or the refusal
 * the spec prescribes: 400 without `Mcp-Session-Id` or with an unsupported
 * `MCP-Protocol-Version`, 404 for an unknown (or another principal's) session.
 */
async function sessionOf(deps: ChannelDeps, x: HttpExchange): Promise<SessionRecord | HttpRefusal> {
  const id = x.header(SESSION_HEADER);
  if (typeof id !== "string" || id === "") {
    return refusal(400, ErrorCode.InvalidRequest, "Bad Request: Mcp-Session-Id header is required");
  }
  const header = x.header("mcp-protocol-version");
  const version = header === undefined ? DEFAULT_HTTP_PROTOCOL_VERSION : header;
  if (typeof version !== "string" || !isSupportedProtocolVersion(version)) {
    return refusal(
      400,
      ErrorCode.InvalidRequest,
      `Bad Request: unsupported MCP-Protocol-Version ${String(version)}`,
    );
  }
  const session = await deps.core.sessions.get(id, x.principal);
  return session ?? refusal(404, -32001, "Session not found");
}

function refuseWith(x: HttpExchange, r: HttpRefusal): void {
  x.answer(r.status, r.headers, JSON.stringify(r.body));
}

/**
 * GET and DELETE of a stateless-era client (no Mcp-Session-Id, a 2026-07-28 version header):
 * 405, there are no GET streams or sessions to end in that era (subscriptions/listen replaces the GET).
 */
function statelessOnlyPost(method: string): HttpRefusal {
  return refusal(
    405,
    ErrorCode.MethodNotFound,
    `Method Not Allowed: protocol 2026-07-28 has no HTTP ${method}; POST requests (subscriptions/listen replaces the GET stream)`,
    { allow: "POST" },
  );
}

/** A GET that resumes a request stream after its response: there is nothing more to send on it. */
function streamEnded(lastEventId: string): HttpRefusal {
  return refusal(
    405,
    ErrorCode.InvalidRequest,
    "Method Not Allowed: the stream of this Last-Event-ID has ended with its response; nothing follows it",
    { allow: "POST, DELETE" },
    { lastEventId },
  );
}

/** Longest header or body value quoted back in a -32020 message. */
const QUOTE_MAX = 128;
const quote = (v: string) => (v.length > QUOTE_MAX ? `${v.slice(0, QUOTE_MAX)}...` : v);

/**
 * Streamable HTTP request metadata (2026-07-28): `MCP-Protocol-Version` must equal the
 * declared `_meta` version (checked before the version itself), `Mcp-Method` the method, and
 * `Mcp-Name` (`=?base64?…?=` decoded) the body's `params.name` / `params.uri` of tools/call,
 * prompts/get and resources/read. Anything missing or different is -32020 (HTTP 400).
 */
function checkedMeta(
  x: HttpExchange,
  req: JsonRpcRequest,
  inputSchemaOf: (tool: string) => unknown,
): ModernMeta {
  const version = x.header("mcp-protocol-version");
  const meta = modernMeta(req.params, (declared) => {
    if (typeof version !== "string")
      throw headerMismatch("MCP-Protocol-Version header is required");
    if (version !== declared) {
      throw headerMismatch(
        `MCP-Protocol-Version header value '${quote(version)}' does not match body value '${quote(declared)}'`,
      );
    }
  });
  const method = x.header("mcp-method");
  if (typeof method !== "string") throw headerMismatch("Mcp-Method header is required");
  if (method !== req.method)
    throw headerMismatch(
      `Mcp-Method header value '${quote(method)}' does not match body value '${quote(req.method)}'`,
    );
  const field = NAMED_METHODS[req.method];
  const body = field ? req.params?.[field] : undefined;
  if (typeof body === "string") {
    const raw = x.header("mcp-name");
    if (typeof raw !== "string") throw headerMismatch("Mcp-Name header is required");
    const name = decodeHeaderValue(raw.trim());
    if (name === null) throw headerMismatch("Mcp-Name header value is not valid =?base64?…?= text");
    if (name !== body)
      throw headerMismatch(
        `Mcp-Name header value '${quote(name)}' does not match body value '${quote(body)}'`,
      );
  }
  if (req.method === "tools/call" && typeof body === "string")
    checkParamHeaders(x, req, inputSchemaOf(body));
  return meta;
}

/**
 * `x-mcp-header` parameters of the called tool (SEP-2243): a value present in `arguments` must
 * come with its `Mcp-Param-<name>` header, whose (base64-decoded) text must match it; a
 * malformed `=?base64?…?=` value is refused too. All -32020 (HTTP 400).
 */
function checkParamHeaders(x: HttpExchange, req: JsonRpcRequest, inputSchema: unknown): void {
  const args = req.params?.["arguments"];
  for (const p of headerParams(inputSchema)) {
    let value: unknown = args;
    for (const k of p.path)
      value =
        typeof value === "object" && value !== null
          ? (value as Record<string, unknown>)[k]
          : undefined;
    if (value === undefined || value === null) continue;
    const name = `Mcp-Param-${p.header}`;
    const raw = x.header(name.toLowerCase());
    if (typeof raw !== "string")
      throw headerMismatch(`${name} header is required (arguments.${p.path.join(".")} is set)`);
    const text = decodeHeaderValue(raw.trim());
    if (text === null) throw headerMismatch(`${name} header value is not valid =?base64?…?= text`);
    if (!headerMatchesValue(text, value))
      throw headerMismatch(
        `${name} header value '${quote(text)}' does not match body value '${quote(String(value))}'`,
      );
  }
}

/**
 * Whether a Streamable HTTP message is of the stateless era: never with `Mcp-Session-Id` (a
 * legacy session), never a legacy `initialize`; otherwise when `MCP-Protocol-Version` or the
 * `_meta` version is not a legacy revision, or the method exists only in the new era.
 */
function isModernExchange(x: Pick<HttpExchange, "header">, msg?: ClassifiedMessage): boolean {
  const sid = x.header(SESSION_HEADER);
  if (typeof sid === "string" && sid !== "") return false;
  const header = x.header("mcp-protocol-version");
  if (typeof header === "string" && !isSupportedProtocolVersion(header)) return true;
  if (!msg || msg.kind === "response") return false;
  const declared = declaredVersion(msg.message.params);
  if (declared !== undefined) return !isSupportedProtocolVersion(declared);
  return (
    msg.kind === "request" &&
    (msg.message.method === "server/discover" || msg.message.method === "subscriptions/listen")
  );
}

/**
 * The channel of one Streamable HTTP POST: one message (or, for 2025-03-26 and older, a batch)
 * through the pipeline, answered as JSON or on the POST's SSE stream. The stream is the
 * request's stream: attached to the router before dispatch, it receives the request's related
 * messages and its response and ends with the response (or when the request ends unanswered:
 * cancelled). A refusal before the stream opens is an HTTP status (503/429 with Retry-After,
 * 400, 404); errors after acceptance are JSON-RPC error responses.
 *
 * A stateless-era (2026-07-28) request has no session: its `_meta` and headers are checked,
 * it runs on a synthetic session, its answer is JSON unless related messages come first (then
 * SSE, without event ids: not resumable), completed with `resultType` and serverInfo, and the
 * client closing the connection before the answer cancels it.
 */
export class HttpPostChannel extends Channel {
  /** The answer sink of this exchange's stateless-era request, once dispatching. */
  #modernSink: ModernAnswerSink | undefined;
  #modern = false;
  /** The method of the message being handled, for telemetry of a refusal. */
  #method: string | undefined;

  constructor(
    deps: ChannelDeps,
    private readonly x: HttpExchange,
    /** Telemetry of an error answered before dispatch (the method when it is known). */
    private readonly onError: (err: unknown, method: string | undefined) => void,
  ) {
    super(deps);
  }

  /** Runs the POST body through the pipeline; settles once the exchange is answered. */
  run(body: string): Promise<void> {
    return this.inbound(body);
  }

  protected principal(): string {
    return this.x.principal;
  }

  /** 413 for one message the broker could not carry (refused at the door, not after a failed publish). */
  protected override oversize(text: string): boolean {
    if (!overMessageLimit(text, this.x.maxMessageBytes)) return false;
    refuseWith(
      this.x,
      refusal(
        413,
        ErrorCode.InvalidRequest,
        "Payload Too Large",
        {},
        { maxBytes: this.x.maxMessageBytes },
      ),
    );
    return true;
  }

  protected refuse(id: RequestId | null, err: unknown, status?: number): void {
    const wire = wireError(err);
    if (isUnexpected(err)) this.deps.log.error({ err }, "unexpected error before dispatch");
    const mapped = statusFor(err);
    this.onError(err, this.#method);
    const { json } = errorMessage(id, err);
    const code = status ?? (this.#modern ? modernStatus(wire.code, mapped.status) : mapped.status);
    if (this.#modernSink) return this.#modernSink.refuse(code, mapped.headers, json);
    this.x.answer(code, mapped.headers, json);
  }

  /** The request's caller and virtual server, for the core's policy checks. */
  #who(): { caller: Caller; view?: TargetView } {
    return this.x.view ? { caller: this.x.caller, view: this.x.view } : { caller: this.x.caller };
  }

  protected override modern(msg: ClassifiedMessage): boolean {
    if (msg.kind !== "response") this.#method = msg.message.method;
    return (this.#modern = isModernExchange(this.x, msg));
  }

  protected override modernMeta(req: JsonRpcRequest): ModernMeta {
    return checkedMeta(this.x, req, (tool) => this.deps.core.toolInputSchema(tool));
  }

  protected async modernRequest(
    principal: string,
    meta: ModernMeta,
    req: JsonRpcRequest,
    raw: string,
  ): Promise<void> {
    const { core, router } = this.deps;
    if (req.method === "subscriptions/listen" && !this.x.accepts.sse) {
      // Its notifications can only go out on an SSE stream.
      return this.refuse(
        req.id,
        new McpError(
          ErrorCode.InvalidRequest,
          "Not Acceptable: subscriptions/listen needs Accept: text/event-stream",
        ),
        406,
      );
    }
    const streamId = nextStreamId();
    const session = core.modernSession(principal, meta, streamId, this.x.caller.quotaKey);
    const uri = req.method === "resources/read" ? req.params?.["uri"] : undefined;
    const shape: AnswerShape = { serverInfo: core.serverInfo };
    if (typeof uri === "string") shape.readHint = core.readHint(uri);
    const sink = (this.#modernSink = new ModernAnswerSink(this.x, shape));
    const release = router.attach(core.modernOutbound, streamId, sink);
    // Closing the request's connection is its cancellation in this era (no notifications/cancelled on HTTP).
    const stopWatching = this.x.onAbort(() => {
      if (!sink.answered) core.cancel(session, req.id, "the client closed the request's stream");
    });
    try {
      const d = await core.dispatch(session, req, {
        id: streamId,
        raw,
        sink,
        outboundSession: core.modernOutbound,
        ...this.#who(),
      });
      await d.accepted.catch((err: unknown) => this.refuse(req.id, err));
      await d.done;
    } catch (err) {
      this.refuse(req.id, err);
    } finally {
      stopWatching();
      sink.end();
      release();
    }
  }

  protected async initialize(principal: string, req: JsonRpcRequest): Promise<void> {
    try {
      const { session, json } = await this.deps.core.initialize(principal, req, this.x.caller);
      this.x.answer(200, { [SESSION_HEADER]: session.id }, json);
    } catch (err) {
      this.refuse(req.id, err);
    }
  }

  protected async session(
    _principal: string,
    msg: ClassifiedMessage,
  ): Promise<SessionRecord | null> {
    let s: SessionRecord | HttpRefusal;
    try {
      s = await sessionOf(this.deps, this.x);
    } catch (err) {
      // The broker could not be asked (a -32010 refusal while it is down): answered and counted here.
      this.refuse(msg.kind === "request" ? msg.message.id : null, err);
      return null;
    }
    if ("status" in s) {
      refuseWith(this.x, s);
      return null;
    }
    return s;
  }

  protected override accepted(): void {
    this.x.answer(202, {});
  }

  protected async request(session: SessionRecord, req: JsonRpcRequest, raw: string): Promise<void> {
    const streamId = nextStreamId();
    if (!this.x.accepts.sse) {
      // JSON-only client: no related messages can be delivered; the response is the body.
      const body = new ResponseBody();
      const release = this.deps.router.attach(session.id, streamId, body);
      try {
        const d = await this.deps.core.dispatch(session, req, {
          id: streamId,
          raw,
          sink: body,
          ...this.#who(),
        });
        await d.accepted; // a broker refusal is a 503/429, not a 200 with an error inside
        await d.done;
      } catch (err) {
        return this.refuse(req.id, err);
      } finally {
        release();
      }
      const out = body.responses[0];
      return out ? this.x.answer(200, {}, out.json) : this.x.answer(204, {});
    }
    const sse = this.x.stream();
    const sink = requestStreamSink(sse, streamId);
    const release = this.deps.router.attach(session.id, streamId, sink);
    let d: Dispatched;
    try {
      d = await this.deps.core.dispatch(session, req, { id: streamId, raw, sink, ...this.#who() });
      await d.accepted; // a broker refusal is a 503/429 before the stream opens
    } catch (err) {
      release();
      return this.refuse(req.id, err);
    }
    sse.open(
      { [SESSION_HEADER]: session.id },
      supportsPriming(session.protocolVersion) ? primingEventId(streamId) : undefined,
      true,
    );
    // The response ends the stream when it comes; a request that ends unanswered (cancelled, or
    // an answer only parked for a resume) ends it here.
    await d.done;
    sse.end();
    release();
  }

  protected async batch(items: unknown[]): Promise<void> {
    if (items.length === 0)
      return this.refuse(
        null,
        new McpError(ErrorCode.InvalidRequest, "Invalid Request: empty batch"),
      );
    const s = await sessionOf(this.deps, this.x);
    if ("status" in s) return refuseWith(this.x, s);
    const session = s;
    if (!allowsBatching(session.protocolVersion)) {
      return this.refuse(
        null,
        new McpError(
          ErrorCode.InvalidRequest,
          `Invalid Request: JSON-RPC batches are not supported in protocol version ${session.protocolVersion}`,
        ),
      );
    }
    const streamId = nextStreamId();
    const sse = this.x.accepts.sse ? this.x.stream() : undefined;
    const body = sse ? undefined : new ResponseBody();
    const sink: StreamSink = sse ?? body!;
    const release = this.deps.router.attach(session.id, streamId, sink);
    // The order of the requests in the batch: a JSON body lists the answers in it.
    const order: (RequestId | null)[] = [];
    const pending: Promise<void>[] = [];
    const answerNow = (id: RequestId | null, err: unknown) => {
      sink.send(errorMessage(id, err));
    };
    for (const item of items) {
      let m: ClassifiedMessage;
      try {
        if (overMessageLimit(JSON.stringify(item), this.x.maxMessageBytes)) {
          throw new McpError(
            ErrorCode.InvalidRequest,
            `Invalid Request: message larger than ${this.x.maxMessageBytes} bytes`,
          );
        }
        m = classifyMessage(item);
      } catch (err) {
        order.push(salvageId(item));
        answerNow(salvageId(item), err);
        continue;
      }
      if (m.kind === "notification") await this.deps.core.notification(session, m.message);
      else if (m.kind === "response") this.deps.core.clientResponse(session, m.message);
      else if (m.message.method === "initialize") {
        order.push(m.message.id);
        answerNow(
          m.message.id,
          new McpError(ErrorCode.InvalidRequest, "initialize must not be part of a batch"),
        );
      } else {
        const id = m.message.id;
        order.push(id);
        pending.push(
          this.deps.core.dispatch(session, m.message, { id: streamId, sink, ...this.#who() }).then(
            (d) =>
              d.accepted.then(
                () => d.done,
                (err: unknown) => {
                  answerNow(id, err);
                  return d.done;
                },
              ),
            (err: unknown) => answerNow(id, err),
          ),
        );
      }
    }
    if (order.length === 0) {
      release();
      return this.x.answer(202, {});
    }
    if (body) {
      await Promise.all(pending);
      release();
      return this.x.answer(200, {}, `[${body.inOrder(order).join(",")}]`);
    }
    sse!.open({ [SESSION_HEADER]: session.id });
    await Promise.all(pending);
    sse!.end();
    release();
  }
}

/**
 * The sink of a stateless-era POST: completes every answer (`shapeModernAnswer`); the response
 * is the exchange's JSON body (its status from the error code: 404, 400, ...) unless related
 * messages came first, which open an SSE stream (no event ids) that the response then ends.
 * Server-to-client requests never go out: in this era they are MRTR input requests inside a result.
 */
class ModernAnswerSink implements StreamSink {
  #stream: HttpStream | undefined;
  #answered = false;

  constructor(
    private readonly x: HttpExchange,
    private readonly shape: AnswerShape,
  ) {}

  get answered(): boolean {
    return this.#answered;
  }

  get closed(): boolean {
    return this.#answered || (this.#stream?.closed ?? false);
  }

  send(msg: OutboundMessage): void {
    if (this.#answered || msg.kind === "request" || msg.kind === "control") return;
    const out = shapeModernAnswer(msg, this.shape);
    if (out.kind === "response") {
      this.#answered = true;
      if (!this.#stream && !this.x.accepts.json) {
        this.#stream = this.x.stream();
        this.#stream.open({});
      }
      if (this.#stream) return this.#stream.finish(out);
      const code = errorCodeOf(out.json);
      return this.x.answer(code === undefined ? 200 : modernStatus(code, 200), {}, out.json);
    }
    if (!this.x.accepts.sse) return;
    if (!this.#stream) {
      this.#stream = this.x.stream();
      this.#stream.open({});
    }
    this.#stream.send(out);
  }

  ready(): Promise<void> {
    return this.#stream?.ready?.() ?? Promise.resolve();
  }

  /** A refusal: the HTTP answer while nothing went out yet, else the stream's last message. */
  refuse(status: number, headers: Record<string, string>, json: string): void {
    if (this.#answered) return;
    this.#answered = true;
    if (this.#stream)
      return this.#stream.finish({
        eventId: undefined,
        kind: "response",
        requestId: undefined,
        json,
      });
    this.x.answer(status, headers, json);
  }

  end(): void {
    this.#stream?.end();
  }
}

/**
 * A Streamable HTTP GET: the session's standalone SSE stream (server messages unrelated to a
 * request), or with `Last-Event-ID` a resumed stream replayed from MCPQ_OUT on any edge.
 */
export async function httpGet(deps: ChannelDeps, x: HttpExchange): Promise<void> {
  if (isModernExchange(x)) return refuseWith(x, statelessOnlyPost("GET"));
  const s = await sessionOf(deps, x);
  if ("status" in s) return refuseWith(x, s);
  const session = s;
  const lastEventId = x.header("last-event-id");
  const resumeFrom = typeof lastEventId === "string" ? parseEventId(lastEventId) : null;
  if (typeof lastEventId === "string" && !resumeFrom) {
    return refuseWith(
      x,
      refusal(400, ErrorCode.InvalidRequest, "Bad Request: malformed Last-Event-ID"),
    );
  }
  const stream = resumeFrom?.stream ?? STANDALONE_STREAM;
  if (
    typeof lastEventId === "string" &&
    resumeFrom &&
    stream !== STANDALONE_STREAM &&
    (await deps.router.ended(
      session.id,
      stream,
      resumeFrom.token,
      !allowsBatching(session.protocolVersion),
    ))
  ) {
    // The client has the stream's response. SDK 1.32.2 resumes a POST stream after an error
    // response as if none had come; held open, each such GET would stay until the session ends
    // (a long-lived client would reach MCPQ_MAX_CONNECTIONS_PER_CLIENT). A 405 ends it quietly.
    return refuseWith(x, streamEnded(lastEventId));
  }
  const sse = x.stream();
  let priming: string | undefined;
  if (!resumeFrom && supportsPriming(session.protocolVersion)) {
    // Prime with the newest retained event so a later resume replays only what follows it.
    priming =
      (await deps.router.lastEventId(session.id, STANDALONE_STREAM)) ??
      primingEventId(STANDALONE_STREAM);
  }
  sse.open({ [SESSION_HEADER]: session.id }, priming);
  // A resumed request stream ends with its response; the standalone stream stays open.
  const sink: StreamSink =
    stream === STANDALONE_STREAM
      ? sse
      : {
          get closed() {
            return sse.closed;
          },
          send(m: OutboundMessage) {
            sse.send(m);
            if (m.kind === "response") sse.end();
          },
          // The replay is paced by the reader (see SendBuffer).
          ready: () => sse.ready?.() ?? Promise.resolve(),
          // A resumed stream is resumable again: the worker may close it once more (polling).
          reconnect: (retryMs: number | undefined) => sse.closeWithRetry(retryMs),
        };
  const release = resumeFrom
    ? await deps.router.resume(session.id, stream, resumeFrom.token, sink)
    : deps.router.attach(session.id, stream, sink);
  const stopKeepAlive = deps.core.sessions.keepAlive(session);
  // The handler returns now: an edge holds many such streams, and each suspended handler chain
  // kept its frames and promises alive for the stream's whole life.
  sse.onClosed(() => {
    stopKeepAlive();
    release();
  });
}

/** A Streamable HTTP DELETE: ends the session everywhere (200). */
export async function httpDelete(deps: ChannelDeps, x: HttpExchange): Promise<void> {
  if (isModernExchange(x)) return refuseWith(x, statelessOnlyPost("DELETE"));
  const s = await sessionOf(deps, x);
  if ("status" in s) return refuseWith(x, s);
  await deps.core.end(s);
  x.answer(200, {});
}

/**
 * The reader of a request's POST stream: the response is the request's answer and the
 * stream's last message.
 */
function requestStreamSink(sse: HttpStream, streamId: string): StreamSink {
  return {
    get closed() {
      return sse.closed;
    },
    send(msg) {
      if (msg.kind !== "response") return sse.send(msg);
      // A response the edge did not retain (a local method's answer; a routed request's answered
      // while NATS could not take the edge's claim) gets an id as well: a client that resumes
      // after it is told the stream has ended, rather than replayed the worker's answer too.
      sse.finish(msg.eventId ? msg : { ...msg, eventId: unretainedAnswerEventId(streamId) });
    },
    ready: () => sse.ready?.() ?? Promise.resolve(),
    reconnect: (retryMs) => sse.reconnect?.(retryMs),
  };
}

/** The sink of a JSON-answered POST: keeps the responses (the body), drops related messages. */
class ResponseBody implements StreamSink {
  readonly responses: OutboundMessage[] = [];
  readonly closed = false;

  send(msg: OutboundMessage): void {
    if (msg.kind === "response") this.responses.push(msg);
  }

  /** The responses' JSON in the order of `ids` (a batch's request order). */
  inOrder(ids: readonly (RequestId | null)[]): string[] {
    const byId = new Map<string, string>();
    for (const r of this.responses) {
      const id = (JSON.parse(r.json) as { id?: unknown }).id;
      byId.set(JSON.stringify(id ?? null), r.json);
    }
    return ids.flatMap((id) => byId.get(JSON.stringify(id ?? null)) ?? []);
  }
}
