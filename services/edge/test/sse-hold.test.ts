import { afterAll, describe, expect } from "vitest";
import { natsTest as it, type Stack } from "@mcpq/testkit";
import type { RunningEdge } from "@mcpq/edge";
import type { RunningWorker } from "@mcpq/worker";
import { rawInitialize } from "./support/raw-init.js";
import { stack } from "./support/stack.js";

/**
 * MCPQ_SSE_HOLD_MS: a POST's SSE stream holds its head (status, headers, priming event) for the
 * response, which then leaves with it; a response slower than the hold finds the head sent.
 */
describe("SSE head hold (MCPQ_SSE_HOLD_MS)", () => {
  const stacks: Stack<RunningEdge, RunningWorker>[] = [];
  afterAll(async () => {
    for (const s of stacks) await s.close();
  });

  /** A raw session; the headers every later POST of it needs. */
  const session = async (url: string) =>
    (await rawInitialize(url, { protocolVersion: "2025-11-25" })).headers;
  const post = (
    url: string,
    headers: Record<string, string>,
    body: unknown,
    signal?: AbortSignal,
  ) =>
    fetch(url, {
      method: "POST",
      headers,
      body: JSON.stringify(body),
      ...(signal ? { signal } : {}),
    });
  const call = (url: string, headers: Record<string, string>, ms: number, signal?: AbortSignal) =>
    post(
      url,
      headers,
      { jsonrpc: "2.0", id: 1, method: "tools/call", params: { name: "sleep", arguments: { ms } } },
      signal,
    );

  it("a response within the hold carries the head: priming event first, then the response, whatever the hold's length", async ({
    nats,
  }) => {
    // an hour: the head can only have gone out because the response came
    const s = await stack(nats, { edgeEnv: { MCPQ_SSE_HOLD_MS: "3600000" } });
    stacks.push(s);
    const url = s.edges[0]!.url;
    const r = await call(url, await session(url), 0);
    expect(r.status).toBe(200);
    expect(r.headers.get("content-type")).toBe("text/event-stream");
    const text = await r.text();
    const events = text.split("\n\n").filter(Boolean);
    expect(events[0]).toMatch(/^id: \S+\nretry: \d+\ndata: $/);
    expect(events[1]).toMatch(/^id: \S+\nevent: message\ndata: \{.*"slept 0 ms"/s);
    expect(events).toHaveLength(2);
  });

  it("a response slower than the hold: the head and priming event go out alone when the hold ends", async ({
    nats,
  }) => {
    const s = await stack(nats, { edgeEnv: { MCPQ_SSE_HOLD_MS: "100" } });
    stacks.push(s);
    const url = s.edges[0]!.url;
    const ac = new AbortController();
    // the tool runs for ten minutes: headers and the first bytes can only come from the hold's end
    const headers = await session(url);
    const r = await call(url, headers, 600_000, ac.signal);
    expect(r.status).toBe(200);
    const reader = r.body!.getReader();
    let first = "";
    while (!first.includes("\n\n")) {
      const { value, done } = await reader.read();
      if (done) break;
      first += new TextDecoder().decode(value);
    }
    expect(first).toMatch(/^id: \S+\nretry: \d+\ndata: \n\n$/);
    ac.abort();
    // a disconnect is no cancellation in this era: cancel, so the worker stops sleeping
    const c = await post(url, headers, {
      jsonrpc: "2.0",
      method: "notifications/cancelled",
      params: { requestId: 1 },
    });
    expect(c.status).toBe(202);
  });
});
