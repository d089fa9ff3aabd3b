// Holes found by a hostile client (issue 14): slowloris (1), anonymous mode and raw TCP (5),
// one caller's bad input and the circuit (6), the broker's real message limit (7), and the
// small HTTP defects (9). Real sockets against a real stack; every wait is for a condition.
import { request as httpRequest } from "node:http";
import { connect as tcpConnect, type Socket } from "node:net";
import { afterAll, describe, expect } from "vitest";
import WebSocket from "ws";
import { connect } from "@nats-io/transport-node";
import { natsTest as it, eventually, type Stack } from "@mcpq/testkit";
import { ErrorCode } from "@mcpq/protocol";
import type { RunningEdge } from "@mcpq/edge";
import type { RunningWorker } from "@mcpq/worker";
import { factories, stack } from "./support/stack.js";
import { rawSession } from "./support/raw-http.js";
import { rawInitialize } from "./support/raw-init.js";
import { RpcClient, grpcWire, tcpWire, wsWire } from "./support/socket-client.js";

const INIT = {
  jsonrpc: "2.0",
  id: 0,
  method: "initialize",
  params: {
    protocolVersion: "2025-11-25",
    capabilities: {},
    clientInfo: { name: "h", version: "1" },
  },
};
const JSON_HEADERS = {
  "content-type": "application/json",
  accept: "application/json, text/event-stream",
};

/** A raw TCP connection from `localAddress` (any 127/8 address reaches the edge on Linux). */
async function rawTcp(
  port: number,
  localAddress = "127.0.0.1",
): Promise<Socket & { text: () => string; gone: Promise<void> }> {
  const sock = tcpConnect({ host: "127.0.0.1", port, localAddress });
  await new Promise<void>((resolve, reject) => {
    sock.once("connect", () => resolve());
    sock.once("error", reject);
  });
  sock.on("error", () => undefined);
  let buf = "";
  sock.setEncoding("utf8");
  sock.on("data", (d: string) => (buf += d));
  const gone = new Promise<void>((r) => sock.once("close", () => r()));
  return Object.assign(sock, { text: () => buf, gone });
}

/** POST from a chosen local address (to act as a different client) with node:http. */
function postFrom(
  url: string,
  localAddress: string,
  body: string,
  headers: Record<string, string> = JSON_HEADERS,
): Promise<{ status: number; headers: Record<string, unknown>; body: string }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(url, { method: "POST", headers, localAddress }, (res) => {
      let b = "";
      res.setEncoding("utf8");
      res.on("data", (d: string) => (b += d));
      res.on("end", () => resolve({ status: res.statusCode!, headers: res.headers, body: b }));
    });
    req.on("error", reject);
    req.end(body);
  });
}

