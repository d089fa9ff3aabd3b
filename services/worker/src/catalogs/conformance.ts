import { randomBytes } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";
import { ErrorCode, McpError } from "@mcpq/protocol";
import {
  defineCatalog,
  definePrompt,
  defineResource,
  defineResourceTemplate,
  defineTool,
  z,
  type HandlerContext,
} from "@mcpq/worker-sdk";

/**
 * The fixtures the official MCP conformance suite calls, with the names, arguments and outputs of
 * its reference everything-server: @modelcontextprotocol/conformance 0.1.16 `server --suite all`
 * (2025-11-25) and 0.2.0-alpha.12 `server --requirements 2026-07-28` (the `test_input_required_*`
 * MRTR fixtures and the stateless diagnostics). `make conformance` runs both suites against a
 * worker serving this catalog; see docs/conformance.md.
 */

/** A 1x1 red PNG. */
const TEST_IMAGE_BASE64 =
  "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg==";
/** A minimal WAV file (RIFF header, two bytes of samples). */
const TEST_AUDIO_BASE64 = "UklGRiYAAABXQVZFZm10IBAAAAABAAEAQB8AAAB9AAACABAAZGF0YQIAAAA=";

/**
 * SEP-1613 / SEP-2106: listed verbatim, so `$schema`, `$defs` (with an `$anchor`),
 * `additionalProperties`, `allOf`/`anyOf` and `if`/`then`/`else` survive (the fixture of the
 * 0.2.0 suite's json-schema-2020-12 scenario; the 0.1.16 one checks a subset of it).
 */
const JSON_SCHEMA_2020_12_INPUT_SCHEMA = {
  $schema: "https://json-schema.org/draft/2020-12/schema",
  type: "object" as const,
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
};

const noArgs = z.object({});

/** A one-property elicitation form (`{ <name>: string }`, required). */
function form(
  message: string,
  property: string,
  type: "string" | "boolean" = "string",
): Record<string, unknown> {
  return {
    message,
    requestedSchema: { type: "object", properties: { [property]: { type } }, required: [property] },
  };
}

/** The accepted content of an elicitation answer, or a note saying how the user answered. */
function accepted(r: Record<string, unknown>): Record<string, unknown> | string {
  return r["action"] === "accept"
    ? ((r["content"] as Record<string, unknown> | undefined) ?? {})
    : `(${String(r["action"])})`;
}

