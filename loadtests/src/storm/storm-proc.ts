/**
 * Storm generator: a separate process that offers an open-loop request rate to an MCP server
 * as cheaply as possible, so the measured system — not the load generator's event loop — is
 * what saturates. Spawned by the bombing scenario (`runStorm` in ./storm.ts); not meant to be
 * run by hand.
 *
 * Protocol with the parent (one JSON line each on stdout): `READY {...}` once the sessions are
 * open; the parent writes `GO\n` on stdin; `END {...}` when the last request has been
 * scheduled (the storm "stops"); `RESULT {...}` when every request has settled. Then the
 * sessions are closed and the process exits.
 *
 * Load shape: `ratePerS` requests per second on a fixed timestamp grid, request k belongs to
 * session k % sessions. Each session has `lanes`: HTTP keep-alive connections carrying one
 * request at a time (HTTP/1.1 pipelining would make every rejection wait behind the slow
 * admitted request ahead of it), or one WebSocket carrying up to `window` requests. A request
 * due while all its session's lanes are busy waits in that session's FIFO (client-side
 * backpressure: the server is not answering faster) and is sent when a lane frees, with the
 * *remaining* budget stated in `_meta["io.mcpq/timeoutMs"]` and as an absolute deadline in
 * `_meta["io.mcpq/deadline"]` (loopback: same clock; the server may read a request late); if no lane frees within
 * `maxHoldMs` it is counted `held` (never sent): the generator, not the server, ran out of room.
 *
 * Every scheduled request ends in exactly one class:
 *   ok        correct echo result
 *   rejected  explicit retryable refusal (HTTP 429/503, JSON-RPC -32000..-32099 naming the reason)
 *   deadline  the server's own timeout error (-32001) at the stated deadline
 *   error     anything else the server answered (wrong result, other error, closed connection)
 *   lost      sent, and no answer within the stated deadline + `graceMs`
 *   held      never sent (see above)
 * "Nothing but a correct result or an explicit rejection" means deadline = error = lost = 0.
 */
import { connect, type Socket } from "node:net";
import WebSocket from "ws";
import { LatencyHistogram } from "../lib/histogram.js";
import { runGrid } from "../lib/schedule.js";
import {
  CLIENT_INFO,
  DEFAULT_PROTOCOL_VERSION,
  checkEchoResult,
  classifyHttpStatus,
  classifyRpcError,
  DEADLINE_META,
  TIMEOUT_META,
  type Outcome,
} from "../client/types.js";
import { assertLoopback } from "../client/http.js";

export interface StormConfig {
  transport: "http" | "ws";
  /** http://127.0.0.1:P/mcp (HTTP) or ws://127.0.0.1:P/ws (WebSocket) */
  url: string;
  toolName: string;
  sessions: number;
  /** HTTP: keep-alive connections per session; WebSocket: always 1 socket per session */
  lanesPerSession: number;
  /** requests one lane carries at once (HTTP: 1) */
  window: number;
  ratePerS: number;
  durationMs: number;
  /** the client's patience, from each request's scheduled time */
  timeoutMs: number;
  /** how long past the stated deadline an answer is still waited for before "lost" */
  graceMs: number;
  /**
   * How long a due request may wait for a free lane before it counts as held (never sent).
   * A client keeps a short queue, not one as long as its patience: a FIFO that long would
   * only ever send requests whose budget is nearly spent.
   */
  maxHoldMs: number;
  payloadBytes: number;
  tag: string;
  /**
   * `open` (default): the rate on a timestamp grid above. `closed`: every lane keeps exactly one
   * request in flight (the next is sent when its answer arrives) for `warmupMs` + `durationMs`;
   * `ratePerS` and `maxHoldMs` are unused, latency counts from the send. The saturation
   * scenario's generator: the same lean lanes, in their own process, so the generator's own
   * CPU (an undici pool, per-request timers, an SSE parser) is not taken from the server's cores.
   */
  mode?: "open" | "closed";
  /** closed mode: requests started before this much time has passed are not counted */
  warmupMs?: number;
  /**
   * Whether each call states its budget in `_meta["io.mcpq/timeoutMs"]` and
   * `_meta["io.mcpq/deadline"]` (default true). `false` is a plain client: the server only
   * learns its patience from the connection closing (`timeoutMs` after the send).
   */
  hints?: boolean;
  /**
   * Spread the lanes over source addresses 127.0.0.`first`, .`first+1`, …, `perAddress` lanes
   * each (an edge bounds the connections of one client address; real plain clients come from
   * many). Unset: the kernel's choice (127.0.0.1).
   */
  sourceAddresses?: { first: number; perAddress: number };
}

type StormClass = "ok" | "rejected" | "deadline" | "error" | "lost" | "held";

