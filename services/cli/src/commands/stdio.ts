import { createInterface } from "node:readline";
import { parseArgs, type ParseArgsConfig } from "node:util";
import { UsageError } from "../args.js";
import type { CliEnv } from "../env.js";
import type { Readable, Writable } from "node:stream";
import {
  ErrorCode,
  NAMED_METHODS,
  declaredVersion,
  errorResponse,
  isSupportedProtocolVersion,
  type JsonRpcErrorObject,
  type RequestId,
} from "@mcpq/protocol";

const USAGE = `mcpq stdio — bridge a stdio MCP client to mcpq edges over Streamable HTTP

Usage: mcpq stdio --url URL [--url URL ...] [--header "Name: value"] [--token TOKEN] [--retry-timeout MS]

  --url            an edge's MCP endpoint (http://HOST:8080/mcp); repeat or comma-separate for failover
  --header         an extra HTTP header for every request (repeatable)
  --token          bearer token (default: MCPQ_TOKEN); sent as Authorization: Bearer <token>
  --retry-timeout  how long to keep retrying edges before giving up on a message (default 60000 ms)

Reads newline-delimited JSON-RPC on stdin, writes the edge's messages to stdout (one per line),
logs to stderr. Both protocol eras: a 2025 client's session (initialize) is kept on the edges,
and when an edge goes away mid-request the bridge resumes the request's stream on the next edge
(Mcp-Session-Id + Last-Event-ID), so nothing is lost or repeated. A 2026-07-28 client's requests
(per-request _meta, no initialize) are each one POST with their metadata headers; its
notifications/cancelled closes that request's stream (the HTTP cancel), and a
subscriptions/listen stream broken by a lost edge is reopened on the next one.`;

export interface StdioBridgeOptions {
  /** Edge MCP endpoints, tried in order; the bridge moves on when one stops answering. */
  urls: string[];
  headers?: Record<string, string>;
  /** Give up on a message after this long without any edge answering (ms). */
  retryTimeoutMs?: number;
  input?: Readable;
  output?: Writable;
  /** Diagnostics (stderr by default); stdout carries protocol messages only. */
  log?: (line: string) => void;
}

/** `mcpq stdio` entry point. */
export async function stdio(
  argv: string[],
  env: Readonly<Pick<CliEnv, "MCPQ_TOKEN">> = {},
): Promise<void> {
  const { values } = parseStrict({
    args: argv,
    options: {
      url: { type: "string", multiple: true },
      header: { type: "string", multiple: true },
      token: { type: "string" },
      "retry-timeout": { type: "string" },
      help: { type: "boolean", short: "h" },
    },
  });
  if (values.help) {
    console.error(USAGE);
    return;
  }
  const urls = (values.url ?? [])
    .flatMap((u) => u.split(","))
    .map((u) => u.trim())
    .filter(Boolean);
  if (urls.length === 0) throw new UsageError("--url is required", USAGE);
  for (const u of urls) {
    if (!URL.canParse(u) || !/^https?:$/.test(new URL(u).protocol))
      throw new UsageError(
        `--url must be an http(s) URL such as http://127.0.0.1:8080/mcp, not ${JSON.stringify(u)}`,
      );
  }
  const headers: Record<string, string> = {};
  for (const h of values.header ?? []) {
    const i = h.indexOf(":");
    if (i <= 0) throw new UsageError(`--header must be "Name: value", not ${JSON.stringify(h)}`);
    headers[h.slice(0, i).trim().toLowerCase()] = h.slice(i + 1).trim();
  }
  const token = values.token ?? env.MCPQ_TOKEN;
  if (token) headers["authorization"] = `Bearer ${token}`;
  const retryTimeoutMs =
    values["retry-timeout"] !== undefined
      ? positiveFlag("--retry-timeout", values["retry-timeout"])
      : undefined;
  await new StdioBridge({
    urls,
    headers,
    ...(retryTimeoutMs !== undefined ? { retryTimeoutMs } : {}),
  }).run();
}

