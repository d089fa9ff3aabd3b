/** A session opened with a raw `initialize` POST, and the headers later requests of it need. */
export interface RawInit {
  sessionId: string;
  /** The negotiated protocol version (from the InitializeResult). */
  protocolVersion: string;
  /** content-type, accept, any extra headers, mcp-session-id and mcp-protocol-version. */
  headers: Record<string, string>;
}

/** Initializes over Streamable HTTP with plain fetch (no SDK), for tests that check the wire. */
export async function rawInitialize(
  url: string,
  opts: {
    protocolVersion: string;
    capabilities?: Record<string, unknown>;
    headers?: Record<string, string>;
    clientName?: string;
  },
): Promise<RawInit> {
  const base = {
    "content-type": "application/json",
    accept: "application/json, text/event-stream",
    ...opts.headers,
  };
  const init = await fetch(url, {
    method: "POST",
    headers: base,
    body: JSON.stringify({
      jsonrpc: "2.0",
      id: 0,
      method: "initialize",
      params: {
        protocolVersion: opts.protocolVersion,
        capabilities: opts.capabilities ?? {},
        clientInfo: { name: opts.clientName ?? "raw", version: "1" },
      },
    }),
  });
  if (init.status !== 200)
    throw new Error(`initialize failed: ${init.status} ${await init.text()}`);
  const sessionId = init.headers.get("mcp-session-id")!;
  const protocolVersion = ((await init.json()) as { result: { protocolVersion: string } }).result
    .protocolVersion;
  return {
    sessionId,
    protocolVersion,
    headers: { ...base, "mcp-session-id": sessionId, "mcp-protocol-version": protocolVersion },
  };
}