export interface StormResult {
  scheduled: number;
  sent: number;
  classes: Record<StormClass, number>;
  codes: Record<string, number>;
  offered_rate: number;
  achieved_send_rate: number;
  /** answered (any class) per second over the storm window */
  answered_rate: number;
  /** from scheduled time, ok only */
  ok_latency: HistSummary;
  /** from send to answer */
  ok_service: HistSummary;
  rejected_service: HistSummary;
  /** send time − scheduled time of requests that were sent */
  send_lag: HistSummary;
  max_in_flight: number;
  max_held: number;
  sessions_opened: number;
  client_cpu_pct: number;
  /** closed mode: ok answers that came inside the measured window, and its length */
  ok_in_window?: number;
  window_s?: number;
}

interface HistSummary {
  p50_us: number | null;
  p95_us: number | null;
  p99_us: number | null;
  p999_us: number | null;
  max_us: number | null;
}

const SWEEP_MS = 50;

/* ------------------------------------------------------------------------------------------ */
/* bookkeeping                                                                                 */

class Tally {
  readonly classes: Record<StormClass, number> = {
    ok: 0,
    rejected: 0,
    deadline: 0,
    error: 0,
    lost: 0,
    held: 0,
  };
  readonly codes: Record<string, number> = {};
  readonly okLatency = new LatencyHistogram();
  readonly okService = new LatencyHistogram();
  readonly rejService = new LatencyHistogram();
  readonly sendLag = new LatencyHistogram();
  settled = 0;
  answered = 0;
  firstAnswer = 0;
  lastAnswer = 0;

  add(c: StormClass, code: string | undefined): void {
    this.classes[c]++;
    this.settled++;
    if (c !== "ok" && code) this.codes[`${c}:${code}`] = (this.codes[`${c}:${code}`] ?? 0) + 1;
  }
}

function summary(h: LatencyHistogram): HistSummary {
  const x = h.summary();
  return { p50_us: x.p50, p95_us: x.p95, p99_us: x.p99, p999_us: x.p999, max_us: x.max };
}

/** One request in flight. */
interface Flight {
  k: number;
  scheduled: number;
  sentAt: number;
  /** performance.now() after which the request is lost */
  giveUpAt: number;
  text: string;
}

function classify(o: Outcome, rpcCode: number | undefined): StormClass {
  if (o.kind === "ok") return "ok";
  if (o.kind === "rejected") return "rejected";
  if (rpcCode === -32001) return "deadline";
  return "error";
}

/* ------------------------------------------------------------------------------------------ */
/* lanes                                                                                       */

interface Lane {
  readonly session: SessionLanes;
  free(): boolean;
  send(f: Flight, body: string): void;
  /** requests in flight whose giveUpAt has passed are settled as lost */
  sweep(now: number): void;
  close(): Promise<void>;
}

interface SessionLanes {
  id: string | undefined;
  lanes: Lane[];
  fifo: number[];
  head: number;
  /** HTTP: the request line and headers of this session's calls, up to the content length */
  requestHead?: string;
}

interface LaneHooks {
  /** a request ended in class `c` */
  settle(f: Flight, c: StormClass, code: string | undefined, lane: Lane): void;
  /** a lane can take work again without having settled anything (it reconnected) */
  ready(lane: Lane): void;
}

/** Minimal HTTP/1.1 response reader (Content-Length or chunked); one response at a time. */
export class HttpResponseReader {
  #buf: Buffer = Buffer.alloc(0);

  push(chunk: Buffer): void {
    this.#buf = this.#buf.length === 0 ? chunk : Buffer.concat([this.#buf, chunk]);
  }

  reset(): void {
    this.#buf = Buffer.alloc(0);
  }

  /** A complete response, or undefined while more bytes are needed. */
  take(): { status: number; headers: Map<string, string>; body: string } | undefined {
    const buf = this.#buf;
    const end = buf.indexOf("\r\n\r\n");
    if (end < 0) return undefined;
    const head = buf.toString("latin1", 0, end).split("\r\n");
    const status = Number(head[0]!.slice(9, 12));
    const headers = new Map<string, string>();
    for (let i = 1; i < head.length; i++) {
      const line = head[i]!;
      const c = line.indexOf(":");
      if (c > 0) headers.set(line.slice(0, c).toLowerCase(), line.slice(c + 1).trim());
    }
    let pos = end + 4;
    let body: string;
    const len = headers.get("content-length");
    if (len !== undefined) {
      const n = Number(len);
      if (buf.length < pos + n) return undefined;
      body = buf.toString("utf8", pos, pos + n);
      pos += n;
    } else if ((headers.get("transfer-encoding") ?? "").toLowerCase().includes("chunked")) {
      const parts: string[] = [];
      for (;;) {
        const eol = buf.indexOf("\r\n", pos);
        if (eol < 0) return undefined;
        const size = parseInt(buf.toString("latin1", pos, eol), 16);
        if (!Number.isFinite(size)) throw new Error("bad chunk size");
        if (size === 0) {
          // last-chunk, no trailers expected: CRLF
          if (buf.length < eol + 4) return undefined;
          pos = eol + 4;
          break;
        }
        if (buf.length < eol + 2 + size + 2) return undefined;
        parts.push(buf.toString("utf8", eol + 2, eol + 2 + size));
        pos = eol + 2 + size + 2;
      }
      body = parts.join("");
    } else if (status === 204 || status === 304 || (status >= 100 && status < 200)) {
      body = "";
    } else {
      throw new Error("response without length (connection-delimited bodies not supported)");
    }
    this.#buf = pos >= buf.length ? Buffer.alloc(0) : buf.subarray(pos);
    return { status, headers, body };
  }
}

