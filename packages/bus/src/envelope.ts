import { headers as natsHeaders, type MsgHdrs } from "@nats-io/transport-node";
import { addHeader, headerValue } from "./headers.js";
import type { AnyProtocolVersion, LogLevel } from "@mcpq/protocol";
import type { TargetKind } from "./subjects.js";

/** Header names of the request envelope (edge -> worker) and outbound messages (worker -> edge). */
export const H = {
  session: "Mcpq-Session",
  principal: "Mcpq-Principal",
  request: "Mcpq-Request",
  protocolVersion: "Mcpq-Protocol-Version",
  deadline: "Mcpq-Deadline",
  /** Epoch ms after which a worker must not start the request (the edge's queue-time bound). */
  startBy: "Mcpq-Start-By",
  replyTo: "Mcpq-Reply-To",
  logLevel: "Mcpq-Log-Level",
  kind: "Mcpq-Kind",
  target: "Mcpq-Target",
  targetKind: "Mcpq-Target-Kind",
  edge: "Mcpq-Edge",
  event: "Mcpq-Event",
  receivedAt: "Mcpq-Received-At",
  /** W3C trace context (the client's, or the edge's producer span when tracing is on). */
  traceparent: "traceparent",
  tracestate: "tracestate",
  /** Stateless era: the client's `_meta` clientInfo as JSON (`{"name","version"}`), when it sent one. */
  clientInfo: "Mcpq-Client-Info",
  msgId: "Nats-Msg-Id",
  /** Token claims the edge's authorization policy exposes to workers (JSON object); never the token. */
  claims: "Mcpq-Claims",
  /** Top-level capability names the client declared at initialize (comma-separated). */
  clientCapabilities: "Mcpq-Client-Capabilities",
  /** On a `control` outbound message: what the edge holding the stream should do. */
  control: "Mcpq-Control",
  /** On a `reconnect` control: the SSE `retry:` the client is asked to wait (ms). */
  retryMs: "Mcpq-Retry-Ms",
  /**
   * On an edge's own retained answer: the internal id of the request it answers (not
   * `Mcpq-Request`, which would give it the request's response message id, the edge's claim's).
   */
  answers: "Mcpq-Answers",
} as const;

/** Everything a worker needs to run a request and route what it produces. */
export interface RequestEnvelope {
  /** Internal, globally unique id (also the JetStream dedup id). */
  requestId: string;
  /**
   * The session (legacy era), or for a stateless-era request a synthetic id that scopes its
   * cancellation: `m-<edge>-<stream>` (one per HTTP request or socket connection), never stored.
   */
  session: string;
  principal: string;
  /** The session's negotiated revision, or the stateless-era request's `_meta` protocolVersion. */
  protocolVersion: AnyProtocolVersion;
  /** Epoch ms after which the request must not be started and its answer is useless. */
  deadline: number;
  /**
   * Epoch ms after which a worker must not start the request, <= `deadline`: the edge's bound on
   * queue time (`MCPQ_MAX_QUEUE_MS`). A worker reaching it later answers -32010 unrun (safe to
   * retry). Undefined: `deadline` alone (an older edge, or the bound off).
   */
  startBy?: number | undefined;
  /** Outbound subject for the response and everything related to the request. */
  replyTo: string;
  logLevel: LogLevel | undefined;
  targetKind: TargetKind;
  target: string;
  edge: string;
  receivedAt: number;
  traceparent: string | undefined;
  tracestate?: string | undefined;
  /**
   * Top-level capabilities the client declared (`sampling`, `elicitation`, `roots`, ...), so a
   * worker refuses a server->client request the client cannot answer instead of waiting for a
   * timeout. Undefined when unknown (an older edge): the worker then assumes the client can.
   */
  clientCapabilities?: readonly string[] | undefined;
  /** Stateless era: the client's self-reported `_meta` clientInfo (display and logs only). */
  clientInfo?: { name: string; version: string } | undefined;
  /** The caller's token claims the edge's policy exposes (`exposeClaims`); undefined when none. */
  claims?: Readonly<Record<string, unknown>> | undefined;
}

