import { afterAll, describe, expect } from "vitest";
import { BusClient, natsTest as it, type BusRpcResponse } from "@mcpq/testkit";
import { connectBus, type Bus } from "@mcpq/bus";
import { Worker } from "@mcpq/worker-sdk";
import { conformanceCatalog } from "../src/catalogs/conformance.js";

/**
 * The 2026-07-28 fixtures of the conformance catalog, driven at the worker as the flows of
 * @modelcontextprotocol/conformance@0.2.0-alpha.12's input-required-result-* and server-stateless
 * scenarios send them (same keys, same retries), through two workers of one pool that share a
 * request-state key, so a round and its retry are served by either.
 */

const POOL = "conformance2026";
const KEY = "conformance-2026-shared-request-state-key-000001";
const elicit = (content: Record<string, unknown>) => ({ action: "accept", content });
const sampled = (text: string) => ({
  role: "assistant",
  content: { type: "text", text },
  model: "test-model",
  stopReason: "endTurn",
});
const roots = { roots: [{ uri: "file:///test/root", name: "Test Root" }] };
const text = (r: BusRpcResponse) =>
  (r.result?.["content"] as { text: string }[] | undefined)?.[0]?.text;
const state = (r: BusRpcResponse) => r.result?.["requestState"] as string;
const keys = (r: BusRpcResponse) => Object.keys((r.result?.["inputRequests"] ?? {}) as object);

let bus: Bus | undefined;
const workers: Worker[] = [];
afterAll(async () => {
  for (const w of workers) await w.stop();
  await bus?.close();
});