/** The JSON-RPC message with `id` from an application/json or text/event-stream body. */
function findRpc(
  contentType: string,
  body: string,
  id: number,
): { result?: unknown; error?: { code?: unknown; message?: unknown } } | undefined {
  const pick = (m: unknown) =>
    m && typeof m === "object" && (m as { id?: unknown }).id === id
      ? (m as { result?: unknown; error?: { code?: unknown; message?: unknown } })
      : undefined;
  if (contentType.startsWith("text/event-stream")) {
    for (const line of body.split("\n")) {
      if (!line.startsWith("data:")) continue;
      try {
        const hit = pick(JSON.parse(line.slice(5)));
        if (hit) return hit;
      } catch {
        /* not JSON */
      }
    }
    return undefined;
  }
  try {
    const m = JSON.parse(body) as unknown;
    return Array.isArray(m) ? m.map(pick).find(Boolean) : pick(m);
  } catch {
    return undefined;
  }
}

function rpcOutcome(
  m: { result?: unknown; error?: { code?: unknown; message?: unknown } } | undefined,
  text: string,
): { o: Outcome; code: number | undefined } {
  if (!m) return { o: { kind: "error", code: "no_response" }, code: undefined };
  if (m.error) {
    const code = typeof m.error.code === "number" ? m.error.code : undefined;
    return { o: classifyRpcError(m.error.code, m.error.message), code };
  }
  return { o: checkEchoResult(m.result, text), code: undefined };
}

class HttpLane implements Lane {
  #sock: Socket | undefined;
  #flight: Flight | undefined;
  #reader = new HttpResponseReader();
  #closing = false;
  #connecting: Promise<void> | undefined;

  constructor(
    readonly session: SessionLanes,
    private readonly host: string,
    private readonly port: number,
    private readonly hooks: LaneHooks,
    private readonly localAddress?: string,
  ) {}

  connect(): Promise<void> {
    if (this.#connecting) return this.#connecting;
    this.#connecting = new Promise<void>((resolve, reject) => {
      const s = connect({
        host: this.host,
        port: this.port,
        noDelay: true,
        ...(this.localAddress ? { localAddress: this.localAddress } : {}),
      });
      s.once("connect", () => {
        this.#sock = s;
        this.#connecting = undefined;
        resolve();
      });
      s.on("data", (chunk: Buffer) => this.#onData(chunk));
      s.on("error", (e) => {
        if (!this.#sock) {
          this.#connecting = undefined;
          reject(e);
        }
      });
      s.on("close", () => this.#onClose(s));
    });
    return this.#connecting;
  }

  free(): boolean {
    return this.#flight === undefined && this.#sock !== undefined && !this.#closing;
  }

  /** One raw request/response (session set-up). */
  async exchange(
    method: "POST" | "DELETE",
    path: string,
    headers: Record<string, string>,
    body: string,
  ): Promise<{ status: number; headers: Map<string, string>; body: string }> {
    await this.connect();
    return new Promise((resolve, reject) => {
      this.#oneShot = { resolve, reject };
      this.#sock!.write(rawRequest(method, path, this.host, this.port, headers, body));
    });
  }
  #oneShot:
    | {
        resolve: (r: { status: number; headers: Map<string, string>; body: string }) => void;
        reject: (e: Error) => void;
      }
    | undefined;

  send(f: Flight, req: string): void {
    this.#flight = f;
    this.#sock!.write(req);
  }

  #onData(chunk: Buffer): void {
    this.#reader.push(chunk);
    for (;;) {
      let r: ReturnType<HttpResponseReader["take"]>;
      try {
        r = this.#reader.take();
      } catch (e) {
        this.#fail("bad_http", e as Error);
        return;
      }
      if (!r) return;
      if (this.#oneShot) {
        const o = this.#oneShot;
        this.#oneShot = undefined;
        o.resolve(r);
        continue;
      }
      const f = this.#flight;
      if (!f) continue; // answer to a request already settled as lost
      this.#flight = undefined;
      let out: { o: Outcome; code: number | undefined };
      if (r.status < 200 || r.status >= 300) {
        out = { o: classifyHttpStatus(r.status, r.body), code: rpcCodeOf(r.body) };
      } else {
        out = rpcOutcome(findRpc(r.headers.get("content-type") ?? "", r.body, f.k), f.text);
      }
      this.hooks.settle(f, classify(out.o, out.code), out.o.code, this);
    }
  }

