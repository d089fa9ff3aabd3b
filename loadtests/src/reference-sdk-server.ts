/**
 * Reference MCP server built with the official @modelcontextprotocol/sdk, following the
 * SDK's documented Streamable HTTP pattern (examples/server/simpleStreamableHttp.ts and
 * jsonResponseStreamableHttp.ts): one McpServer + StreamableHTTPServerTransport per
 * session, stateful sessions (sessionIdGenerator: randomUUID), transports kept in a map
 * by session id, POST/GET/DELETE on /mcp. The only deviation is using node:http instead
 * of express (the body is parsed here and passed as `parsedBody`, exactly what express.json()
 * would do).
 *
 * Serves one tool: echo {text: string} -> [{type: "text", text}].
 *
 * Usage: tsx src/reference-sdk-server.ts [--port N | PORT env] [--host 127.0.0.1] [--json]
 *   --json   enableJsonResponse: true (plain JSON POST responses instead of SSE; default is
 *            the SDK default, SSE, as in simpleStreamableHttp.ts)
 * Prints "READY http://127.0.0.1:PORT/mcp" on stdout once listening.
 */
import { randomUUID } from "node:crypto";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import { StreamableHTTPServerTransport } from "@modelcontextprotocol/sdk/server/streamableHttp.js";
import { isInitializeRequest } from "@modelcontextprotocol/sdk/types.js";
import * as z from "zod/v4";
import { parseArgs, str, bool } from "./lib/args.js";

const { flags } = parseArgs();
const HOST = str(flags, "host", process.env.HOST ?? "127.0.0.1");
const PORT = Number(str(flags, "port", process.env.PORT ?? process.env.MCP_PORT ?? "3000"));
const JSON_RESPONSES = bool(flags, "json") || process.env.MCP_JSON_RESPONSE === "1";
const MAX_BODY = 4 * 1024 * 1024;

if (!/^127\.|^localhost$|^::1$/.test(HOST)) {
  console.error(`refusing to bind ${HOST}: the reference server is loopback-only`);
  process.exit(2);
}

const getServer = (): McpServer => {
  const server = new McpServer(
    { name: "mcpq-sdk-reference", version: "1.0.0" },
    { capabilities: {} },
  );
  server.registerTool(
    "echo",
    {
      description: "Echo the given text back",
      inputSchema: { text: z.string().describe("Text to echo") },
    },
    async ({ text }) => ({ content: [{ type: "text", text }] }),
  );
  return server;
};

const transports = new Map<string, StreamableHTTPServerTransport>();

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const s = JSON.stringify(body);
  res.writeHead(status, {
    "content-type": "application/json",
    "content-length": Buffer.byteLength(s),
  });
  res.end(s);
}

function readBody(req: IncomingMessage): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on("data", (c: Buffer) => {
      size += c.length;
      if (size > MAX_BODY) {
        reject(new Error("body too large"));
        req.destroy();
        return;
      }
      chunks.push(c);
    });
    req.on("end", () => {
      try {
        resolve(JSON.parse(Buffer.concat(chunks).toString("utf8")));
      } catch (e) {
        reject(e);
      }
    });
    req.on("error", reject);
  });
}

async function handlePost(req: IncomingMessage, res: ServerResponse): Promise<void> {
  let body: unknown;
  try {
    body = await readBody(req);
  } catch {
    sendJson(res, 400, {
      jsonrpc: "2.0",
      error: { code: -32700, message: "Parse error" },
      id: null,
    });
    return;
  }
  const sessionId = req.headers["mcp-session-id"] as string | undefined;
  const transport: StreamableHTTPServerTransport | undefined = sessionId
    ? transports.get(sessionId)
    : undefined;
  if (transport) {
    await transport.handleRequest(req, res, body);
    return;
  }
  if (!sessionId && isInitializeRequest(body)) {
    const t: StreamableHTTPServerTransport = new StreamableHTTPServerTransport({
      sessionIdGenerator: () => randomUUID(),
      enableJsonResponse: JSON_RESPONSES,
      onsessioninitialized: (sid) => {
        // Store the transport by session id once initialized (avoids races)
        transports.set(sid, t);
      },
    });
    t.onclose = () => {
      const sid = t.sessionId;
      if (sid) transports.delete(sid);
    };
    const server = getServer();
    await server.connect(t);
    await t.handleRequest(req, res, body);
    return;
  }
  if (sessionId) {
    sendJson(res, 404, {
      jsonrpc: "2.0",
      error: { code: -32001, message: "Session not found" },
      id: null,
    });
    return;
  }
  sendJson(res, 400, {
    jsonrpc: "2.0",
    error: { code: -32000, message: "Bad Request: No valid session ID provided" },
    id: null,
  });
}

async function handleGetOrDelete(req: IncomingMessage, res: ServerResponse): Promise<void> {
  const sessionId = req.headers["mcp-session-id"] as string | undefined;
  if (!sessionId) {
    res.writeHead(400).end("Missing session ID");
    return;
  }
  const transport = transports.get(sessionId);
  if (!transport) {
    sendJson(res, 404, {
      jsonrpc: "2.0",
      error: { code: -32001, message: "Session not found" },
      id: null,
    });
    return;
  }
  await transport.handleRequest(req, res);
}

const httpServer = createServer((req, res) => {
  const url = req.url ?? "/";
  const path = url.split("?")[0];
  const done = (p: Promise<void>) =>
    p.catch((err: unknown) => {
      console.error("error handling request:", err);
      if (!res.headersSent)
        sendJson(res, 500, {
          jsonrpc: "2.0",
          error: { code: -32603, message: "Internal server error" },
          id: null,
        });
      else res.end();
    });
  if (path === "/mcp") {
    if (req.method === "POST") return void done(handlePost(req, res));
    if (req.method === "GET" || req.method === "DELETE")
      return void done(handleGetOrDelete(req, res));
    res.writeHead(405, { allow: "GET, POST, DELETE" }).end();
    return;
  }
  if (path === "/readyz" || path === "/healthz") {
    res.writeHead(200, { "content-type": "text/plain" }).end("ok");
    return;
  }
  if (path === "/metrics") {
    const m = process.memoryUsage();
    res
      .writeHead(200, { "content-type": "text/plain; version=0.0.4" })
      .end(
        `# TYPE process_resident_memory_bytes gauge\nprocess_resident_memory_bytes ${m.rss}\n` +
          `# TYPE mcp_sessions gauge\nmcp_sessions ${transports.size}\n`,
      );
    return;
  }
  res.writeHead(404).end();
});
httpServer.keepAliveTimeout = 65_000;
httpServer.headersTimeout = 66_000;
httpServer.requestTimeout = 0; // GET SSE streams are long-lived
httpServer.maxRequestsPerSocket = 0;

httpServer.listen(PORT, HOST, () => {
  const addr = httpServer.address();
  const port = typeof addr === "object" && addr ? addr.port : PORT;
  process.stdout.write(
    `READY http://${HOST}:${port}/mcp (responses: ${JSON_RESPONSES ? "json" : "sse"})\n`,
  );
});

async function shutdown(): Promise<void> {
  for (const [sid, t] of transports) {
    try {
      await t.close();
    } catch {
      /* ignore */
    }
    transports.delete(sid);
  }
  httpServer.close();
  process.exit(0);
}
process.on("SIGINT", () => void shutdown());
process.on("SIGTERM", () => void shutdown());
