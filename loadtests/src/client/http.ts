/**
 * MCP Streamable HTTP client speaking the wire protocol directly with undici
 * (keep-alive Pool/Agent, no SDK in the measured path).
 *
 * POST JSON-RPC with
 *   accept: application/json, text/event-stream
 *   content-type: application/json
 *   mcp-session-id: <sid>            (after initialize)
 *   mcp-protocol-version: 2025-11-25
 * and accept either an application/json body or a text/event-stream body, in which case
 * the `data:` of the event carrying the JSON-RPC response with our id is used. The SSE
 * body is parsed incrementally: the response is timestamped as soon as its event arrives;
 * the rest of the stream is drained in the background so the keep-alive connection is reused.
 */
import type { Dispatcher } from "undici";
import { SseParser } from "./sse.js";
import {
  ANSWER_GRACE_MS,
  CLIENT_INFO,
  DEFAULT_PROTOCOL_VERSION,
  OK,
  TimeoutError,
  checkEchoResult,
  classifyHttpStatus,
  classifyRpcError,
  classifyThrown,
  deadlineMeta,
  lateAsTimeout,
  type McpSession,
  type Outcome,
} from "./types.js";

export interface HttpEndpoint {
  /** e.g. http://127.0.0.1:3000 */
  origin: string;
  /** e.g. /mcp */
  path: string;
  protocolVersion?: string;
  toolName?: string;
}

interface RpcReply {
  /** JSON-RPC response object (result or error) */
  msg?: { result?: unknown; error?: { code?: unknown; message?: unknown } };
  /** classified failure when no usable response */
  fail?: Outcome;
  headers?: Record<string, string | string[] | undefined>;
}

const DRAIN_LIMIT_MS = 10_000;

function headerStr(
  h: Record<string, string | string[] | undefined>,
  k: string,
): string | undefined {
  const v = h[k];
  return Array.isArray(v) ? v[0] : v;
}

export class HttpMcpSession implements McpSession {
  readonly transport = "streamable-http";
  sessionId: string | undefined;
  private nextId = 1;
  private readonly baseHeaders: Record<string, string>;

  constructor(
    readonly endpoint: HttpEndpoint,
    /** dispatcher used for POSTs (a Pool bound to endpoint.origin, or an Agent) */
    readonly dispatcher: Dispatcher,
  ) {
    this.baseHeaders = {
      accept: "application/json, text/event-stream",
      "content-type": "application/json",
      "mcp-protocol-version": endpoint.protocolVersion ?? DEFAULT_PROTOCOL_VERSION,
    };
  }

  /** initialize + notifications/initialized. Throws an Error with .outcome on failure. */
  static async open(
    endpoint: HttpEndpoint,
    dispatcher: Dispatcher,
    timeoutMs = 10_000,
  ): Promise<HttpMcpSession> {
    const s = new HttpMcpSession(endpoint, dispatcher);
    const init = await s.rpc(
      "initialize",
      {
        protocolVersion: endpoint.protocolVersion ?? DEFAULT_PROTOCOL_VERSION,
        capabilities: {},
        clientInfo: CLIENT_INFO,
      },
      timeoutMs,
    );
    if (init.fail)
      throw Object.assign(new Error(`initialize failed: ${init.fail.code}`), {
        outcome: init.fail,
      });
    if (init.msg?.error) {
      const o = classifyRpcError(init.msg.error.code, init.msg.error.message);
      throw Object.assign(new Error(`initialize error: ${String(init.msg.error.message)}`), {
        outcome: o,
      });
    }
    s.sessionId = init.headers ? headerStr(init.headers, "mcp-session-id") : undefined;
    const n = await s.notify("notifications/initialized", undefined, timeoutMs);
    if (n.kind !== "ok")
      throw Object.assign(new Error(`notifications/initialized failed: ${n.code}`), { outcome: n });
    return s;
  }

  private headers(): Record<string, string> {
    return this.sessionId
      ? { ...this.baseHeaders, "mcp-session-id": this.sessionId }
      : this.baseHeaders;
  }

