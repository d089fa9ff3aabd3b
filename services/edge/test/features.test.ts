import { afterAll, describe, expect } from "vitest";
import { connect } from "@nats-io/transport-node";
import {
  CreateMessageRequestSchema,
  ElicitRequestSchema,
  ListRootsRequestSchema,
  LoggingMessageNotificationSchema,
  McpError as SdkMcpError,
  PromptListChangedNotificationSchema,
  ResourceListChangedNotificationSchema,
  ResourceUpdatedNotificationSchema,
  ToolListChangedNotificationSchema,
} from "@modelcontextprotocol/sdk/types.js";
import { natsTest as it, eventually, type NatsHandle, type Stack } from "@mcpq/testkit";
import type { RunningEdge } from "@mcpq/edge";
import type { RunningWorker } from "@mcpq/worker";
import { sdkClient, stack } from "./support/stack.js";
import { allEvents, rawClient, sseEvents, type SseEvent } from "./support/raw-sse.js";
import {
  featuresCatalog,
  lateCatalog,
  observed,
  startCatalogWorker,
  type Outcomes,
} from "./support/features-worker.js";

/**
 * The MCP server surface through the broker, with every session's requests spread over two
 * edges: a client initializes on edge 0 and a second transport with the same session id (or a
 * raw POST) talks to edge 1. Workers: `example` and `conformance` in their own pools, and two
 * in-process workers of the test catalog `features` sharing one pool.
 */
