import { connect as tcpConnect, type Socket } from "node:net";
import { fileURLToPath } from "node:url";
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import WebSocket from "ws";
import {
  EVENT_METHOD,
  GRPC_PROTO_URL,
  RESUME_METHOD,
  SESSION_ID_META_KEY,
  type ResumeResult,
} from "@mcpq/protocol";

/** One JSON-RPC message as the tests see it. */
export type Message = {
  jsonrpc: "2.0";
  id?: string | number | null;
  method?: string;
  params?: Record<string, unknown>;
  result?: Record<string, unknown>;
  error?: { code: number; message: string; data?: unknown };
};

/** A message-per-frame connection (WebSocket frame, TCP line, gRPC frame). */
export interface Wire {
  send(text: string): void;
  close(): void;
  onMessage(cb: (text: string) => void): void;
  /** Resolves when the connection is gone, with what the server said about why. */
  readonly closed: Promise<{ code?: number | string; reason?: string }>;
}

const INIT_PARAMS = {
  protocolVersion: "2025-11-25",
  capabilities: {},
  clientInfo: { name: "socket-test", version: "1" },
};

/**
 * A small JSON-RPC client over any Wire, implementing mcpq's socket resumption: it records the
 * event id a `$/mcpq/event` marker announces once the following message arrives (per stream),
 * and `resume()` on a new wire replays everything after those ids. Pending requests survive a
 * wire swap, so a response that arrives on the new connection settles the original call.
 */
export class RpcClient {
  readonly received: Message[] = [];
  readonly lastEventIds = new Map<string, string>();
  #pending = new Map<string, { resolve: (m: Message) => void }>();
  #announced: string | undefined;
  #listeners: ((m: Message) => void)[] = [];
  #next = 1;
  wire!: Wire;
  sessionId: string | undefined;
  streamId: string | undefined;

  constructor(wire: Wire) {
    this.attach(wire);
  }

