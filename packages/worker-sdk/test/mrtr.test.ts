import { afterAll, describe, expect } from "vitest";
import {
  BusClient,
  natsTest as it,
  eventually,
  type BusCallOptions,
  type BusRpcResponse,
} from "@mcpq/testkit";
import { connectBus, subjects, type Bus } from "@mcpq/bus";
import {
  Worker,
  createRequestStateSealer,
  defineCatalog,
  definePrompt,
  defineResource,
  defineTool,
  paramsDigest,
  z,
} from "../src/index.js";

/**
 * MRTR (MCP 2026-07-28) at the worker: modern-era envelopes published straight onto the request
 * stream of a real nats-server, answers read from the outbound subject, as an edge would.
 */

const POOL = "mrtr";
const KEY = "shared-request-state-key-for-the-mrtr-pool-0001";
const OTHER_KEY = "a-different-request-state-key-of-another-pool-02";
const nameSchema = { type: "object", properties: { name: { type: "string" } }, required: ["name"] };

let stepsRuns = 0;
const catalog = defineCatalog({
  name: "mrtr",
  tools: [
    defineTool({
      name: "greet",
      description: "Asks the user's name",
      input: z.object({ greeting: z.string().default("Hello") }),
      handler: async ({ greeting }, ctx) => {
        const r = await ctx.elicit(
          { message: "What is your name?", requestedSchema: nameSchema },
          { key: "user_name" },
        );
        if (r["action"] !== "accept") return `${greeting}, stranger (${String(r["action"])})`;
        return `${greeting}, ${String((r["content"] as { name?: unknown } | undefined)?.name)}!`;
      },
    }),
    defineTool({
      name: "trio",
      description: "Asks three things at once",
      input: z.object({}),
      handler: async (_a, ctx) => {
        const [who, said, roots] = await Promise.all([
          ctx.elicit({ message: "Name?", requestedSchema: nameSchema }),
          ctx.sample({
            messages: [{ role: "user", content: { type: "text", text: "Greet" } }],
            maxTokens: 50,
          }),
          ctx.listRoots(),
        ]);
        const text = (said["content"] as { text?: string }).text;
        return `${JSON.stringify(who["content"])} ${text} ${(roots["roots"] as { uri: string }[]).map((r) => r.uri).join(",")}`;
      },
    }),
    defineTool({
      name: "steps",
      description: "Two questions, one after the other",
      input: z.object({}),
      handler: async (_a, ctx) => {
        stepsRuns++;
        const a = await ctx.elicit(
          { message: "Step 1: name?", requestedSchema: nameSchema },
          { key: "step1" },
        );
        const b = await ctx.elicit(
          { message: "Step 2: colour?", requestedSchema: nameSchema },
          { key: "step2" },
        );
        return `${JSON.stringify(a["content"])} then ${JSON.stringify(b["content"])}`;
      },
    }),
    defineTool({
      name: "polite",
      description: "Catches a failed ask and answers anyway (the round still asks)",
      input: z.object({}),
      handler: async (_a, ctx) => {
        try {
          const r = await ctx.elicit({ message: "Name?", requestedSchema: nameSchema });
          return `got ${JSON.stringify(r["content"])}`;
        } catch (err) {
          return `no answer: ${err instanceof Error ? err.message : String(err)}`;
        }
      },
    }),
    defineTool({
      name: "stamped",
      description: "Words its question differently on every run",
      input: z.object({}),
      handler: async (_a, ctx) => {
        const r = await ctx.elicit(
          { message: `Deploy now (${process.hrtime.bigint()})?`, requestedSchema: nameSchema },
          { key: "go" },
        );
        return `go=${String(r["action"])}`;
      },
    }),
    defineTool({
      name: "dupe",
      description: "Uses one key for two different asks (a handler bug)",
      input: z.object({}),
      handler: async (_a, ctx) => {
        await Promise.all([
          ctx.elicit({ message: "a" }, { key: "k" }),
          ctx.elicit({ message: "b" }, { key: "k" }),
        ]);
        return "unreachable";
      },
    }),
    defineTool({
      name: "needs_sampling",
      description: "Needs the sampling capability",
      input: z.object({}),
      handler: async (_a, ctx) => JSON.stringify(await ctx.sample({ messages: [], maxTokens: 1 })),
    }),
  ],
  prompts: [
    definePrompt({
      name: "contextual",
      description: "A prompt that asks for context",
      get: async (_a, ctx) => {
        const r = await ctx.elicit(
          { message: "Context?", requestedSchema: nameSchema },
          { key: "user_context" },
        );
        return {
          messages: [
            {
              role: "user",
              content: { type: "text", text: `ctx=${JSON.stringify(r["content"])}` },
            },
          ],
        };
      },
    }),
  ],
  resources: [
    defineResource({ uri: "test://plain", name: "plain", read: () => ({ text: "plain" }) }),
    defineResource({
      uri: "test://shared",
      name: "shared",
      cache: { ttlMs: 5_000, cacheScope: "public" },
      read: () => ({ text: "shared" }),
    }),
  ],
});

