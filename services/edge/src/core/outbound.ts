import {
  ANSWERED_CONTROL,
  H,
  PRIMING_TOKEN,
  STREAMS,
  subjects,
  Correlator,
  answeredHeaders,
  decodeControl,
  decodeOutboundHeaders,
  eventId,
  idGenerator,
  outboundHeaders,
  isResponseToken,
  responseEventId,
  UNRETAINED_ANSWER_TOKEN,
  type Bus,
  type Msg,
  type OutboundKind,
  type Subscription,
} from "@mcpq/bus";
import { silentLogger, type Logger } from "@mcpq/protocol";

/** One server->client message as delivered to a transport. */
export interface OutboundMessage {
  /** Unique across the session's streams; `<stream>_<token>`. Becomes the SSE `id`. */
  eventId: string | undefined;
  kind: OutboundKind;
  /** Internal id of the request this message belongs to. */
  requestId: string | undefined;
  /** On an edge's own retained answer (a replay): the internal id of the request it answers. */
  answers?: string | undefined;
  json: string;
}

/**
 * Where a stream's messages go: every message of the stream, the response included, in broker
 * order (the router delivers what comes through `mcpq.out.<session>.<stream>`; the core hands
 * its own answers, which never went through the broker, to the same sink).
 */
export interface StreamSink {
  send(msg: OutboundMessage): void;
  /** True once the sink can take no more (closed or cut off as a slow consumer). */
  readonly closed: boolean;
  /**
   * A worker asked for the client to reconnect (`ctx.closeStream()`, an outbound `control`
   * message): end this connection after telling the client to come back in `retryMs` (the
   * transport's default when undefined); the stream stays resumable. Sinks that cannot resume
   * leave it out and the request simply continues on them. Control messages never reach `send`.
   */
  reconnect?(retryMs: number | undefined): void;
  /** Resolves when the sink has room again; a replay waits on it between messages (flow control). */
  ready?(): Promise<void>;
}

interface SessionSub {
  /** Set right after the entry is created (its callback routes into the entry). */
  sub: Subscription | undefined;
  refs: number;
  /**
   * Each stream's current reader and how many attachments hold it (a batch attaches one sink
   * per request); a later attachment of another sink replaces the reader.
   */
  readers: Map<string, { sink: StreamSink; n: number }>;
  linger: NodeJS.Timeout | undefined;
  /** Requests an edge answered itself (see `claim`), created on first use. */
  answered?: AnsweredIds;
  /** Claims this edge has in flight: worker answers for them wait here until decided. */
  claiming?: Map<string, { stream: string; msg: OutboundMessage }[]>;
  /** Event id -> waiter: answers this edge published (`publishAnswer`), until they come back here. */
  publishing?: Map<string, () => void>;
}

/** How a claim on a request's response slot ended (see `OutboundRouter.claim`). */
export type ClaimOutcome = "won" | "lost" | "unknown";

export interface OutboundRouterOptions {
  bus: Bus;
  /** Requests this edge may have in flight at once (the correlator's cap; MCPQ_MAX_PENDING_REQUESTS). */
  maxPending: number;
  log?: Logger;
  /** How long a session's subscription outlives its last use (ms). Default 30 s. */
  lingerMs?: number;
  /**
   * Request ids per session remembered as answered by an edge, so a worker's late answer to
   * them is dropped live (oldest forgotten first). Default 1024.
   */
  maxAnsweredPerSession?: number;
  /** A worker's answer dropped because an edge had already answered its request. */
  onLateResponse?: () => void;
}

/** Upper bound on publishing a claim; past it the edge answers without one. */
const CLAIM_TIMEOUT_MS = 2_000;
/**
 * Upper bound on waiting for an answer the edge published to come back on the session's
 * subscription; past it the answer stays retained for a resume.
 */
const ROUTE_TIMEOUT_MS = 2_000;
const nextClaimToken = idGenerator();
const nextAnswerToken = idGenerator();

