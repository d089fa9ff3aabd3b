// Unit tests for the load generator's measurement plumbing (no nats-server, in-process fakes).
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SseParser } from "../src/client/sse.js";
import { classifyHttpStatus, classifyRpcError, checkEchoResult } from "../src/client/types.js";
import { HttpMcpSession, parseMcpUrl } from "../src/client/http.js";
import { LatencyHistogram } from "../src/lib/histogram.js";
import { closedLoop, openLoop } from "../src/lib/drivers.js";
import { httpPool } from "../src/lib/target.js";

describe("SseParser", () => {
  it("joins data lines, honours CRLF/LF and arbitrary chunking, skips comments", () => {
    const got: string[] = [];
    const p = new SseParser((d) => got.push(d));
    const stream =
      ': prime\r\n\r\nevent: message\r\ndata: {"a":\r\ndata: 1}\r\n\r\ndata: x\n\ndata:y\r\r';
    for (let i = 0; i < stream.length; i += 3) p.push(stream.slice(i, i + 3));
    p.end();
    expect(got).toEqual(['{"a":\n1}', "x", "y"]);
  });
});

describe("outcome classification", () => {
  it("treats 429/503 and shedding server errors as rejected", () => {
    expect(classifyHttpStatus(429, "").kind).toBe("rejected");
    expect(classifyHttpStatus(503, "").kind).toBe("rejected");
    expect(classifyHttpStatus(500, "").kind).toBe("error");
    expect(
      classifyHttpStatus(
        400,
        JSON.stringify({ error: { code: -32001, message: "Server overloaded" } }),
      ).kind,
    ).toBe("rejected");
    expect(classifyRpcError(-32000, "rate limited").kind).toBe("rejected");
    expect(classifyRpcError(-32000, "Bad Request").kind).toBe("error");
    expect(classifyRpcError(-32603, "overloaded").kind).toBe("error");
  });
  it("verifies the echoed text", () => {
    expect(checkEchoResult({ content: [{ type: "text", text: "a" }] }, "a").kind).toBe("ok");
    expect(checkEchoResult({ content: [{ type: "text", text: "b" }] }, "a")).toEqual({
      kind: "error",
      code: "mismatch",
    });
    expect(checkEchoResult({ isError: true, content: [] }, "a").code).toBe("tool_error");
  });
});

describe("LatencyHistogram", () => {
  it("gives percentiles within 0.1 %", () => {
    const h = new LatencyHistogram();
    for (let i = 1; i <= 100_000; i++) h.record(i);
    expect(Math.abs(h.p(50)! - 50_000) / 50_000).toBeLessThan(0.001);
    expect(Math.abs(h.p(99)! - 99_000) / 99_000).toBeLessThan(0.001);
    expect(h.count).toBe(100_000);
  });
});

/** Fake MCP server: alternates JSON and SSE responses; `mode` switches behaviour. */
let server: Server;
let url = "";
let mode: "ok" | "slow" | "reject" | "wrong" = "ok";
let n = 0;
beforeAll(async () => {
  server = createServer((req, res) => {
    let b = "";
    req.setEncoding("utf8");
    req.on("data", (c) => (b += c));
    req.on("end", () => {
      if (req.method === "DELETE") return void res.writeHead(200).end();
      const m = JSON.parse(b);
      if (m.id === undefined) return void res.writeHead(202).end();
      if (m.method === "tools/call" && mode === "reject") return void res.writeHead(429).end();
      const reply = () => {
        const result =
          m.method === "initialize"
            ? {
                protocolVersion: "2025-11-25",
                capabilities: {},
                serverInfo: { name: "t", version: "0" },
              }
            : {
                content: [
                  { type: "text", text: mode === "wrong" ? "nope" : m.params.arguments.text },
                ],
              };
        const out = JSON.stringify({ jsonrpc: "2.0", id: m.id, result });
        if (n++ % 2)
          res
            .writeHead(200, { "content-type": "application/json", "mcp-session-id": "sid-1" })
            .end(out);
        else
          res
            .writeHead(200, { "content-type": "text/event-stream", "mcp-session-id": "sid-1" })
            .end(`event: message\ndata: ${out}\n\n`);
      };
      if (mode === "slow" && m.method === "tools/call") setTimeout(reply, 300);
      else reply();
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/mcp`;
});
afterAll(async () => {
  server.closeAllConnections();
  await new Promise((r) => server.close(r));
});

describe("HttpMcpSession + drivers", () => {
  it("initializes, echoes over JSON and SSE, classifies rejections, mismatches and timeouts", async () => {
    const ep = parseMcpUrl(url);
    const pool = httpPool(ep, 4);
    const s = await HttpMcpSession.open(ep, pool);
    expect(s.sessionId).toBe("sid-1");
    mode = "ok";
    expect((await s.callEcho("hello", 2000)).kind).toBe("ok");
    expect((await s.callEcho("hello again", 2000)).kind).toBe("ok");
    mode = "reject";
    expect(await s.callEcho("x", 2000)).toEqual({ kind: "rejected", code: "http_429" });
    mode = "wrong";
    expect((await s.callEcho("x", 2000)).code).toBe("mismatch");
    mode = "slow";
    expect((await s.callEcho("x", 50)).kind).toBe("timeout");
    mode = "ok";
    const st = await closedLoop({ sessions: [s], inFlight: 4, durationMs: 300, warmupMs: 50 });
    // The loop runs and accounts for every call (how many fit in 300 ms is the benchmark's business).
    expect(st.ok).toBeGreaterThan(0);
    expect(st.requests).toBe(st.ok);
    await pool.close();
  });

  it("open loop accounts for every scheduled request, timing out ones that wait too long", async () => {
    const ep = parseMcpUrl(url);
    const pool = httpPool(ep, 2);
    const s = await HttpMcpSession.open(ep, pool);
    mode = "slow"; // 300 ms per call, 2 slots ⇒ ~6.7/s served vs 100/s offered
    const st = await openLoop({
      sessions: [s],
      ratePerS: 100,
      durationMs: 500,
      timeoutMs: 400,
      maxInFlight: 2,
    });
    mode = "ok";
    expect(st.scheduled).toBe(50);
    expect(st.unaccounted).toBe(0);
    expect(st.outcomes.ok + st.outcomes.timeout + st.outcomes.rejected + st.outcomes.error).toBe(
      50,
    );
    expect(st.outcomes.timeout).toBeGreaterThan(30);
    expect(st.max_outstanding_seen).toBeLessThanOrEqual(2);
    await pool.destroy();
  });

  it("refuses non-loopback targets", () => {
    expect(() => parseMcpUrl("http://10.0.0.1:80/mcp")).toThrow(/loopback/);
    expect(() => parseMcpUrl("http://127.0.0.5:80/mcp")).not.toThrow();
  });
});