  attach(wire: Wire): void {
    this.wire = wire;
    this.#announced = undefined;
    wire.onMessage((text) => this.#onText(text));
  }

  #onText(text: string): void {
    const m = JSON.parse(text) as Message;
    if (m.method === EVENT_METHOD) {
      this.#announced = (m.params as { id: string }).id;
      return;
    }
    if (this.#announced) {
      this.lastEventIds.set(
        this.#announced.slice(0, this.#announced.indexOf("_")),
        this.#announced,
      );
      this.#announced = undefined;
    }
    this.received.push(m);
    for (const l of this.#listeners) l(m);
    if (m.method === undefined && m.id !== undefined && m.id !== null) {
      const key = `${typeof m.id}:${m.id}`;
      const p = this.#pending.get(key);
      if (p) {
        this.#pending.delete(key);
        p.resolve(m);
      }
    }
  }

  onMessage(cb: (m: Message) => void): void {
    this.#listeners.push(cb);
  }

  /** Sends a request; resolves with the whole response message (result or error). */
  call(
    method: string,
    params?: Record<string, unknown>,
    id: string | number = this.#next++,
  ): Promise<Message> {
    return new Promise((resolve) => {
      this.#pending.set(`${typeof id}:${id}`, { resolve });
      this.wire.send(
        JSON.stringify(
          params === undefined
            ? { jsonrpc: "2.0", id, method }
            : { jsonrpc: "2.0", id, method, params },
        ),
      );
    });
  }

  /** A request whose result is returned; throws on a JSON-RPC error. */
  async request(
    method: string,
    params?: Record<string, unknown>,
  ): Promise<Record<string, unknown>> {
    const m = await this.call(method, params);
    if (m.error)
      throw Object.assign(new Error(m.error.message), { code: m.error.code, data: m.error.data });
    return m.result!;
  }

  notify(method: string, params?: Record<string, unknown>): void {
    this.wire.send(
      JSON.stringify(
        params === undefined ? { jsonrpc: "2.0", method } : { jsonrpc: "2.0", method, params },
      ),
    );
  }

  /** `$/mcpq/resume` without a session (event markers on), then initialize + initialized. */
  async initialize(resumable = true): Promise<void> {
    if (resumable) {
      const r = (await this.request(RESUME_METHOD, {})) as unknown as ResumeResult;
      this.streamId = r.streamId;
    }
    const m = await this.call("initialize", INIT_PARAMS);
    if (m.error) throw new Error(`initialize failed: ${m.error.message}`);
    this.sessionId = (m.result?.["_meta"] as Record<string, string> | undefined)?.[
      SESSION_ID_META_KEY
    ];
    this.notify("notifications/initialized");
  }

  /**
   * Resumes the session on a new wire: every stream this client has seen is replayed after its
   * last event; a stream it has seen nothing of yet (its own, just opened) from the start.
   */
  async resume(
    wire: Wire,
    sessionId = this.sessionId!,
    extra: Record<string, unknown> = {},
  ): Promise<Message> {
    const ids = [...this.lastEventIds.values()];
    if (this.streamId && !this.lastEventIds.has(this.streamId)) ids.push(`${this.streamId}_0`);
    this.attach(wire);
    const m = await this.call(RESUME_METHOD, { sessionId, lastEventId: ids, ...extra });
    if (m.result) this.streamId = (m.result as unknown as ResumeResult).streamId;
    return m;
  }

  notifications(method: string): Message[] {
    return this.received.filter((m) => m.method === method);
  }
}

/** A WebSocket wire (subprotocol `mcp`). */
export async function wsWire(
  url: string,
  opts: { headers?: Record<string, string>; protocols?: string[] } = {},
): Promise<Wire & { ws: WebSocket }> {
  const ws = new WebSocket(url, opts.protocols ?? ["mcp"], { headers: opts.headers ?? {} });
  const closed = new Promise<{ code?: number; reason?: string }>((resolve) =>
    ws.once("close", (code, reason) => resolve({ code, reason: reason.toString() })),
  );
  await new Promise<void>((resolve, reject) => {
    ws.once("open", () => resolve());
    ws.once("error", reject);
    ws.once("unexpected-response", (_req, res) =>
      reject(Object.assign(new Error(`HTTP ${res.statusCode}`), { status: res.statusCode })),
    );
  });
  ws.on("error", () => undefined);
  return {
    ws,
    send: (t) => ws.send(t),
    close: () => ws.terminate(),
    onMessage: (cb) => ws.on("message", (d) => cb(d.toString())),
    closed,
  };
}

/** A newline-delimited TCP wire. */
export async function tcpWire(
  port: number,
  host = "127.0.0.1",
): Promise<Wire & { socket: Socket }> {
  const socket = tcpConnect({ host, port });
  await new Promise<void>((resolve, reject) => {
    socket.once("connect", () => resolve());
    socket.once("error", reject);
  });
  socket.on("error", () => undefined);
  const cbs: ((t: string) => void)[] = [];
  let buf = "";
  let lastLine: string | undefined;
  socket.setEncoding("utf8");
  socket.on("data", (d: string) => {
    buf += d;
    let nl: number;
    while ((nl = buf.indexOf("\n")) >= 0) {
      const line = buf.slice(0, nl);
      buf = buf.slice(nl + 1);
      lastLine = line;
      for (const cb of cbs) cb(line);
    }
  });
  const closed = new Promise<{ reason?: string }>((resolve) =>
    socket.once("close", () => resolve(lastLine === undefined ? {} : { reason: lastLine })),
  );
  return {
    socket,
    send: (t) => void socket.write(`${t}\n`),
    close: () => socket.destroy(),
    onMessage: (cb) => cbs.push(cb),
    closed,
  };
}

let grpcCtor: grpc.ServiceClientConstructor | undefined;
/** The generated gRPC client constructor of `mcpq.v1.Mcp`. */
function grpcClientCtor(): grpc.ServiceClientConstructor {
  if (!grpcCtor) {
    const def = protoLoader.loadSync(fileURLToPath(GRPC_PROTO_URL), {
      keepCase: true,
      defaults: true,
    });
    grpcCtor = (
      grpc.loadPackageDefinition(def) as unknown as {
        mcpq: { v1: { Mcp: grpc.ServiceClientConstructor } };
      }
    ).mcpq.v1.Mcp;
  }
  return grpcCtor;
}

/** A gRPC `Session` stream wire. */
export function grpcWire(
  port: number,
  metadata: Record<string, string> = {},
): Wire & {
  call: grpc.ClientDuplexStream<{ json: string }, { json: string }>;
  client: grpc.Client;
} {
  const Ctor = grpcClientCtor();
  const client = new Ctor(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
  const md = new grpc.Metadata();
  for (const [k, v] of Object.entries(metadata)) md.set(k, v);
  const call = (
    client as unknown as {
      Session(md: grpc.Metadata): grpc.ClientDuplexStream<{ json: string }, { json: string }>;
    }
  ).Session(md);
  const closed = new Promise<{ code?: number; reason?: string }>((resolve) => {
    call.on("status", (s: grpc.StatusObject) => resolve({ code: s.code, reason: s.details }));
    call.on("error", () => undefined);
  });
  return {
    call,
    client,
    send: (t) => void call.write({ json: t }),
    close: () => {
      call.cancel();
      client.close();
    },
    onMessage: (cb) => call.on("data", (f: { json: string }) => cb(f.json)),
    closed,
  };
}

/** Progress values of a token, in arrival order. */
export function progressOf(c: RpcClient, token: string | number): number[] {
  return c
    .notifications("notifications/progress")
    .filter((m) => m.params?.["progressToken"] === token)
    .map((m) => m.params!["progress"] as number);
}

/** The text of a tools/call result. */
export function text(m: Message | undefined): string | undefined {
  return (m?.result?.["content"] as { text?: string }[] | undefined)?.[0]?.text;
}