  #fail(code: string, e?: Error): void {
    const f = this.#flight;
    this.#flight = undefined;
    this.#oneShot?.reject(e ?? new Error(code));
    this.#oneShot = undefined;
    this.#replace();
    if (f) this.hooks.settle(f, "error", code, this);
  }

  #onClose(s: Socket): void {
    if (this.#sock !== s) return; // a connection this lane already gave up
    const f = this.#flight;
    this.#flight = undefined;
    this.#oneShot?.reject(new Error("connection closed"));
    this.#oneShot = undefined;
    if (f) this.hooks.settle(f, "error", "connection_closed", this);
    this.#replace();
  }

  /** Drops the current connection and, unless closing, opens another for the next request. */
  #replace(): void {
    const old = this.#sock;
    this.#sock = undefined;
    this.#reader.reset();
    old?.destroy();
    if (this.#closing) return;
    this.connect().then(
      () => this.hooks.ready(this),
      () => undefined,
    );
  }

  sweep(now: number): void {
    const f = this.#flight;
    if (f && now > f.giveUpAt) {
      this.#flight = undefined;
      // the connection is stuck behind an unanswered request: replace it
      this.#replace();
      this.hooks.settle(f, "lost", "no_answer", this);
    }
  }

  async close(): Promise<void> {
    this.#closing = true;
    this.#sock?.end();
    this.#sock?.destroy();
  }
}

function rpcCodeOf(body: string): number | undefined {
  try {
    const c = (JSON.parse(body) as { error?: { code?: unknown } }).error?.code;
    return typeof c === "number" ? c : undefined;
  } catch {
    return undefined;
  }
}

/** A request's line and headers up to the value of its content-length (the body's length follows). */
function requestHead(
  method: string,
  path: string,
  host: string,
  port: number,
  headers: Record<string, string>,
): string {
  let h = `${method} ${path} HTTP/1.1\r\nhost: ${host}:${port}\r\n`;
  for (const [k, v] of Object.entries(headers)) h += `${k}: ${v}\r\n`;
  return `${h}content-length: `;
}

function rawRequest(
  method: string,
  path: string,
  host: string,
  port: number,
  headers: Record<string, string>,
  body: string,
): string {
  return `${requestHead(method, path, host, port, headers)}${Buffer.byteLength(body)}\r\n\r\n${body}`;
}

class WsLane implements Lane {
  readonly #inFlight = new Map<number, Flight>();
  #closed = false;