describe("MCP features across edges, JetStream and workers", () => {
  let s: Stack<RunningEdge, RunningWorker> | undefined;
  let featureWorkers: Awaited<ReturnType<typeof startCatalogWorker>>[] = [];
  const closers: (() => Promise<unknown>)[] = [];
  let ready: Promise<Stack<RunningEdge, RunningWorker>> | undefined;

  const setup = (nats: NatsHandle) =>
    (ready ??= (async () => {
      s = await stack(nats, {
        edges: 2,
        workers: [{ catalogs: ["example"] }, { catalogs: ["conformance"] }],
        edgeEnv: { MCPQ_SSE_RETRY_MS: "100" },
      });
      featureWorkers = [
        await startCatalogWorker(nats.url, [featuresCatalog], "features"),
        await startCatalogWorker(nats.url, [featuresCatalog], "features"),
      ];
      for (const e of s.edges)
        await eventually(
          () =>
            e.runtime.catalog.toolPool("wait_for_cancel") &&
            e.runtime.catalog.toolPool("test_simple_text"),
          { what: "catalogs on every edge" },
        );
      return s;
    })());
  const urls = async (nats: NatsHandle) =>
    (await setup(nats)).edges.map((e) => e.url) as [string, string];
  const outcomes = (): Outcomes => featureWorkers.flatMap((w) => w.outcomes);

  /** SDK client A initializes on edge 0; SDK client B joins the same session on edge 1. */
  const pair = async (nats: NatsHandle, capabilities: Record<string, unknown> = {}) => {
    const [u0, u1] = await urls(nats);
    const a = await sdkClient(u0, { capabilities });
    const b = await sdkClient(u1, { sessionId: a.transport.sessionId!, capabilities });
    closers.push(
      () => a.client.close(),
      () => b.client.close(),
    );
    return { a, b };
  };

  afterAll(async () => {
    await Promise.allSettled(closers.map((c) => c()));
    await Promise.allSettled(featureWorkers.map((w) => w.close()));
    await s?.close();
  });

  it("progress echoes the SDK's numeric token (and a string token) exactly, before the result", async ({
    nats,
  }) => {
    const { b } = await pair(nats);
    const got: { progress: number; total?: number }[] = [];
    const r = await b.client.callTool(
      { name: "test_tool_with_progress", arguments: {} },
      undefined,
      { onprogress: (p) => void got.push(p) },
    );
    // The SDK only routes progress whose token equals the request id it sent (a number).
    expect(got.map((p) => p.progress)).toEqual([0, 50, 100]);
    expect((r.content as { text: string }[])[0]!.text).toMatch(/^\d+$/);

    const [u0, u1] = await urls(nats);
    const raw = await rawClient(u0);
    for (const token of [42, "tok-7"]) {
      const events = await allEvents(
        await raw.post(u1, {
          jsonrpc: "2.0",
          id: 5,
          method: "tools/call",
          params: { name: "sequence", arguments: { steps: 2 }, _meta: { progressToken: token } },
        }),
      );
      const progress = events
        .filter((e) => e.message?.method === "notifications/progress")
        .map((e) => e.message!.params!);
      expect(progress).toEqual([
        { progressToken: token, progress: 1, total: 2 },
        { progressToken: token, progress: 2, total: 2 },
      ]);
    }
  });

  it("related messages go on the request's stream, in order, before its response", async ({
    nats,
  }) => {
    const [u0, u1] = await urls(nats);
    const raw = await rawClient(u0);
    const res = await raw.post(u1, {
      jsonrpc: "2.0",
      id: "seq-1",
      method: "tools/call",
      params: { name: "sequence", arguments: { steps: 4 }, _meta: { progressToken: "p" } },
    });
    expect(res.headers.get("content-type")).toContain("text/event-stream");
    const events = await allEvents(res);
    // Priming event (id, no data, retry) first.
    expect(events[0]).toMatchObject({ id: expect.stringMatching(/_0$/), retry: 100 });
    expect(events[0]!.message).toBeUndefined();
    const kinds = events
      .slice(1)
      .map((e) =>
        e.message?.method
          ? `${e.message.method}:${JSON.stringify(e.message.params?.["data"] ?? e.message.params?.["progress"])}`
          : `response:${String(e.message?.id)}`,
      );
    expect(kinds).toEqual([
      ...[1, 2, 3, 4].flatMap((i) => [
        `notifications/message:"step ${i}"`,
        `notifications/progress:${i}`,
      ]),
      "response:seq-1",
    ]);
    // Every event carries an id on the request's stream.
    const stream = events[0]!.id!.split("_")[0];
    for (const e of events) expect(e.id?.startsWith(`${stream}_`)).toBe(true);
  });

  it("logging/setLevel on edge 0 filters the logs of a call served via edge 1", async ({
    nats,
  }) => {
    const { a, b } = await pair(nats);
    const logs: string[] = [];
    b.client.setNotificationHandler(
      LoggingMessageNotificationSchema,
      (n) => void logs.push(String(n.params.data)),
    );

    await a.client.setLoggingLevel("warning");
    expect(await b.client.callTool({ name: "log_levels", arguments: {} })).toMatchObject({
      content: [{ type: "text", text: "logged" }],
    });
    // Logs precede the response on the stream: once "error" is in, anything that passed is in.
    await eventually(() => logs.includes("error"), { what: "error log" });
    expect(logs).toEqual(["warning", "error"]);

    logs.length = 0;
    await a.client.setLoggingLevel("debug");
    await b.client.callTool({ name: "log_levels", arguments: {} });
    await eventually(() => logs.includes("error"), { what: "error log" });
    expect(logs).toEqual(["debug", "info", "warning", "error"]);

    logs.length = 0;
    await a.client.setLoggingLevel("emergency");
    await b.client.callTool({ name: "test_tool_with_logging", arguments: {} });
    await b.client.callTool({ name: "log_levels", arguments: {} });
    expect(logs).toEqual([]);
  });

  it("notifications/cancelled on edge 0 aborts the handler on whichever worker runs it; no response is sent", async ({
    nats,
  }) => {
    const [u0, u1] = await urls(nats);
    const raw = await rawClient(u0);
    const before = outcomes().filter((o) => o.outcome === "cancelled").length;
    const marker = `cancel-${Date.now()}`;
    const res = await raw.post(u1, {
      jsonrpc: "2.0",
      id: 77,
      method: "tools/call",
      params: { name: "wait_for_cancel", arguments: { marker } },
    });
    expect(res.status).toBe(200);
    const events = allEvents(res);
    await eventually(() => observed.started.has(marker), { what: "handler started" });

    const cancel = await raw.post(u0, {
      jsonrpc: "2.0",
      method: "notifications/cancelled",
      params: { requestId: 77, reason: "test" },
    });
    expect(cancel.status).toBe(202);
    await eventually(() => observed.aborted.has(marker), { what: "handler aborted" });
    // The edge ends the POST stream without any response for the cancelled request.
    const got = await events;
    expect(got.filter((e) => e.message && e.message.id === 77)).toEqual([]);
    await eventually(() => outcomes().filter((o) => o.outcome === "cancelled").length > before, {
      what: "worker reported cancelled",
    });

    // The SDK client's AbortSignal path (cancel sent via edge 1 for a call made on edge 1).
    const { b } = await pair(nats);
    const m2 = `${marker}-sdk`;
    const ctl = new AbortController();
    const call = b.client.callTool(
      { name: "wait_for_cancel", arguments: { marker: m2 } },
      undefined,
      { signal: ctl.signal },
    );
    await eventually(() => observed.started.has(m2), { what: "sdk call started" });
    ctl.abort("user");
    await expect(call).rejects.toBeTruthy();
    await eventually(() => observed.aborted.has(m2), { what: "sdk call aborted on the worker" });
  });

  it("a cancel that overtakes its queued request drops the request unrun", async ({ nats }) => {
    const [u0, u1] = await urls(nats);
    const serial = await startCatalogWorker(
      nats.url,
      [
        {
          ...featuresCatalog,
          name: "serial",
          tools: featuresCatalog
            .tools!.filter((t) => t.name === "wait_for_cancel")
            .map((t) => ({ ...t, name: "serial_wait" })),
        },
      ],
      "serial",
      { concurrency: 1 },
    );
    closers.push(() => serial.close());
    for (const e of (await setup(nats)).edges)
      await eventually(() => e.runtime.catalog.toolPool("serial_wait"), { what: "serial pool" });
    const raw = await rawClient(u0);
    const m1 = `serial-1-${Date.now()}`;
    const m2 = `serial-2-${Date.now()}`;
    const first = allEvents(
      await raw.post(u1, {
        jsonrpc: "2.0",
        id: 1,
        method: "tools/call",
        params: { name: "serial_wait", arguments: { marker: m1 } },
      }),
    );
    await eventually(() => observed.started.has(m1), { what: "first call running" });
    // The only slot is taken: the second call waits (in the worker's pull buffer or in MCPQ_REQ).
    const second = allEvents(
      await raw.post(u0, {
        jsonrpc: "2.0",
        id: 2,
        method: "tools/call",
        params: { name: "serial_wait", arguments: { marker: m2 } },
      }),
    );
    expect(
      (
        await raw.post(u1, {
          jsonrpc: "2.0",
          method: "notifications/cancelled",
          params: { requestId: 2 },
        })
      ).status,
    ).toBe(202);
    expect((await second).filter((e) => e.message?.id === 2)).toEqual([]);
    expect(
      (
        await raw.post(u0, {
          jsonrpc: "2.0",
          method: "notifications/cancelled",
          params: { requestId: 1 },
        })
      ).status,
    ).toBe(202);
    await first;
    await eventually(() => serial.outcomes.filter((o) => o.outcome === "cancelled").length === 2, {
      what: "both requests accounted as cancelled",
    });
    expect(observed.started.has(m2)).toBe(false);
  });

  it("sampling, elicitation and roots are answered by the client while the worker waits", async ({
    nats,
  }) => {
    const { b } = await pair(nats, { sampling: {}, elicitation: {}, roots: {} });
    const seen: string[] = [];
    b.client.setRequestHandler(CreateMessageRequestSchema, (req) => {
      const content = req.params.messages[0]!.content as { text: string };
      seen.push(`sampling:${content.text}`);
      return {
        role: "assistant",
        content: { type: "text", text: `echo ${content.text}` },
        model: "test-model",
        stopReason: "endTurn",
      };
    });
    b.client.setRequestHandler(ElicitRequestSchema, (req) => {
      seen.push(`elicit:${req.params.message}`);
      return { action: "accept", content: { username: "testuser", email: "test@example.com" } };
    });
    b.client.setRequestHandler(ListRootsRequestSchema, () => ({
      roots: [{ uri: "file:///work", name: "work" }],
    }));

    const sampled = await b.client.callTool({
      name: "test_sampling",
      arguments: { prompt: "What is 2+2?" },
    });
    expect(sampled.content).toEqual([{ type: "text", text: "LLM response: echo What is 2+2?" }]);
    const elicited = await b.client.callTool({
      name: "test_elicitation",
      arguments: { message: "Who are you?" },
    });
    expect((elicited.content as { text: string }[])[0]!.text).toBe(
      'User response: action=accept, content={"username":"testuser","email":"test@example.com"}',
    );
    const roots = await b.client.callTool({ name: "ask", arguments: { method: "roots" } });
    expect((roots.content as { text: string }[])[0]!.text).toBe(
      'ok {"roots":[{"uri":"file:///work","name":"work"}]}',
    );
    expect(seen).toEqual(["sampling:What is 2+2?", "elicit:Who are you?"]);

    // A client error reaches the handler as an error.
    b.client.setRequestHandler(CreateMessageRequestSchema, () => {
      throw new SdkMcpError(-32000, "user rejected sampling");
    });
    const refused = await b.client.callTool({ name: "ask", arguments: { method: "sample" } });
    expect((refused.content as { text: string }[])[0]!.text).toMatch(
      /^failed -32000 .*user rejected sampling/,
    );
  });

  it("a client without the capability gets an immediate error in the handler, not a timeout", async ({
    nats,
  }) => {
    const { b } = await pair(nats, {});
    const r = await b.client.callTool({
      name: "ask",
      arguments: { method: "sample", timeoutMs: 60_000 },
    });
    expect((r.content as { text: string }[])[0]!.text).toBe(
      "failed -32601 Client does not support sampling/createMessage (no sampling capability)",
    );
  });

  it("the answer to a server->client request may be POSTed to another edge; unanswered ones time out", async ({
    nats,
  }) => {
    const [u0, u1] = await urls(nats);
    const raw = await rawClient(u0, { capabilities: { sampling: {}, elicitation: {} } });
    const res = await raw.post(u0, {
      jsonrpc: "2.0",
      id: "s1",
      method: "tools/call",
      params: { name: "test_sampling", arguments: { prompt: "cross-edge" } },
    });
    const seen: SseEvent[] = [];
    for await (const e of sseEvents(res)) {
      seen.push(e);
      const m = e.message;
      if (m?.method === "sampling/createMessage") {
        expect(m.params).toEqual({
          messages: [{ role: "user", content: { type: "text", text: "cross-edge" } }],
          maxTokens: 100,
        });
        expect(String(m.id)).toMatch(/^mcpq-/);
        const answer = await raw.post(u1, {
          jsonrpc: "2.0",
          id: m.id,
          result: {
            role: "assistant",
            content: { type: "text", text: "answered via edge 1" },
            model: "m",
          },
        });
        expect(answer.status).toBe(202);
      }
    }
    const final = seen.at(-1)!.message!;
    expect(final).toMatchObject({
      id: "s1",
      result: { content: [{ type: "text", text: "LLM response: answered via edge 1" }] },
    });
    expect(seen.findIndex((e) => e.message?.method === "sampling/createMessage")).toBeLessThan(
      seen.length - 1,
    );

    // Nobody answers: the handler sees -32001 and the client is told the request was cancelled.
    const quiet = await allEvents(
      await raw.post(u1, {
        jsonrpc: "2.0",
        id: "s2",
        method: "tools/call",
        params: { name: "ask", arguments: { method: "elicit", timeoutMs: 300 } },
      }),
    );
    const asked = quiet.find((e) => e.message?.method === "elicitation/create")!.message!;
    expect(
      quiet.find((e) => e.message?.method === "notifications/cancelled")?.message?.params,
    ).toEqual({ requestId: asked.id, reason: "timeout" });
    expect((quiet.at(-1)!.message!.result!["content"] as { text: string }[])[0]!.text).toBe(
      "failed -32001 elicitation/create: client did not answer in 300 ms",
    );
  });

  it("completion/complete is routed to the worker owning the prompt or template", async ({
    nats,
  }) => {
    const { b } = await pair(nats);
    expect(
      (
        await b.client.complete({
          ref: { type: "ref/prompt", name: "greet" },
          argument: { name: "style", value: "f" },
        })
      ).completion.values,
    ).toEqual(["formal"]);
    expect(
      (
        await b.client.complete({
          ref: { type: "ref/prompt", name: "test_prompt_with_arguments" },
          argument: { name: "arg1", value: "test" },
        })
      ).completion.values,
    ).toContain("testValue1");
    expect(
      (
        await b.client.complete({
          ref: { type: "ref/resource", uri: "mcpq://example/items/{id}" },
          argument: { name: "id", value: "4" },
        })
      ).completion.values,
    ).toEqual(["42"]);
    await expect(
      b.client.complete({
        ref: { type: "ref/prompt", name: "nope" },
        argument: { name: "x", value: "" },
      }),
    ).rejects.toMatchObject({ code: -32602 });
  });

  it("resources/subscribe on edge 0: updates announced by a worker or an external publisher arrive on the GET stream", async ({
    nats,
  }) => {
    const { a, b } = await pair(nats);
    const updates: string[] = [];
    a.client.setNotificationHandler(
      ResourceUpdatedNotificationSchema,
      (n) => void updates.push(n.params.uri),
    );
    expect(await a.client.subscribeResource({ uri: "test://watched-resource" })).toEqual({});

    // From a worker (tools/call on edge 1); repeated until A's GET stream on edge 0 is attached.
    await eventually(
      async () => {
        await b.client.callTool({
          name: "touch_resource",
          arguments: { uri: "test://watched-resource" },
        });
        return updates.length > 0;
      },
      { what: "update from a worker", intervalMs: 200 },
    );
    expect(updates[0]).toBe("test://watched-resource");

    // From outside mcpq: a core NATS publish of {"uri"} on mcpq.evt.resources.updated.
    const nc = await connect({ servers: nats.url });
    try {
      const n = updates.length;
      nc.publish("mcpq.evt.resources.updated", JSON.stringify({ uri: "test://watched-resource" }));
      nc.publish("mcpq.evt.resources.updated", "not json"); // ignored, never fatal
      await eventually(() => updates.length > n, { what: "update from an external publisher" });
    } finally {
      await nc.close();
    }

    // Unsubscribed (on edge 1): the subscription record is gone from the broker.
    expect(await b.client.unsubscribeResource({ uri: "test://watched-resource" })).toEqual({});
    const kv = (await setup(nats)).edges[0]!.runtime.bus.kv.subscriptions;
    const keys: string[] = [];
    for await (const k of await kv.keys(`*.${a.transport.sessionId!}`)) keys.push(k);
    expect(keys).toEqual([]);
  });

  it("list_changed for tools, resources and prompts when a worker with new entries joins and leaves", async ({
    nats,
  }) => {
    const { a, b } = await pair(nats);
    const changed: string[] = [];
    a.client.setNotificationHandler(
      ToolListChangedNotificationSchema,
      () => void changed.push("tools"),
    );
    a.client.setNotificationHandler(
      ResourceListChangedNotificationSchema,
      () => void changed.push("resources"),
    );
    a.client.setNotificationHandler(
      PromptListChangedNotificationSchema,
      () => void changed.push("prompts"),
    );
    // Make sure A's GET stream is attached on edge 0 (an update round trip proves it).
    const updates: string[] = [];
    a.client.setNotificationHandler(
      ResourceUpdatedNotificationSchema,
      (n) => void updates.push(n.params.uri),
    );
    await a.client.subscribeResource({ uri: "test://probe" });
    await eventually(
      async () => {
        await b.client.callTool({ name: "touch_resource", arguments: { uri: "test://probe" } });
        return updates.length > 0;
      },
      { what: "GET stream attached", intervalMs: 200 },
    );

    const late = await startCatalogWorker(nats.url, [lateCatalog], "late");
    closers.push(() => late.close());
    await eventually(() => ["tools", "resources", "prompts"].every((k) => changed.includes(k)), {
      what: "list_changed x3",
    });
    expect((await b.client.listTools()).tools.map((t) => t.name)).toContain("late_tool");
    expect((await b.client.listPrompts()).prompts.map((p) => p.name)).toContain("late_prompt");
    expect(await b.client.callTool({ name: "late_tool", arguments: {} })).toMatchObject({
      content: [{ type: "text", text: "late" }],
    });

    changed.length = 0;
    await late.close();
    await eventually(() => changed.includes("tools"), {
      what: "list_changed after the worker left",
    });
    expect((await a.client.listTools()).tools.map((t) => t.name)).not.toContain("late_tool");
  });

  it("tools: outputSchema + structuredContent mirrored as text, title/annotations/icons, rich content, 2020-12 schemas verbatim", async ({
    nats,
  }) => {
    const { b } = await pair(nats);
    const tools = (await b.client.listTools()).tools;
    const byName = new Map(tools.map((t) => [t.name, t]));
    for (const t of tools) {
      expect(t.description, t.name).toBeTruthy();
      expect(t.inputSchema.type, t.name).toBe("object");
    }
    expect(byName.get("structured")).toMatchObject({
      title: "Structured sum",
      outputSchema: { type: "object", properties: { sum: { type: "number" } }, required: ["sum"] },
    });
    expect(byName.get("rich")).toMatchObject({
      title: "Rich content",
      annotations: { title: "Rich", readOnlyHint: true, openWorldHint: false },
      icons: [{ src: "https://example.com/icon.png", mimeType: "image/png", sizes: ["48x48"] }],
    });
    expect(byName.get("json_schema_2020_12_tool")!.inputSchema).toEqual({
      $schema: "https://json-schema.org/draft/2020-12/schema",
      type: "object",
      $defs: {
        address: {
          $anchor: "addressDef",
          type: "object",
          properties: { street: { type: "string" }, city: { type: "string" } },
        },
      },
      properties: {
        name: { type: "string" },
        address: { $ref: "#/$defs/address" },
        contactMethod: { type: "string", enum: ["phone", "email"] },
        phone: { type: "string" },
        email: { type: "string" },
      },
      allOf: [{ anyOf: [{ required: ["phone"] }, { required: ["email"] }] }],
      if: { properties: { contactMethod: { const: "phone" } }, required: ["contactMethod"] },
      then: { required: ["phone"] },
      else: { required: ["email"] },
      additionalProperties: false,
    });

    expect(await b.client.callTool({ name: "structured", arguments: { a: 2, b: 3 } })).toEqual({
      content: [{ type: "text", text: '{"sum":5}' }],
      structuredContent: { sum: 5 },
    });
    await expect(
      b.client.callTool({ name: "structured_bad", arguments: {} }),
    ).rejects.toMatchObject({ code: -32603 });
    const rich = await b.client.callTool({ name: "rich", arguments: {} });
    expect((rich.content as { type: string }[]).map((c) => c.type)).toEqual([
      "resource_link",
      "image",
      "audio",
      "resource",
    ]);
    expect(
      await b.client.callTool({
        name: "json_schema_2020_12_tool",
        arguments: { name: "x", address: { city: "Oslo" } },
      }),
    ).toEqual({
      content: [
        {
          type: "text",
          text: 'JSON Schema 2020-12 tool called with: {"name":"x","address":{"city":"Oslo"}}',
        },
      ],
    });
    const extra = await b.client.callTool({
      name: "json_schema_2020_12_tool",
      arguments: { nope: 1 },
    });
    expect(extra.isError).toBe(true);
  });

  it("SEP-1699: a worker closes the POST stream mid-call; the client resumes with GET + Last-Event-ID on another edge", async ({
    nats,
  }) => {
    const [u0, u1] = await urls(nats);
    const raw = await rawClient(u0);
    const events = await allEvents(
      await raw.post(u0, {
        jsonrpc: "2.0",
        id: 9,
        method: "tools/call",
        params: { name: "test_reconnection", arguments: {} },
      }),
    );
    // Priming event, then the edge's `retry:` and the end of the connection; no response yet.
    expect(events[0]).toMatchObject({ id: expect.stringMatching(/_0$/), retry: 100 });
    expect(events.some((e) => e.message?.id === 9)).toBe(false);
    expect(events.at(-1)).toEqual({ retry: 100 });
    const resumed = await allEvents(await raw.get(u1, events[0]!.id));
    const answer = resumed.find((e) => e.message?.id === 9)!;
    expect(answer.message!.result!["content"]).toEqual([
      {
        type: "text",
        text: "Reconnection test completed successfully. If you received this, the client properly reconnected after stream closure.",
      },
    ]);
    expect(answer.id!.split("_")[0]).toBe(events[0]!.id!.split("_")[0]);

    // The official SDK client does the same on its own (honouring retry:).
    const { b } = await pair(nats);
    const r = await b.client.callTool({ name: "test_reconnection", arguments: {} });
    expect((r.content as { text: string }[])[0]!.text).toMatch(
      /^Reconnection test completed successfully/,
    );
  });

  it("older clients: versions are echoed; a 2025-03-26 client may send a JSON-RPC batch (SSE or JSON)", async ({
    nats,
  }) => {
    const [u0, u1] = await urls(nats);
    for (const v of ["2025-06-18", "2025-03-26", "2024-11-05"])
      expect((await rawClient(u0, { protocolVersion: v })).protocolVersion).toBe(v);
    expect((await rawClient(u0, { protocolVersion: "1999-01-01" })).protocolVersion).toBe(
      "2025-11-25",
    );

    const old = await rawClient(u0, { protocolVersion: "2025-03-26" });
    const batch = [
      {
        jsonrpc: "2.0",
        id: 1,
        method: "tools/call",
        params: { name: "echo", arguments: { text: "in a batch" } },
      },
      {
        jsonrpc: "2.0",
        method: "notifications/progress",
        params: { progressToken: "x", progress: 1 },
      },
      { jsonrpc: "2.0", id: 2, method: "ping" },
      {
        jsonrpc: "2.0",
        id: 3,
        method: "tools/call",
        params: { name: "sequence", arguments: { steps: 1 }, _meta: { progressToken: "b" } },
      },
    ];
    const sse = await allEvents(await old.post(u1, batch));
    const responses = new Map(
      sse
        .filter((e) => e.message && "id" in e.message && !e.message.method)
        .map((e) => [e.message!.id, e.message!]),
    );
    expect(responses.get(1)).toMatchObject({
      result: { content: [{ type: "text", text: "in a batch" }] },
    });
    expect(responses.get(2)).toMatchObject({ result: {} });
    expect(responses.get(3)).toMatchObject({
      result: { content: [{ type: "text", text: "done 1" }] },
    });
    expect(sse.some((e) => e.message?.method === "notifications/progress")).toBe(true);

    const json = await old.post(u1, batch.slice(0, 3), { accept: "application/json" });
    expect(json.headers.get("content-type")).toContain("application/json");
    const arr = (await json.json()) as { id: number }[];
    expect(arr.map((m) => m.id).sort()).toEqual([1, 2]);

    // Batching was removed in 2025-06-18.
    const modern = await rawClient(u0, { protocolVersion: "2025-06-18" });
    const refused = await modern.post(u1, batch.slice(0, 1));
    expect(refused.status).toBe(400);
    expect(((await refused.json()) as { error: { code: number } }).error.code).toBe(-32600);
  });
});