/** The envelope fields carried as headers. */
interface EnvelopeCore {
  requestId: string;
  session: string;
  principal: string;
  protocolVersion: string;
  deadline: number;
  logLevel?: string | undefined;
  targetKind: TargetKind;
  target: string;
  edge: string;
  receivedAt: number;
  traceparent?: string | undefined;
  tracestate?: string | undefined;
}

/** Writes the shared envelope fields into fresh headers `h` (the one encoding of them; see `decodeEnvelope`). */
function setEnvelopeHeaders(h: MsgHdrs, e: EnvelopeCore): MsgHdrs {
  // `h` is fresh (every caller passes new headers); `addHeader` skips nats.js's per-call key
  // scans (headers.ts): this is the request hot path.
  addHeader(h, H.request, e.requestId);
  addHeader(h, H.msgId, e.requestId);
  addHeader(h, H.session, e.session);
  addHeader(h, H.principal, e.principal);
  addHeader(h, H.protocolVersion, e.protocolVersion);
  addHeader(h, H.deadline, String(e.deadline));
  if (e.logLevel) addHeader(h, H.logLevel, e.logLevel);
  addHeader(h, H.targetKind, e.targetKind);
  addHeader(h, H.target, e.target);
  addHeader(h, H.edge, e.edge);
  addHeader(h, H.receivedAt, String(e.receivedAt));
  if (e.traceparent) addHeader(h, H.traceparent, e.traceparent);
  if (e.traceparent && e.tracestate) addHeader(h, H.tracestate, e.tracestate);
  return h;
}

export function encodeEnvelope(e: RequestEnvelope): MsgHdrs {
  const h = setEnvelopeHeaders(natsHeaders(), e);
  addHeader(h, H.replyTo, e.replyTo);
  if (e.startBy !== undefined) addHeader(h, H.startBy, String(e.startBy));
  if (e.clientCapabilities) addHeader(h, H.clientCapabilities, e.clientCapabilities.join(","));
  if (e.clientInfo)
    addHeader(
      h,
      H.clientInfo,
      JSON.stringify({ name: e.clientInfo.name, version: e.clientInfo.version }),
    );
  if (e.claims) addHeader(h, H.claims, JSON.stringify(e.claims));
  return h;
}

/** Decodes and validates an envelope; returns null (caller terms the message) when malformed. */
export function decodeEnvelope(h: MsgHdrs | undefined): RequestEnvelope | null {
  if (!h) return null;
  const get = (k: string) => headerValue(h, k) || undefined;
  const requestId = get(H.request);
  const session = get(H.session);
  const principal = get(H.principal);
  const replyTo = get(H.replyTo);
  const deadline = Number(get(H.deadline));
  const targetKind = get(H.targetKind) as TargetKind | undefined;
  const target = get(H.target);
  if (
    !requestId ||
    !session ||
    !principal ||
    !replyTo ||
    !Number.isFinite(deadline) ||
    !targetKind ||
    target === undefined
  ) {
    return null;
  }
  // Present but empty: the client declared no capabilities (absent: an edge that did not say).
  const capabilities = headerValue(h, H.clientCapabilities);
  return {
    requestId,
    session,
    principal,
    replyTo,
    deadline,
    startBy: Number(get(H.startBy)) || undefined,
    targetKind,
    target,
    protocolVersion: (get(H.protocolVersion) ?? "2025-11-25") as AnyProtocolVersion,
    logLevel: get(H.logLevel) as LogLevel | undefined,
    edge: get(H.edge) ?? "",
    receivedAt: Number(get(H.receivedAt) ?? Date.now()),
    traceparent: get(H.traceparent),
    tracestate: get(H.tracestate),
    clientCapabilities: capabilities?.split(",").filter((c) => c !== ""),
    clientInfo: decodeClientInfo(get(H.clientInfo)),
    claims: decodeClaims(get(H.claims)),
  };
}

function decodeClientInfo(v: string | undefined): { name: string; version: string } | undefined {
  if (!v) return undefined;
  try {
    const o = JSON.parse(v) as { name?: unknown; version?: unknown };
    return typeof o.name === "string" && typeof o.version === "string"
      ? { name: o.name, version: o.version }
      : undefined;
  } catch {
    return undefined;
  }
}

/**
 * What an outbound message is, so an edge can end a stream after the final response.
 * `control` messages are instructions to the edge holding the stream (see `OutboundControl`);
 * they have an empty body and are never forwarded to the client, live or on replay.
 */
