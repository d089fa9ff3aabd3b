import { connect as tcpConnect } from "node:net";
import { describe, expect } from "vitest";
import { natsTest as it } from "@mcpq/testkit";
import { ErrorCode } from "@mcpq/protocol";
import { stack } from "./support/stack.js";
import { metricValue, rawSession } from "./support/raw-http.js";
import { rawInitialize } from "./support/raw-init.js";
import { RpcClient, tcpWire, type Message } from "./support/socket-client.js";

/** The reason text of a lag refusal (`rejection` prefixes "overloaded: "). */
const LAGGING = "edge is lagging behind its clients";

/**
 * Blocks this process's event loop, which the in-process edge shares: whatever was written to
 * the edge's sockets before the call sits unread until it returns (the stall the monitor sheds).
 */
function stall(ms: number): void {
  const until = Date.now() + ms;
  while (Date.now() < until) {
    /* busy */
  }
}

const echo = (text: string) => ({ name: "echo", arguments: { text } });

/** Retries (honouring retryAfterMs) until the edge serves again: lag refusals end on their own. */
async function untilServed(call: () => Promise<Message>): Promise<Message> {
  for (;;) {
    const m = await call();
    if (m.error?.code !== ErrorCode.Overloaded) return m;
    expect(m.error.message).toBe(`overloaded: ${LAGGING}`);
    const wait = (m.error.data as { retryAfterMs: number }).retryAfterMs;
    await new Promise((r) => setTimeout(r, wait));
  }
}

describe("event-loop-lag shedding", () => {
  it("a request read after the edge stalled is refused (-32010) at the door, and the edge recovers (raw TCP)", async ({
    nats,
  }) => {
    const s = await stack(nats, {
      edgeEnv: { MCPQ_MAX_EVENT_LOOP_LAG_MS: "100", MCPQ_TOOL_RATE_PER_SEC: "0" },
    });
    try {
      const edge = s.edges[0]!;
      const c = new RpcClient(await tcpWire(edge.tcpPort!));
      await c.initialize(false);
      expect((await untilServed(() => c.call("tools/call", echo("before")))).result).toBeDefined();
      const admitted = await metricValue(edge.runtime.registry, "mcpq_edge_admitted_total", {
        kind: "tool",
      });
      // Written to the socket now (net.Socket writes synchronously), read only after the stall.
      const late = c.call("tools/call", echo("late"));
      stall(600);
      const m = await late;
      // The first read after the stall sees it in the lag gauge (each scrape takes the maximum).
      expect(
        await metricValue(edge.runtime.registry, "mcpq_edge_event_loop_lag_seconds"),
      ).toBeGreaterThan(0.1);
      expect(m.error?.code).toBe(ErrorCode.Overloaded);
      expect(m.error?.message).toBe(`overloaded: ${LAGGING}`);
      expect((m.error?.data as { retryAfterMs: number }).retryAfterMs).toBeGreaterThanOrEqual(1);
      // Nothing was queued for it.
      expect(
        await metricValue(edge.runtime.registry, "mcpq_edge_admitted_total", { kind: "tool" }),
      ).toBe(admitted);
      expect(
        await metricValue(edge.runtime.registry, "mcpq_edge_rejected_total", {
          reason: "event_loop_lag",
        }),
      ).toBeGreaterThanOrEqual(1);
      const after = await untilServed(() => c.call("tools/call", echo("after")));
      expect(after.result).toEqual({ content: [{ type: "text", text: "after" }] });
      c.wire.close();
    } finally {
      await s.close();
    }
  });

  it("over Streamable HTTP the refusal is 503 + Retry-After", async ({ nats }) => {
    const s = await stack(nats, {
      edgeEnv: { MCPQ_MAX_EVENT_LOOP_LAG_MS: "100", MCPQ_TOOL_RATE_PER_SEC: "0" },
    });
    try {
      const edge = s.edges[0]!;
      const { headers } = await rawInitialize(edge.url, { protocolVersion: "2025-06-18" });
      const url = new URL(edge.url);
      const body = JSON.stringify({
        jsonrpc: "2.0",
        id: 7,
        method: "tools/call",
        params: echo("late"),
      });
      // A raw socket, so the whole request is in the edge's socket buffer before the stall.
      const sock = tcpConnect({ host: url.hostname, port: Number(url.port) });
      await new Promise<void>((resolve, reject) =>
        sock.once("connect", resolve).once("error", reject),
      );
      let text = "";
      sock.setEncoding("utf8").on("data", (d: string) => (text += d));
      const closed = new Promise<void>((resolve) => sock.once("close", () => resolve()));
      const head = Object.entries({
        ...headers,
        host: url.host,
        "content-type": "application/json",
        accept: "application/json, text/event-stream",
        "content-length": String(Buffer.byteLength(body)),
        connection: "close",
      })
        .map(([k, v]) => `${k}: ${v}\r\n`)
        .join("");
      sock.write(`POST ${url.pathname} HTTP/1.1\r\n${head}\r\n${body}`);
      stall(600);
      await closed;
      expect(text).toMatch(/^HTTP\/1\.1 503 /);
      expect(Number(/\r\nretry-after: (\d+)\r\n/i.exec(text)?.[1])).toBeGreaterThanOrEqual(1);
      expect(text).toContain(`overloaded: ${LAGGING}`);
      const a = await rawSession(edge.url);
      for (;;) {
        const r = await a.call("echo", { text: "after" });
        if (r.status === 503) {
          await new Promise((res) => setTimeout(res, r.message?.error?.data?.retryAfterMs ?? 1000));
          continue;
        }
        expect(r.status).toBe(200);
        expect(r.message?.result).toEqual({ content: [{ type: "text", text: "after" }] });
        break;
      }
      await a.close();
    } finally {
      await s.close();
    }
  });
});