describe("conformance catalog, 2026-07-28 fixtures (two workers, one pool)", () => {
  it("answers every input-required-result flow of the suite", async ({ nats }) => {
    bus = await connectBus({ url: nats.url, name: "conformance-2026" });
    for (let i = 0; i < 2; i++) {
      const w = new Worker({
        bus,
        pool: POOL,
        catalogs: [conformanceCatalog],
        requestState: { keys: [KEY] },
      });
      await w.start();
      workers.push(w);
    }
    const c = new BusClient(bus, POOL);

    // basic-elicitation, result-type
    const e1 = await c.tool("test_input_required_result_elicitation");
    expect(e1.result).toMatchObject({
      resultType: "input_required",
      inputRequests: { user_name: { method: "elicitation/create" } },
    });
    const e2 = await c.tool("test_input_required_result_elicitation", {
      inputResponses: { user_name: elicit({ name: "Alice" }) },
      requestState: state(e1),
    });
    expect(e2.result).toMatchObject({
      resultType: "complete",
      content: [{ type: "text", text: "Hello, Alice!" }],
    });

    // basic-sampling, basic-list-roots
    const s1 = await c.tool("test_input_required_result_sampling");
    expect(s1.result?.["inputRequests"]).toMatchObject({
      capital_question: { method: "sampling/createMessage", params: { maxTokens: 100 } },
    });
    const s2 = await c.tool("test_input_required_result_sampling", {
      inputResponses: { capital_question: sampled("Paris.") },
      requestState: state(s1),
    });
    expect(text(s2)).toBe("LLM response: Paris.");
    const r1 = await c.tool("test_input_required_result_list_roots");
    expect(r1.result?.["inputRequests"]).toEqual({
      client_roots: { method: "roots/list", params: {} },
    });
    expect(
      text(
        await c.tool("test_input_required_result_list_roots", {
          inputResponses: { client_roots: roots },
          requestState: state(r1),
        }),
      ),
    ).toBe("Client roots: file:///test/root");

    // request-state: the completed text says the state was verified
    const q1 = await c.tool("test_input_required_result_request_state");
    expect(keys(q1)).toEqual(["confirm"]);
    expect(typeof state(q1)).toBe("string");
    expect(
      text(
        await c.tool("test_input_required_result_request_state", {
          inputResponses: { confirm: elicit({ ok: true }) },
          requestState: state(q1),
        }),
      ),
    ).toMatch(/^state-ok/);

    // multiple-input-requests
    const m1 = await c.tool("test_input_required_result_multiple_inputs");
    expect(keys(m1).sort()).toEqual(["client_roots", "greeting", "user_name"]);
    const m2 = await c.tool("test_input_required_result_multiple_inputs", {
      inputResponses: {
        user_name: elicit({ name: "Alice" }),
        greeting: sampled("Hello there!"),
        client_roots: roots,
      },
      requestState: state(m1),
    });
    expect(text(m2)).toBe('name={"name":"Alice"}, greeting=Hello there!, roots=1');

    // multi-round: a new state each round
    const t1 = await c.tool("test_input_required_result_multi_round");
    const t2 = await c.tool("test_input_required_result_multi_round", {
      inputResponses: { [keys(t1)[0]!]: elicit({ name: "Alice" }) },
      requestState: state(t1),
    });
    expect(t2.result).toMatchObject({ resultType: "input_required", inputRequests: { step2: {} } });
    expect(state(t2)).not.toBe(state(t1));
    const t3 = await c.tool("test_input_required_result_multi_round", {
      inputResponses: { step2: elicit({ color: "blue" }) },
      requestState: state(t2),
    });
    expect(text(t3)).toBe('name={"name":"Alice"}, color={"color":"blue"}');

    // missing-input-response, ignore-extra-params, validate-input (no requestState in these)
    const wrong = await c.tool("test_input_required_result_elicitation", {
      inputResponses: { wrong_key: elicit({ data: "wrong" }) },
    });
    expect(wrong.result?.["resultType"]).toBe("input_required");
    const extra = await c.tool("test_input_required_result_elicitation", {
      inputResponses: {
        user_name: elicit({ name: "Alice" }),
        unknown_extra_key: elicit({ foo: "bar" }),
        another_unexpected: elicit({ baz: 123 }),
      },
    });
    expect(extra.result).toMatchObject({ resultType: "complete" });
    expect(
      (
        await c.tool("test_input_required_result_elicitation", {
          inputResponses: { user_name: 12345 },
        })
      ).error?.code,
    ).toBe(-32602);
    expect(
      (await c.tool("test_input_required_result_elicitation", { inputResponses: null })).error
        ?.code,
    ).toBe(-32602);

    // non-tool-request (prompts/get)
    const p1 = await c.call("prompts/get", "prompt", "test_input_required_result_prompt", {
      name: "test_input_required_result_prompt",
    });
    expect(keys(p1)).toEqual(["user_context"]);
    const p2 = await c.call("prompts/get", "prompt", "test_input_required_result_prompt", {
      name: "test_input_required_result_prompt",
      inputResponses: { user_context: elicit({ context: "test context" }) },
      requestState: state(p1),
    });
    expect(p2.result).toMatchObject({
      resultType: "complete",
      messages: [{ content: { text: "Prompt with context: test context" } }],
    });

    // tampered-state
    const x1 = await c.tool("test_input_required_result_tampered_state");
    const x2 = await c.tool("test_input_required_result_tampered_state", {
      inputResponses: { confirm: elicit({ ok: true }) },
      requestState: `${state(x1)}-TAMPERED`,
    });
    expect(x2.error?.code).toBe(-32602);
    expect(
      text(
        await c.tool("test_input_required_result_tampered_state", {
          inputResponses: { confirm: elicit({ ok: true }) },
          requestState: state(x1),
        }),
      ),
    ).toMatch(/^integrity-ok/);

    // capability-check: sampling only declared -> no elicitation request
    const k1 = await c.tool(
      "test_input_required_result_capabilities",
      {},
      { clientCapabilities: ["sampling"] },
    );
    expect(k1.result?.["inputRequests"]).toMatchObject({
      sample_input: { method: "sampling/createMessage" },
    });
    expect(keys(k1)).toEqual(["sample_input"]);
    expect(
      text(await c.tool("test_input_required_result_capabilities", {}, { clientCapabilities: [] })),
    ).toBe("No supported capabilities declared");
    c.close();
  });

  it("serves the server-stateless diagnostics", async () => {
    const c = new BusClient(bus!, POOL);
    const missing = await c.tool(
      "test_missing_capability",
      { _meta: {} },
      { clientCapabilities: [] },
    );
    expect(missing.error).toMatchObject({
      code: -32021,
      data: { requiredCapabilities: { sampling: {} } },
    });
    // No log level in the request's _meta: no notifications/message at all.
    expect(text(await c.tool("test_logging_tool"))).toBe("Logging evaluated");
    expect(text(await c.tool("test_logging_tool", {}, { logLevel: "debug" }))).toBe(
      "Logging evaluated",
    );
    expect(c.notifications.filter((n) => n["method"] === "notifications/message")).toHaveLength(1);
    // Streaming elicitation: progress on the stream, the question as an input request, never a request.
    const st = await c.tool(
      "test_streaming_elicitation",
      { _meta: { progressToken: "tok" } },
      { clientCapabilities: ["elicitation"] },
    );
    expect(st.result).toMatchObject({
      resultType: "input_required",
      inputRequests: { continue: { method: "elicitation/create" } },
    });
    expect(c.requests).toEqual([]);
    c.close();
  });

  it("changes the advertised tool and prompt lists on the trigger tools (a new name each time)", async () => {
    const c = new BusClient(bus!, POOL);
    const advertised = async (kind: "tools" | "prompts", prefix: string) => {
      const names: string[] = [];
      for (const w of workers) {
        const e = await bus!.kv.registry.get(`${POOL}.${w.workerId}`);
        const entry = e?.json<{
          catalog: { tools: { name: string }[]; prompts: { name: string }[] };
        }>();
        names.push(
          ...(entry?.catalog[kind] ?? []).map((d) => d.name).filter((n) => n.startsWith(prefix)),
        );
      }
      return names;
    };
    expect(text(await c.tool("test_trigger_tool_change"))).toBe("Mutation triggered");
    const first = await advertised("tools", "test_dynamic_tool_");
    expect(first).toHaveLength(1);
    await c.tool("test_trigger_tool_change");
    const second = await advertised("tools", "test_dynamic_tool_");
    // Whichever worker ran it, the merged list differs: a new name, the process's old one gone.
    expect(second.some((n) => !first.includes(n))).toBe(true);
    expect(second.length).toBeLessThanOrEqual(2);
    await c.tool("test_trigger_prompt_change");
    expect(await advertised("prompts", "test_dynamic_prompt_")).toHaveLength(1);
    c.close();
  });
});