/**
 * Delivers messages published on `mcpq.out.<session>.<stream>` to local streams. One NATS
 * subscription per session with local activity (lingering briefly after the last use, so a busy
 * session does not subscribe per request). Every message of a stream, responses included, goes
 * to the stream's sink in broker order; a response also tells the correlator that its request
 * is answered (which stops the request's deadline timer: the correlator carries no data).
 * Anything without a local reader stays in the MCPQ_OUT stream for resumption on any edge.
 */
export class OutboundRouter {
  readonly #sessions = new Map<string, SessionSub>();
  readonly correlator: Correlator<OutboundMessage>;

  readonly #maxAnswered: number;
  readonly #onLateResponse: (() => void) | undefined;

  readonly #bus: Bus;
  readonly #log: Logger;
  readonly #lingerMs: number;

  constructor(opts: OutboundRouterOptions) {
    this.#bus = opts.bus;
    this.#log = opts.log ?? silentLogger;
    this.#lingerMs = opts.lingerMs ?? 30_000;
    this.correlator = new Correlator<OutboundMessage>(opts.maxPending);
    this.#maxAnswered = Math.max(1, opts.maxAnsweredPerSession ?? 1024);
    this.#onLateResponse = opts.onLateResponse;
  }

  get subscribedSessions(): number {
    return this.#sessions.size;
  }

  /**
   * Makes `sink` the reader of `stream` of `session` (and this edge a reader of the session's
   * outbound subject) until the returned release runs. A channel attaches each stream it
   * dispatches on for as long as requests on it may still be answered.
   */
  attach(session: string, stream: string, sink: StreamSink): () => void {
    return this.#hold(session, stream, sink);
  }

  /** The newest retained event id of `stream` (a priming id a later resume replays after); undefined when none. */
  async lastEventId(session: string, stream: string): Promise<string | undefined> {
    const last = await this.#lastRetained(session, stream);
    return last?.header.get(H.event) || undefined;
  }

