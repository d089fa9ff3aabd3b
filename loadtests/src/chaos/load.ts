/**
 * The chaos load: S sessions of an official MCP SDK client (Streamable HTTP, through the
 * balancer), each keeping K `echo` calls in flight, and a ledger that classifies every call by
 * what the client saw. Sessions use SDK 1.32.2 over Streamable HTTP (the 2025-11-25 era: a
 * session, resumable POST streams), except the first `wsSessions`, which use SDK 1.32.2 over
 * WebSocket (one connection per session; the SDK does not resume it, so no edge may die under
 * them), and the last `v2Sessions`, which use `@modelcontextprotocol/client` 2.x with automatic
 * version negotiation (the 2026-07-28 era: stateless requests):
 *
 * - ok:        the result, with the text that was sent (correct)
 * - refused:   an explicit retryable refusal (HTTP 503/429, or JSON-RPC -32010/-32011/-32012)
 * - timeout:   the edge's -32001 at the call's deadline (an answer, but not a refusal)
 * - unaccepted: the connection failed before any edge answered (the edge never took it)
 * - lost:      no answer by the client's own timeout, well past the deadline (must be 0)
 * - wrong:     any other answer (a 500, a wrong result) (must be 0)
 *
 * A second response for a call the client already settled is counted as a duplicate (the SDK
 * reports it through `onerror`: "Received a response for an unknown message ID"). A session
 * whose client failed to reconnect is re-created (counted), so the load keeps going.
 */
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import {
  StreamableHTTPClientTransport,
  StreamableHTTPError,
} from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { WebSocketClientTransport } from "@modelcontextprotocol/sdk/client/websocket.js";
import { McpError } from "@modelcontextprotocol/sdk/types.js";
import WebSocket from "ws";
import {
  Client as ClientV2,
  ProtocolError,
  SdkError,
  SdkErrorCode,
  SdkHttpError,
  StreamableHTTPClientTransport as TransportV2,
} from "@modelcontextprotocol/client";

type CallClass = "ok" | "refused" | "timeout" | "unaccepted" | "lost" | "wrong";

export interface Ledger {
  sent: number;
  /** Of them, by each kind of client. */
  sentBy: Record<ClientKind, number>;
  counts: Record<CallClass, number>;
  duplicates: number;
  /** Up to 20 of the duplicated responses as the client saw them, for the report. */
  duplicateSamples: string[];
  /**
   * Up to 50 stream resumes the clients made (GET with Last-Event-ID): when, after which event id,
   * and the status they got; to tell on failure whether a duplicate came on a resumed stream.
   */
  resumes: string[];
  /** Sessions re-created because their client could not go on (not a lost request). */
  sessionsRecreated: number;
  /** Sessions that continued through the whole run on their first session id. */
  sessionsSurvived: number;
  sessions: number;
  /** Start and end time (epoch ms) and class of every call, for recovery times. */
  timeline: { startedAt: number; at: number; cls: CallClass }[];
  /** Up to 20 samples of `wrong` answers, for the report. */
  wrongSamples: string[];
  /** Up to 20 calls nobody answered by the client's own timeout: client, text, when sent. */
  lostSamples: string[];
  /** Refusals by `<code> <data.reason>` (what the edge said), for the report. */
  refusals: Record<string, number>;
}

export interface LoadOptions {
  url: string;
  sessions: number;
  inFlight: number;
  /** Deadline each call states (`io.mcpq/timeoutMs`). */
  deadlineMs: number;
  /** Pause between a refused call and the next one on that slot (ms). */
  backoffMs?: number;
  /** Pause between a successful call and the next one on that slot (ms); 0 = closed loop. */
  thinkMs?: number;
  /** How many of the sessions use the 2.x client (2026-07-28 era); default 0. */
  v2Sessions?: number;
  /** How many use SDK 1.32.2 over WebSocket; default 0. */
  wsSessions?: number;
}

/** The client a session of the load uses. */
type ClientKind = "1.32.2 http" | "1.32.2 ws" | "2.x http";

export interface RunningLoad {
  ledger: Ledger;
  /** Stops issuing calls and waits until every call in flight has its answer (or is lost). */
  stop(): Promise<Ledger>;
}

const REFUSAL_CODES = new Set([-32010, -32011, -32012]);

