import { afterAll, describe, expect } from "vitest";
import { STREAMS, digestToken, subscriptionKey } from "@mcpq/bus";
import { natsTest as it, eventually, type NatsHandle, type Stack } from "@mcpq/testkit";
import type { RunningEdge } from "@mcpq/edge";
import type { RunningWorker } from "@mcpq/worker";
import { stack } from "./support/stack.js";
import { allEvents, rawClient, sseEvents } from "./support/raw-sse.js";

/**
 * Session expiry and the per-principal cap, on a stack with a tiny idle TTL (own NATS per file,
 * so the buckets are created with it): an idle session disappears from the broker everywhere
 * (record, per-principal key, subscriptions, retained outbound messages) and answers 404 on
 * every edge; open sessions per principal are capped with an explicit, retryable error.
 */
const TTL_MS = 2_000;
const alice = { authorization: "Bearer tok-a" };
const bob = { authorization: "Bearer tok-b" };

describe("session lifecycle: idle expiry and per-principal cap", () => {
  let s: Stack<RunningEdge, RunningWorker> | undefined;
  let ready: Promise<Stack<RunningEdge, RunningWorker>> | undefined;
  const bus = { MCPQ_SESSION_IDLE_TTL_MS: String(TTL_MS), MCPQ_OUT_MAX_AGE_MS: String(TTL_MS) };
  const setup = (nats: NatsHandle) =>
    (ready ??= (async () => {
      s = await stack(nats, {
        edges: 2,
        workers: [{ catalogs: ["example"] }],
        workerEnv: bus,
        edgeEnv: {
          ...bus,
          MCPQ_MAX_SESSIONS_PER_PRINCIPAL: "3",
          MCPQ_AUTH_TOKENS: "tok-a=alice,tok-b=bob",
        },
      });
      return s;
    })());

  afterAll(async () => {
    await s?.close();
  });

  const ping = (c: Awaited<ReturnType<typeof rawClient>>, url: string) =>
    c.post(url, { jsonrpc: "2.0", id: 1, method: "ping" });

  it("caps open sessions per principal with -32011 / 429; closing or expiry frees a slot", async ({
    nats,
  }) => {
    const [e0, e1] = (await setup(nats)).edges;
    const mine = [
      await rawClient(e0!.url, { headers: alice }),
      await rawClient(e1!.url, { headers: alice }),
      await rawClient(e0!.url, { headers: alice }),
    ];
    const refused = await fetch(e1!.url, {
      method: "POST",
      headers: {
        "content-type": "application/json",
        accept: "application/json, text/event-stream",
        ...alice,
      },
      body: JSON.stringify({
        jsonrpc: "2.0",
        id: 1,
        method: "initialize",
        params: {
          protocolVersion: "2025-11-25",
          capabilities: {},
          clientInfo: { name: "x", version: "1" },
        },
      }),
    });
    expect(refused.status).toBe(429);
    expect(Number(refused.headers.get("retry-after"))).toBeGreaterThan(0);
    expect(await refused.json()).toMatchObject({
      jsonrpc: "2.0",
      id: 1,
      error: {
        code: -32011,
        message: "rate limited: too many open sessions for this principal",
        data: { reason: "too many open sessions for this principal" },
      },
    });
    // Another principal is not affected.
    await rawClient(e0!.url, { headers: bob });
    // DELETE frees a slot at once.
    const del = await fetch(e1!.url, {
      method: "DELETE",
      headers: { ...alice, "mcp-session-id": mine[0]!.sessionId },
    });
    expect(del.status).toBe(200);
    expect((await ping(mine[0]!, e0!.url)).status).toBe(404);
    await rawClient(e1!.url, { headers: alice });
    // Once alice's sessions idle out, she may open new ones.
    await eventually(
      async () => (await e0!.runtime.core.sessions.countForPrincipal("alice")) === 0,
      { what: "alice's sessions expired", timeoutMs: 20_000, intervalMs: 250 },
    );
    for (let i = 0; i < 3; i++) await rawClient(e0!.url, { headers: alice });
  });

  it("an idle session expires: everything it held in the broker is freed and every edge answers 404", async ({
    nats,
  }) => {
    const [e0, e1] = (await setup(nats)).edges;
    const rt = e0!.runtime;
    const c = await rawClient(e0!.url, { headers: bob });
    const sub = await c.post(e1!.url, {
      jsonrpc: "2.0",
      id: 2,
      method: "resources/subscribe",
      params: { uri: "mcpq://example/readme" },
    });
    expect(sub.status).toBe(200);
    await sub.text();
    const call = await allEvents(
      await c.post(e1!.url, {
        jsonrpc: "2.0",
        id: 3,
        method: "tools/call",
        params: {
          name: "countdown",
          arguments: { steps: 1, delayMs: 0 },
          _meta: { progressToken: 1 },
        },
      }),
    );
    expect(call.some((e) => e.message?.method === "notifications/progress")).toBe(true);

    const held = async () => {
      const record = await rt.bus.kv.sessions.get(`s.${c.sessionId}`);
      const principalKey = await rt.bus.kv.sessions.get(`p.${digestToken("bob")}.${c.sessionId}`);
      const subscription = await rt.bus.kv.subscriptions.get(
        subscriptionKey("mcpq://example/readme", c.sessionId),
      );
      const info = await rt.bus.jsm.streams.info(STREAMS.outbound, {
        subjects_filter: `mcpq.out.${c.sessionId}.>`,
      });
      const live = (e: { operation: string } | null) => e !== null && e.operation === "PUT";
      return {
        record: live(record),
        principalKey: live(principalKey),
        subscription: live(subscription),
        outbound: Object.keys(info.state.subjects ?? {}).length,
      };
    };
    expect(await held()).toEqual({
      record: true,
      principalKey: true,
      subscription: true,
      outbound: 1,
    });
    // No activity: the broker's TTLs (KV buckets, MCPQ_OUT max_age) remove everything.
    await eventually(
      async () =>
        JSON.stringify(await held()) ===
        JSON.stringify({ record: false, principalKey: false, subscription: false, outbound: 0 }),
      {
        what: "session state expired",
        timeoutMs: 20_000,
        intervalMs: 250,
      },
    );
    for (const e of [e0!, e1!]) {
      const r = await ping(c, e.url);
      expect(r.status).toBe(404);
      expect(await r.json()).toMatchObject({ error: { message: "Session not found" } });
    }
  });

  it("an open GET stream keeps its session (and subscriptions) alive while idle ones expire", async ({
    nats,
  }) => {
    const [e0, e1] = (await setup(nats)).edges;
    const listening = await rawClient(e0!.url, { headers: bob });
    const idle = await rawClient(e0!.url, { headers: bob });
    await (
      await listening.post(e1!.url, {
        jsonrpc: "2.0",
        id: 2,
        method: "resources/subscribe",
        params: { uri: "mcpq://example/readme" },
      })
    ).text();
    const get = await listening.get(e1!.url);
    expect(get.status).toBe(200);
    const events = sseEvents(get);
    await events.next(); // priming event: the stream is open

    // Watched in KV, not by pinging (a request is activity and would keep it alive).
    await eventually(
      async () =>
        (await e0!.runtime.bus.kv.sessions.get(`s.${idle.sessionId}`))?.operation !== "PUT",
      {
        what: "idle session expired",
        timeoutMs: 20_000,
        intervalMs: 250,
      },
    );
    expect((await ping(idle, e0!.url)).status).toBe(404);
    // Well past the TTL, the listening session and its subscription are still there.
    expect((await ping(listening, e0!.url)).status).toBe(200);
    const subscription = await e0!.runtime.bus.kv.subscriptions.get(
      subscriptionKey("mcpq://example/readme", listening.sessionId),
    );
    expect(subscription?.operation).toBe("PUT");
    await events.return(undefined);
  });
});