  /** The newest retained message of `stream` of `session`; null when none (or NATS cannot say). */
  #lastRetained(session: string, stream: string): Promise<StoredMsg | null> {
    return this.#bus.jsm.streams
      .getMessage(STREAMS.outbound, { last_by_subj: subjects.outbound(session, stream) })
      .catch(() => null);
  }

  /**
   * Whether a POST stream resumed after `token` has nothing more to send, ever: the token is an
   * unretained answer's, or (`oneRequest`: the session's protocol has no JSON-RPC batches, whose
   * streams carry several responses) a response's (`responseEventId`), or, for event ids minted
   * without that mark (workers of earlier versions), the stream's last retained message is its
   * response and carries this token.
   */
  async ended(
    session: string,
    stream: string,
    token: string,
    oneRequest: boolean,
  ): Promise<boolean> {
    if (token === UNRETAINED_ANSWER_TOKEN) return true;
    if (!oneRequest || token === PRIMING_TOKEN) return false;
    if (isResponseToken(token)) return true;
    const last = await this.#lastRetained(session, stream);
    if (!last) return false;
    const msg = decodeHeaders(last.header, "");
    return msg.kind === "response" && msg.eventId === eventId(stream, token);
  }

  #hold(session: string, stream?: string, sink?: StreamSink): () => void {
    let s = this.#sessions.get(session);
    if (!s) {
      const entry: SessionSub = {
        sub: undefined,
        refs: 0,
        readers: new Map(),
        linger: undefined,
      };
      entry.sub = this.#bus.nc.subscribe(subjects.sessionOutbound(session), {
        callback: (err, m) => {
          if (err) this.#log.warn({ err }, "outbound subscription error");
          else this.#route(entry, m);
        },
      });
      s = entry;
      this.#sessions.set(session, s);
    }
    clearTimeout(s.linger);
    s.linger = undefined;
    s.refs++;
    if (stream && sink) {
      const held = s.readers.get(stream);
      if (held?.sink === sink) held.n++;
      else s.readers.set(stream, { sink, n: 1 });
    }
    const entry = s;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      if (stream && sink) {
        // The sink stays while another attachment (e.g. another request of the same batch) holds it.
        const held = entry.readers.get(stream);
        if (held?.sink === sink && --held.n === 0) entry.readers.delete(stream);
      }
      if (--entry.refs === 0) {
        entry.linger = setTimeout(() => {
          if (entry.refs === 0 && this.#sessions.get(session) === entry) {
            entry.sub?.unsubscribe();
            this.#sessions.delete(session);
          }
        }, this.#lingerMs);
        entry.linger.unref();
      }
    };
  }

  /** Sends a message to the given stream of every session with a local reader (list_changed). */
  broadcastLocal(stream: string, json: string): void {
    for (const s of this.#sessions.values()) {
      const sink = s.readers.get(stream)?.sink;
      if (sink && !sink.closed)
        sink.send({ eventId: undefined, kind: "notification", requestId: undefined, json });
    }
  }

  /** Drops a session's subscription at once (session ended). */
  forget(session: string): void {
    const s = this.#sessions.get(session);
    if (!s) return;
    clearTimeout(s.linger);
    s.sub?.unsubscribe();
    this.#sessions.delete(session);
  }

  /**
   * Claims the response slot of `requestId` (a request routed with `stream` of `session`)
   * because this edge answers the request itself: its deadline passed, it was cancelled, or its
   * publish failed in a way that may still have queued it. The claim is a control message on the
   * stream with the request's response message id (`responseMsgId`), so MCPQ_OUT keeps only the
   * first of the claim and a worker's answer:
   *
   * - "won": the claim came first. The edge's answer (if it sends one) is the request's only
   *   response: a worker's later answer is not retained, and every edge reading the stream live
   *   drops it (counted by `onLateResponse`).
   * - "lost": a worker's answer was retained first; it is the response and reaches the reader
   *   (live or on a replay), so the edge must not send its own.
   * - "unknown": the claim could not be published (NATS unavailable); this edge drops later
   *   answers it sees for the request, but cannot vouch for other edges or replays.
   *
   * Worker answers this edge receives while the claim is in flight wait for its outcome.
   */
  async claim(
    session: string,
    stream: string,
    requestId: string,
    opts: { deliverRetained?: boolean } = {},
  ): Promise<ClaimOutcome> {
    const release = this.#hold(session);
    const s = this.#sessions.get(session)!;
    const held: { stream: string; msg: OutboundMessage }[] = [];
    (s.claiming ??= new Map()).set(requestId, held);
    const seenBefore = s.answered?.get(requestId) === true;
    let outcome: ClaimOutcome;
    let retainedSeq = 0;
    try {
      const ack = await this.#bus.publisher.publish(subjects.outbound(session, stream), "", {
        headers: answeredHeaders(eventId(stream, nextClaimToken()), requestId),
        timeoutMs: CLAIM_TIMEOUT_MS,
      });
      outcome = ack.duplicate ? "lost" : "won";
      // A duplicate's PubAck names the message stored first: the worker's answer.
      if (ack.duplicate) retainedSeq = ack.seq;
    } catch (err) {
      this.#log.warn({ err, stream }, "could not claim an answered request's response");
      outcome = "unknown";
    }
    s.claiming.delete(requestId);
    // Lost: the worker's answer is the response; the first copy that came meanwhile is
    // delivered and any later copy dropped (a publish retried after a leader change, or a
    // redelivered request's second answer). With none yet, the first to come through is let in.
    const first = outcome === "lost" ? held[0] : undefined;
    // Whether this edge has handed the worker's answer over (before the claim, or now).
    const delivered = seenBefore || first !== undefined;
    (s.answered ??= new AnsweredIds(this.#maxAnswered)).set(
      requestId,
      outcome !== "lost" || delivered,
    );
    if (first) this.#deliver(s, first.stream, first.msg);
    for (let i = first ? 1 : 0; i < held.length; i++) this.#onLateResponse?.();
    if (outcome === "lost" && !delivered && opts.deliverRetained && retainedSeq > 0)
      await this.#deliverRetained(s, stream, requestId, retainedSeq);
    release();
    return outcome;
  }

  /**
   * The worker's answer was retained but never reached this edge live (it came while the edge's
   * connection was moving between nodes): read it from MCPQ_OUT and deliver it, so a reader that
   * cannot resume (a socket connection) still gets its request's one response.
   */
  async #deliverRetained(
    s: SessionSub,
    stream: string,
    requestId: string,
    seq: number,
  ): Promise<void> {
    try {
      const m = await this.#bus.jsm.streams.getMessage(STREAMS.outbound, { seq });
      const msg = m ? decodeHeaders(m.header, m.string()) : undefined;
      if (msg?.kind !== "response" || msg.requestId !== requestId) return;
      if (s.answered?.get(requestId) === true) return; // it came live meanwhile
      s.answered?.set(requestId, true);
      this.#deliver(s, stream, msg);
    } catch (err) {
      this.#log.warn({ err, stream }, "could not read a retained answer the edge did not see");
    }
  }

  /**
   * Publishes an answer this edge produced itself (a deadline's -32001 after a won `claim`, or a
   * refusal for a connection that is gone) on `stream` of `session` as a retained response with
   * its own event id: a resume on any edge replays it like a worker's answer, and this router
   * delivers it to the stream's reader in stream order (responses that nothing waits for go to
   * the stream's sink). Resolves true once it is stored and, when the stream has an open reader
   * here, has come back to it (or, past a bound, stored only: it stays retained for a resume);
   * false when it could not be published.
   */
  async publishAnswer(
    session: string,
    stream: string,
    json: string,
    requestId?: string,
  ): Promise<boolean> {
    const id = responseEventId(stream, nextAnswerToken());
    const s = this.#sessions.get(session);
    const reader = s?.readers.get(stream)?.sink;
    // Only an open reader here needs it in stream order; registered before publishing, since the
    // answer may come back before the publish is acknowledged.
    let routed: (() => void) | undefined;
    const back =
      s && reader && !reader.closed
        ? new Promise<void>((resolve) => (s.publishing ??= new Map()).set(id, (routed = resolve)))
        : undefined;
    const release = back ? this.#hold(session) : undefined;
    let timer: NodeJS.Timeout | undefined;
    try {
      const headers = outboundHeaders("response", id);
      // For a replay's one-response-per-request check (a worker's copy stored past a dedup miss).
      if (requestId) headers.set(H.answers, requestId);
      await this.#bus.publisher.publish(subjects.outbound(session, stream), json, { headers });
      if (routed) timer = setTimeout(routed, ROUTE_TIMEOUT_MS);
      await back;
      return true;
    } catch (err) {
      this.#log.warn({ err, stream }, "could not publish an answer of the edge for resumption");
      return false;
    } finally {
      clearTimeout(timer);
      s?.publishing?.delete(id);
      release?.();
    }
  }

  #route(s: SessionSub, m: Msg): void {
    const stream = m.subject.slice(m.subject.lastIndexOf(".") + 1);
    const msg = decode(m);
    if (msg.kind === "control") {
      if (m.headers?.get(H.control) === ANSWERED_CONTROL) return this.#claimed(s, msg.requestId);
      const control = decodeControl(m.headers);
      const sink = s.readers.get(stream)?.sink;
      if (control?.action === "reconnect" && sink && !sink.closed)
        sink.reconnect?.(control.retryMs);
      return;
    }
    if (msg.kind === "response" && msg.requestId) {
      const held = s.claiming?.get(msg.requestId);
      if (held) return void held.push({ stream, msg });
      if (s.answered?.get(msg.requestId) === true) return this.#onLateResponse?.();
      // One response per request id on live delivery too: a worker's publish retried after a
      // stream-leader change (or a redelivered request's second answer) reaches this core
      // subscription again even when MCPQ_OUT's dedup window keeps only one copy.
      (s.answered ??= new AnsweredIds(this.#maxAnswered)).set(msg.requestId, true);
    }
    this.#deliver(s, stream, msg);
    if (s.publishing?.size && msg.eventId) s.publishing.get(msg.eventId)?.();
  }

  #deliver(s: SessionSub, stream: string, msg: OutboundMessage): void {
    if (msg.kind === "response" && msg.requestId) this.correlator.resolve(msg.requestId, msg);
    const sink = s.readers.get(stream)?.sink;
    if (sink && !sink.closed) sink.send(msg);
  }

  /**
   * Another edge's claim, seen live: its worker's answer, arriving later, is dropped. (This
   * edge's own claims are decided by their publish ack, not by seeing them come back.)
   */
  #claimed(s: SessionSub, requestId: string | undefined): void {
    if (!requestId || s.claiming?.has(requestId) || s.answered?.get(requestId) !== undefined)
      return;
    (s.answered ??= new AnsweredIds(this.#maxAnswered)).set(requestId, true);
  }

  /**
   * Resumes `stream` of `session` after `afterEventId` (or from its start for a priming id):
   * subscribes live first, replays retained messages from MCPQ_OUT in order, then hands over to
   * live delivery without gaps or duplicates. Returns the release function.
   */
  async resume(
    session: string,
    stream: string,
    afterToken: string | null,
    sink: StreamSink,
  ): Promise<() => void> {
    const seen = new Set<string>();
    /**
     * Requests whose response the client has (up to its position) or the replay sent: another
     * copy of it (another event id) is not sent.
     */
    const replayedResponses = new Set<string>();
    const buffered: OutboundMessage[] = [];
    /** Another copy of a response the client has or was sent here (counted as late). */
    const isCopy = (msg: OutboundMessage): boolean => {
      const of = answeredBy(msg);
      const copy = of !== undefined && replayedResponses.has(of);
      if (copy) this.#onLateResponse?.();
      return copy;
    };
    let replaying = true;
    /** A reconnect asked for while replaying applies once the replayed messages are out. */
    let reconnectAfterReplay: { retryMs: number | undefined } | undefined;
    const gate: StreamSink = {
      get closed() {
        return sink.closed;
      },
      send(msg) {
        if (replaying) buffered.push(msg);
        else if (!msg.eventId || !seen.has(msg.eventId)) sink.send(msg);
      },
      reconnect(retryMs) {
        if (replaying) reconnectAfterReplay = { retryMs };
        else sink.reconnect?.(retryMs);
      },
    };
    const release = this.attach(session, stream, gate);
    try {
      const subject = subjects.outbound(session, stream);
      // The live subscription above is registered before this request reaches the server, so
      // every message is either at or before `last` (replayed) or delivered live (buffered).
      const last = await this.#lastRetained(session, stream);
      if (last) {
        const afterId =
          afterToken !== null && afterToken !== PRIMING_TOKEN ? eventId(stream, afterToken) : null;
        let skipping = afterId !== null;
        await this.#replay(subject, last.seq, async (msg) => {
          if (msg.eventId) seen.add(msg.eventId);
          if (skipping) {
            // The client has the responses up to its position: later copies are not sent.
            this.#replayed(session, msg, replayedResponses);
            if (msg.eventId === afterId) skipping = false;
          } else if (!sink.closed && !isCopy(msg)) {
            this.#replayed(session, msg, replayedResponses);
            sink.send(msg);
            await sink.ready?.();
          }
        });
        // The event the client last saw has aged out of the window (or never existed): nothing
        // was sent above, so send everything retained rather than lose messages (the client
        // may see messages again).
        if (skipping) {
          replayedResponses.clear();
          await this.#replay(subject, last.seq, async (msg) => {
            if (sink.closed || isCopy(msg)) return;
            this.#replayed(session, msg, replayedResponses);
            sink.send(msg);
            await sink.ready?.();
          });
        }
      }
    } catch (err) {
      this.#log.warn({ err, stream }, "replay failed");
    } finally {
      // Live messages that arrived meanwhile follow at the reader's pace; any that arrive while
      // these go out queue behind them, so the stream order holds.
      try {
        while (buffered.length > 0 && !sink.closed) {
          const msg = buffered.shift()!;
          if (msg.eventId && seen.has(msg.eventId)) continue;
          if (isCopy(msg)) continue;
          sink.send(msg);
          await sink.ready?.();
        }
      } finally {
        replaying = false;
        buffered.length = 0;
      }
      if (reconnectAfterReplay && !sink.closed) sink.reconnect?.(reconnectAfterReplay.retryMs);
    }
    return release;
  }

  /**
   * A replayed worker response is the request's one response on this edge: noted so that another
   * copy of it, live (a redelivered request's second answer has its own event id; MCPQ_OUT keeps
   * one, but core subscribers see both) or buffered during the replay, is dropped.
   */
  #replayed(session: string, msg: OutboundMessage, replayed: Set<string>): void {
    const of = answeredBy(msg);
    if (of === undefined) return;
    replayed.add(of);
    const s = this.#sessions.get(session);
    if (s) (s.answered ??= new AnsweredIds(this.#maxAnswered)).set(of, true);
  }

  /**
   * Reads `subject` from MCPQ_OUT in order up to `lastSeq`, one direct get (`next_by_subj`) at a
   * time with one read ahead: no consumer to create or lose heartbeats on, and the next message
   * is fetched only as fast as the sink takes them (`onMsg` awaits its room).
   */
  async #replay(
    subject: string,
    lastSeq: number,
    onMsg: (msg: OutboundMessage) => Promise<void>,
  ): Promise<void> {
    let next = this.#next(subject, 1);
    for (;;) {
      const m = await next;
      if (!m || m.seq > lastSeq) return;
      next = m.seq >= lastSeq ? Promise.resolve(null) : this.#next(subject, m.seq + 1);
      next.catch(() => undefined);
      const msg = decodeHeaders(m.header, m.string());
      // Control messages were instructions to whichever edge held the stream back then.
      if (msg.kind !== "control") await onMsg(msg);
    }
  }

  /** The first message on `subject` at or after `seq` (null: none); retried a few times. */
  async #next(subject: string, seq: number): Promise<StoredMsg | null> {
    for (let attempt = 1; ; attempt++) {
      try {
        // `next_by_subj` is in the server's msg-get API (2.9+); the client's type omits it.
        return await this.#bus.jsm.streams.getMessage(STREAMS.outbound, {
          seq,
          next_by_subj: subject,
        } as unknown as { seq: number });
      } catch (err) {
        if (attempt >= REPLAY_GET_ATTEMPTS) throw err;
      }
    }
  }
}