describe("slowloris: timeouts on every transport and a per-client connection cap (hole 1)", () => {
  let edge: RunningEdge;
  afterAll(() => edge?.close());

  it("a half-sent chunked POST, a short body under a long Content-Length and unfinished headers are cut off; the slots come back", async ({
    nats,
  }) => {
    await stack(nats, { edges: 0 });
    edge = await factories.startEdge(nats.url, {
      MCPQ_HTTP_REQUEST_TIMEOUT_MS: "400",
      MCPQ_HTTP_HEADERS_TIMEOUT_MS: "300",
      MCPQ_SOCKET_HANDSHAKE_TIMEOUT_MS: "300",
      MCPQ_MAX_CONNECTIONS: "20",
      MCPQ_MAX_CONNECTIONS_PER_CLIENT: "4",
    });
    const { port } = edge;
    const chunked = await rawTcp(port);
    chunked.write(
      `POST /mcp HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nContent-Type: application/json\r\nAccept: application/json\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n{"jso`,
    );
    const short = await rawTcp(port);
    short.write(
      `POST /mcp HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nContent-Type: application/json\r\nAccept: application/json\r\nContent-Length: 1000\r\n\r\n{"jsonrpc"`,
    );
    const headers = await rawTcp(port);
    headers.write(`POST /mcp HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\n`);
    await Promise.all([chunked.gone, short.gone, headers.gone]);
    await eventually(() => edge.runtime.connections.open === 0, { what: "slots released" });
    // The edge still answers.
    expect(
      (await fetch(edge.url, { method: "POST", headers: JSON_HEADERS, body: JSON.stringify(INIT) }))
        .status,
    ).toBe(200);
  });

  it("idle TCP, WebSocket and gRPC connections that never open a session are closed with a reason", async () => {
    const tcp = await tcpWire(edge.tcpPort!);
    expect((await tcp.closed).reason).toMatch(/Timeout/);
    const ws = await wsWire(edge.wsUrl!);
    expect(await ws.closed).toMatchObject({ code: 1001, reason: "timeout" });
    const g = grpcWire(edge.grpcPort!);
    expect((await g.closed).code).toBe(4); // DEADLINE_EXCEEDED
    g.client.close();
    // A raw connection to the gRPC port that never sends the HTTP/2 preface is dropped too.
    const raw = await rawTcp(edge.grpcPort!);
    await raw.gone;
    // A connection that does open a session in time stays.
    const ok = new RpcClient(await tcpWire(edge.tcpPort!));
    await ok.initialize();
    expect(await ok.request("tools/call", { name: "echo", arguments: { text: "t" } })).toEqual({
      content: [{ type: "text", text: "t" }],
    });
    ok.wire.close();
  });

  it("a bound connection that goes silent with nothing in flight is closed, and its session resumes on a new one", async ({
    nats,
  }) => {
    const idle = await factories.startEdge(nats.url, { MCPQ_SOCKET_IDLE_TIMEOUT_MS: "300" });
    try {
      const c = new RpcClient(await tcpWire(idle.tcpPort!));
      await c.initialize();
      expect((await c.wire.closed).reason).toMatch(/Timeout/);
      const again = new RpcClient(await tcpWire(idle.tcpPort!));
      again.sessionId = c.sessionId;
      const r = await again.resume(again.wire, c.sessionId!);
      expect(r.result).toMatchObject({ sessionId: c.sessionId });
      expect(
        await again.request("tools/call", { name: "echo", arguments: { text: "back" } }),
      ).toEqual({ content: [{ type: "text", text: "back" }] });
      again.wire.close();
    } finally {
      await idle.close();
    }
  });

  it("WebSocket: a live but quiet client (it answers pings) stays; one that stops answering is closed", async ({
    nats,
  }) => {
    const idle = await factories.startEdge(nats.url, { MCPQ_SOCKET_IDLE_TIMEOUT_MS: "300" });
    try {
      const live = await wsWire(idle.wsUrl!);
      const c = new RpcClient(live);
      await c.initialize();
      let pings = 0;
      live.ws.on("ping", () => void pings++);
      // Ten pings span more than three idle periods; the connection is still there, and works.
      await eventually(() => pings >= 10, { what: "ten pings", timeoutMs: 30_000 });
      expect(await c.request("tools/call", { name: "echo", arguments: { text: "alive" } })).toEqual(
        { content: [{ type: "text", text: "alive" }] },
      );
      live.close();
      const deaf = new WebSocket(idle.wsUrl!, ["mcp"], { autoPong: false });
      await new Promise<void>((resolve) => deaf.once("open", () => resolve()));
      const closed = new Promise<number>((resolve) => deaf.once("close", (code) => resolve(code)));
      deaf.send(
        JSON.stringify({ jsonrpc: "2.0", id: 1, method: "initialize", params: INIT.params }),
      );
      expect(await closed).toBe(1001);
    } finally {
      await idle.close();
    }
  });

  it("one client address holds at most MCPQ_MAX_CONNECTIONS_PER_CLIENT: another client still gets in", async () => {
    const held: Socket[] = [];
    for (let i = 0; i < 4; i++) held.push(await rawTcp(edge.tcpPort!, "127.0.0.1"));
    await eventually(() => edge.runtime.connections.open >= 4, { what: "four held" });
    const fifth = await rawTcp(edge.tcpPort!, "127.0.0.1");
    await fifth.gone;
    expect(fifth.text()).toMatch(/too many connections/);
    // Another address is not affected by the first one's connections.
    const fromOther = await postFrom(edge.url, "127.0.0.2", JSON.stringify(INIT), {
      ...JSON_HEADERS,
      host: `127.0.0.1:${edge.port}`,
    });
    expect(fromOther.status).toBe(200);
    for (const s of held) s.destroy();
    await eventually(() => edge.runtime.connections.open === 0, { what: "released" });
  });
});