  constructor(
    readonly session: SessionLanes,
    private readonly ws: WebSocket,
    private readonly window: number,
    private readonly hooks: LaneHooks,
  ) {
    ws.on("message", (data: Buffer, isBinary: boolean) => {
      if (isBinary) return;
      let m: { id?: unknown; result?: unknown; error?: { code?: unknown; message?: unknown } };
      try {
        m = JSON.parse(data.toString("utf8"));
      } catch {
        return;
      }
      if (typeof m.id !== "number") return;
      const f = this.#inFlight.get(m.id);
      if (!f) return; // settled as lost already
      this.#inFlight.delete(m.id);
      const out = rpcOutcome(m, f.text);
      this.hooks.settle(f, classify(out.o, out.code), out.o.code, this);
    });
    ws.on("close", (code) => {
      this.#closed = true;
      for (const f of this.#inFlight.values())
        this.hooks.settle(f, code === 1013 ? "rejected" : "error", `ws_closed_${code}`, this);
      this.#inFlight.clear();
    });
    ws.on("error", () => undefined);
  }

  free(): boolean {
    return !this.#closed && this.#inFlight.size < this.window;
  }

  send(f: Flight, body: string): void {
    this.#inFlight.set(f.k, f);
    // Everything sent in one tick leaves in one write: corked until the tick ends (ws has no
    // public cork; its socket is Node's). Saves a syscall per request on the generator side.
    if (!this.#corked) {
      const sock = (this.ws as unknown as { _socket?: Socket })._socket;
      if (sock) {
        this.#corked = true;
        sock.cork();
        process.nextTick(() => {
          this.#corked = false;
          sock.uncork();
        });
      }
    }
    this.ws.send(body);
  }
  #corked = false;

  sweep(now: number): void {
    // insertion order = send order; giveUpAt grows with the schedule, so stop at the first live one
    for (const f of this.#inFlight.values()) {
      if (f.giveUpAt >= now) break;
      this.#inFlight.delete(f.k);
      this.hooks.settle(f, "lost", "no_answer", this);
    }
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    await new Promise<void>((resolve) => {
      const t = setTimeout(() => {
        this.ws.terminate();
        resolve();
      }, 2000);
      this.ws.once("close", () => {
        clearTimeout(t);
        resolve();
      });
      this.ws.close(1000);
    });
  }
}

/* ------------------------------------------------------------------------------------------ */
/* sessions                                                                                    */

const HTTP_HEADERS = {
  accept: "application/json, text/event-stream",
  "content-type": "application/json",
  "mcp-protocol-version": DEFAULT_PROTOCOL_VERSION,
};

function initializeBody(id: number): string {
  return JSON.stringify({
    jsonrpc: "2.0",
    id,
    method: "initialize",
    params: {
      protocolVersion: DEFAULT_PROTOCOL_VERSION,
      capabilities: {},
      clientInfo: CLIENT_INFO,
    },
  });
}

/** The source address of the generator's lane number `lane` (all sessions counted), if spread. */
function sourceAddress(cfg: StormConfig, lane: number): string | undefined {
  const a = cfg.sourceAddresses;
  if (!a) return undefined;
  const n = a.first + Math.floor(lane / Math.max(1, a.perAddress));
  if (n > 254) throw new Error(`lane ${lane}: source addresses run past 127.0.0.254`);
  return `127.0.0.${n}`;
}

async function openHttpSession(
  cfg: StormConfig,
  u: URL,
  hooks: LaneHooks,
  index: number,
): Promise<SessionLanes> {
  const host = u.hostname;
  const port = Number(u.port || 80);
  const path = u.pathname + u.search;
  const s: SessionLanes = { id: undefined, lanes: [], fifo: [], head: 0 };
  for (let i = 0; i < cfg.lanesPerSession; i++)
    s.lanes.push(
      new HttpLane(s, host, port, hooks, sourceAddress(cfg, index * cfg.lanesPerSession + i)),
    );
  const first = s.lanes[0] as HttpLane;
  const init = await first.exchange("POST", path, HTTP_HEADERS, initializeBody(0));
  const sid = init.headers.get("mcp-session-id");
  if (init.status !== 200 || !sid)
    throw new Error(`initialize: HTTP ${init.status} ${init.body.slice(0, 200)}`);
  s.id = sid;
  const h = { ...HTTP_HEADERS, "mcp-session-id": sid };
  const n = await first.exchange(
    "POST",
    path,
    h,
    JSON.stringify({ jsonrpc: "2.0", method: "notifications/initialized" }),
  );
  if (n.status !== 202 && n.status !== 200)
    throw new Error(`notifications/initialized: HTTP ${n.status}`);
  await Promise.all(s.lanes.map((l) => (l as HttpLane).connect()));
  return s;
}

async function openWsSession(
  cfg: StormConfig,
  hooks: LaneHooks,
  index: number,
): Promise<SessionLanes> {
  const localAddress = sourceAddress(cfg, index);
  const ws = new WebSocket(cfg.url, "mcp", {
    perMessageDeflate: false,
    handshakeTimeout: 10_000,
    ...(localAddress ? { localAddress } : {}),
  });
  await new Promise<void>((resolve, reject) => {
    ws.once("open", () => resolve());
    ws.once("error", reject);
    ws.once("unexpected-response", (_q, res) =>
      reject(new Error(`upgrade refused: HTTP ${res.statusCode}`)),
    );
  });
  const init = await new Promise<{ error?: unknown }>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error("initialize timed out")), 10_000);
    const onMsg = (d: Buffer) => {
      const m = JSON.parse(d.toString("utf8")) as { id?: unknown; error?: unknown };
      if (m.id !== 0) return;
      clearTimeout(t);
      ws.off("message", onMsg);
      resolve(m);
    };
    ws.on("message", onMsg);
    ws.send(initializeBody(0));
  });
  if (init.error) throw new Error(`initialize: ${JSON.stringify(init.error)}`);
  ws.send(JSON.stringify({ jsonrpc: "2.0", method: "notifications/initialized" }));
  const s: SessionLanes = { id: "ws", lanes: [], fifo: [], head: 0 };
  s.lanes.push(new WsLane(s, ws, cfg.window, hooks));
  return s;
}