type StoredMsg = NonNullable<Awaited<ReturnType<Bus["jsm"]["streams"]["getMessage"]>>>;

/**
 * Request id -> whether later answers to it are dropped (an edge's claim won or could not be
 * published) or let through (a worker's answer won), bounded: the oldest entry goes first. An
 * entry matters only until the request's late answer arrives, which a worker sends at the
 * latest at the deadline (it aborts the handler then).
 */
class AnsweredIds {
  readonly #ids = new Map<string, boolean>();

  constructor(private readonly max: number) {}

  get(requestId: string): boolean | undefined {
    return this.#ids.get(requestId);
  }

  set(requestId: string, dropLater: boolean): void {
    this.#ids.delete(requestId);
    this.#ids.set(requestId, dropLater);
    if (this.#ids.size > this.max) {
      const oldest = this.#ids.keys().next().value;
      if (oldest !== undefined) this.#ids.delete(oldest);
    }
  }
}

/** Tries per message of a replay before it gives up (each bounded by the JetStream API timeout). */
const REPLAY_GET_ATTEMPTS = 3;

/** The request a response answers (a worker's, or an edge's own retained answer); else undefined. */
function answeredBy(msg: OutboundMessage): string | undefined {
  return msg.kind === "response" ? (msg.requestId ?? msg.answers) : undefined;
}

function decode(m: Msg): OutboundMessage {
  return decodeHeaders(m.headers, m.string());
}

function decodeHeaders(h: Msg["headers"], json: string): OutboundMessage {
  return { ...decodeOutboundHeaders(h), json };
}