/** parseArgs whose unknown-flag errors print the usage (stdout stays JSON-RPC only). */
function parseStrict<T extends ParseArgsConfig>(config: T) {
  try {
    return parseArgs(config);
  } catch (err) {
    throw new UsageError(err instanceof Error ? err.message : String(err), USAGE);
  }
}

function positiveFlag(flag: string, value: string): number {
  const n = Number(value);
  if (value.trim() === "" || !Number.isFinite(n) || n <= 0)
    throw new UsageError(
      `${flag} must be a positive number of milliseconds, not ${JSON.stringify(value)}`,
    );
  return n;
}

interface SseEvent {
  id: string | undefined;
  event: string | undefined;
  data: string;
  retry: number | undefined;
}

type Message = Record<string, unknown> & { id?: unknown; method?: unknown };

/** Where a client stands in a resumable SSE stream. */
interface StreamPosition {
  lastEventId?: string;
  retryMs: number;
}

/** Raised when no edge answered within the retry window. */
class EdgesUnreachable extends Error {
  override readonly name = "EdgesUnreachable";
}

/**
 * Relays a stdio MCP client to mcpq edges over Streamable HTTP. Messages are sent in stdin
 * order (each POST is accepted before the next is sent, so a cancel never overtakes its
 * request); responses stream back concurrently. A broken request stream is resumed with GET +
 * Last-Event-ID on the same edge after the server's `retry`, or on the next URL when the edge
 * is gone. The standalone GET stream is kept open and resumed the same way.
 */
export class StdioBridge {
  readonly #urls: string[];
  readonly #headers: Record<string, string>;
  readonly #retryTimeoutMs: number;
  readonly #input: Readable;
  readonly #output: Writable;
  readonly #log: (line: string) => void;
  #current = 0;
  #sessionId: string | undefined;
  #protocolVersion: string | undefined;
  #chain: Promise<void> = Promise.resolve();
  readonly #streams = new Set<Promise<void>>();
  readonly #abort = new AbortController();
  #standalone = false;
  /** Stateless-era requests in flight: client id -> what closes their stream (the HTTP cancel). */
  readonly #modern = new Map<string, AbortController>();

  constructor(opts: StdioBridgeOptions) {
    this.#urls = opts.urls;
    this.#headers = opts.headers ?? {};
    this.#retryTimeoutMs = opts.retryTimeoutMs ?? 60_000;
    this.#input = opts.input ?? process.stdin;
    this.#output = opts.output ?? process.stdout;
    this.#log = opts.log ?? ((line) => process.stderr.write(`mcpq stdio: ${line}\n`));
  }