describe("anonymous mode and raw TCP (hole 5)", () => {
  let s: Stack<RunningEdge, RunningWorker>;
  afterAll(() => s?.close());

  it("anonymous sessions are capped per client address: one client at its cap does not lock out another", async ({
    nats,
  }) => {
    s = await stack(nats, { edgeEnv: { MCPQ_MAX_SESSIONS_PER_PRINCIPAL: "2" } });
    const url = s.edges[0]!.url;
    const host = { ...JSON_HEADERS, host: new URL(url).host };
    for (let i = 0; i < 2; i++)
      expect((await postFrom(url, "127.0.0.3", JSON.stringify(INIT), host)).status).toBe(200);
    expect((await postFrom(url, "127.0.0.3", JSON.stringify(INIT), host)).status).toBe(429);
    expect((await postFrom(url, "127.0.0.4", JSON.stringify(INIT), host)).status).toBe(200);
  });

  it("a browser-style HTTP request to the TCP port is refused with 400 before anything runs", async ({
    nats,
  }) => {
    const edge = s.edges[0]!;
    const monitor = await connect({ servers: nats.url });
    let published = 0;
    const sub = monitor.subscribe("mcpq.req.>", { callback: () => void published++ });
    await monitor.flush();
    const sock = await rawTcp(edge.tcpPort!);
    const lines = [
      JSON.stringify(INIT),
      JSON.stringify({
        jsonrpc: "2.0",
        id: 1,
        method: "tools/call",
        params: { name: "echo", arguments: { text: "pwned" } },
      }),
    ].join("\n");
    sock.write(
      `POST / HTTP/1.1\r\nHost: 127.0.0.1:${edge.tcpPort}\r\nOrigin: http://evil.example\r\nContent-Type: text/plain\r\nContent-Length: ${lines.length}\r\n\r\n${lines}\n`,
    );
    await sock.gone;
    expect(sock.text()).toMatch(/^HTTP\/1\.1 400 /);
    expect(sock.text()).not.toContain("protocolVersion");
    await monitor.flush();
    expect(published).toBe(0);
    sub.unsubscribe();
    await monitor.close();
  });

  it("with tokens configured, TCP requires the first-frame token", async ({ nats }) => {
    const edge = await factories.startEdge(nats.url, { MCPQ_AUTH_TOKENS: "tok=alice" });
    try {
      const c = new RpcClient(await tcpWire(edge.tcpPort!));
      const m = await c.call("initialize", INIT.params);
      expect(m.error?.message).toMatch(/Unauthorized/);
      c.wire.close();
    } finally {
      await edge.close();
    }
  });
});

