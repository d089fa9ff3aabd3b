import { rawInitialize } from "./raw-init.js";
/**
 * A minimal raw Streamable HTTP client for overload tests: it exposes what the SDK client hides
 * (HTTP status, Retry-After, the JSON-RPC error body of a refusal).
 */
export interface RawReply {
  status: number;
  retryAfter: string | null;
  /** The JSON-RPC response (from the SSE stream or the JSON body); undefined when none arrived. */
  message:
    | {
        id?: unknown;
        result?: Record<string, unknown>;
        error?: {
          code: number;
          message: string;
          data?: { reason?: string; retryAfterMs?: number; [k: string]: unknown };
        };
      }
    | undefined;
}

export interface RawSession {
  id: string;
  /** Calls a tool; resolves when the response (or a refusal) arrived. */
  call(
    name: string,
    args: Record<string, unknown>,
    meta?: Record<string, unknown>,
  ): Promise<RawReply>;
  /** Starts a call and resolves once the edge accepted it (status and headers received). */
  start(
    name: string,
    args: Record<string, unknown>,
    meta?: Record<string, unknown>,
  ): Promise<{ id: number; status: number; done: Promise<RawReply> }>;
  request(method: string, params: Record<string, unknown>): Promise<RawReply>;
  notify(method: string, params: Record<string, unknown>): Promise<number>;
  close(): Promise<void>;
}

const VERSION = "2025-06-18";

export async function rawSession(
  url: string,
  headers: Record<string, string> = {},
): Promise<RawSession> {
  const { sessionId: id, headers: h } = await rawInitialize(url, {
    protocolVersion: VERSION,
    headers,
  });
  let next = 1;
  const post = (body: unknown) =>
    fetch(url, { method: "POST", headers: h, body: JSON.stringify(body) });
  const read = async (res: Response, rid: number): Promise<RawReply> => {
    const text = await res.text();
    const reply: RawReply = {
      status: res.status,
      retryAfter: res.headers.get("retry-after"),
      message: undefined,
    };
    if ((res.headers.get("content-type") ?? "").includes("text/event-stream")) {
      for (const block of text.split("\n\n")) {
        const data = block
          .split("\n")
          .filter((l) => l.startsWith("data:"))
          .map((l) => l.slice(5).trim())
          .join("\n");
        if (!data) continue;
        const m = JSON.parse(data) as RawReply["message"] & { method?: string };
        if (m && m.id === rid && (m.result || m.error)) reply.message = m;
      }
    } else if (text) {
      reply.message = JSON.parse(text) as RawReply["message"];
    }
    return reply;
  };
  const session: RawSession = {
    id,
    async start(name, args, meta) {
      const rid = next++;
      const params: Record<string, unknown> = { name, arguments: args };
      if (meta) params["_meta"] = meta;
      const res = await post({ jsonrpc: "2.0", id: rid, method: "tools/call", params });
      return { id: rid, status: res.status, done: read(res, rid) };
    },
    async call(name, args, meta) {
      return (await session.start(name, args, meta)).done;
    },
    async request(method, params) {
      const rid = next++;
      return read(await post({ jsonrpc: "2.0", id: rid, method, params }), rid);
    },
    async notify(method, params) {
      const res = await post({ jsonrpc: "2.0", method, params });
      await res.text();
      return res.status;
    },
    async close() {
      await fetch(url, { method: "DELETE", headers: h })
        .then((r) => r.text())
        .catch(() => undefined);
    },
  };
  await session.notify("notifications/initialized", {});
  return session;
}

/** Reads one sample of a metric from a prom-client registry (labels must match exactly the given ones). */
export async function metricValue(
  registry: {
    getSingleMetric(
      name: string,
    ):
      | { get(): Promise<{ values: { value: number; labels: Record<string, unknown> }[] }> }
      | undefined;
  },
  name: string,
  labels: Record<string, string> = {},
): Promise<number> {
  const m = registry.getSingleMetric(name);
  if (!m) throw new Error(`no metric ${name}`);
  const { values } = await m.get();
  let sum = 0;
  for (const v of values)
    if (Object.entries(labels).every(([k, val]) => v.labels[k] === val)) sum += v.value;
  return sum;
}
