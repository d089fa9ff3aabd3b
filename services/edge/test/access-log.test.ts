import { describe, expect, afterAll } from "vitest";
import { natsTest as it, eventually, type Stack } from "@mcpq/testkit";
import { createLogger } from "@mcpq/observability";
import { loadEdgeConfig, startEdge, type RunningEdge } from "@mcpq/edge";
import type { RunningWorker } from "@mcpq/worker";
import { SHARED_LOOP_ENV, sdkClient, stack } from "./support/stack.js";

const TOKEN = "tok-very-secret-4711";
const SECRET_ARG = "argument-nobody-may-log";

/** An edge whose log lines are captured (pino JSON, as in production). */
async function capturedEdge(natsUrl: string, env: Record<string, string>) {
  const lines: Record<string, unknown>[] = [];
  const raw: string[] = [];
  const log = createLogger(
    { name: "mcpq-edge", level: "info" },
    {
      write(s: string) {
        raw.push(s);
        lines.push(JSON.parse(s) as Record<string, unknown>);
      },
    },
  );
  const edge = await startEdge(
    loadEdgeConfig({
      MCPQ_NATS_URL: natsUrl,
      MCPQ_PORT: "0",
      MCPQ_REGISTRY_TTL_MS: "6000",
      ...SHARED_LOOP_ENV,
      ...env,
    }),
    log,
  );
  return { edge, lines, raw };
}

describe("access log: one line per request, never arguments or tokens", () => {
  let s: Stack<RunningEdge, RunningWorker>;
  const edges: RunningEdge[] = [];
  afterAll(async () => {
    await Promise.allSettled(edges.map((e) => e.close()));
    await s?.close();
  });

  it("logs method, tool, outcome, duration, principal, session and trace id; 401s too", async ({
    nats,
  }) => {
    s = await stack(nats, { edges: 0 });
    const { edge, lines, raw } = await capturedEdge(nats.url, {
      MCPQ_AUTH_TOKENS: `${TOKEN}=alice`,
      MCPQ_ACCESS_LOG_LEVEL: "info",
    });
    edges.push(edge);
    await eventually(() => edge.runtime.catalog.toolPool("echo"), { what: "the echo tool" });
    const { client, transport } = await sdkClient(edge.url, {
      headers: { authorization: `Bearer ${TOKEN}` },
    });
    await client.callTool({
      name: "echo",
      arguments: { text: SECRET_ARG },
      _meta: { traceparent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01" },
    });
    const unauthorized = await fetch(edge.url, {
      method: "POST",
      headers: {
        "content-type": "application/json",
        accept: "application/json, text/event-stream",
        authorization: "Bearer wrong-token",
      },
      body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: "ping" }),
    });
    expect(unauthorized.status).toBe(401);
    const call = await eventually(
      () => lines.find((l) => l["msg"] === "request" && l["tool"] === "echo"),
      { what: "the call's access line" },
    );
    expect(call).toMatchObject({
      level: 30,
      method: "tools/call",
      outcome: "ok",
      principal: "alice",
      session: transport.sessionId,
      traceId: "4bf92f3577b34da6a3ce929d0e0e4736",
    });
    expect(call["durationMs"]).toEqual(expect.any(Number));
    const refused = await eventually(
      () => lines.find((l) => l["msg"] === "request" && l["status"] === 401),
      { what: "the 401's access line" },
    );
    expect(refused).toMatchObject({ httpMethod: "POST", path: "/mcp", outcome: "rejected" });
    const all = raw.join("");
    expect(all).not.toContain(SECRET_ARG);
    expect(all).not.toContain(TOKEN);
    expect(all).not.toContain("wrong-token");
    await client.close();
  });

  it("by default (level debug under MCPQ_LOG_LEVEL=info) only refusals are logged", async ({
    nats,
  }) => {
    const { edge, lines } = await capturedEdge(nats.url, { MCPQ_AUTH_TOKENS: `${TOKEN}=alice` });
    edges.push(edge);
    await eventually(() => edge.runtime.catalog.toolPool("echo"), { what: "the echo tool" });
    const { client } = await sdkClient(edge.url, { headers: { authorization: `Bearer ${TOKEN}` } });
    await client.callTool({ name: "echo", arguments: { text: "x" } });
    await client.close();
    const res = await fetch(edge.url, {
      method: "POST",
      headers: { "content-type": "application/json", accept: "application/json" },
      body: "{}",
    });
    expect(res.status).toBe(401);
    await eventually(() => lines.find((l) => l["msg"] === "request" && l["status"] === 401), {
      what: "the 401's line",
    });
    expect(lines.filter((l) => l["msg"] === "request" && l["status"] === undefined)).toEqual([]);
  });

  it("MCPQ_ACCESS_LOG_LEVEL=off (or sample 0) writes no access lines", async ({ nats }) => {
    const envs: Record<string, string>[] = [
      { MCPQ_ACCESS_LOG_LEVEL: "off" },
      { MCPQ_ACCESS_LOG_LEVEL: "info", MCPQ_ACCESS_LOG_SAMPLE: "0" },
    ];
    for (const env of envs) {
      const { edge, lines } = await capturedEdge(nats.url, env);
      edges.push(edge);
      await eventually(() => edge.runtime.catalog.toolPool("echo"), { what: "the echo tool" });
      const { client } = await sdkClient(edge.url);
      await client.callTool({ name: "echo", arguments: { text: "x" } });
      await client.close();
      expect(lines.filter((l) => l["msg"] === "request")).toEqual([]);
    }
  });
});
