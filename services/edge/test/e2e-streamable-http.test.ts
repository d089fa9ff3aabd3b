import { describe, expect } from "vitest";
import { natsTest as it, eventually, type Stack } from "@mcpq/testkit";
import type { RunningEdge } from "@mcpq/edge";
import type { RunningWorker } from "@mcpq/worker";
import { sdkClient, stack } from "./support/stack.js";

describe("Streamable HTTP end to end (official SDK client -> edge -> JetStream -> worker)", () => {
  let s: Stack<RunningEdge, RunningWorker>;

  it("initializes, lists and calls tools, reads a resource, gets a prompt", async ({ nats }) => {
    s = await stack(nats, { edges: 2 });
    const { client } = await sdkClient(s.edges[0]!.url);
    expect(client.getServerVersion()?.name).toBe("mcpq");
    const tools = await client.listTools();
    expect(tools.tools.map((t) => t.name)).toEqual(["add", "countdown", "echo", "sleep"]);
    const add = tools.tools.find((t) => t.name === "add")!;
    expect(add.outputSchema).toMatchObject({
      type: "object",
      properties: { sum: { type: "number" } },
    });
    expect(await client.callTool({ name: "echo", arguments: { text: "héllo ✓" } })).toEqual({
      content: [{ type: "text", text: "héllo ✓" }],
    });
    expect(await client.callTool({ name: "add", arguments: { a: 2, b: 40 } })).toMatchObject({
      content: [{ type: "text", text: "42" }],
      structuredContent: { sum: 42 },
    });
    const res = await client.readResource({ uri: "mcpq://example/readme" });
    expect(res.contents[0]).toMatchObject({
      uri: "mcpq://example/readme",
      mimeType: "text/markdown",
    });
    const tpl = await client.readResource({ uri: "mcpq://example/items/7" });
    expect(JSON.parse((tpl.contents[0] as { text: string }).text)).toEqual({
      id: "7",
      name: "Item 7",
    });
    const prompt = await client.getPrompt({
      name: "greet",
      arguments: { name: "Ada", style: "formal" },
    });
    expect(prompt.messages[0]!.content).toEqual({
      type: "text",
      text: "Write a formal greeting for Ada.",
    });
    await client.close();
  });

  it("invalid tool input is a tool error (isError), unknown tool is -32602", async () => {
    const { client } = await sdkClient(s.edges[0]!.url);
    const bad = await client.callTool({ name: "add", arguments: { a: "two", b: 1 } });
    expect(bad.isError).toBe(true);
    expect((bad.content as { text: string }[])[0]!.text).toMatch(/Invalid arguments for tool add/);
    await expect(client.callTool({ name: "nope", arguments: {} })).rejects.toMatchObject({
      code: -32602,
    });
    await expect(client.readResource({ uri: "mcpq://missing" })).rejects.toMatchObject({
      code: -32002,
    });
    await client.close();
  });

  it("a session initialized on edge A is served by edge B", async () => {
    const a = await sdkClient(s.edges[0]!.url);
    const sessionId = a.transport.sessionId!;
    expect(sessionId).toMatch(/^[A-Za-z0-9_-]{43}$/);
    const b = await sdkClient(s.edges[1]!.url, { sessionId });
    // connect() with an existing session id skips initialize; calls go to edge B.
    expect(b.transport.sessionId).toBe(sessionId);
    const r = await b.client.callTool({ name: "echo", arguments: { text: "via B" } });
    expect(r.content).toEqual([{ type: "text", text: "via B" }]);
    await a.client.close();
    await b.client.close();
  });

  it("20 sessions x 25 concurrent calls each get their own answers (no cross-talk)", async () => {
    const sessions = await Promise.all(
      Array.from({ length: 20 }, (_, i) => sdkClient(s.edges[i % 2]!.url)),
    );
    const results = await Promise.all(
      sessions.flatMap(({ client }, si) =>
        Array.from({ length: 25 }, (_, ci) =>
          client.callTool({ name: "echo", arguments: { text: `s${si}-c${ci}` } }).then((r) => ({
            expected: `s${si}-c${ci}`,
            got: (r.content as { text: string }[])[0]!.text,
          })),
        ),
      ),
    );
    expect(results).toHaveLength(500);
    for (const r of results) expect(r.got).toBe(r.expected);
    await Promise.all(sessions.map(({ client }) => client.close()));
  });

  it("a worker that stops heartbeating disappears from tools/list", async () => {
    const extra = await s.addWorker(["example"], { MCPQ_POOL: "extra" });
    const { client } = await sdkClient(s.edges[0]!.url);
    await eventually(() => s.edges[0]!.runtime.catalog.workerCount === 2, {
      what: "second worker registered",
    });
    await extra.close();
    await eventually(() => s.edges[0]!.runtime.catalog.workerCount === 1, { what: "worker gone" });
    expect((await client.listTools()).tools).toHaveLength(4);
    await client.close();
    await s.close();
  });
});