export const conformanceCatalog = defineCatalog({
  name: "conformance",
  // Fixed fixtures, the same for every caller: lists and reads may be cached and shared for a
  // minute (2026-07-28 caching hints); the test://watched-resource read is never cached.
  cache: { default: { ttlMs: 60_000, cacheScope: "public" } },
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
          resource: {
            uri: "test://embedded-resource",
            mimeType: "text/plain",
            text: "This is an embedded resource content.",
          },
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
          const result = await ctx.sample({
            messages: [{ role: "user", content: { type: "text", text: prompt } }],
            maxTokens: 100,
          });
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
              status: {
                type: "string",
                description: "User status",
                enum: ["active", "inactive", "pending"],
                default: "active",
              },
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
              untitledSingle: {
                type: "string",
                description: "Select one option",
                enum: ["option1", "option2", "option3"],
              },
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
    // ---- Tasks extension (io.modelcontextprotocol/tasks, SEP-2663; the 0.2.0 suite's tasks-*
    // scenarios): `greet` is sync; the others are long-running tools that become tasks.
    defineTool({
      name: "greet",
      description: "Tasks fixtures: a plain (sync-only) tool that greets by name",
      input: z.object({ name: z.string() }),
      handler: ({ name }) => `Hello, ${name}!`,
    }),
    defineTool({
      name: "slow_compute",
      description: "Tasks: sleeps `seconds` seconds (a task when the client negotiated tasks)",
      input: z.object({
        seconds: z.number().min(0).max(600),
        label: z.string().max(256).optional(),
      }),
      task: { support: "optional", pollIntervalMs: 200 },
      handler: async ({ seconds, label }, ctx) => {
        await sleep(seconds * 1000, undefined, { signal: ctx.signal });
        return `computed ${label ?? "result"} after ${seconds} s`;
      },
    }),
    defineTool({
      name: "failing_job",
      description: "Tasks (required): reports a tool execution error after about a second",
      input: noArgs,
      task: { support: "required", pollIntervalMs: 200 },
      handler: async (_a, ctx) => {
        await sleep(1000, undefined, { signal: ctx.signal });
        return {
          content: [{ type: "text", text: "failing_job failed on purpose" }],
          isError: true,
        };
      },
    }),
    defineTool({
      name: "protocol_error_job",
      description: "Tasks: fails with a protocol-level (JSON-RPC) error",
      input: noArgs,
      task: { support: "optional", pollIntervalMs: 200 },
      handler: async (_a, ctx) => {
        await sleep(200, undefined, { signal: ctx.signal });
        throw new McpError(ErrorCode.InternalError, "protocol_error_job failed on purpose");
      },
    }),
    defineTool({
      name: "confirm_delete",
      description: "Tasks: asks the user to confirm (input_required), then deletes",
      input: z.object({ filename: z.string().max(1024) }),
      task: { support: "optional", pollIntervalMs: 200 },
      handler: async ({ filename }, ctx) => {
        const r = accepted(await ctx.elicit(form(`Delete ${filename}?`, "confirm", "boolean")));
        return typeof r !== "string" && r["confirm"] === true
          ? `Deleted ${filename}`
          : `Kept ${filename}`;
      },
    }),
    defineTool({
      name: "multi_input",
      description: "Tasks: asks two questions at once (two open input requests)",
      input: noArgs,
      task: { support: "optional", pollIntervalMs: 200 },
      handler: async (_a, ctx) => {
        const [a, b] = await Promise.all([
          ctx.elicit(form("Your name?", "name")),
          ctx.elicit(form("Confirm?", "confirm", "boolean")),
        ]);
        return `answers: ${JSON.stringify(accepted(a))} ${JSON.stringify(accepted(b))}`;
      },
    }),
    defineTool({
      name: "test_tool_with_task",
      description: "MRTR then task: asks the user's name (user_name), then goes on as a task",
      input: noArgs,
      task: { support: "required", start: "handler", pollIntervalMs: 200 },
      handler: async (_a, ctx) => {
        const r = accepted(
          await ctx.elicit(form("What is your name?", "name"), { key: "user_name" }),
        );
        await ctx.startTask();
        await sleep(200, undefined, { signal: ctx.signal });
        return `Hello, ${typeof r === "string" ? r : String(r["name"])}, from a task!`;
      },
    }),
    // ---- 2026-07-28 (MRTR, SEP-2322): each ask ends the round with `input_required` until the
    // client's retry carries the answer under the key the suite expects.
    defineTool({
      name: "test_input_required_result_elicitation",
      description: "MRTR: asks the user's name (input request user_name), then greets them",
      input: noArgs,
      handler: async (_a, ctx) => {
        const r = accepted(
          await ctx.elicit(form("What is your name?", "name"), { key: "user_name" }),
        );
        return `Hello, ${typeof r === "string" ? r : String(r["name"])}!`;
      },
    }),
    defineTool({
      name: "test_input_required_result_sampling",
      description:
        "MRTR: asks the client's LLM the capital of France (input request capital_question)",
      input: noArgs,
      handler: async (_a, ctx) => {
        const r = await ctx.sample(
          {
            messages: [
              { role: "user", content: { type: "text", text: "What is the capital of France?" } },
            ],
            maxTokens: 100,
          },
          { key: "capital_question" },
        );
        return `LLM response: ${textOf(r["content"]) ?? "No response"}`;
      },
    }),
    defineTool({
      name: "test_input_required_result_list_roots",
      description: "MRTR: asks the client's roots (input request client_roots) and lists them",
      input: noArgs,
      handler: async (_a, ctx) => {
        const r = await ctx.listRoots({ key: "client_roots" });
        const roots = (r["roots"] as { uri: string }[]).map((x) => x.uri);
        return `Client roots: ${roots.join(", ") || "(none)"}`;
      },
    }),
    defineTool({
      name: "test_input_required_result_request_state",
      description:
        "MRTR: asks for confirmation with a sealed requestState; the answer says whether the state was verified",
      input: noArgs,
      handler: async (_a, ctx) => {
        const r = accepted(
          await ctx.elicit(form("Please confirm", "ok", "boolean"), { key: "confirm" }),
        );
        // inputRound > 0 only when the retry carried a requestState the worker verified.
        const state = (ctx.inputRound ?? 0) > 0 ? "state-ok" : "no-state";
        return `${state}: confirm=${JSON.stringify(r)}`;
      },
    }),
    defineTool({
      name: "test_input_required_result_multiple_inputs",
      description: "MRTR: asks an elicitation, a sampling and a roots request in one round",
      input: noArgs,
      handler: async (_a, ctx) => {
        const [who, greeting, roots] = await Promise.all([
          ctx.elicit(form("What is your name?", "name"), { key: "user_name" }),
          ctx.sample(
            {
              messages: [{ role: "user", content: { type: "text", text: "Generate a greeting" } }],
              maxTokens: 50,
            },
            { key: "greeting" },
          ),
          ctx.listRoots({ key: "client_roots" }),
        ]);
        const n = (roots["roots"] as unknown[]).length;
        return `name=${JSON.stringify(accepted(who))}, greeting=${textOf(greeting["content"]) ?? ""}, roots=${n}`;
      },
    }),
    defineTool({
      name: "test_input_required_result_multi_round",
      description: "MRTR: two rounds in sequence (step1: name, then step2: favourite colour)",
      input: noArgs,
      handler: async (_a, ctx) => {
        const name = accepted(
          await ctx.elicit(form("Step 1: What is your name?", "name"), { key: "step1" }),
        );
        const color = accepted(
          await ctx.elicit(form("Step 2: What is your favorite color?", "color"), { key: "step2" }),
        );
        return `name=${JSON.stringify(name)}, color=${JSON.stringify(color)}`;
      },
    }),
    defineTool({
      name: "test_input_required_result_tampered_state",
      description:
        "MRTR: asks for confirmation with an integrity-protected requestState (a tampered one is refused with -32602)",
      input: noArgs,
      handler: async (_a, ctx) => {
        const r = accepted(
          await ctx.elicit(form("Please confirm", "ok", "boolean"), { key: "confirm" }),
        );
        return `integrity-ok: confirm=${JSON.stringify(r)}`;
      },
    }),
    defineTool({
      name: "test_input_required_result_capabilities",
      description: "MRTR: asks only what the client declared (elicitation and/or sampling)",
      input: noArgs,
      handler: async (_a, ctx) => {
        const caps = ctx.clientCapabilities;
        const asks: Promise<[string, Record<string, unknown>]>[] = [];
        if (!caps || caps.includes("elicitation")) {
          asks.push(
            ctx
              .elicit(form("Elicitation input", "value"), { key: "elicit_input" })
              .then((r) => ["elicit_input", r]),
          );
        }
        if (!caps || caps.includes("sampling")) {
          const params = {
            messages: [{ role: "user", content: { type: "text", text: "Sample request" } }],
            maxTokens: 50,
          };
          asks.push(ctx.sample(params, { key: "sample_input" }).then((r) => ["sample_input", r]));
        }
        if (asks.length === 0) return "No supported capabilities declared";
        const got = await Promise.all(asks);
        return `capabilities-ok: received ${got.map(([k]) => k).join(",")}`;
      },
    }),
    // ---- 2026-07-28 stateless diagnostics (server-stateless).
    defineTool({
      name: "test_missing_capability",
      description: "Needs the client's sampling capability (-32021 naming it when undeclared)",
      input: noArgs,
      handler: async (_a, ctx) => {
        const r = await ctx.sample(
          {
            messages: [{ role: "user", content: { type: "text", text: "Say yes" } }],
            maxTokens: 10,
          },
          { key: "sampling_check" },
        );
        return `Success: ${textOf(r["content"]) ?? ""}`;
      },
    }),
    defineTool({
      name: "test_streaming_elicitation",
      description:
        "Reports progress, then asks the user (an input request in 2026-07-28, never a request on the stream)",
      input: noArgs,
      handler: async (_a, ctx) => {
        await ctx.progress(50, 100, "halfway");
        const r = accepted(
          await ctx.elicit(form("Streaming elicitation: continue?", "ok", "boolean"), {
            key: "continue",
          }),
        );
        return `Streaming complete: ${JSON.stringify(r)}`;
      },
    }),
    defineTool({
      name: "test_trigger_tool_change",
      description:
        "Changes the tool list (swaps in a new test_dynamic_tool_*), so listeners get notifications/tools/list_changed",
      input: noArgs,
      handler: async (_a, ctx) => {
        swapDynamic(conformanceCatalog.tools!, "test_dynamic_tool", (name) =>
          defineTool({
            name,
            description: "A tool added by test_trigger_tool_change",
            input: noArgs,
            handler: () => "dynamic",
          }),
        );
        await ctx.catalogChanged();
        return "Mutation triggered";
      },
    }),
    defineTool({
      name: "test_trigger_prompt_change",
      description:
        "Changes the prompt list (swaps in a new test_dynamic_prompt_*), so listeners get notifications/prompts/list_changed",
      input: noArgs,
      handler: async (_a, ctx) => {
        swapDynamic(conformanceCatalog.prompts!, "test_dynamic_prompt", (name) =>
          definePrompt({
            name,
            description: "A prompt added by test_trigger_prompt_change",
            get: () => ({ messages: [] }),
          }),
        );
        await ctx.catalogChanged();
        return "Mutation triggered";
      },
    }),
    defineTool({
      name: "test_logging_tool",
      description: "Logs once at info (sent only when the request's _meta sets a log level)",
      input: noArgs,
      handler: async (_a, ctx) => {
        await ctx.log("info", "Diagnostic trace logging activated");
        return "Logging evaluated";
      },
    }),
    defineTool({
      name: "test_custom_headers",
      description:
        "A tool with x-mcp-header annotations: a 2026-07-28 client mirrors these arguments as Mcp-Param-* headers (SEP-2243)",
      input: z.object({
        region: z.string(),
        priority: z.number().int(),
        verbose: z.boolean().nullish(),
        query: z.string(),
      }),
      // Listed verbatim: the x-mcp-header annotations must reach clients and edges untouched.
      inputJsonSchema: {
        type: "object",
        properties: {
          region: {
            type: "string",
            description: "Plain ASCII string value",
            "x-mcp-header": "Region",
          },
          priority: {
            type: "integer",
            description: "Integer numeric value",
            "x-mcp-header": "Priority",
          },
          verbose: { type: "boolean", description: "Boolean value", "x-mcp-header": "Verbose" },
          query: { type: "string", description: "No x-mcp-header annotation: never mirrored" },
        },
        required: ["region", "priority", "query"],
      },
      handler: ({ region, priority }) =>
        `Custom headers test completed: region=${region}, priority=${priority}`,
    }),
    defineTool({
      name: "json_schema_2020_12_tool",
      description: "Tool with JSON Schema 2020-12 features for conformance testing (SEP-1613)",
      input: z
        .object({
          name: z.string().optional(),
          address: z
            .object({ street: z.string().optional(), city: z.string().optional() })
            .strict()
            .optional(),
          contactMethod: z.enum(["phone", "email"]).optional(),
          phone: z.string().optional(),
          email: z.string().optional(),
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
      read: () => ({
        uri: "test://static-text",
        mimeType: "text/plain",
        text: "This is the content of the static text resource.",
      }),
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
      cache: { ttlMs: 0 },
      read: () => ({
        uri: "test://watched-resource",
        mimeType: "text/plain",
        text: "Watched resource content",
      }),
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
      get: () => ({
        messages: [
          { role: "user", content: { type: "text", text: "This is a simple prompt for testing." } },
        ],
      }),
    }),
    definePrompt({
      name: "test_prompt_with_arguments",
      title: "Prompt With Arguments",
      description: "A prompt with required arguments",
      args: z.object({
        arg1: z.string().describe("First test argument"),
        arg2: z.string().describe("Second test argument"),
      }),
      get: ({ arg1, arg2 }) => ({
        messages: [
          {
            role: "user",
            content: {
              type: "text",
              text: `Prompt with arguments: arg1='${arg1}', arg2='${arg2}'`,
            },
          },
        ],
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
            content: {
              type: "resource",
              resource: {
                uri: resourceUri,
                mimeType: "text/plain",
                text: "Embedded resource content for testing.",
              },
            },
          },
          {
            role: "user",
            content: { type: "text", text: "Please process the embedded resource above." },
          },
        ],
      }),
    }),
    definePrompt({
      name: "test_input_required_result_prompt",
      title: "MRTR Prompt",
      description: "MRTR: asks what context the prompt should use (input request user_context)",
      get: async (_a, ctx) => {
        const r = accepted(
          await ctx.elicit(form("What context should the prompt use?", "context"), {
            key: "user_context",
          }),
        );
        const context = typeof r === "string" ? r : String(r["context"]);
        return {
          messages: [
            { role: "user", content: { type: "text", text: `Prompt with context: ${context}` } },
          ],
        };
      },
    }),
    definePrompt({
      name: "test_prompt_with_image",
      title: "Prompt With Image",
      description: "A prompt that includes image content",
      get: () => ({
        messages: [
          {
            role: "user",
            content: { type: "image", data: TEST_IMAGE_BASE64, mimeType: "image/png" },
          },
          { role: "user", content: { type: "text", text: "Please analyze the image above." } },
        ],
      }),
    }),
  ],
});

/** Names this process's dynamic entries: with two workers in a pool, each change is a new name on every edge. */
const DYNAMIC_TOKEN = randomBytes(4).toString("hex");
let dynamicCount = 0;

/** Replaces this process's dynamic entry of a list by a newly named one (at most one per process). */
function swapDynamic<T extends { name: string }>(
  list: T[],
  prefix: string,
  make: (name: string) => T,
): void {
  const mine = `${prefix}_${DYNAMIC_TOKEN}_`;
  const at = list.findIndex((e) => e.name.startsWith(mine));
  if (at >= 0) list.splice(at, 1);
  list.push(make(`${mine}${++dynamicCount}`));
}

async function elicitText(
  ctx: HandlerContext,
  label: string,
  params: Record<string, unknown>,
): Promise<string> {
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
