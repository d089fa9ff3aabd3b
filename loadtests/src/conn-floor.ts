/**
 * conn-floor: what a held connection costs in bare Node on this machine, before any MCP state.
 * A server child process (`--expose-gc`) accepts N idle connections of one kind and reports its
 * memory once they are all held, after a full collection; this process opens them from
 * 127.0.0.x source addresses. Kinds:
 *  - `tcp`:  a `node:net` socket with a data listener;
 *  - `http`: a `node:http` GET answered with an SSE head and one comment, the response held open
 *            (a Streamable HTTP GET stream's transport, nothing else);
 *  - `ws`:   a `ws` WebSocket (the library and settings the edge uses: no permessage-deflate).
 * The per-connection figure is the floor under conn-flood's (docs/bench/conn-flood.md): what
 * node:http and ws hold per connection whatever the server does with it.
 *
 *   pnpm --filter @mcpq/loadtests conn-floor [--connections 10000] [--kinds tcp,http,ws]
 *
 * Loopback only; each kind's server exits once it has reported (bounded by --timeout s).
 */
import { spawn } from "node:child_process";
import { createServer as createHttpServer, type ServerResponse } from "node:http";
import { connect, createServer as createTcpServer, type Socket } from "node:net";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { WebSocketServer, type WebSocket } from "ws";
import { parseArgs, num, str } from "./lib/args.js";

type Kind = "tcp" | "http" | "ws";
const KINDS: readonly Kind[] = ["tcp", "http", "ws"];
const { flags } = parseArgs();
const serving = str(flags, "serve");

/** Memory of this process as the report line carries it (bytes). */
function memory(): { rss: number; heapUsed: number; heapTotal: number; external: number } {
  const m = process.memoryUsage();
  return { rss: m.rss, heapUsed: m.heapUsed, heapTotal: m.heapTotal, external: m.external };
}

if (serving) {
  // The server child: hold `want` connections of one kind, then report before/after and exit.
  const kind = serving as Kind;
  const want = num(flags, "connections", 10_000);
  const held: (Socket | ServerResponse | WebSocket)[] = [];
  const gc = (globalThis as { gc?: () => void }).gc;
  gc?.();
  const before = memory();
  let server: ReturnType<typeof createTcpServer> | ReturnType<typeof createHttpServer>;
  if (kind === "tcp") {
    server = createTcpServer((s) => {
      held.push(s);
      s.on("data", () => undefined);
    });
  } else if (kind === "http") {
    const http = createHttpServer((_req, res) => {
      res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache" });
      res.write(": held\n\n");
      held.push(res);
    });
    http.keepAliveTimeout = 0;
    http.requestTimeout = 0;
    server = http;
  } else {
    server = createHttpServer();
    const wss = new WebSocketServer({ noServer: true, perMessageDeflate: false });
    server.on("upgrade", (req, socket, head) =>
      wss.handleUpgrade(req, socket, head, (ws) => {
        held.push(ws);
        ws.on("message", () => undefined);
      }),
    );
  }
  server.listen(0, "127.0.0.1", () => {
    const a = server.address();
    console.log(`PORT ${typeof a === "object" && a ? a.port : 0}`);
  });
  const poll = setInterval(() => {
    if (held.length < want) return;
    clearInterval(poll);
    // Let the last handshakes' garbage become collectable, then collect it.
    setTimeout(() => {
      gc?.();
      console.log(`HELD ${JSON.stringify({ kind, held: held.length, before, after: memory() })}`);
      process.exit(0);
    }, 2_000);
  }, 200);
} else {
  const N = num(flags, "connections", 10_000);
  const timeoutMs = num(flags, "timeout", 120) * 1000;
  const kinds = str(flags, "kinds", KINDS.join(","))
    .split(",")
    .map((k) => k.trim())
    .filter((k): k is Kind => (KINDS as readonly string[]).includes(k));
  const kib = (bytes: number) => (bytes / 1024 / N).toFixed(2);
  for (const kind of kinds) {
    const child = spawn(
      process.execPath,
      [
        ...process.execArgv,
        "--expose-gc",
        fileURLToPath(import.meta.url),
        "--serve",
        kind,
        "--connections",
        String(N),
      ],
      { stdio: ["ignore", "pipe", "inherit"] },
    );
    const killer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
    const lines = createInterface({ input: child.stdout! });
    const clients: Socket[] = [];
    let report: string | undefined;
    for await (const line of lines) {
      if (line.startsWith("PORT ")) {
        const port = Number(line.slice(5));
        // 20,000 sockets per source address at most (the ephemeral port range).
        for (let i = 0; i < N; i++) {
          const s = connect({
            port,
            host: "127.0.0.1",
            localAddress: `127.0.0.${2 + Math.floor(i / 20_000)}`,
          });
          s.on("error", () => undefined);
          s.on("data", () => undefined);
          s.on("connect", () => {
            if (kind === "http")
              s.write("GET /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n");
            else if (kind === "ws")
              s.write(
                "GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
                  "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
              );
          });
          clients.push(s);
          // Paced, so the server's accept queue never overflows.
          if (i % 500 === 499) await new Promise((r) => setTimeout(r, 50));
        }
      } else if (line.startsWith("HELD ")) report = line.slice(5);
    }
    clearTimeout(killer);
    for (const s of clients) s.destroy();
    if (!report) {
      console.log(`conn-floor ${kind}: no report (server gone or --timeout reached)`);
      continue;
    }
    const r = JSON.parse(report) as {
      held: number;
      before: ReturnType<typeof memory>;
      after: ReturnType<typeof memory>;
    };
    const d = (k: keyof ReturnType<typeof memory>) => r.after[k] - r.before[k];
    console.log(
      `conn-floor ${kind}: ${r.held} held; per connection ${kib(d("rss"))} KiB RSS = ` +
        `heap in use ${kib(d("heapUsed"))} + heap slack ${kib(d("heapTotal") - d("heapUsed"))} + ` +
        `external ${kib(d("external"))} + the rest ${kib(d("rss") - d("heapTotal") - d("external"))} (after a full collection)`,
    );
  }
}
