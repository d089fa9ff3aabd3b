/**
 * The node:http floor: the least a Node HTTP server can do to answer the benchmark's calls. It
 * parses each POST's JSON body and answers `initialize` (with an `Mcp-Session-Id`) and every
 * other request with one SSE event echoing `arguments.text`, as the SDK reference and mcpq do;
 * notifications get 202, a DELETE 200. No sessions, validation, schema or MCP logic: what it costs per call is
 * what node:http itself costs on this box, the part of any Node edge's (or the SDK's) CPU per
 * call that no MCP implementation can remove. `make bench` runs it beside the SDK reference.
 *
 * Usage: tsx src/http-floor-server.ts --port N   (loopback only; prints "READY <url>")
 */
import { randomUUID } from "node:crypto";
import { createServer } from "node:http";
import { parseArgs, str } from "./lib/args.js";

const { flags } = parseArgs();
const PORT = Number(str(flags, "port", "0"));
const MAX_BODY = 4 * 1024 * 1024;

interface Call {
  id?: number | string;
  method?: string;
  params?: { arguments?: { text?: unknown } };
}

const server = createServer((req, res) => {
  if (req.url === "/readyz") return void res.writeHead(200).end("ok");
  if (req.method === "DELETE") return void res.writeHead(200).end();
  if (req.method !== "POST") return void res.writeHead(405).end();
  const chunks: Buffer[] = [];
  let size = 0;
  req.on("data", (c: Buffer) => {
    size += c.length;
    if (size > MAX_BODY) req.destroy();
    else chunks.push(c);
  });
  req.on("end", () => {
    let msg: Call;
    try {
      msg = JSON.parse(Buffer.concat(chunks).toString("utf8")) as Call;
    } catch {
      return void res.writeHead(400).end();
    }
    if (msg.id === undefined) return void res.writeHead(202).end();
    const headers: Record<string, string> = {
      "content-type": "text/event-stream",
      "cache-control": "no-cache",
    };
    let result: unknown;
    if (msg.method === "initialize") {
      headers["mcp-session-id"] = randomUUID();
      result = {
        protocolVersion: "2025-11-25",
        capabilities: { tools: {} },
        serverInfo: { name: "node-http-floor", version: "1.0.0" },
      };
    } else {
      const text = msg.params?.arguments?.text;
      result = { content: [{ type: "text", text: typeof text === "string" ? text : "" }] };
    }
    res.writeHead(200, headers);
    res.end(`event: message\ndata: ${JSON.stringify({ jsonrpc: "2.0", id: msg.id, result })}\n\n`);
  });
});
server.keepAliveTimeout = 65_000;
server.listen(PORT, "127.0.0.1", () => {
  const a = server.address();
  console.log(`READY http://127.0.0.1:${typeof a === "object" && a ? a.port : PORT}/mcp`);
});