const SESSION = "mrtrSessionAAAAAAAAAAAA";
let bus: Bus;
let client: BusClient;

afterAll(async () => {
  client?.close();
  await bus?.close();
});

async function connect(url: string): Promise<void> {
  if (bus) return;
  bus = await connectBus({ url, name: "mrtr-test" });
  client = new BusClient(bus, POOL, SESSION);
}

function startWorker(keys: string[] = [KEY], ttlMs?: number): Promise<Worker> {
  const w = new Worker({
    bus,
    pool: POOL,
    catalogs: [catalog],
    requestState: { keys, ...(ttlMs ? { ttlMs } : {}) },
  });
  return w.start().then(() => w);
}

type Rpc = BusRpcResponse;
const call = (
  method: string,
  kind: "tool" | "prompt" | "resource",
  target: string,
  params: Record<string, unknown>,
  o?: BusCallOptions,
) => client.call(method, kind, target, params, o);
const tool = (name: string, extra: Record<string, unknown> = {}, o?: BusCallOptions) =>
  client.tool(name, extra, o);
const accept = (content: Record<string, unknown>) => ({ action: "accept", content });
const textOf = (r: Rpc) => (r.result?.["content"] as { text: string }[] | undefined)?.[0]?.text;

describe("MRTR at the worker (2026-07-28 envelopes, real JetStream)", () => {
  it("one round: asks under the handler's key, completes on the retry with resultType complete", async ({
    nats,
  }) => {
    await connect(nats.url);
    const w = await startWorker();
    const r1 = await tool("greet", { arguments: { greeting: "Hi" } });
    expect(r1.result).toMatchObject({
      resultType: "input_required",
      inputRequests: {
        user_name: {
          method: "elicitation/create",
          params: { message: "What is your name?", requestedSchema: nameSchema },
        },
      },
    });
    const state = r1.result!["requestState"];
    expect(typeof state).toBe("string");
    const r2 = await tool("greet", {
      arguments: { greeting: "Hi" },
      inputResponses: { user_name: accept({ name: "Alice" }) },
      requestState: state,
    });
    expect(r2.result).toEqual({
      content: [{ type: "text", text: "Hi, Alice!" }],
      resultType: "complete",
    });
    // A decline is an answer too.
    const r3 = await tool("greet", {
      inputResponses: { user_name: { action: "decline" } },
      requestState: (await tool("greet")).result!["requestState"],
    });
    expect(textOf(r3)).toBe("Hello, stranger (decline)");
    // Without a state, an answer under the key is taken and unknown keys are ignored.
    const r4 = await tool("greet", {
      inputResponses: {
        user_name: accept({ name: "Bob" }),
        extra: { action: "accept", content: { x: 1 } },
      },
    });
    expect(r4.result).toMatchObject({ resultType: "complete", content: [{ text: "Hello, Bob!" }] });
    // A wrong key only: asked again (a new InputRequiredResult, not an error).
    const r5 = await tool("greet", { inputResponses: { wrong_key: accept({ name: "x" }) } });
    expect(r5.result).toMatchObject({
      resultType: "input_required",
      inputRequests: { user_name: {} },
    });
    // Non-tool request: prompts/get asks too.
    const p1 = await call("prompts/get", "prompt", "contextual", { name: "contextual" });
    expect(p1.result).toMatchObject({
      resultType: "input_required",
      inputRequests: { user_context: { method: "elicitation/create" } },
    });
    const p2 = await call("prompts/get", "prompt", "contextual", {
      name: "contextual",
      inputResponses: { user_context: accept({ name: "docs" }) },
      requestState: p1.result!["requestState"],
    });
    expect(p2.result).toMatchObject({
      resultType: "complete",
      messages: [{ content: { text: 'ctx={"name":"docs"}' } }],
    });
    // Every modern read carries its caching hints: the declared ones, else the default.
    const read = await call("resources/read", "resource", "test://plain", { uri: "test://plain" });
    expect(read.result).toEqual({
      resultType: "complete",
      contents: [{ uri: "test://plain", text: "plain" }],
      ttlMs: 0,
      cacheScope: "private",
    });
    const shared = await call("resources/read", "resource", "test://shared", {
      uri: "test://shared",
    });
    expect(shared.result).toMatchObject({
      resultType: "complete",
      ttlMs: 5_000,
      cacheScope: "public",
    });
    const legacyRead = await call(
      "resources/read",
      "resource",
      "test://shared",
      { uri: "test://shared" },
      { protocolVersion: "2025-11-25" },
    );
    expect(legacyRead.result).toEqual({ contents: [{ uri: "test://shared", text: "shared" }] });
    // Read-not-found is -32602 in this era.
    const missing = await call("resources/read", "resource", "test://nope", { uri: "test://nope" });
    expect(missing.error).toMatchObject({
      code: -32602,
      message: "Resource not found",
      data: { uri: "test://nope" },
    });
    expect(client.requests).toEqual([]); // nothing was sent as a server->client request
    await w.stop();
  });

  it("asks several input requests in one round, and a handler that catches the ask still asks", async () => {
    const w = await startWorker();
    const r1 = await tool("trio");
    expect(r1.result?.["resultType"]).toBe("input_required");
    const asks = r1.result!["inputRequests"] as Record<string, { method: string }>;
    expect(Object.fromEntries(Object.entries(asks).map(([k, v]) => [k, v.method]))).toEqual({
      "elicit-1": "elicitation/create",
      "sample-1": "sampling/createMessage",
      "roots-1": "roots/list",
    });
    const all = {
      "elicit-1": accept({ name: "Alice" }),
      "sample-1": {
        role: "assistant",
        content: { type: "text", text: "Hello there!" },
        model: "m",
        stopReason: "endTurn",
      },
      "roots-1": { roots: [{ uri: "file:///a", name: "a" }] },
    };
    // Missing one of the three: asked again, only for the missing one.
    const partial = await tool("trio", {
      inputResponses: { "elicit-1": all["elicit-1"], "roots-1": all["roots-1"] },
      requestState: r1.result!["requestState"],
    });
    expect(Object.keys(partial.result!["inputRequests"] as object)).toEqual(["sample-1"]);
    const done = await tool("trio", {
      inputResponses: { "sample-1": all["sample-1"] },
      requestState: partial.result!["requestState"],
    });
    expect(textOf(done)).toBe('{"name":"Alice"} Hello there! file:///a');

    const polite = await tool("polite");
    expect(polite.result).toMatchObject({
      resultType: "input_required",
      inputRequests: { "elicit-1": {} },
    });
    const polite2 = await tool("polite", {
      inputResponses: { "elicit-1": accept({ name: "Z" }) },
      requestState: polite.result!["requestState"],
    });
    expect(textOf(polite2)).toBe('got {"name":"Z"}');
    await w.stop();
  });

  it("runs two rounds in sequence with a new state each round; the retry may reach another worker", async () => {
    const w1 = await startWorker();
    stepsRuns = 0;
    const r1 = await tool("steps");
    expect(r1.result).toMatchObject({ resultType: "input_required", inputRequests: { step1: {} } });
    await w1.stop();
    // A different Worker instance (as on another host) that shares the key continues the request.
    const w2 = await startWorker([KEY]);
    const r2 = await tool("steps", {
      inputResponses: { step1: accept({ name: "Alice" }) },
      requestState: r1.result!["requestState"],
    });
    expect(r2.result).toMatchObject({
      resultType: "input_required",
      inputRequests: { step2: { params: { message: "Step 2: colour?" } } },
    });
    expect(Object.keys(r2.result!["inputRequests"] as object)).toEqual(["step2"]);
    expect(r2.result!["requestState"]).not.toBe(r1.result!["requestState"]);
    // A state answer cannot be overridden by a retry: step1 stays "Alice".
    const r3 = await tool("steps", {
      inputResponses: { step1: accept({ name: "Mallory" }), step2: accept({ name: "blue" }) },
      requestState: r2.result!["requestState"],
    });
    expect(textOf(r3)).toBe('{"name":"Alice"} then {"name":"blue"}');
    expect(stepsRuns).toBe(3);
    // A state is single use (KV mcpq_used_states): replaying r2's state, even to override the
    // answer it carries, is refused like any other refused state.
    const r3b = await tool("steps", {
      inputResponses: { step1: accept({ name: "Mallory" }), step2: accept({ name: "red" }) },
      requestState: r2.result!["requestState"],
    });
    expect(r3b.error).toMatchObject({ code: -32602, message: "Invalid or expired requestState" });
    // The key names the question: a re-run that words it differently still gets its answer.
    const s1 = await tool("stamped");
    const s2 = await tool("stamped", {
      inputResponses: { go: { action: "accept", content: {} } },
      requestState: s1.result!["requestState"],
    });
    expect(textOf(s2)).toBe("go=accept");
    // One key for two different asks in one run: the handler's bug, not a question for the client.
    const d = await tool("dupe");
    expect(d.error).toMatchObject({
      code: -32603,
      message: 'input request key "k" used for two different requests',
    });
    await w2.stop();

    // A worker with another key refuses the state (a pool must share its keys).
    const w3 = await startWorker([OTHER_KEY]);
    const refused = await tool("steps", {
      inputResponses: { step2: accept({ name: "blue" }) },
      requestState: r2.result!["requestState"],
    });
    expect(refused.error).toMatchObject({
      code: -32602,
      message: "Invalid or expired requestState",
    });
    await w3.stop();
  });

  it("refuses a tampered, misbound or expired state, and malformed input responses", async () => {
    const w = await startWorker([KEY], 60_000);
    const r1 = await tool("greet");
    const state = r1.result!["requestState"] as string;
    const answer = { user_name: accept({ name: "Alice" }) };
    const tampered = await tool("greet", {
      inputResponses: answer,
      requestState: `${state}-TAMPERED`,
    });
    expect(tampered.error).toMatchObject({
      code: -32602,
      message: "Invalid or expired requestState",
    });
    expect(tampered.result).toBeUndefined();
    // Another principal, another tool, other arguments: refused.
    expect(
      (
        await tool(
          "greet",
          { inputResponses: answer, requestState: state },
          { principal: "mallory" },
        )
      ).error?.code,
    ).toBe(-32602);
    expect((await tool("steps", { inputResponses: answer, requestState: state })).error?.code).toBe(
      -32602,
    );
    expect(
      (
        await tool("greet", {
          arguments: { greeting: "Yo" },
          inputResponses: answer,
          requestState: state,
        })
      ).error?.code,
    ).toBe(-32602);
    // An expired state (sealed with the pool's key, expiry in the past).
    const sealer = createRequestStateSealer({ keys: [KEY], ttlMs: 1_000, maxBytes: 65_536 });
    const binding = {
      principal: "alice",
      method: "tools/call",
      target: "greet",
      digest: paramsDigest({ name: "greet", arguments: {} }),
    };
    const expired = sealer.seal(
      binding,
      { n: 1, a: {}, q: { user_name: { m: "elicitation/create", h: "x" } } },
      Date.now() - 10_000,
    );
    expect(
      (await tool("greet", { inputResponses: answer, requestState: expired })).error,
    ).toMatchObject({ code: -32602, message: "Invalid or expired requestState" });
    // The same binding, unexpired: accepted (so the refusal above was the expiry).
    const fresh = sealer.seal(binding, { n: 1, a: {}, q: {} });
    expect(
      (await tool("greet", { inputResponses: answer, requestState: fresh })).result?.["resultType"],
    ).toBe("input_required");
    // Malformed inputResponses: a protocol error, never a complete result.
    expect((await tool("greet", { inputResponses: { user_name: 12345 } })).error?.code).toBe(
      -32602,
    );
    expect((await tool("greet", { inputResponses: null })).error?.code).toBe(-32602);
    expect(
      (await tool("greet", { inputResponses: { user_name: { action: "maybe" } } })).error?.code,
    ).toBe(-32602);
    expect((await tool("greet", { requestState: 42 })).error?.code).toBe(-32602);
    await w.stop();
  });

  it("never asks for a capability the client did not declare (-32021 naming it)", async () => {
    const w = await startWorker();
    const r = await tool("needs_sampling", {}, { clientCapabilities: ["elicitation"] });
    expect(r.error).toMatchObject({
      code: -32021,
      data: { requiredCapabilities: { sampling: {} } },
    });
    // An empty declaration ({} in _meta) is carried as such, not as "unknown".
    expect((await tool("needs_sampling", {}, { clientCapabilities: [] })).error?.code).toBe(-32021);
    const trio = await tool("trio", {}, { clientCapabilities: ["sampling"] });
    // elicitation and roots are refused before anything is asked; the handler's Promise.all fails.
    expect(trio.error?.code).toBe(-32021);
    await w.stop();
  });

  it("legacy era (2025-11-25): elicit is a server->client request through the edge, unchanged", async () => {
    const w = await startWorker();
    const before = client.requests.length;
    const pending = tool("greet", {}, { protocolVersion: "2025-11-25" });
    await eventually(() => client.requests.length > before, {
      what: "the elicitation/create request",
    });
    const req = client.requests[before]!;
    expect(req).toMatchObject({
      jsonrpc: "2.0",
      method: "elicitation/create",
      params: { message: "What is your name?" },
    });
    bus.nc.publish(
      subjects.clientReply("alice", SESSION, req["id"] as string),
      JSON.stringify({ jsonrpc: "2.0", id: req["id"], result: accept({ name: "Legacy" }) }),
    );
    const r = await pending;
    expect(r.result).toEqual({ content: [{ type: "text", text: "Hello, Legacy!" }] });
    const missing = await call(
      "resources/read",
      "resource",
      "test://nope",
      { uri: "test://nope" },
      { protocolVersion: "2025-11-25" },
    );
    expect(missing.error?.code).toBe(-32002);
    await w.stop();
  });
});