  /** Runs until stdin ends, then ends the session (DELETE) and stops. */
  async run(): Promise<void> {
    const rl = createInterface({ input: this.#input, crlfDelay: Number.POSITIVE_INFINITY });
    for await (const line of rl) {
      if (line.trim() === "") continue;
      let msg: Message;
      try {
        msg = JSON.parse(line) as Message;
      } catch {
        this.#emit(errorResponse(null, { code: ErrorCode.ParseError, message: "Parse error" }));
        continue;
      }
      this.#chain = this.#chain
        .then(() => this.#forward(msg, line))
        .catch((err: unknown) => this.#log(`message failed: ${String(err)}`));
    }
    await this.#chain;
    await this.#endSession();
    // The client is gone: its stateless-era requests (and listen streams) end with it.
    for (const ctl of this.#modern.values()) ctl.abort();
    this.#abort.abort();
    await Promise.allSettled([...this.#streams]);
  }

  #emit(msg: unknown): void {
    this.#output.write(`${typeof msg === "string" ? msg : JSON.stringify(msg)}\n`);
  }

  /** One stdin message: resolves once an edge has accepted it (its answer may still stream). */
  async #forward(msg: Message, raw: string): Promise<void> {
    if (isModern(msg) || this.#cancelsModern(msg)) return this.#forwardModern(msg, raw);
    const isRequest = typeof msg.method === "string" && msg.id !== undefined && msg.id !== null;
    let res: Response;
    let urlIndex: number;
    try {
      ({ res, urlIndex } = await this.#fetch(() => ({
        method: "POST",
        headers: this.#requestHeaders({
          "content-type": "application/json",
          accept: "application/json, text/event-stream",
        }),
        body: raw,
      })));
    } catch (err) {
      if (isRequest)
        this.#emit(
          lostError(msg.id, err instanceof EdgesUnreachable ? "no edge reachable" : String(err)),
        );
      else this.#log(`could not deliver ${String(msg.method ?? "response")}: ${String(err)}`);
      return;
    }
    if (!isRequest) {
      if (res.status >= 400)
        this.#log(
          `edge refused ${String(msg.method ?? "response")}: HTTP ${res.status} ${await res.text().catch(() => "")}`,
        );
      else await res.body?.cancel();
      if (msg.method === "notifications/initialized" && !this.#standalone) {
        this.#standalone = true;
        this.#track(this.#standaloneLoop());
      }
      return;
    }
    if (msg.method === "initialize" && res.ok) {
      this.#sessionId = res.headers.get("mcp-session-id") ?? undefined;
      const text = await res.text();
      try {
        const v = (JSON.parse(text) as { result?: { protocolVersion?: unknown } }).result
          ?.protocolVersion;
        if (typeof v === "string") this.#protocolVersion = v;
      } catch {
        // forwarded as is; the client will complain
      }
      this.#emit(text.trim());
      return;
    }
    this.#track(this.#answer(msg.id, res, urlIndex));
  }

  /** A `notifications/cancelled` for a stateless-era request of this bridge (it carries no `_meta`). */
  #cancelsModern(msg: Message): boolean {
    return (
      msg.method === "notifications/cancelled" &&
      this.#modern.has(idKey((msg["params"] as { requestId?: unknown } | undefined)?.requestId))
    );
  }

  /**
   * A stateless-era (2026-07-28) message: requests are one POST each with their request
   * metadata headers and no session; `notifications/cancelled` for one of them closes its
   * stream instead of being sent (on HTTP the closed stream is the cancel).
   */
  async #forwardModern(msg: Message, raw: string): Promise<void> {
    if (msg.method === "notifications/cancelled") {
      const requestId = (msg["params"] as { requestId?: unknown } | undefined)?.requestId;
      const ctl = this.#modern.get(idKey(requestId));
      if (ctl) {
        ctl.abort();
        return;
      }
    }
    const isRequest = typeof msg.method === "string" && msg.id !== undefined && msg.id !== null;
    const ctl = new AbortController();
    if (isRequest) this.#modern.set(idKey(msg.id), ctl);
    const send = async (): Promise<{ res: Response; urlIndex: number } | null> => {
      try {
        return await this.#fetch(
          () => ({ method: "POST", headers: modernHeaders(msg, this.#headers), body: raw }),
          undefined,
          ctl.signal,
        );
      } catch (err) {
        if (ctl.signal.aborted) return null;
        if (isRequest)
          this.#emit(
            lostError(msg.id, err instanceof EdgesUnreachable ? "no edge reachable" : String(err)),
          );
        else this.#log(`could not deliver ${String(msg.method)}: ${String(err)}`);
        return null;
      }
    };
    if (!isRequest) {
      const sent = await send();
      if (!sent) return;
      if (sent.res.status >= 400)
        this.#log(
          `edge refused ${String(msg.method)}: HTTP ${sent.res.status} ${await sent.res.text().catch(() => "")}`,
        );
      else await sent.res.body?.cancel();
      return;
    }
    // Not awaited in stdin order: the edge sends nothing until the request's first message (its
    // answer may be a plain JSON body with an HTTP status), and a later cancel must not wait for it.
    this.#track(
      (async () => {
        const first = await send();
        if (!first) return;
        let { res, urlIndex } = first;
        for (;;) {
          if ((res.headers.get("content-type") ?? "").includes("text/event-stream")) {
            let answered = false;
            let broken = false;
            try {
              await this.#relay(res, { retryMs: 0 }, (data) => {
                if (isResponseTo(data, msg.id)) answered = true;
              });
            } catch {
              broken = true;
            }
            if (answered || ctl.signal.aborted || this.#abort.signal.aborted) return;
            // Streams of this era are not resumable: a listen stream is reopened (it only
            // delivers what happens from now on); any other request's outcome is unknown.
            if (broken) this.#failed(urlIndex);
            if (msg.method !== "subscriptions/listen")
              return this.#emit(lostError(msg.id, "the edge closed the stream before the answer"));
            const again = await send();
            if (!again) return;
            ({ res, urlIndex } = again);
            continue;
          }
          const text = (await res.text()).trim();
          if (text === "") {
            if (res.status >= 400)
              this.#emit(errorFor(msg.id, ErrorCode.InternalError, `HTTP ${res.status}`));
          } else this.#emit(res.ok ? text : withId(text, msg.id, res.status));
          return;
        }
      })().finally(() => this.#modern.delete(idKey(msg.id))),
    );
  }

  #track(p: Promise<void>): void {
    const t = p
      .catch((err: unknown) => this.#log(`stream failed: ${String(err)}`))
      .finally(() => this.#streams.delete(t));
    this.#streams.add(t);
  }

  /** Delivers the answer to one request, resuming its SSE stream until the response arrives. */
  async #answer(id: unknown, first: Response, firstUrl: number): Promise<void> {
    const type = first.headers.get("content-type") ?? "";
    if (!type.includes("text/event-stream")) {
      const text = (await first.text()).trim();
      if (text === "") {
        // 202/204: nothing to deliver (e.g. the request was cancelled).
        if (first.status >= 400)
          this.#emit(errorFor(id, ErrorCode.InternalError, `HTTP ${first.status}`));
        return;
      }
      this.#emit(first.ok ? text : withId(text, id, first.status));
      return;
    }
    let res = first;
    let urlIndex = firstUrl;
    const pos: StreamPosition = { retryMs: 1_000 };
    for (;;) {
      let answered = false;
      let broken = false;
      try {
        await this.#relay(res, pos, (data) => {
          if (isResponseTo(data, id)) answered = true;
        });
      } catch {
        broken = true;
      }
      if (answered || this.#abort.signal.aborted) return;
      const lastEventId = pos.lastEventId;
      if (lastEventId === undefined) {
        this.#emit(lostError(id, "the edge closed the stream before any resumable event"));
        return;
      }
      // A clean close without the response is the server asking to poll (SEP-1699): come back
      // to the same edge after `retry`. A broken connection means the edge is gone: move on.
      if (broken) this.#failed(urlIndex);
      else await sleep(pos.retryMs, this.#abort.signal);
      const after = lastEventId;
      try {
        ({ res, urlIndex } = await this.#fetch(
          () => ({
            method: "GET",
            headers: this.#requestHeaders({ accept: "text/event-stream", "last-event-id": after }),
          }),
          (r) => r.ok && (r.headers.get("content-type") ?? "").includes("text/event-stream"),
        ));
      } catch (err) {
        this.#emit(
          lostError(
            id,
            err instanceof EdgesUnreachable
              ? "no edge reachable to resume the stream"
              : String(err),
          ),
        );
        return;
      }
    }
  }

  /** The session's standalone GET stream (server-initiated messages), resumed after breaks. */
  async #standaloneLoop(): Promise<void> {
    const pos: StreamPosition = { retryMs: 1_000 };
    while (!this.#abort.signal.aborted && this.#sessionId) {
      let res: Response;
      let urlIndex: number;
      try {
        const after = pos.lastEventId;
        ({ res, urlIndex } = await this.#fetch(
          () => ({
            method: "GET",
            headers: this.#requestHeaders(
              after
                ? { accept: "text/event-stream", "last-event-id": after }
                : { accept: "text/event-stream" },
            ),
          }),
          (r) => r.status < 500,
        ));
      } catch {
        return;
      }
      if (!res.ok) {
        // 405: the edge offers no GET stream; 404: the session is gone.
        await res.body?.cancel();
        if (res.status === 404)
          this.#log("session not found on the edge; the client must re-initialize");
        return;
      }
      try {
        await this.#relay(res, pos);
        await sleep(pos.retryMs, this.#abort.signal);
      } catch {
        this.#failed(urlIndex);
      }
    }
  }

  /**
   * Writes one SSE response's JSON-RPC messages to stdout (one line each) and advances `pos`
   * (last event id, server-requested retry); `onMessage` sees each message's data. Throws when
   * the connection breaks mid-stream.
   */
  async #relay(
    res: Response,
    pos: StreamPosition,
    onMessage?: (data: string) => void,
  ): Promise<void> {
    for await (const ev of sseEvents(res.body)) {
      if (ev.id) pos.lastEventId = ev.id;
      if (ev.retry !== undefined) pos.retryMs = ev.retry;
      if (ev.data === "" || (ev.event !== undefined && ev.event !== "message")) continue;
      this.#emit(oneLine(ev.data));
      onMessage?.(ev.data);
    }
  }

  async #endSession(): Promise<void> {
    if (!this.#sessionId) return;
    const url = this.#urls[this.#current]!;
    try {
      const res = await fetch(url, {
        method: "DELETE",
        headers: this.#requestHeaders({}),
        signal: AbortSignal.timeout(2_000),
      });
      await res.body?.cancel();
    } catch {
      // best effort: the session also expires on its own
    }
  }

  #requestHeaders(extra: Record<string, string>): Record<string, string> {
    const h: Record<string, string> = { ...this.#headers, ...extra };
    if (this.#sessionId) h["mcp-session-id"] = this.#sessionId;
    if (this.#protocolVersion) h["mcp-protocol-version"] = this.#protocolVersion;
    return h;
  }

  /** Marks an edge as failed; only moves on if nobody moved on already. */
  #failed(index: number): void {
    if (this.#current === index) this.#current = (index + 1) % this.#urls.length;
  }

  /**
   * Sends a request to the current edge, moving through the URL list while edges do not answer
   * (connection refused or reset, or `usable` rejects the response: 502/503/504 from a proxy).
   */
  async #fetch(
    init: () => RequestInit,
    usable: (r: Response) => boolean = (r) => r.status !== 502 && r.status !== 504,
    cancel?: AbortSignal,
  ): Promise<{ res: Response; urlIndex: number }> {
    const deadline = Date.now() + this.#retryTimeoutMs;
    const signal = cancel ? AbortSignal.any([this.#abort.signal, cancel]) : this.#abort.signal;
    for (let attempt = 0; ; attempt++) {
      const urlIndex = this.#current;
      const url = this.#urls[urlIndex]!;
      let problem: string;
      try {
        const res = await fetch(url, { ...init(), signal });
        if (usable(res)) return { res, urlIndex };
        problem = `HTTP ${res.status}`;
        await res.body?.cancel();
      } catch (err) {
        if (signal.aborted) throw err;
        problem = String((err as { cause?: unknown }).cause ?? err);
      }
      this.#failed(urlIndex);
      if (Date.now() >= deadline) throw new EdgesUnreachable(problem);
      if (attempt === 0 || attempt % this.#urls.length === 0)
        this.#log(`${url}: ${problem}; trying ${this.#urls[this.#current]}`);
      // Each URL once quickly, then back off (capped) while every edge is down.
      const round = Math.floor(attempt / this.#urls.length);
      await sleep(round === 0 ? 50 : Math.min(100 * 2 ** round, 2_000), signal);
    }
  }
}

/** Parses a fetch body as Server-Sent Events. */
async function* sseEvents(body: ReadableStream<Uint8Array> | null): AsyncGenerator<SseEvent> {
  if (!body) return;
  const decoder = new TextDecoder();
  let buf = "";
  let ev: SseEvent = { id: undefined, event: undefined, data: "", retry: undefined };
  let hasData = false;
  for await (const chunk of body as unknown as AsyncIterable<Uint8Array>) {
    buf += decoder.decode(chunk, { stream: true });
    let nl: number;
    while ((nl = buf.search(/\r\n|\n|\r/)) >= 0) {
      const line = buf.slice(0, nl);
      buf = buf.slice(nl + (buf.startsWith("\r\n", nl) ? 2 : 1));
      if (line === "") {
        if (hasData || ev.id !== undefined || ev.retry !== undefined) yield ev;
        ev = { id: undefined, event: undefined, data: "", retry: undefined };
        hasData = false;
        continue;
      }
      if (line.startsWith(":")) continue;
      const i = line.indexOf(":");
      const field = i < 0 ? line : line.slice(0, i);
      const value = i < 0 ? "" : line.slice(i + 1).replace(/^ /, "");
      if (field === "data") {
        ev.data = hasData ? `${ev.data}\n${value}` : value;
        hasData = true;
      } else if (field === "id") ev.id = value;
      else if (field === "event") ev.event = value;
      else if (field === "retry" && /^\d+$/.test(value)) ev.retry = Number(value);
    }
  }
}

function isResponseTo(data: string, id: unknown): boolean {
  try {
    const m = JSON.parse(data) as Message;
    return m.method === undefined && m.id === id && ("result" in m || "error" in m);
  } catch {
    return false;
  }
}

function oneLine(data: string): string {
  if (!data.includes("\n")) return data;
  try {
    return JSON.stringify(JSON.parse(data));
  } catch {
    return data.replace(/\n/g, " ");
  }
}

/** An HTTP error body (JSON-RPC, id null) re-addressed to the request it answers. */
function withId(text: string, id: unknown, status: number): string {
  try {
    const m = JSON.parse(text) as { error?: JsonRpcErrorObject; id?: unknown };
    if (m.error) return JSON.stringify(errorResponse(idOf(id), m.error));
  } catch {
    // not JSON
  }
  return JSON.stringify(errorFor(id, ErrorCode.InternalError, `HTTP ${status}`));
}

/** A client's message id as JSON-RPC allows it in an error answer (anything else: null). */
const idOf = (id: unknown): RequestId | null =>
  typeof id === "string" || typeof id === "number" ? id : null;

function errorFor(id: unknown, code: number, message: string) {
  return errorResponse(idOf(id), { code, message });
}

function lostError(id: unknown, why: string) {
  return errorFor(
    id,
    ErrorCode.InternalError,
    `Connection to mcpq lost (${why}); the request's outcome is unknown`,
  );
}

/**
 * A stateless-era (2026-07-28) message: it declares a non-legacy revision in `_meta`, or is
 * `server/discover` (the stdio era probe) or `subscriptions/listen`.
 */
function isModern(msg: Message): boolean {
  const declared = declaredVersion(msg["params"]);
  if (declared !== undefined) return !isSupportedProtocolVersion(declared);
  return msg.method === "server/discover" || msg.method === "subscriptions/listen";
}

/** Header-safe: visible ASCII and inner spaces only, and not the sentinel itself. */
function headerValue(v: string): string {
  const safe = /^[\x21-\x7e]([\x20-\x7e]*[\x21-\x7e])?$/.test(v) && !/^=\?base64\?.*\?=$/.test(v);
  return safe ? v : `=?base64?${Buffer.from(v, "utf8").toString("base64")}?=`;
}

/** The Streamable HTTP request metadata headers of a stateless-era message (MCP-Protocol-Version, Mcp-Method, Mcp-Name). */
function modernHeaders(msg: Message, base: Record<string, string>): Record<string, string> {
  const h: Record<string, string> = {
    ...base,
    "content-type": "application/json",
    accept: "application/json, text/event-stream",
  };
  const version = declaredVersion(msg["params"]);
  if (version !== undefined && headerValue(version) === version)
    h["mcp-protocol-version"] = version;
  if (typeof msg.method === "string") h["mcp-method"] = headerValue(msg.method);
  const field = typeof msg.method === "string" ? NAMED_METHODS[msg.method] : undefined;
  const name = field ? (msg["params"] as Record<string, unknown> | undefined)?.[field] : undefined;
  if (typeof name === "string") h["mcp-name"] = headerValue(name);
  return h;
}

function idKey(id: unknown): string {
  return `${typeof id}:${String(id)}`;
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const t = setTimeout(done, ms);
    function done() {
      clearTimeout(t);
      signal.removeEventListener("abort", done);
      resolve();
    }
    signal.addEventListener("abort", done, { once: true });
  });
}