/** Starts the load; sessions initialize first (retrying refusals). */
export async function startLoad(o: LoadOptions): Promise<RunningLoad> {
  const ledger: Ledger = {
    sent: 0,
    sentBy: { "1.32.2 http": 0, "1.32.2 ws": 0, "2.x http": 0 },
    counts: { ok: 0, refused: 0, timeout: 0, unaccepted: 0, lost: 0, wrong: 0 },
    duplicates: 0,
    duplicateSamples: [],
    resumes: [],
    sessionsRecreated: 0,
    sessionsSurvived: 0,
    sessions: o.sessions,
    timeline: [],
    wrongSamples: [],
    lostSamples: [],
    refusals: {},
  };
  let stopping = false;
  // Node 20 has no global WebSocket; the SDK's WebSocketClientTransport expects one.
  (globalThis as { WebSocket?: unknown }).WebSocket ??= WebSocket;
  const wsUrl = o.url.replace(/^http/, "ws").replace(/\/mcp$/, "/ws");
  const record = (startedAt: number, cls: CallClass, detail?: string) => {
    ledger.counts[cls]++;
    ledger.timeline.push({ startedAt, at: Date.now(), cls });
    if (cls === "wrong" && detail && ledger.wrongSamples.length < 20)
      ledger.wrongSamples.push(detail);
    // One key per kind of refusal: "waited 1502 ms" and "waited 1561 ms" are the same one.
    if (detail) detail = detail.replace(/\d+ ms/g, "N ms");
    if (
      cls === "refused" &&
      detail &&
      (ledger.refusals[detail] !== undefined || Object.keys(ledger.refusals).length < 50)
    ) {
      ledger.refusals[detail] = (ledger.refusals[detail] ?? 0) + 1;
    }
  };
  const onError = (e: Error) => {
    if (!/unknown message ID/i.test(e.message)) return;
    ledger.duplicates++;
    if (ledger.duplicateSamples.length < 20)
      ledger.duplicateSamples.push(`${new Date().toISOString()} ${e.message.slice(0, 400)}`);
  };
  /** The clients' fetch: notes each resume (GET with Last-Event-ID) in the ledger. */
  const noteResumes: typeof fetch = async (input, init) => {
    const last = init?.method === "GET" ? new Headers(init.headers).get("last-event-id") : null;
    const res = await fetch(input, init);
    if (last && ledger.resumes.length < 50)
      ledger.resumes.push(`${new Date().toISOString()} ${last} ${res.status}`);
    return res;
  };
  const reconnection = {
    initialReconnectionDelay: 50,
    maxReconnectionDelay: 1_000,
    reconnectionDelayGrowFactor: 1.5,
    maxRetries: 60,
  };
  const connectOnce = async (kind: ClientKind): Promise<Caller> => {
    if (kind === "2.x http") {
      const client = new ClientV2(
        { name: "mcpq-chaos-v2", version: "1" },
        { capabilities: {}, versionNegotiation: { mode: "auto" } },
      );
      client.onerror = onError;
      try {
        await client.connect(
          new TransportV2(new URL(o.url), { reconnectionOptions: reconnection }),
          { timeout: 10_000 },
        );
      } catch (err) {
        await client.close().catch(() => undefined);
        throw err;
      }
      return {
        call: (params, timeout) => client.callTool(params, { timeout }),
        classify: classifyV2,
        close: () => client.close(),
      };
    }
    const client = new Client({ name: "mcpq-chaos", version: "1" }, { capabilities: {} });
    client.onerror = onError;
    const transport =
      kind === "1.32.2 ws"
        ? new WebSocketClientTransport(new URL(wsUrl))
        : new StreamableHTTPClientTransport(new URL(o.url), {
            reconnectionOptions: reconnection,
            fetch: noteResumes,
          });
    try {
      await client.connect(transport, { timeout: 10_000 });
    } catch (err) {
      await client.close().catch(() => undefined);
      throw err;
    }
    return {
      call: (params, timeout) => client.callTool(params, undefined, { timeout }),
      classify,
      close: () => client.close(),
    };
  };
  const connectClient = async (kind: ClientKind): Promise<Caller> => {
    for (;;) {
      try {
        return await connectOnce(kind);
      } catch {
        if (stopping) throw new Error("stopping");
        await new Promise((r) => setTimeout(r, 200));
      }
    }
  };

  const v2From = o.sessions - Math.min(o.sessions, o.v2Sessions ?? 0);
  const wsTo = Math.min(v2From, o.wsSessions ?? 0);
  const session = async (s: number) => {
    const kind: ClientKind = s >= v2From ? "2.x http" : s < wsTo ? "1.32.2 ws" : "1.32.2 http";
    let c = await connectClient(kind);
    let survived = true;
    let seq = 0;
    const slot = async (k: number) => {
      while (!stopping) {
        const text = `s${s}-k${k}-${seq++}`;
        const client = c;
        ledger.sent++;
        ledger.sentBy[kind]++;
        const startedAt = Date.now();
        let cls: CallClass;
        let detail: string | undefined;
        try {
          const r = await client.call(
            { name: "echo", arguments: { text }, _meta: { "io.mcpq/timeoutMs": o.deadlineMs } },
            // The client's own timeout is far past the deadline: only a request nobody answered reaches it.
            o.deadlineMs * 2 + 10_000,
          );
          const got = (r.content as { type: string; text?: string }[] | undefined)?.[0]?.text;
          cls = got === text && r.isError !== true ? "ok" : "wrong";
          if (cls === "wrong") detail = JSON.stringify(r).slice(0, 300);
        } catch (err) {
          ({ cls, detail } = client.classify(err));
        }
        if (cls === "lost" && ledger.lostSamples.length < 20)
          ledger.lostSamples.push(`${kind} ${text} sent ${new Date(startedAt).toISOString()}`);
        record(startedAt, cls, detail);
        if (cls === "lost" || (cls === "wrong" && /session|404/i.test(detail ?? ""))) {
          // This client cannot go on: start a new session (the old one's state is the edge's).
          if (client === c && !stopping) {
            survived = false;
            ledger.sessionsRecreated++;
            await c.close().catch(() => undefined);
            c = await connectClient(kind).catch(() => c);
          }
        }
        const pause = cls === "ok" ? (o.thinkMs ?? 0) : (o.backoffMs ?? 100);
        if (pause > 0 && !stopping) await new Promise((r) => setTimeout(r, pause));
      }
    };
    await Promise.all(Array.from({ length: o.inFlight }, (_, k) => slot(k)));
    if (survived) ledger.sessionsSurvived++;
    await c.close().catch(() => undefined);
  };
  const done = Promise.all(
    Array.from({ length: o.sessions }, (_, s) => session(s).catch(() => undefined)),
  );
  return {
    ledger,
    async stop() {
      stopping = true;
      await done;
      return ledger;
    },
  };
}