/** Opens `cfg.sessions` sessions (each with its lanes), reports READY, builds the request heads. */
async function openSessions(
  cfg: StormConfig,
  u: URL,
  hooks: LaneHooks,
  io: { emit(kind: "READY", payload: unknown): void },
): Promise<SessionLanes[]> {
  const sessions: SessionLanes[] = [];
  const opened = await Promise.allSettled(
    Array.from({ length: cfg.sessions }, (_, i) =>
      cfg.transport === "http" ? openHttpSession(cfg, u, hooks, i) : openWsSession(cfg, hooks, i),
    ),
  );
  const openErrors: string[] = [];
  for (const r of opened) {
    if (r.status === "fulfilled") sessions.push(r.value);
    else openErrors.push(String((r.reason as Error)?.message ?? r.reason));
  }
  io.emit("READY", { sessions: sessions.length, errors: openErrors.slice(0, 5) });
  if (sessions.length === 0) throw new Error(`no session opened: ${openErrors[0]}`);
  if (cfg.transport === "http")
    for (const s of sessions)
      s.requestHead = requestHead("POST", u.pathname + u.search, u.hostname, Number(u.port || 80), {
        ...HTTP_HEADERS,
        "mcp-session-id": s.id!,
      });
  return sessions;
}

function textMaker(cfg: StormConfig): (k: number) => string {
  const pad = "x".repeat(Math.max(0, cfg.payloadBytes));
  return (k) => `${cfg.tag}:${k}:${pad}`.slice(0, Math.max(cfg.payloadBytes, 16));
}

/** The tools/call body of request `k`; with hints, stating `budget` ms as timeout and deadline. */
function bodyMaker(cfg: StormConfig): (k: number, text: string, budget: number) => string {
  const head = `{"jsonrpc":"2.0","id":`;
  const mid = `,"method":"tools/call","params":{"name":"${cfg.toolName}","arguments":{"text":"`;
  if (cfg.hints === false) return (k, text) => `${head}${k}${mid}${text}"}}}`;
  return (k, text, budget) =>
    `${head}${k}${mid}${text}"},"_meta":{"${TIMEOUT_META}":${budget},"${DEADLINE_META}":${Date.now() + budget}}}}`;
}

/* ------------------------------------------------------------------------------------------ */
/* closed loop                                                                                 */

/**
 * Closed loop over every lane: one request in flight per lane (per HTTP connection, or per
 * WebSocket with `window` 1) from GO until `warmupMs + durationMs`; a lane whose answer comes
 * after that stops. Emits `MEASURE` when the warm-up ends and `END` when the window ends (the
 * parent meters the servers' CPU between the two), then `RESULT` once every lane is idle.
 */
export async function runClosedProcess(
  cfg: StormConfig,
  io: {
    emit(kind: "READY" | "MEASURE" | "END" | "RESULT", payload: unknown): void;
    go: Promise<void>;
  },
): Promise<void> {
  const u = new URL(cfg.url);
  assertLoopback(u.hostname);
  const t = new Tally();
  const textOf = textMaker(cfg);
  const bodyOf = bodyMaker(cfg);
  let seq = 0;
  let sent = 0;
  let busy = 0;
  let okInWindow = 0;
  let tMeasure = Infinity;
  let tEnd = Infinity;
  // set by the END timer: a lane that goes idle after tEnd but before that timer has fired (a
  // late timer on a busy machine) must not finish the run before END is emitted
  let ended = false;
  let resolveDone: () => void = () => undefined;
  const done = new Promise<void>((r) => (resolveDone = r));

  const dispatch = (lane: Lane, now: number) => {
    const k = seq++;
    const text = textOf(k);
    const body = bodyOf(k, text, cfg.timeoutMs);
    busy++;
    sent++;
    const f: Flight = {
      k,
      scheduled: now,
      sentAt: now,
      giveUpAt: now + cfg.timeoutMs + cfg.graceMs,
      text,
    };
    lane.send(
      f,
      cfg.transport === "http"
        ? `${lane.session.requestHead}${Buffer.byteLength(body)}\r\n\r\n${body}`
        : body,
    );
  };
  const next = (lane: Lane) => {
    const now = performance.now();
    if (now < tEnd && lane.free()) dispatch(lane, now);
    else if (busy === 0 && ended) resolveDone();
  };
  const hooks: LaneHooks = {
    settle(f, c, code, lane) {
      busy--;
      const now = performance.now();
      if (f.sentAt >= tMeasure) {
        t.answered++;
        if (c === "ok") {
          t.okService.record((now - f.sentAt) * 1000);
          if (now <= tEnd) okInWindow++;
        } else if (c === "rejected") t.rejService.record((now - f.sentAt) * 1000);
        t.add(c, code);
      }
      next(lane);
    },
    ready: (lane) => next(lane),
  };
  const sessions = await openSessions(cfg, u, hooks, io);
  const lanes = sessions.flatMap((s) => s.lanes);
  await io.go;
  const start = performance.now();
  tMeasure = start + (cfg.warmupMs ?? 0);
  tEnd = tMeasure + cfg.durationMs;
  let cpu0 = process.cpuUsage();
  let wall0 = performance.now();
  const measure = setTimeout(() => {
    cpu0 = process.cpuUsage();
    wall0 = performance.now();
    io.emit("MEASURE", {});
  }, tMeasure - start);
  let cpu = cpu0;
  let wall = 0;
  const end = setTimeout(() => {
    cpu = process.cpuUsage(cpu0);
    wall = performance.now() - wall0;
    ended = true;
    io.emit("END", {});
    if (busy === 0) resolveDone();
  }, tEnd - start);
  const sweep = setInterval(() => {
    const now = performance.now();
    for (const l of lanes) l.sweep(now);
  }, SWEEP_MS);
  for (const l of lanes) dispatch(l, start);
  await done;
  clearTimeout(measure);
  clearTimeout(end);
  clearInterval(sweep);
  const result: StormResult = {
    scheduled: t.settled,
    sent,
    classes: t.classes,
    codes: t.codes,
    offered_rate: 0,
    achieved_send_rate: Math.round(t.settled / (cfg.durationMs / 1000)),
    answered_rate: Math.round(t.answered / (cfg.durationMs / 1000)),
    ok_latency: summary(t.okService),
    ok_service: summary(t.okService),
    rejected_service: summary(t.rejService),
    send_lag: summary(t.sendLag),
    max_in_flight: lanes.length,
    max_held: 0,
    sessions_opened: sessions.length,
    client_cpu_pct: wall > 0 ? Math.round(((cpu.user + cpu.system) / 1000 / wall) * 1000) / 10 : 0,
    ok_in_window: okInWindow,
    window_s: cfg.durationMs / 1000,
  };
  io.emit("RESULT", result);
  await closeSessions(cfg, sessions, u.pathname + u.search, u.hostname, Number(u.port || 80));
}

