import { setTimeout as sleep } from "node:timers/promises";
import {
  defineCatalog,
  definePrompt,
  defineResource,
  defineResourceTemplate,
  defineTool,
  z,
} from "@mcpq/worker-sdk";

/** The example catalog `make dev` serves: small, deterministic tools that show each feature. */
export const exampleCatalog = defineCatalog({
  name: "example",
  tools: [
    defineTool({
      name: "echo",
      title: "Echo",
      description: "Returns the given text unchanged, as one text content item.",
      input: z.object({ text: z.string().describe("Text to echo back") }),
      annotations: { readOnlyHint: true, idempotentHint: true },
      handler: ({ text }) => text,
    }),
    defineTool({
      name: "add",
      title: "Add two numbers",
      description: "Adds a and b; returns the sum as text and as structured content.",
      input: z.object({ a: z.number(), b: z.number() }),
      output: z.object({ sum: z.number() }),
      annotations: { readOnlyHint: true, idempotentHint: true },
      handler: ({ a, b }) => ({
        content: [{ type: "text", text: String(a + b) }],
        structuredContent: { sum: a + b },
      }),
    }),
    defineTool({
      name: "countdown",
      title: "Countdown with progress",
      description:
        "Counts down `steps` times, `delayMs` apart, reporting progress and logging each step; honours cancellation.",
      input: z.object({
        steps: z.number().int().min(1).max(1000).default(5),
        delayMs: z.number().int().min(0).max(60_000).default(100),
      }),
      handler: async ({ steps, delayMs }, ctx) => {
        for (let i = 1; i <= steps; i++) {
          await sleep(delayMs, undefined, { signal: ctx.signal });
          await ctx.progress(i, steps, `step ${i} of ${steps}`);
          await ctx.log("info", { step: i, of: steps });
        }
        return `done after ${steps} steps`;
      },
    }),
    defineTool({
      name: "sleep",
      title: "Sleep",
      description: "Waits `ms` milliseconds (or until cancelled), then returns.",
      input: z.object({ ms: z.number().int().min(0).max(600_000) }),
      handler: async ({ ms }, ctx) => {
        await sleep(ms, undefined, { signal: ctx.signal });
        return `slept ${ms} ms`;
      },
    }),
  ],
  resources: [
    defineResource({
      uri: "mcpq://example/readme",
      name: "readme",
      title: "mcpq example readme",
      description: "A static text resource served by the example worker.",
      mimeType: "text/markdown",
      read: () => ({ text: "# mcpq example\n\nThis resource was read through NATS JetStream." }),
    }),
  ],
  resourceTemplates: [
    defineResourceTemplate({
      uriTemplate: "mcpq://example/items/{id}",
      name: "item",
      description: "An item by id (JSON).",
      mimeType: "application/json",
      read: ({ id }) => ({ text: JSON.stringify({ id, name: `Item ${id}` }) }),
      complete: { id: (value) => ["1", "2", "3", "42"].filter((v) => v.startsWith(value)) },
    }),
  ],
  prompts: [
    definePrompt({
      name: "greet",
      title: "Greeting",
      description: "Writes a greeting for a person in a given style.",
      args: z.object({
        name: z.string().describe("Who to greet"),
        style: z.string().optional().describe("formal or casual"),
      }),
      get: ({ name, style }) => ({
        messages: [
          {
            role: "user",
            content: { type: "text", text: `Write a ${style ?? "casual"} greeting for ${name}.` },
          },
        ],
      }),
      complete: { style: (value) => ["formal", "casual"].filter((v) => v.startsWith(value)) },
    }),
  ],
});
