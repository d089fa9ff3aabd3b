/**
 * MCP over WebSocket client (`ws`): URL ws://HOST:PORT/ws, subprotocol "mcp",
 * one JSON-RPC message per text frame; one socket = one MCP session.
 * The mcpq edge offers this transport; other servers (e.g. the SDK reference) do not,
 * so callers should use `probeWs()` first and skip cleanly when it returns a reason.
 */
import WebSocket from "ws";
import {
  ANSWER_GRACE_MS,
  CLIENT_INFO,
  DEFAULT_PROTOCOL_VERSION,
  checkEchoResult,
  classifyRpcError,
  deadlineMeta,
  lateAsTimeout,
  type McpSession,
  type Outcome,
} from "./types.js";
import { assertLoopback } from "./http.js";

interface Pending {
  resolve: (
    m: { result?: unknown; error?: { code?: unknown; message?: unknown } } | Outcome,
  ) => void;
  timer: NodeJS.Timeout;
}

export interface WsOptions {
  url: string;
  localAddress?: string;
  protocolVersion?: string;
  toolName?: string;
  handshakeTimeoutMs?: number;
}

export class WsMcpSession implements McpSession {
  readonly transport = "websocket";
  sessionId: string | undefined;
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();
  closed = false;
  closeCode: string | undefined;

  private constructor(
    private readonly ws: WebSocket,
    private readonly opts: WsOptions,
  ) {
    ws.on("message", (data, isBinary) => {
      if (isBinary) return;
      let m: { id?: unknown; result?: unknown; error?: { code?: unknown; message?: unknown } };
      try {
        m = JSON.parse(data.toString());
      } catch {
        return;
      }
      if (typeof m.id !== "number") return; // notifications / server requests ignored
      const p = this.pending.get(m.id);
      if (!p) return;
      this.pending.delete(m.id);
      clearTimeout(p.timer);
      p.resolve(m);
    });
    ws.on("close", (code) => {
      this.closed = true;
      this.closeCode = `ws_closed_${code}`;
      for (const [id, p] of this.pending) {
        clearTimeout(p.timer);
        p.resolve({ kind: code === 1013 ? "rejected" : "error", code: this.closeCode });
        this.pending.delete(id);
      }
    });
    ws.on("error", () => {
      /* close follows */
    });
  }

  static connect(opts: WsOptions): Promise<WsMcpSession> {
    assertLoopback(new URL(opts.url).hostname);
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(opts.url, "mcp", {
        localAddress: opts.localAddress,
        perMessageDeflate: false,
        handshakeTimeout: opts.handshakeTimeoutMs ?? 10_000,
      });
      const fail = (e: Error & { outcome?: Outcome }) => {
        ws.removeAllListeners();
        ws.on("error", () => undefined);
        try {
          ws.terminate();
        } catch {
          /* ignore */
        }
        reject(e);
      };
      ws.once("unexpected-response", (_req, res) => {
        const status = res.statusCode ?? 0;
        res.resume();
        fail(
          Object.assign(new Error(`WebSocket upgrade refused: HTTP ${status}`), {
            outcome: {
              kind: status === 429 || status === 503 ? "rejected" : "error",
              code: `http_${status}`,
            } as Outcome,
            status,
          }),
        );
      });
      ws.once("error", (e: Error & { code?: string }) =>
        fail(
          Object.assign(e, { outcome: { kind: "error", code: e.code ?? "ws_error" } as Outcome }),
        ),
      );
      ws.once("open", () => {
        ws.removeAllListeners("error");
        ws.removeAllListeners("unexpected-response");
        if (ws.protocol !== "mcp") {
          fail(
            Object.assign(
              new Error(`server did not select subprotocol "mcp" (got "${ws.protocol}")`),
              { outcome: { kind: "error", code: "ws_subprotocol" } as Outcome },
            ),
          );
          return;
        }
        resolve(new WsMcpSession(ws, opts));
      });
    });
  }

  /** connect + initialize + notifications/initialized */
  static async open(opts: WsOptions, timeoutMs = 10_000): Promise<WsMcpSession> {
    const s = await WsMcpSession.connect(opts);
    const r = await s.request(
      "initialize",
      {
        protocolVersion: opts.protocolVersion ?? DEFAULT_PROTOCOL_VERSION,
        capabilities: {},
        clientInfo: CLIENT_INFO,
      },
      timeoutMs,
    );
    if ("kind" in r) {
      s.terminate();
      throw Object.assign(new Error(`initialize failed: ${r.code}`), { outcome: r });
    }
    if (r.error) {
      s.terminate();
      throw Object.assign(new Error(`initialize error: ${String(r.error.message)}`), {
        outcome: classifyRpcError(r.error.code, r.error.message),
      });
    }
    s.send({ jsonrpc: "2.0", method: "notifications/initialized" });
    return s;
  }

  private send(obj: unknown): boolean {
    if (this.closed || this.ws.readyState !== WebSocket.OPEN) return false;
    this.ws.send(JSON.stringify(obj));
    return true;
  }

  request(
    method: string,
    params: unknown,
    timeoutMs: number,
  ): Promise<{ result?: unknown; error?: { code?: unknown; message?: unknown } } | Outcome> {
    const id = this.nextId++;
    return new Promise((resolve) => {
      if (this.closed || this.ws.readyState !== WebSocket.OPEN) {
        resolve({ kind: "error", code: this.closeCode ?? "ws_not_open" });
        return;
      }
      const timer = setTimeout(() => {
        this.pending.delete(id);
        resolve({ kind: "timeout", code: "timeout" });
      }, timeoutMs);
      this.pending.set(id, { resolve, timer });
      this.send({ jsonrpc: "2.0", id, method, params });
    });
  }

  async callEcho(text: string, timeoutMs: number): Promise<Outcome> {
    const startedAt = performance.now();
    const r = await this.request(
      "tools/call",
      { name: this.opts.toolName ?? "echo", arguments: { text }, _meta: deadlineMeta(timeoutMs) },
      timeoutMs + ANSWER_GRACE_MS,
    );
    if ("kind" in r) return r as Outcome;
    if (r.error) return classifyRpcError(r.error.code, r.error.message);
    return lateAsTimeout(checkEchoResult(r.result, text), startedAt, timeoutMs);
  }

  terminate(): void {
    this.closed = true;
    try {
      this.ws.terminate();
    } catch {
      /* ignore */
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    await new Promise<void>((resolve) => {
      const t = setTimeout(() => {
        this.terminate();
        resolve();
      }, 2000);
      this.ws.once("close", () => {
        clearTimeout(t);
        resolve();
      });
      try {
        this.ws.close(1000);
      } catch {
        clearTimeout(t);
        resolve();
      }
    });
  }
}

/** Returns null when a WS MCP endpoint answers at `url`, else a human-readable reason to skip. */
export async function probeWs(url: string): Promise<string | null> {
  try {
    const s = await WsMcpSession.open({ url, handshakeTimeoutMs: 3000 }, 5000);
    await s.close();
    return null;
  } catch (e) {
    return `WebSocket MCP endpoint ${url} unavailable (${(e as Error).message})`;
  }
}