/* ------------------------------------------------------------------------------------------ */
/* the storm                                                                                   */

export async function runStormProcess(
  cfg: StormConfig,
  io: {
    emit(kind: "READY" | "END" | "RESULT", payload: unknown): void;
    go: Promise<void>;
  },
): Promise<void> {
  const u = new URL(cfg.url);
  assertLoopback(u.hostname);
  const t = new Tally();
  let inFlight = 0;
  let maxInFlight = 0;
  let heldNow = 0;
  let maxHeld = 0;
  let sent = 0;
  let firstSend = 0;
  let lastSend = 0;
  let scheduled = 0;
  let total = 0;
  let t0 = 0;
  let interval = 0;
  let resolveDone: () => void = () => undefined;
  const done = new Promise<void>((r) => (resolveDone = r));
  const path = u.pathname + u.search;
  const host = u.hostname;
  const port = Number(u.port || 80);

  const checkDone = () => {
    if (total > 0 && scheduled >= total && t.settled >= total) resolveDone();
  };

  const settle: LaneHooks["settle"] = (f, c, code, lane) => {
    inFlight--;
    const now = performance.now();
    if (c !== "lost") {
      t.answered++;
      if (t.firstAnswer === 0) t.firstAnswer = now;
      t.lastAnswer = now;
    }
    if (c === "ok") {
      t.okLatency.record((now - f.scheduled) * 1000);
      t.okService.record((now - f.sentAt) * 1000);
    } else if (c === "rejected") t.rejService.record((now - f.sentAt) * 1000);
    t.add(c, code);
    pump(lane.session);
    checkDone();
  };

  const hooks: LaneHooks = { settle, ready: (l) => pump(l.session) };
  const sessions = await openSessions(cfg, u, hooks, io);
  await io.go;

  const S = sessions.length;
  const textOf = textMaker(cfg);
  const bodyOf = bodyMaker(cfg);

  const dispatch = (s: SessionLanes, lane: Lane, k: number, now: number) => {
    const sch = t0 + k * interval;
    const budget = Math.floor(sch + cfg.timeoutMs - now);
    const text = textOf(k);
    const body = bodyOf(k, text, budget);
    const f: Flight = {
      k,
      scheduled: sch,
      sentAt: now,
      giveUpAt: now + budget + cfg.graceMs,
      text,
    };
    inFlight++;
    if (inFlight > maxInFlight) maxInFlight = inFlight;
    if (sent === 0) firstSend = now;
    lastSend = now;
    sent++;
    t.sendLag.record((now - sch) * 1000);
    if (cfg.transport === "http") {
      lane.send(f, `${s.requestHead}${Buffer.byteLength(body)}\r\n\r\n${body}`);
    } else lane.send(f, body);
  };

  /** send what a session's free lanes can take; expire what waited past its budget */
  const pump = (s: SessionLanes) => {
    if (s.head >= s.fifo.length) return;
    const now = performance.now();
    for (const lane of s.lanes) {
      while (s.head < s.fifo.length && lane.free()) {
        const k = s.fifo[s.head++]!;
        heldNow--;
        if (now - (t0 + k * interval) > cfg.maxHoldMs) {
          t.add("held", "no_free_lane");
          continue;
        }
        dispatch(s, lane, k, now);
      }
    }
    if (s.head > 4096 && s.head * 2 > s.fifo.length) {
      s.fifo = s.fifo.slice(s.head);
      s.head = 0;
    }
  };

  const cpu0 = process.cpuUsage();
  const wall0 = performance.now();
  const sweep = setInterval(() => {
    const now = performance.now();
    for (const s of sessions) {
      for (const l of s.lanes) l.sweep(now);
      // expire queued heads that waited too long even if no lane frees up
      while (s.head < s.fifo.length && now - (t0 + s.fifo[s.head]! * interval) > cfg.maxHoldMs) {
        s.head++;
        heldNow--;
        t.add("held", "no_free_lane");
      }
    }
    checkDone();
  }, SWEEP_MS);

  const grid = runGrid({
    ratePerS: cfg.ratePerS,
    durationMs: cfg.durationMs,
    due: (k, now) => {
      scheduled++;
      const s = sessions[k % S]!;
      let lane: Lane | undefined;
      if (s.head >= s.fifo.length)
        for (const l of s.lanes)
          if (l.free()) {
            lane = l;
            break;
          }
      if (lane) dispatch(s, lane, k, now);
      else {
        s.fifo.push(k);
        heldNow++;
        if (heldNow > maxHeld) maxHeld = heldNow;
      }
    },
    end: (at) => {
      // the storm stops: what the generator still holds is never sent
      for (const s of sessions) {
        while (s.head < s.fifo.length) {
          s.head++;
          heldNow--;
          t.add("held", "held_at_storm_end");
        }
      }
      io.emit("END", { at_ms_since_start: Math.round(at - t0) });
      checkDone();
    },
  });
  // the first request is due 5 ms from now: these are set before anything reads them
  t0 = grid.t0;
  interval = grid.interval;
  total = grid.total;
  await done;
  clearInterval(sweep);
  const cpu = process.cpuUsage(cpu0);
  const wall = performance.now() - wall0;
  const sendSpan = (lastSend - firstSend) / 1000;
  const answerSpan = (t.lastAnswer - t.firstAnswer) / 1000;
  const result: StormResult = {
    scheduled: total,
    sent,
    classes: t.classes,
    codes: t.codes,
    offered_rate: cfg.ratePerS,
    achieved_send_rate:
      sendSpan > 0 ? Math.round(sent / Math.max(sendSpan, cfg.durationMs / 1000)) : sent,
    answered_rate:
      answerSpan > 0
        ? Math.round(t.answered / Math.max(answerSpan, cfg.durationMs / 1000))
        : t.answered,
    ok_latency: summary(t.okLatency),
    ok_service: summary(t.okService),
    rejected_service: summary(t.rejService),
    send_lag: summary(t.sendLag),
    max_in_flight: maxInFlight,
    max_held: maxHeld,
    sessions_opened: S,
    client_cpu_pct: Math.round(((cpu.user + cpu.system) / 1000 / wall) * 1000) / 10,
  };
  io.emit("RESULT", result);
  await closeSessions(cfg, sessions, path, host, port);
}

