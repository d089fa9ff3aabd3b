import { describe, expect, afterAll } from "vitest";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import { distinctKeys } from "@mcpq/bus";
import { natsTest as it, eventually, type Stack } from "@mcpq/testkit";
import type { RunningEdge } from "@mcpq/edge";
import type { RunningWorker } from "@mcpq/worker";
import { stack } from "./support/stack.js";
import { CLI, StdioPeer } from "./support/stdio-bridge.js";
import { text } from "./support/socket-client.js";
import { fourConcurrentCalls, servesExampleCatalog } from "./support/sdk-scenario.js";

describe("stdio bridge (`mcpq stdio --url ...`)", () => {
  let s: Stack<RunningEdge, RunningWorker>;
  afterAll(() => s?.close());

  it("the official SDK's StdioClientTransport drives an edge through the bridge", async ({
    nats,
  }) => {
    s = await stack(nats, { edges: 2 });
    const client = new Client({ name: "desktop-like", version: "1" }, { capabilities: {} });
    await client.connect(
      new StdioClientTransport({
        command: process.execPath,
        args: [CLI, "stdio", "--url", s.edges[0]!.url],
        stderr: "pipe",
      }),
    );
    await servesExampleCatalog(client);
    await fourConcurrentCalls(client, false);
    await client.close();
  });

  it("raw stdio: four concurrent calls answered, every progress line before its response", async () => {
    const peer = new StdioPeer(["--url", s.edges[1]!.url]);
    await peer.initialize();
    const [a, b, c, d] = await Promise.all([
      peer.call("a", "tools/call", { name: "echo", arguments: { text: "one" } }),
      peer.call("b", "tools/call", { name: "add", arguments: { a: 1, b: 2 } }),
      peer.call("c", "tools/call", {
        name: "countdown",
        arguments: { steps: 4, delayMs: 20 },
        _meta: { progressToken: "c" },
      }),
      peer.call("d", "tools/call", { name: "sleep", arguments: { ms: 30 } }),
    ]);
    expect(text(a)).toBe("one");
    expect(b.result?.["structuredContent"]).toEqual({ sum: 3 });
    expect(text(c)).toBe("done after 4 steps");
    expect(text(d)).toBe("slept 30 ms");
    expect(peer.progress("c")).toEqual([1, 2, 3, 4]);
    const lastProgress = peer.received.findLastIndex(
      (m) => m.method === "notifications/progress" && m.params?.["progressToken"] === "c",
    );
    expect(lastProgress).toBeLessThan(peer.received.findIndex((m) => m.id === "c"));
    expect(await peer.end()).toBe(0);
  });

  it("relays errors with the request's id, accepts comma-separated URLs, ends the session on EOF", async () => {
    const peer = new StdioPeer(["--url", `${s.edges[0]!.url},${s.edges[1]!.url}`]);
    const init = await peer.initialize();
    expect(init.result).toMatchObject({
      protocolVersion: "2025-11-25",
      serverInfo: { name: "mcpq" },
    });
    expect((await peer.call(1, "tools/call", { name: "nope", arguments: {} })).error?.code).toBe(
      -32602,
    );
    expect((await peer.call(2, "bogus/method")).error?.code).toBe(-32601);
    expect(text(await peer.call(3, "tools/call", { name: "echo", arguments: { text: "x" } }))).toBe(
      "x",
    );
    const sessions = async () => {
      let n = 0;
      for await (const _ of distinctKeys(s.edges[0]!.runtime.bus.kv.sessions, "s.*")) n++;
      return n;
    };
    const before = await sessions();
    expect(await peer.end()).toBe(0);
    await eventually(async () => (await sessions()) === before - 1, {
      what: "session deleted on EOF",
    });
  });
});
