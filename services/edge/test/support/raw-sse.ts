import { rawInitialize } from "./raw-init.js";
/**
 * Raw Streamable HTTP for feature tests: what the SDK client hides (every SSE event with its id
 * and `retry:`, streams read incrementally, POSTs of one session spread over several edges).
 */
export interface SseEvent {
  id?: string;
  retry?: number;
  /** Parsed `data` (undefined for a priming event or a bare `retry:`). */
  message?: {
    jsonrpc: "2.0";
    id?: string | number;
    method?: string;
    params?: Record<string, unknown>;
    result?: Record<string, unknown>;
    error?: { code: number; message: string };
  };
}

/** Reads SSE events from a response body as they arrive. */
export async function* sseEvents(res: Response): AsyncGenerator<SseEvent> {
  if (!res.body) return;
  const decoder = new TextDecoder();
  let buf = "";
  for await (const chunk of res.body) {
    buf += decoder.decode(chunk, { stream: true });
    let i: number;
    while ((i = buf.indexOf("\n\n")) >= 0) {
      const block = buf.slice(0, i);
      buf = buf.slice(i + 2);
      const ev: SseEvent = {};
      const data: string[] = [];
      for (const line of block.split("\n")) {
        if (line.startsWith(":")) continue;
        const c = line.indexOf(":");
        const field = c < 0 ? line : line.slice(0, c);
        const value = c < 0 ? "" : line.slice(c + 1).replace(/^ /, "");
        if (field === "id") ev.id = value;
        else if (field === "retry") ev.retry = Number(value);
        else if (field === "data") data.push(value);
      }
      const text = data.join("\n").trim();
      if (text) ev.message = JSON.parse(text) as SseEvent["message"];
      if (ev.id !== undefined || ev.retry !== undefined || ev.message) yield ev;
    }
  }
}

/** Reads a whole SSE body. */
export async function allEvents(res: Response): Promise<SseEvent[]> {
  const out: SseEvent[] = [];
  for await (const e of sseEvents(res)) out.push(e);
  return out;
}

export interface RawClient {
  sessionId: string;
  /** The version the server answered in InitializeResult. */
  protocolVersion: string;
  /**
   * POSTs one JSON-RPC message (or a batch) to `url` (any edge) within this session; aborting
   * `signal` drops the connection like a lost network.
   */
  post(
    url: string,
    body: unknown,
    headers?: Record<string, string>,
    signal?: AbortSignal,
  ): Promise<Response>;
  /** GET (standalone stream, or a resume with `lastEventId`) on `url`. */
  get(url: string, lastEventId?: string, signal?: AbortSignal): Promise<Response>;
}

/** Initializes a session on `url` with `protocolVersion` and `capabilities`, then sends `initialized`. */
export async function rawClient(
  url: string,
  opts: {
    protocolVersion?: string;
    capabilities?: Record<string, unknown>;
    headers?: Record<string, string>;
  } = {},
): Promise<RawClient> {
  const requested = opts.protocolVersion ?? "2025-11-25";
  const {
    sessionId,
    protocolVersion,
    headers: h,
  } = await rawInitialize(url, {
    protocolVersion: requested,
    capabilities: opts.capabilities ?? {},
    headers: opts.headers ?? {},
    clientName: "raw-sse",
  });
  const client: RawClient = {
    sessionId,
    protocolVersion,
    post: (u, body, headers = {}, signal) =>
      fetch(u, {
        method: "POST",
        headers: { ...h, ...headers },
        body: JSON.stringify(body),
        ...(signal ? { signal } : {}),
      }),
    get: (u, lastEventId, signal) =>
      fetch(u, {
        headers: {
          ...h,
          accept: "text/event-stream",
          ...(lastEventId ? { "last-event-id": lastEventId } : {}),
        },
        ...(signal ? { signal } : {}),
      }),
  };
  const ack = await client.post(url, { jsonrpc: "2.0", method: "notifications/initialized" });
  await ack.text();
  return client;
}

/**
 * A streamed SSE response read in the background, event by event, until it ends or the
 * connection drops (abort the request's signal to drop it like a lost network).
 */
export function readSse(res: Response) {
  const events: SseEvent[] = [];
  let ended = false;
  const done = (async () => {
    try {
      for await (const e of sseEvents(res)) events.push(e);
    } catch {
      // the connection was dropped
    }
    ended = true;
  })();
  return {
    events,
    get ended() {
      return ended;
    },
    done,
    /** The last event id seen, the priming event's included (what a client resumes after). */
    get lastId() {
      return events.findLast((e) => e.id)?.id;
    },
  };
}
