import { setTimeout as sleep } from "node:timers/promises";
import { defineCatalog, definePrompt, defineResource, defineResourceTemplate, defineTool, z, type HandlerContext } from "@mcpq/worker-sdk";

/**
 * The fixtures the official MCP conformance suite (@modelcontextprotocol/conformance 0.1.16,
 * `server --suite all`) calls, with the names, arguments and outputs of its reference
 * everything-server. `make conformance` runs the suite against a worker serving this catalog;
 * see docs/conformance.md.
 */

/** A 1x1 red PNG. */
const TEST_IMAGE_BASE64 =
  "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg==";
/** A minimal WAV file (RIFF header, two bytes of samples). */
const TEST_AUDIO_BASE64 = "UklGRiYAAABXQVZFZm10IBAAAAABAAEAQB8AAAB9AAACABAAZGF0YQIAAAA=";

/** SEP-1613: listed verbatim, so `$schema`, `$defs` and `additionalProperties` survive. */
const JSON_SCHEMA_2020_12_INPUT_SCHEMA = {
  $schema: "https://json-schema.org/draft/2020-12/schema",
  type: "object" as const,
  $defs: {
    address: {
      type: "object",
      properties: { street: { type: "string" }, city: { type: "string" } },
    },
  },
  properties: {
    name: { type: "string" },
    address: { $ref: "#/$defs/address" },
  },
  additionalProperties: false,
};

const noArgs = z.object({});

