/** One stateless-era (2026-07-28) JSON-RPC POST over Streamable HTTP, with conformant headers. */

const MODERN_VERSION = "2026-07-28";
const TASKS_EXTENSION = "io.modelcontextprotocol/tasks";

export interface ModernAnswer {
  status: number;
  result?: Record<string, unknown>;
  error?: { code: number; message: string; data?: Record<string, unknown> };
}

/** `_meta` of a request whose client declares `capabilities` (the tasks extension unless `tasks: false`). */
export function modernMeta(
  opts: { tasks?: boolean; capabilities?: Record<string, unknown> } = {},
): Record<string, unknown> {
  const caps: Record<string, unknown> = { ...opts.capabilities };
  if (opts.tasks !== false) caps["extensions"] = { [TASKS_EXTENSION]: {} };
  return {
    "io.modelcontextprotocol/protocolVersion": MODERN_VERSION,
    "io.modelcontextprotocol/clientInfo": { name: "tasks-test", version: "1.0.0" },
    "io.modelcontextprotocol/clientCapabilities": caps,
  };
}

let nextId = 1;

/**
 * POSTs `method` with `params` (its `_meta` from `modernMeta` unless given) and the headers the
 * revision requires (MCP-Protocol-Version, Mcp-Method, Mcp-Name for named and tasks methods);
 * `token` becomes a bearer credential. Reads a JSON or SSE answer.
 */
export async function modernPost(
  url: string,
  method: string,
  params: Record<string, unknown>,
  opts: { token?: string; meta?: Record<string, unknown> } = {},
): Promise<ModernAnswer> {
  const body = { _meta: opts.meta ?? modernMeta(), ...params };
  const h: Record<string, string> = {
    "content-type": "application/json",
    accept: "application/json, text/event-stream",
    "mcp-protocol-version": MODERN_VERSION,
    "mcp-method": method,
  };
  const name = params["name"] ?? params["uri"] ?? params["taskId"];
  if (typeof name === "string") h["mcp-name"] = name;
  if (opts.token) h["authorization"] = `Bearer ${opts.token}`;
  const id = nextId++;
  const res = await fetch(url, {
    method: "POST",
    headers: h,
    body: JSON.stringify({ jsonrpc: "2.0", id, method, params: body }),
  });
  const text = await res.text();
  const messages = (res.headers.get("content-type") ?? "").includes("text/event-stream")
    ? text
        .split("\n")
        .filter((l) => l.startsWith("data: ") && l.length > 6)
        .map((l) => JSON.parse(l.slice(6)) as Record<string, unknown>)
    : text
      ? [JSON.parse(text) as Record<string, unknown>]
      : [];
  const answer = messages.find((m) => m["id"] === id) ?? messages.find((m) => "error" in m);
  return {
    status: res.status,
    ...(answer && "result" in answer
      ? { result: answer["result"] as Record<string, unknown> }
      : {}),
    ...(answer && "error" in answer ? { error: answer["error"] as ModernAnswer["error"] } : {}),
  };
}
