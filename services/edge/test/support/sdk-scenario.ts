import { expect } from "vitest";
import type { Client } from "@modelcontextprotocol/sdk/client/index.js";

/** The SDK client is talking to mcpq, which lists the example catalog's tools. */
export async function servesExampleCatalog(client: Client): Promise<void> {
  expect(client.getServerVersion()?.name).toBe("mcpq");
  expect((await client.listTools()).tools.map((t) => t.name)).toEqual([
    "add",
    "countdown",
    "echo",
    "sleep",
  ]);
}

/**
 * The scenario every transport test runs with the official SDK client: four concurrent calls
 * (echo, add, countdown with progress, sleep) answered correctly, progress delivered.
 * `exact`: require every progress value. Over WebSocket, legacy SSE and stdio the SDK may drop
 * the last progress when it arrives in the same tick as the response (its notification handlers
 * run a microtask late), so those tests require an in-order prefix; raw clients check exactly.
 */
export async function fourConcurrentCalls(client: Client, exact: boolean): Promise<void> {
  const progress: number[] = [];
  const [a, b, c, d] = await Promise.all([
    client.callTool({ name: "echo", arguments: { text: "one" } }),
    client.callTool({ name: "add", arguments: { a: 1, b: 41 } }),
    client.callTool({ name: "countdown", arguments: { steps: 5, delayMs: 20 } }, undefined, {
      onprogress: (p) => progress.push(p.progress),
    }),
    client.callTool({ name: "sleep", arguments: { ms: 40 } }),
  ]);
  expect(a.content).toEqual([{ type: "text", text: "one" }]);
  expect(b.structuredContent).toEqual({ sum: 42 });
  expect(c.content).toEqual([{ type: "text", text: "done after 5 steps" }]);
  expect(d.content).toEqual([{ type: "text", text: "slept 40 ms" }]);
  if (exact) expect(progress).toEqual([1, 2, 3, 4, 5]);
  else expect(progress).toEqual([1, 2, 3, 4, 5].slice(0, Math.max(1, progress.length)));
}
