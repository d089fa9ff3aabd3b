/** A session opened with a raw `initialize` POST, and the headers later requests of it need. */
export interface RawInit {
  sessionId: string;
  /** The negotiated protocol version (from the InitializeResult). */
  protocolVersion: string;
  /** content-type, accept, any extra headers, mcp-session-id and mcp-protocol-version. */
  headers: Record<string, string>;
}

/** What a raw `initialize` POST sends. */
export interface RawInitOptions {
  protocolVersion: string;
  capabilities?: Record<string, unknown>;
  /** Further request headers (e.g. `authorization`); they may override the two defaults. */
  headers?: Record<string, string>;
  clientName?: string;
  /** The JSON-RPC id of the request. Default 0. */
  id?: number | string;
}

/** The headers every Streamable HTTP POST needs, plus `extra`. */
function postHeaders(extra?: Record<string, string>): Record<string, string> {
  return {
    "content-type": "application/json",
    accept: "application/json, text/event-stream",
    ...extra,
  };
}

/**
 * POSTs an `initialize` over Streamable HTTP with plain fetch (no SDK) and hands back the
 * response untouched, for tests of what the edge answers (a refusal's status and body as well).
 */
export function postInitialize(url: string, opts: RawInitOptions): Promise<Response> {
  return fetch(url, {
    method: "POST",
    headers: postHeaders(opts.headers),
    body: JSON.stringify({
      jsonrpc: "2.0",
      id: opts.id ?? 0,
      method: "initialize",
      params: {
        protocolVersion: opts.protocolVersion,
        capabilities: opts.capabilities ?? {},
        clientInfo: { name: opts.clientName ?? "raw", version: "1" },
      },
    }),
  });
}

/**
 * Initializes over Streamable HTTP with plain fetch (no SDK), for tests that check the wire.
 * Rejects unless the edge answered 200 with an `Mcp-Session-Id`.
 */
export async function rawInitialize(url: string, opts: RawInitOptions): Promise<RawInit> {
  const init = await postInitialize(url, opts);
  if (init.status !== 200)
    throw new Error(`initialize failed: ${init.status} ${await init.text()}`);
  const sessionId = init.headers.get("mcp-session-id");
  if (!sessionId)
    throw new Error(`initialize answered without Mcp-Session-Id: ${await init.text()}`);
  const protocolVersion = ((await init.json()) as { result: { protocolVersion: string } }).result
    .protocolVersion;
  return {
    sessionId,
    protocolVersion,
    headers: {
      ...postHeaders(opts.headers),
      "mcp-session-id": sessionId,
      "mcp-protocol-version": protocolVersion,
    },
  };
}