async function closeSessions(
  cfg: StormConfig,
  sessions: SessionLanes[],
  path: string,
  host: string,
  port: number,
): Promise<void> {
  if (cfg.transport === "http") {
    await Promise.allSettled(
      sessions.map(async (s) => {
        const del = new HttpLane(s, host, port, {
          settle: () => undefined,
          ready: () => undefined,
        });
        await del.exchange("DELETE", path, { ...HTTP_HEADERS, "mcp-session-id": s.id! }, "");
        await del.close();
      }),
    );
  }
  await Promise.allSettled(sessions.flatMap((s) => s.lanes.map((l) => l.close())));
}

/* ------------------------------------------------------------------------------------------ */
/* entry point (child process)                                                                 */

if (process.argv[1] && import.meta.url.endsWith(process.argv[1].split("/").pop()!)) {
  const cfg = JSON.parse(process.argv[2] ?? "{}") as StormConfig;
  const emit = (kind: string, payload: unknown) =>
    process.stdout.write(`${kind} ${JSON.stringify(payload)}\n`);
  const go = new Promise<void>((resolve) => {
    process.stdin.setEncoding("utf8");
    process.stdin.on("data", (d: string) => {
      if (d.includes("GO")) resolve();
    });
  });
  // never outlive the parent's patience: the whole storm is bounded
  const hardStop = setTimeout(
    () => {
      process.stderr.write("storm: hard time limit reached\n");
      process.exit(3);
    },
    (cfg.warmupMs ?? 0) + cfg.durationMs + cfg.timeoutMs + cfg.graceMs + 120_000,
  );
  hardStop.unref();
  (cfg.mode === "closed" ? runClosedProcess : runStormProcess)(cfg, { emit, go }).then(
    () => process.exit(0),
    (e: unknown) => {
      process.stderr.write(`storm: ${(e as Error)?.stack ?? String(e)}\n`);
      process.exit(2);
    },
  );
}