export type OutboundKind = "response" | "notification" | "request" | "control";

/**
 * A worker's instruction about the request's stream, acted on by whichever edge holds it:
 * `reconnect` asks that edge to end the client's connection now, telling it to come back after
 * `retryMs` (SSE `retry:`; the edge's MCPQ_SSE_RETRY_MS when unset). The stream stays resumable:
 * the client resumes with GET + Last-Event-ID on any edge and receives the rest, response
 * included (SEP-1699 polling). Transports that cannot resume ignore it.
 */
export type OutboundControl = { action: "reconnect"; retryMs?: number };

/** Headers of a `control` outbound message (published in order with the request's other messages). */
export function controlHeaders(
  control: OutboundControl,
  eventId: string,
  requestId?: string,
): MsgHdrs {
  const h = outboundHeaders("control", eventId, requestId);
  h.set(H.control, control.action);
  if (control.retryMs !== undefined)
    h.set(H.retryMs, String(Math.max(0, Math.round(control.retryMs))));
  return h;
}

/** Reads the instruction of a `control` outbound message; null when absent or unknown (ignore it). */
export function decodeControl(h: MsgHdrs | undefined): OutboundControl | null {
  if (headerValue(h, H.control) !== "reconnect") return null;
  const retry = Number(headerValue(h, H.retryMs) || Number.NaN);
  return Number.isFinite(retry) && retry >= 0
    ? { action: "reconnect", retryMs: retry }
    : { action: "reconnect" };
}

/** What the headers of one outbound message say; a missing or unknown kind is a notification. */
export function decodeOutboundHeaders(h: MsgHdrs | undefined): {
  kind: OutboundKind;
  eventId: string | undefined;
  requestId: string | undefined;
  answers: string | undefined;
} {
  const kind = headerValue(h, H.kind);
  return {
    kind: kind === "response" || kind === "request" || kind === "control" ? kind : "notification",
    eventId: headerValue(h, H.event) || undefined,
    requestId: headerValue(h, H.request) || undefined,
    answers: headerValue(h, H.answers) || undefined,
  };
}

/**
 * Headers of one outbound message. `eventId` is unique per session; it becomes the SSE id. A
 * response with its request id is deduplicated per request (see `responseMsgId`).
 */
export function outboundHeaders(kind: OutboundKind, eventId: string, requestId?: string): MsgHdrs {
  const h = natsHeaders();
  addHeader(h, H.kind, kind);
  addHeader(h, H.event, eventId);
  addHeader(h, H.msgId, kind === "response" && requestId ? responseMsgId(requestId) : eventId);
  if (requestId) addHeader(h, H.request, requestId);
  return h;
}

/**
 * The JetStream message id of a request's response slot in MCPQ_OUT: every response a worker
 * publishes for the request, and the edge's `answered` claim, carry it, so within the stream's
 * duplicate window MCPQ_OUT keeps only the first of them (a redelivered request's second answer,
 * or a worker's answer that comes after the edge already answered the request itself).
 */
function responseMsgId(requestId: string): string {
  return `${requestId}.response`;
}

/** The `Mcpq-Control` value of an edge's claim on a request's response slot (see `answeredHeaders`). */
export const ANSWERED_CONTROL = "answered";

/**
 * Headers of the control message an edge publishes on a request's stream when it answers the
 * request itself (deadline passed, cancelled) instead of a worker: it takes the request's
 * response slot (`responseMsgId`), so a worker's later answer is not retained, and tells every
 * edge reading the stream live to drop that answer. Never forwarded to clients.
 */
export function answeredHeaders(eventId: string, requestId: string): MsgHdrs {
  const h = outboundHeaders("control", eventId, requestId);
  h.set(H.control, ANSWERED_CONTROL);
  h.set(H.msgId, responseMsgId(requestId));
  return h;
}

function decodeClaims(v: string | undefined): Record<string, unknown> | undefined {
  if (!v) return undefined;
  try {
    const o: unknown = JSON.parse(v);
    return o && typeof o === "object" && !Array.isArray(o)
      ? (o as Record<string, unknown>)
      : undefined;
  } catch {
    return undefined;
  }
}
