// The storm generator's accounting, against in-process fake MCP servers whose answers are known
// per request: every scheduled request must land in exactly the class its answer deserves.
import { createServer, type IncomingMessage, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { WebSocketServer } from "ws";
import {
  runClosedProcess,
  runStormProcess,
  type StormConfig,
  type StormResult,
} from "../src/storm/storm-proc.js";

/** What the fake server does with tools/call number k (the JSON-RPC id is the schedule index). */
type Verdict = "ok" | "reject" | "deadline" | "silent";
const verdictOf = (k: number): Verdict => (["ok", "reject", "deadline", "silent"] as const)[k % 4]!;

interface Call {
  id: number;
  params: { arguments: { text: string }; _meta: Record<string, number> };
}

const budgets: number[] = [];
/** absolute deadline stated − arrival time at the fake server */
const deadlinesLeft: number[] = [];

function answer(call: Call): { status: number; body: string; sse: boolean } | null {
  budgets.push(call.params._meta["io.mcpq/timeoutMs"]!);
  deadlinesLeft.push(call.params._meta["io.mcpq/deadline"]! - Date.now());
  switch (verdictOf(call.id)) {
    case "ok":
      return {
        status: 200,
        sse: true,
        body: JSON.stringify({
          jsonrpc: "2.0",
          id: call.id,
          result: { content: [{ type: "text", text: call.params.arguments.text }] },
        }),
      };
    case "reject":
      return {
        status: 429,
        sse: false,
        body: JSON.stringify({
          jsonrpc: "2.0",
          id: call.id,
          error: { code: -32011, message: "rate limited: tool call rate limit exceeded" },
        }),
      };
    case "deadline":
      return {
        status: 200,
        sse: false,
        body: JSON.stringify({
          jsonrpc: "2.0",
          id: call.id,
          error: { code: -32001, message: "Request timed out after 300 ms" },
        }),
      };
    case "silent":
      return null;
  }
}

const readBody = (req: IncomingMessage) =>
  new Promise<string>((resolve) => {
    let b = "";
    req.setEncoding("utf8");
    req.on("data", (c: string) => (b += c));
    req.on("end", () => resolve(b));
  });

let server: Server | undefined;
let wss: WebSocketServer | undefined;
afterEach(async () => {
  budgets.length = 0;
  deadlinesLeft.length = 0;
  server?.closeAllConnections();
  await new Promise<void>((r) => (server ? server.close(() => r()) : r()));
  await new Promise<void>((r) => (wss ? wss.close(() => r()) : r()));
  server = undefined;
  wss = undefined;
});

async function listen(s: Server): Promise<number> {
  await new Promise<void>((r) => s.listen(0, "127.0.0.1", r));
  return (s.address() as AddressInfo).port;
}

async function storm(cfg: Partial<StormConfig> & Pick<StormConfig, "transport" | "url">) {
  const events: string[] = [];
  let result: StormResult | undefined;
  await runStormProcess(
    {
      toolName: "echo",
      sessions: 2,
      lanesPerSession: 4,
      window: 1,
      ratePerS: 200,
      durationMs: 500,
      timeoutMs: 300,
      graceMs: 100,
      maxHoldMs: 50,
      payloadBytes: 24,
      tag: "t",
      ...cfg,
    },
    {
      emit: (kind, payload) => {
        events.push(kind);
        if (kind === "RESULT") result = payload as StormResult;
      },
      go: Promise.resolve(),
    },
  );
  return { events, result: result! };
}

function expectAccounted(r: StormResult) {
  const sum = Object.values(r.classes).reduce((a, b) => a + b, 0);
  expect(sum).toBe(r.scheduled);
  expect(r.scheduled).toBe(100);
  // whatever was sent was answered according to its verdict; nothing else is possible
  expect(r.classes.error, JSON.stringify(r.codes)).toBe(0);
  expect(r.classes.ok + r.classes.rejected + r.classes.deadline + r.classes.lost).toBe(r.sent);
  expect(r.classes.held).toBe(r.scheduled - r.sent);
}

describe("storm generator", () => {
  it("over HTTP: one class per request (ok, rejected, deadline, lost, held) and the remaining budget is stated", async () => {
    const sessions = new Set<string>();
    server = createServer((req, res) => {
      void readBody(req).then((body) => {
        if (req.method === "DELETE") return res.writeHead(200).end();
        const m = JSON.parse(body) as Call & { method: string };
        if (m.method === "initialize") {
          const sid = `s${sessions.size}`;
          sessions.add(sid);
          res.writeHead(200, { "content-type": "application/json", "mcp-session-id": sid });
          return res.end(JSON.stringify({ jsonrpc: "2.0", id: m.id, result: {} }));
        }
        if (m.method === "notifications/initialized") return res.writeHead(202).end();
        expect(sessions.has(String(req.headers["mcp-session-id"]))).toBe(true);
        const a = answer(m);
        if (!a) return; // silent: the lane stays busy until the request is given up as lost
        if (a.sse) {
          // chunked SSE body, like a streaming server
          res.writeHead(a.status, { "content-type": "text/event-stream" });
          res.write(`event: message\ndata: ${a.body}\n\n`);
          res.end();
        } else {
          res.writeHead(a.status, { "content-type": "application/json" });
          res.end(a.body);
        }
      });
    });
    const port = await listen(server);
    const { events, result: r } = await storm({
      transport: "http",
      url: `http://127.0.0.1:${port}/mcp`,
    });
    expect(events).toEqual(["READY", "END", "RESULT"]);
    expectAccounted(r);
    expect(r.classes.ok).toBeGreaterThan(0);
    expect(r.classes.rejected).toBeGreaterThan(0);
    expect(r.classes.deadline).toBeGreaterThan(0);
    expect(r.classes.lost).toBeGreaterThan(0);
    // silent requests hold their lanes until given up, so some due requests found no lane
    expect(r.classes.held).toBeGreaterThan(0);
    expect(r.codes["rejected:http_429"]).toBe(r.classes.rejected);
    // the budget sent is what is left of the 300 ms patience, never more
    expect(Math.max(...budgets)).toBeLessThanOrEqual(300);
    expect(Math.min(...budgets)).toBeGreaterThan(0);
    // and the same deadline is stated on the shared clock: never beyond the patience
    expect(Math.max(...deadlinesLeft)).toBeLessThanOrEqual(300);
  });

  it("over WebSocket: many requests per socket, answers matched by id, silent ones lost", async () => {
    server = createServer();
    wss = new WebSocketServer({ server, handleProtocols: () => "mcp" });
    wss.on("connection", (ws) => {
      ws.on("message", (data: Buffer) => {
        const m = JSON.parse(data.toString("utf8")) as Call & { method: string };
        if (m.method === "initialize")
          return ws.send(JSON.stringify({ jsonrpc: "2.0", id: m.id, result: {} }));
        if (m.method !== "tools/call") return;
        const a = answer(m);
        if (a) ws.send(a.body);
      });
    });
    const port = await listen(server);
    const { result: r } = await storm({
      transport: "ws",
      url: `ws://127.0.0.1:${port}/ws`,
      lanesPerSession: 1,
      window: 1000,
    });
    expectAccounted(r);
    // a wide window: nothing waits for a lane, so nothing is held
    expect(r.classes.held).toBe(0);
    expect(r.classes.ok).toBe(25);
    expect(r.classes.rejected).toBe(25);
    expect(r.classes.deadline).toBe(25);
    expect(r.classes.lost).toBe(25);
  });
});

describe("closed-loop generator", () => {
  it("keeps exactly one request per lane in flight, counts only the window, and a plain client states no deadline", async () => {
    let inFlight = 0;
    let maxInFlight = 0;
    let calls = 0;
    const metas: unknown[] = [];
    server = createServer((req, res) => {
      void readBody(req).then((body) => {
        if (req.method === "DELETE") return res.writeHead(200).end();
        const m = JSON.parse(body) as Call & { method: string };
        if (m.method === "initialize") {
          res.writeHead(200, { "content-type": "application/json", "mcp-session-id": `s${m.id}` });
          return res.end(JSON.stringify({ jsonrpc: "2.0", id: m.id, result: {} }));
        }
        if (m.method === "notifications/initialized") return res.writeHead(202).end();
        calls++;
        metas.push(m.params._meta);
        inFlight++;
        maxInFlight = Math.max(maxInFlight, inFlight);
        // answer on a later turn, so overlapping requests would be seen
        setImmediate(() => {
          inFlight--;
          res.writeHead(200, { "content-type": "text/event-stream" });
          res.end(
            `event: message\ndata: ${JSON.stringify({ jsonrpc: "2.0", id: m.id, result: { content: [{ type: "text", text: m.params.arguments.text }] } })}\n\n`,
          );
        });
      });
    });
    const port = await listen(server);
    const events: string[] = [];
    let r: StormResult | undefined;
    await runClosedProcess(
      {
        mode: "closed",
        transport: "http",
        url: `http://127.0.0.1:${port}/mcp`,
        toolName: "echo",
        sessions: 3,
        lanesPerSession: 1,
        window: 1,
        ratePerS: 0,
        durationMs: 300,
        warmupMs: 100,
        timeoutMs: 5000,
        graceMs: 100,
        maxHoldMs: 0,
        payloadBytes: 24,
        tag: "c",
        hints: false,
      },
      {
        emit: (kind, payload) => {
          events.push(kind);
          if (kind === "RESULT") r = payload as StormResult;
        },
        go: Promise.resolve(),
      },
    );
    expect(events).toEqual(["READY", "MEASURE", "END", "RESULT"]);
    expect(maxInFlight).toBeLessThanOrEqual(3);
    expect(maxInFlight).toBeGreaterThan(0);
    // every call was answered correctly; the warm-up's calls are not counted
    expect(r!.classes.error, JSON.stringify(r!.codes)).toBe(0);
    expect(r!.classes.ok).toBe(r!.scheduled);
    expect(r!.classes.ok).toBeLessThan(calls);
    expect(r!.ok_in_window).toBeLessThanOrEqual(r!.classes.ok);
    expect(r!.ok_in_window).toBeGreaterThan(0);
    expect(r!.sent).toBe(calls);
    // a plain client: no io.mcpq/* hints
    expect(metas.every((x) => x === undefined)).toBe(true);
  });
});