  async notify(method: string, params: unknown, timeoutMs: number): Promise<Outcome> {
    const body = JSON.stringify(
      params === undefined ? { jsonrpc: "2.0", method } : { jsonrpc: "2.0", method, params },
    );
    const ac = new AbortController();
    const timer = setTimeout(() => ac.abort(new TimeoutError()), timeoutMs);
    try {
      const r = await this.dispatcher.request({
        origin: this.endpoint.origin,
        path: this.endpoint.path,
        method: "POST",
        headers: this.headers(),
        body,
        signal: ac.signal,
      });
      const text = await r.body.text();
      if (r.statusCode >= 200 && r.statusCode < 300) return OK;
      return classifyHttpStatus(r.statusCode, text);
    } catch (e) {
      return classifyThrown(ac.signal.aborted ? new TimeoutError() : e);
    } finally {
      clearTimeout(timer);
    }
  }

  /** One JSON-RPC request; resolves as soon as the matching response is available. */
  rpc(method: string, params: unknown, timeoutMs: number): Promise<RpcReply> {
    const id = this.nextId++;
    const body = JSON.stringify({ jsonrpc: "2.0", id, method, params });
    const ac = new AbortController();
    return new Promise<RpcReply>((resolve) => {
      let settled = false;
      const finish = (r: RpcReply) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        resolve(r);
      };
      const timer = setTimeout(() => {
        finish({ fail: { kind: "timeout", code: "timeout" } });
        ac.abort(new TimeoutError());
      }, timeoutMs);

      this.dispatcher
        .request({
          origin: this.endpoint.origin,
          path: this.endpoint.path,
          method: "POST",
          headers: this.headers(),
          body,
          signal: ac.signal,
        })
        .then(
          (res) => {
            const headers = res.headers;
            if (res.statusCode < 200 || res.statusCode >= 300) {
              res.body.text().then(
                (t) => finish({ fail: classifyHttpStatus(res.statusCode, t), headers }),
                (e) => finish({ fail: classifyHttpStatus(res.statusCode, String(e)) }),
              );
              return;
            }
            const ctype = (headerStr(headers, "content-type") ?? "").toLowerCase();
            if (ctype.startsWith("text/event-stream")) {
              let found = false;
              const parser = new SseParser((data) => {
                if (found) return;
                let m: { id?: unknown; result?: unknown; error?: unknown };
                try {
                  m = JSON.parse(data);
                } catch {
                  return;
                }
                if (m && m.id === id && ("result" in m || "error" in m)) {
                  found = true;
                  finish({ msg: m as RpcReply["msg"], headers });
                  // keep draining so the connection returns to the pool; bound the drain
                  const dt = setTimeout(() => res.body.destroy(), DRAIN_LIMIT_MS);
                  dt.unref();
                  res.body.once("close", () => clearTimeout(dt));
                }
              });
              res.body.setEncoding("utf8");
              res.body.on("data", (chunk: string) => {
                if (!found) parser.push(chunk);
              });
              res.body.on("end", () => {
                if (!found) parser.end();
                if (!found) finish({ fail: { kind: "error", code: "sse_no_response" }, headers });
              });
              res.body.on("error", (e) => {
                if (!found)
                  finish({
                    fail: ac.signal.aborted
                      ? { kind: "timeout", code: "timeout" }
                      : classifyThrown(e),
                    headers,
                  });
              });
              return;
            }
            res.body.text().then(
              (t) => {
                let m: unknown;
                try {
                  m = JSON.parse(t);
                } catch {
                  finish({ fail: { kind: "error", code: "bad_json" }, headers });
                  return;
                }
                const arr = Array.isArray(m) ? m : [m];
                const hit = arr.find((x: { id?: unknown }) => x && x.id === id);
                if (!hit) finish({ fail: { kind: "error", code: "no_response" }, headers });
                else finish({ msg: hit as RpcReply["msg"], headers });
              },
              (e) =>
                finish({
                  fail: ac.signal.aborted
                    ? { kind: "timeout", code: "timeout" }
                    : classifyThrown(e),
                  headers,
                }),
            );
          },
          (e) =>
            finish({
              fail: ac.signal.aborted ? { kind: "timeout", code: "timeout" } : classifyThrown(e),
            }),
        );
    });
  }

  async callEcho(text: string, timeoutMs: number): Promise<Outcome> {
    const startedAt = performance.now();
    const r = await this.rpc(
      "tools/call",
      {
        name: this.endpoint.toolName ?? "echo",
        arguments: { text },
        _meta: deadlineMeta(timeoutMs),
      },
      timeoutMs + ANSWER_GRACE_MS,
    );
    if (r.fail) return r.fail;
    const m = r.msg!;
    if (m.error) return classifyRpcError(m.error.code, m.error.message);
    return lateAsTimeout(checkEchoResult(m.result, text), startedAt, timeoutMs);
  }

  /**
   * Open the standalone SSE stream (GET /mcp, accept: text/event-stream) and hold it.
   * Resolves once the 200 response headers arrive. `dispatcher` lets the caller choose
   * the source address (undici Agent with connect.localAddress).
   */
  async openGetStream(dispatcher: Dispatcher, timeoutMs: number): Promise<HeldStream> {
    const ac = new AbortController();
    const timer = setTimeout(() => ac.abort(new TimeoutError()), timeoutMs);
    try {
      const res = await dispatcher.request({
        origin: this.endpoint.origin,
        path: this.endpoint.path,
        method: "GET",
        headers: {
          accept: "text/event-stream",
          "mcp-protocol-version": this.baseHeaders["mcp-protocol-version"]!,
          ...(this.sessionId ? { "mcp-session-id": this.sessionId } : {}),
        },
        signal: ac.signal,
        // idle SSE stream: no body timeout
        bodyTimeout: 0,
      });
      clearTimeout(timer);
      if (res.statusCode !== 200) {
        const t = await res.body.text().catch(() => "");
        throw Object.assign(new Error(`GET stream HTTP ${res.statusCode}`), {
          outcome: classifyHttpStatus(res.statusCode, t),
        });
      }
      const held = new HeldStream(() => res.body.destroy());
      res.body.on("data", () => {
        held.events++;
      });
      res.body.on("error", () => {
        held.closed = true;
      });
      res.body.on("close", () => {
        held.closed = true;
      });
      return held;
    } catch (e) {
      clearTimeout(timer);
      if ((e as { outcome?: Outcome }).outcome) throw e;
      throw Object.assign(e instanceof Error ? e : new Error(String(e)), {
        outcome: classifyThrown(ac.signal.aborted ? new TimeoutError() : e),
      });
    }
  }

  /** DELETE the session (best effort). */
  async close(timeoutMs = 5000): Promise<void> {
    if (!this.sessionId) return;
    const ac = new AbortController();
    const timer = setTimeout(() => ac.abort(new TimeoutError()), timeoutMs);
    try {
      const r = await this.dispatcher.request({
        origin: this.endpoint.origin,
        path: this.endpoint.path,
        method: "DELETE",
        headers: this.headers(),
        signal: ac.signal,
      });
      await r.body.text().catch(() => undefined);
    } catch {
      /* best effort */
    } finally {
      clearTimeout(timer);
    }
  }
}

export class HeldStream {
  events = 0;
  closed = false;
  constructor(private readonly destroyFn: () => void) {}
  close(): void {
    if (!this.closed) this.destroyFn();
    this.closed = true;
  }
}

export function parseMcpUrl(url: string, toolName?: string): HttpEndpoint {
  const u = new URL(url);
  if (u.protocol !== "http:") throw new Error(`only http:// MCP URLs are supported, got ${url}`);
  assertLoopback(u.hostname);
  return { origin: u.origin, path: u.pathname + u.search, toolName };
}

export function assertLoopback(host: string): void {
  const h = host.replace(/^\[|\]$/g, "");
  if (h === "localhost" || h === "::1" || /^127\.\d+\.\d+\.\d+$/.test(h)) return;
  throw new Error(`load tests target loopback (127.0.0.0/8, ::1) only; refusing ${host}`);
}