describe("one caller, the broker's limit and small defects (holes 6, 7, 9)", () => {
  let s: Stack<RunningEdge, RunningWorker>;
  afterAll(() => s?.close());

  it("add(1e308, 1e308) from one caller fails its own calls only: the pool's circuit stays closed for everyone", async ({
    nats,
  }) => {
    s = await stack(nats, {
      edgeEnv: { MCPQ_CIRCUIT_FAILURES: "3", MCPQ_AUTH_TOKENS: "bad=mallory,good=alice" },
    });
    const rt = s.edges[0]!.runtime;
    const bad = await rawSession(s.edges[0]!.url, { authorization: "Bearer bad" });
    for (let i = 0; i < 10; i++)
      expect((await bad.call("add", { a: 1e308, b: 1e308 })).message?.error?.code).toBe(
        ErrorCode.InternalError,
      );
    expect(rt.admission.circuitState("example")).toBe("closed");
    const good = await rawSession(s.edges[0]!.url, { authorization: "Bearer good" });
    expect((await good.call("add", { a: 1, b: 2 })).message?.result?.["structuredContent"]).toEqual(
      { sum: 3 },
    );
  });

  it("a message over the broker's max_payload is 413 with a JSON-RPC body, not 200 -32603; the limit is discovered from the server", async ({
    nats,
  }) => {
    const maxPayload = s.edges[0]!.runtime.bus.nc.info!.max_payload;
    // A body limit above the broker's: what holds single messages back is the discovered limit.
    const edge = await factories.startEdge(nats.url, {
      MCPQ_MAX_BODY_BYTES: String(3 * maxPayload),
      MCPQ_AUTH_TOKENS: "good=alice",
    });
    try {
      expect(edge.runtime.config.maxMessageBytes).toBeLessThan(maxPayload);
      expect(edge.runtime.config.maxBodyBytes).toBe(3 * maxPayload);
      const session = await rawSession(edge.url, { authorization: "Bearer good" });
      const big = JSON.stringify({
        jsonrpc: "2.0",
        id: 9,
        method: "tools/call",
        params: { name: "echo", arguments: { text: "x".repeat(maxPayload + 1024) } },
      });
      const res = await fetch(edge.url, {
        method: "POST",
        headers: {
          ...JSON_HEADERS,
          authorization: "Bearer good",
          "mcp-session-id": session.id,
          "mcp-protocol-version": "2025-06-18",
        },
        body: big,
      });
      expect(res.status).toBe(413);
      expect(
        ((await res.json()) as { error: { message: string; data: { maxBytes: number } } }).error,
      ).toMatchObject({
        message: "Payload Too Large",
        data: { maxBytes: edge.runtime.config.maxMessageBytes },
      });
      // In a batch (2025-03-26), the oversized item alone is refused; the others are answered.
      const v = await rawInitialize(edge.url, {
        protocolVersion: "2025-03-26",
        headers: { authorization: "Bearer good" },
      });
      const batch = JSON.stringify([
        {
          jsonrpc: "2.0",
          id: "big",
          method: "tools/call",
          params: { name: "echo", arguments: { text: "x".repeat(maxPayload) } },
        },
        {
          jsonrpc: "2.0",
          id: "small",
          method: "tools/call",
          params: { name: "echo", arguments: { text: "fits" } },
        },
      ]);
      const br = await fetch(edge.url, {
        method: "POST",
        headers: { ...v.headers, accept: "application/json" },
        body: batch,
      });
      expect(br.status).toBe(200);
      const answers = (await br.json()) as {
        id: string;
        result?: unknown;
        error?: { code: number };
      }[];
      expect(answers.find((a) => a.id === "big")?.error?.code).toBe(ErrorCode.InvalidRequest);
      expect(answers.find((a) => a.id === "small")?.result).toEqual({
        content: [{ type: "text", text: "fits" }],
      });
      // Just under the limit still works.
      const fits = "y".repeat(edge.runtime.config.maxMessageBytes - 400);
      expect((await session.call("echo", { text: fits })).message?.result).toBeDefined();
      // A WebSocket frame over it is refused too (close 1009), not published.
      const ws = await wsWire(edge.wsUrl!, { headers: { authorization: "Bearer good" } });
      ws.send(big);
      expect((await ws.closed).code).toBe(1009);
    } finally {
      await edge.close();
    }
  });

  it("small defects: deep nesting, other methods, two Host headers, upper-case Accept, Connection: close", async () => {
    const edge = s.edges[0]!;
    const session = await rawSession(edge.url, { authorization: "Bearer good" });
    const headers = {
      ...JSON_HEADERS,
      authorization: "Bearer good",
      "mcp-session-id": session.id,
      "mcp-protocol-version": "2025-06-18",
    };
    const deep = `{"jsonrpc":"2.0","id":"mcpq-1","result":${'{"a":'.repeat(20_000)}1${"}".repeat(20_000)}}`;
    const nested = await fetch(edge.url, { method: "POST", headers, body: deep });
    expect(nested.status).toBe(400);
    expect(((await nested.json()) as { error: { code: number } }).error.code).toBe(
      ErrorCode.ParseError,
    );
    for (const method of ["PUT", "PATCH", "OPTIONS"]) {
      const r = await fetch(edge.url, { method, headers: { "content-type": "application/json" } });
      expect(r.status).toBe(405);
      expect(r.headers.get("allow")).toBe("GET, POST, DELETE");
      const text = await r.text();
      expect(text).not.toContain("FST_");
      expect(JSON.parse(text)).toMatchObject({
        jsonrpc: "2.0",
        id: null,
        error: { code: ErrorCode.InvalidRequest },
      });
    }
    // Two Host headers: refused (a proxy and the edge could each act on a different one).
    const sock = await rawTcp(edge.port);
    sock.write(
      `POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nHost: evil.example\r\nAuthorization: Bearer good\r\nContent-Type: application/json\r\nAccept: application/json\r\nContent-Length: ${JSON.stringify(INIT).length}\r\nConnection: close\r\n\r\n${JSON.stringify(INIT)}`,
    );
    await sock.gone;
    expect(sock.text()).toMatch(/^HTTP\/1\.1 400 /);
    // Media types are case-insensitive.
    const upper = await fetch(edge.url, {
      method: "POST",
      headers: { ...headers, accept: "APPLICATION/JSON" },
      body: JSON.stringify({ jsonrpc: "2.0", id: 3, method: "ping" }),
    });
    expect(upper.status).toBe(200);
    // An SSE answer to a client that said `Connection: close` says so and closes.
    const sse = await rawTcp(edge.port);
    const ping = JSON.stringify({
      jsonrpc: "2.0",
      id: 4,
      method: "tools/call",
      params: { name: "echo", arguments: { text: "bye" } },
    });
    sse.write(
      `POST /mcp HTTP/1.1\r\nHost: 127.0.0.1:${edge.port}\r\nContent-Type: application/json\r\nAccept: text/event-stream\r\nAuthorization: Bearer good\r\nMcp-Session-Id: ${session.id}\r\nMcp-Protocol-Version: 2025-06-18\r\nContent-Length: ${ping.length}\r\nConnection: close\r\n\r\n${ping}`,
    );
    await sse.gone;
    expect(sse.text()).toMatch(/^HTTP\/1\.1 200 /);
    expect(sse.text().toLowerCase()).toContain("connection: close");
    expect(sse.text()).toContain('"text":"bye"');
  });
});