export const conformanceCatalog = defineCatalog({
  name: "conformance",
  tools: [
    defineTool({
      name: "test_simple_text",
      description: "Tests simple text content response",
      input: noArgs,
      handler: () => "This is a simple text response for testing.",
    }),
    defineTool({
      name: "test_image_content",
      description: "Tests image content response",
      input: noArgs,
      handler: () => [{ type: "image", data: TEST_IMAGE_BASE64, mimeType: "image/png" }],
    }),
    defineTool({
      name: "test_audio_content",
      description: "Tests audio content response",
      input: noArgs,
      handler: () => [{ type: "audio", data: TEST_AUDIO_BASE64, mimeType: "audio/wav" }],
    }),
    defineTool({
      name: "test_embedded_resource",
      description: "Tests embedded resource content response",
      input: noArgs,
      handler: () => [
        {
          type: "resource",
          resource: { uri: "test://embedded-resource", mimeType: "text/plain", text: "This is an embedded resource content." },
        },
      ],
    }),
    defineTool({
      name: "test_multiple_content_types",
      description: "Tests response with multiple content types (text, image, resource)",
      input: noArgs,
      handler: () => [
        { type: "text", text: "Multiple content types test:" },
        { type: "image", data: TEST_IMAGE_BASE64, mimeType: "image/png" },
        {
          type: "resource",
          resource: {
            uri: "test://mixed-content-resource",
            mimeType: "application/json",
            text: JSON.stringify({ test: "data", value: 123 }),
          },
        },
      ],
    }),
    defineTool({
      name: "test_tool_with_logging",
      description: "Tests tool that emits log messages during execution",
      input: noArgs,
      handler: async (_args, ctx) => {
        await ctx.log("info", "Tool execution started");
        await sleep(50, undefined, { signal: ctx.signal });
        await ctx.log("info", "Tool processing data");
        await sleep(50, undefined, { signal: ctx.signal });
        await ctx.log("info", "Tool execution completed");
        return "Tool with logging executed successfully";
      },
    }),
    defineTool({
      name: "test_tool_with_progress",
      description: "Tests tool that reports progress notifications",
      input: noArgs,
      handler: async (_args, ctx) => {
        for (const step of [0, 50, 100]) {
          if (step > 0) await sleep(50, undefined, { signal: ctx.signal });
          await ctx.progress(step, 100, `Completed step ${step} of 100`);
        }
        return String(ctx.meta["progressToken"] ?? "no progress token");
      },
    }),
    defineTool({
      name: "test_error_handling",
      description: "Tests error response handling",
      input: noArgs,
      handler: () => {
        // A tool's own exception becomes an `isError` result carrying its message.
        throw new Error("This tool intentionally returns an error for testing");
      },
    }),
    defineTool({
      name: "test_reconnection",
      description:
        "Tests SSE stream disconnection and client reconnection (SEP-1699). Server will close the stream mid-call and send the result after client reconnects.",
      input: noArgs,
      handler: async (_args, ctx) => {
        await ctx.closeStream();
        // Give the client time to notice the close; the result then arrives on the resumed stream.
        await sleep(100, undefined, { signal: ctx.signal });
        return "Reconnection test completed successfully. If you received this, the client properly reconnected after stream closure.";
      },
    }),
    defineTool({
      name: "test_sampling",
      description: "Tests server-initiated sampling (LLM completion request)",
      input: z.object({ prompt: z.string().describe("The prompt to send to the LLM") }),
      handler: async ({ prompt }, ctx) => {
        try {
          const result = await ctx.sample({ messages: [{ role: "user", content: { type: "text", text: prompt } }], maxTokens: 100 });
          return `LLM response: ${textOf(result["content"]) ?? "No response"}`;
        } catch (err) {
          return `Sampling not supported or error: ${messageOf(err)}`;
        }
      },
    }),
    defineTool({
      name: "test_elicitation",
      description: "Tests server-initiated elicitation (user input request)",
      input: z.object({ message: z.string().describe("The message to show the user") }),
      handler: async ({ message }, ctx) =>
        elicitText(ctx, "User response", {
          message,
          requestedSchema: {
            type: "object",
            properties: {
              username: { type: "string", description: "User's response" },
              email: { type: "string", description: "User's email address" },
            },
            required: ["username", "email"],
          },
        }),
    }),
    defineTool({
      name: "test_elicitation_sep1034_defaults",
      description: "Tests elicitation with default values per SEP-1034",
      input: noArgs,
      handler: (_args, ctx) =>
        elicitText(ctx, "Elicitation completed", {
          message: "Please review and update the form fields with defaults",
          requestedSchema: {
            type: "object",
            properties: {
              name: { type: "string", description: "User name", default: "John Doe" },
              age: { type: "integer", description: "User age", default: 30 },
              score: { type: "number", description: "User score", default: 95.5 },
              status: { type: "string", description: "User status", enum: ["active", "inactive", "pending"], default: "active" },
              verified: { type: "boolean", description: "Verification status", default: true },
            },
            required: [],
          },
        }),
    }),
    defineTool({
      name: "test_elicitation_sep1330_enums",
      description: "Tests elicitation with enum schema improvements per SEP-1330",
      input: noArgs,
      handler: (_args, ctx) =>
        elicitText(ctx, "Elicitation completed", {
          message: "Please select options from the enum fields",
          requestedSchema: {
            type: "object",
            properties: {
              untitledSingle: { type: "string", description: "Select one option", enum: ["option1", "option2", "option3"] },
              titledSingle: {
                type: "string",
                description: "Select one option with titles",
                oneOf: [
                  { const: "value1", title: "First Option" },
                  { const: "value2", title: "Second Option" },
                  { const: "value3", title: "Third Option" },
                ],
              },
              legacyEnum: {
                type: "string",
                description: "Select one option (legacy)",
                enum: ["opt1", "opt2", "opt3"],
                enumNames: ["Option One", "Option Two", "Option Three"],
              },
              untitledMulti: {
                type: "array",
                description: "Select multiple options",
                minItems: 1,
                maxItems: 3,
                items: { type: "string", enum: ["option1", "option2", "option3"] },
              },
              titledMulti: {
                type: "array",
                description: "Select multiple options with titles",
                minItems: 1,
                maxItems: 3,
                items: {
                  anyOf: [
                    { const: "value1", title: "First Choice" },
                    { const: "value2", title: "Second Choice" },
                    { const: "value3", title: "Third Choice" },
                  ],
                },
              },
            },
            required: [],
          },
        }),
    }),
    defineTool({
      name: "json_schema_2020_12_tool",
      description: "Tool with JSON Schema 2020-12 features for conformance testing (SEP-1613)",
      input: z
        .object({
          name: z.string().optional(),
          address: z.object({ street: z.string().optional(), city: z.string().optional() }).strict().optional(),
        })
        .strict(),
      inputJsonSchema: JSON_SCHEMA_2020_12_INPUT_SCHEMA,
      handler: (args) => `JSON Schema 2020-12 tool called with: ${JSON.stringify(args)}`,
    }),
  ],
  resources: [
    defineResource({
      uri: "test://static-text",
      name: "static-text",
      title: "Static Text Resource",
      description: "A static text resource for testing",
      mimeType: "text/plain",
      read: () => ({ uri: "test://static-text", mimeType: "text/plain", text: "This is the content of the static text resource." }),
    }),
    defineResource({
      uri: "test://static-binary",
      name: "static-binary",
      title: "Static Binary Resource",
      description: "A static binary resource (image) for testing",
      mimeType: "image/png",
      read: () => ({ uri: "test://static-binary", mimeType: "image/png", blob: TEST_IMAGE_BASE64 }),
    }),
    defineResource({
      uri: "test://watched-resource",
      name: "watched-resource",
      title: "Watched Resource",
      description: "A resource clients can subscribe to (resources/subscribe)",
      mimeType: "text/plain",
      read: () => ({ uri: "test://watched-resource", mimeType: "text/plain", text: "Watched resource content" }),
    }),
  ],
  resourceTemplates: [
    defineResourceTemplate({
      uriTemplate: "test://template/{id}/data",
      name: "template",
      title: "Resource Template",
      description: "A resource template with parameter substitution",
      mimeType: "application/json",
      read: ({ id }, uri) => ({
        uri,
        mimeType: "application/json",
        text: JSON.stringify({ id, templateTest: true, data: `Data for ID: ${id}` }),
      }),
    }),
  ],
  prompts: [
    definePrompt({
      name: "test_simple_prompt",
      title: "Simple Test Prompt",
      description: "A simple prompt without arguments",
      get: () => ({ messages: [{ role: "user", content: { type: "text", text: "This is a simple prompt for testing." } }] }),
    }),
    definePrompt({
      name: "test_prompt_with_arguments",
      title: "Prompt With Arguments",
      description: "A prompt with required arguments",
      args: z.object({ arg1: z.string().describe("First test argument"), arg2: z.string().describe("Second test argument") }),
      get: ({ arg1, arg2 }) => ({
        messages: [{ role: "user", content: { type: "text", text: `Prompt with arguments: arg1='${arg1}', arg2='${arg2}'` } }],
      }),
      // The suite completes arg1 of this prompt; any values (even none) pass.
      complete: {
        arg1: (value) => ["testValue1", "test", "testing"].filter((v) => v.startsWith(value)),
        arg2: (value) => ["testValue2"].filter((v) => v.startsWith(value)),
      },
    }),
    definePrompt({
      name: "test_prompt_with_embedded_resource",
      title: "Prompt With Embedded Resource",
      description: "A prompt that includes an embedded resource",
      args: z.object({ resourceUri: z.string().describe("URI of the resource to embed") }),
      get: ({ resourceUri }) => ({
        messages: [
          {
            role: "user",
            content: { type: "resource", resource: { uri: resourceUri, mimeType: "text/plain", text: "Embedded resource content for testing." } },
          },
          { role: "user", content: { type: "text", text: "Please process the embedded resource above." } },
        ],
      }),
    }),
    definePrompt({
      name: "test_prompt_with_image",
      title: "Prompt With Image",
      description: "A prompt that includes image content",
      get: () => ({
        messages: [
          { role: "user", content: { type: "image", data: TEST_IMAGE_BASE64, mimeType: "image/png" } },
          { role: "user", content: { type: "text", text: "Please analyze the image above." } },
        ],
      }),
    }),
  ],
});

async function elicitText(ctx: HandlerContext, label: string, params: Record<string, unknown>): Promise<string> {
  try {
    const r = await ctx.elicit(params);
    return `${label}: action=${String(r["action"])}, content=${JSON.stringify(r["content"] ?? {})}`;
  } catch (err) {
    // The suite expects text even when the client refuses or errors.
    return `Elicitation not supported or error: ${messageOf(err)}`;
  }
}

function textOf(content: unknown): string | undefined {
  const first = Array.isArray(content) ? content[0] : content;
  const text = (first as { text?: unknown } | undefined)?.text;
  return typeof text === "string" && text !== "" ? text : undefined;
}

function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