/** One connected client of either SDK, as the load uses it. */
interface Caller {
  call(
    params: { name: string; arguments: Record<string, unknown>; _meta: Record<string, unknown> },
    timeoutMs: number,
  ): Promise<Record<string, unknown>>;
  classify(err: unknown): Classified;
  close(): Promise<void>;
}

/** A call answered with an HTTP error status (`text`: what carries the JSON-RPC body). */
function httpFailure(status: number, text: string, message: string): Classified {
  if (status === 503 || status === 429) {
    const code = /"code":(-?\d+)/.exec(text)?.[1] ?? "?";
    const reason = /"reason":"([^"]*)"/.exec(text)?.[1] ?? "";
    return { cls: "refused", detail: `HTTP ${status} ${code} ${reason}`.trim() };
  }
  return { cls: "wrong", detail: `HTTP ${status}: ${message.slice(0, 200)}` };
}

/** A call answered with a JSON-RPC error other than -32001. */
function rpcFailure(code: number, data: unknown, message: string): Classified {
  if (!REFUSAL_CODES.has(code))
    return { cls: "wrong", detail: `${code}: ${message.slice(0, 200)}` };
  const reason = (data as { reason?: unknown } | undefined)?.reason;
  return { cls: "refused", detail: `${code} ${typeof reason === "string" ? reason : ""}`.trim() };
}

type Classified = { cls: CallClass; detail?: string };

/** What a failed call of the 2.x client was (its error classes differ from 1.32.2's). */
function classifyV2(err: unknown): Classified {
  if (err instanceof SdkHttpError) {
    const data = err.data as { text?: unknown } | undefined;
    return httpFailure(err.status, String(data?.text ?? ""), err.message);
  }
  if (err instanceof ProtocolError)
    return err.code === -32001 ? { cls: "timeout" } : rpcFailure(err.code, err.data, err.message);
  if (err instanceof SdkError && err.code === SdkErrorCode.RequestTimeout) return { cls: "lost" };
  return classify(err);
}

function classify(err: unknown): Classified {
  if (err instanceof StreamableHTTPError)
    return httpFailure(err.code ?? 0, err.message, err.message);
  if (err instanceof McpError) {
    if (err.code === -32001) {
      // The SDK's own timeout says "Request timed out" with data.timeout; the edge's names its budget.
      const data = err.data as { timeout?: unknown; timeoutMs?: unknown } | undefined;
      return data && "timeout" in data && !("timeoutMs" in data)
        ? { cls: "lost" }
        : { cls: "timeout" };
    }
    return rpcFailure(err.code, err.data, err.message);
  }
  const msg = err instanceof Error ? `${err.name}: ${err.message}` : String(err);
  if (/fetch failed|ECONNREFUSED|ECONNRESET|socket|terminated|other side closed|network/i.test(msg))
    return { cls: "unaccepted", detail: msg };
  return { cls: "wrong", detail: msg.slice(0, 300) };
}

/**
 * Time from `from` until calls succeeded again for good: the end of the last failed call that
 * was followed by a success (0 when none failed), in ms; null when no call succeeded after
 * `from`. Failures after the last success (calls still out when the load stopped) are left out.
 */
export function recoveryMs(ledger: Ledger, from: number): number | null {
  const after = ledger.timeline.filter((t) => t.at >= from);
  const oks = after.filter((t) => t.cls === "ok").map((t) => t.at);
  if (oks.length === 0) return null;
  const lastOk = Math.max(...oks);
  const bad = after.filter((t) => t.cls !== "ok" && t.at <= lastOk).map((t) => t.at);
  return bad.length === 0 ? 0 : Math.max(...bad) - from;
}

/** The longest call that was in flight at `at` (ms from its start to its answer), or 0. */
export function longestAcross(ledger: Ledger, at: number): number {
  let max = 0;
  for (const t of ledger.timeline)
    if (t.startedAt <= at && t.at >= at) max = Math.max(max, t.at - t.startedAt);
  return max;
}
