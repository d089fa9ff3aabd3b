// Per-tool authorization (issue 14, point 2): a policy file decides what each caller may list
// and use, on every edge; a forbidden target is refused exactly like a missing one.
import { mkdtemp, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect } from "vitest";
import { connect } from "@nats-io/transport-node";
import { natsTest as it, type Stack } from "@mcpq/testkit";
import { ErrorCode } from "@mcpq/protocol";
import { H } from "@mcpq/bus";
import type { RunningEdge } from "@mcpq/edge";
import type { RunningWorker } from "@mcpq/worker";
import { AccessPolicy, PolicySchema } from "../src/core/policy.js";
import { factories, sdkClient, stack } from "./support/stack.js";
import { rawSession } from "./support/raw-http.js";

const POLICY = {
  exposeClaims: [],
  rules: [
    {
      principals: ["alice"],
      tools: ["echo", "count*"],
      resources: ["mcpq://example/*"],
      prompts: ["greet"],
    },
    { principals: ["bob"], tools: ["add"] },
    { principals: ["ops-*"], tools: ["*"], resources: ["*"], prompts: ["*"] },
  ],
};

describe("policy file", () => {
  it("is validated (unknown keys and bad shapes are refused) and matches patterns, scopes and claims", () => {
    expect(PolicySchema.safeParse({ rules: [{ principals: ["a"], tool: ["x"] }] }).success).toBe(
      false,
    );
    const p = new AccessPolicy(
      PolicySchema.parse({
        rules: [{ scopes: ["tools:write"], claims: { tenant: "acme" }, tools: ["write_*"] }],
        exposeClaims: ["tenant"],
      }),
    );
    const caller = (scopes: string[], tenant: unknown) => ({
      principal: "x",
      quotaKey: "x",
      anonymous: false,
      scopes,
      claims: { tenant },
    });
    expect(p.allows(caller(["tools:write"], "acme"), "tool", "write_file")).toBe(true);
    expect(p.allows(caller(["tools:write"], "acme"), "tool", "read_file")).toBe(false);
    expect(p.allows(caller([], "acme"), "tool", "write_file")).toBe(false);
    expect(p.allows(caller(["tools:write"], "other"), "tool", "write_file")).toBe(false);
    expect(p.exposed(caller([], "acme"))).toEqual({ tenant: "acme" });
  });
});

describe("per-tool policy over two edges", () => {
  let s: Stack<RunningEdge, RunningWorker>;
  afterAll(() => s?.close());

  it("lists show only what the caller may use, forbidden calls look like missing targets, on both edges", async ({
    nats,
  }) => {
    const dir = await mkdtemp(join(tmpdir(), "mcpq-policy-"));
    const file = join(dir, "policy.json");
    await writeFile(file, JSON.stringify(POLICY));
    s = await stack(nats, {
      edges: 2,
      edgeEnv: { MCPQ_POLICY_FILE: file, MCPQ_AUTH_TOKENS: "ta=alice,tb=bob,to=ops-1" },
    });
    const [e0, e1] = s.edges as [RunningEdge, RunningEdge];

    const alice = await sdkClient(e0.url, { headers: { authorization: "Bearer ta" } });
    expect((await alice.client.listTools()).tools.map((t) => t.name).sort()).toEqual([
      "countdown",
      "echo",
    ]);
    expect((await alice.client.listPrompts()).prompts.map((p) => p.name)).toEqual(["greet"]);
    expect((await alice.client.listResources()).resources.map((r) => r.uri)).toEqual([
      "mcpq://example/readme",
    ]);
    const bob = await sdkClient(e1.url, { headers: { authorization: "Bearer tb" } });
    expect((await bob.client.listTools()).tools.map((t) => t.name)).toEqual(["add"]);
    expect((await bob.client.listResources()).resources).toEqual([]);
    const ops = await sdkClient(e1.url, { headers: { authorization: "Bearer to" } });
    expect((await ops.client.listTools()).tools.length).toBeGreaterThanOrEqual(4);

    // Bob on either edge: `echo` (exists, forbidden) and `nope` (missing) get the same answer.
    for (const edge of [e0, e1]) {
      const b = await rawSession(edge.url, { authorization: "Bearer tb" });
      const forbidden = await b.call("echo", { text: "x" });
      const missing = await b.call("nope", { text: "x" });
      expect(forbidden.message?.error?.code).toBe(ErrorCode.InvalidParams);
      expect(forbidden.message?.error?.message).toBe("Unknown tool: echo");
      expect(missing.message?.error?.message).toBe("Unknown tool: nope");
      const res = await b.request("resources/read", { uri: "mcpq://example/readme" });
      expect(res.message?.error).toMatchObject({
        code: ErrorCode.ResourceNotFound,
        message: "Resource not found",
      });
      const prompt = await b.request("prompts/get", { name: "greet", arguments: { name: "x" } });
      expect(prompt.message?.error?.message).toBe("Unknown prompt: greet");
      expect((await b.call("add", { a: 1, b: 2 })).message?.result).toBeDefined();
      await b.close();
    }
    // Alice's permitted calls run; a session id moved to the other edge keeps the same rules.
    expect(
      (await alice.client.callTool({ name: "echo", arguments: { text: "ok" } })).content,
    ).toEqual([{ type: "text", text: "ok" }]);
    const a1 = await rawSession(e1.url, { authorization: "Bearer ta" });
    expect((await a1.call("add", { a: 1, b: 2 })).message?.error?.message).toBe(
      "Unknown tool: add",
    );
    await a1.close();

    // Nothing forbidden was queued for a worker.
    const monitor = await connect({ servers: nats.url });
    const targets: string[] = [];
    const sub = monitor.subscribe("mcpq.req.>", {
      callback: (_e, m) => void targets.push(m.headers?.get(H.target) ?? ""),
    });
    await monitor.flush();
    const b2 = await rawSession(e0.url, { authorization: "Bearer tb" });
    await b2.call("echo", { text: "never" });
    await b2.call("add", { a: 2, b: 2 });
    await monitor.flush();
    expect(targets).toEqual(["add"]);
    sub.unsubscribe();
    await monitor.close();
    await b2.close();
    for (const c of [alice, bob, ops]) await c.client.close();
  });

  it("virtual servers: /mcp/<name> serves its subset, intersected with the caller's grants", async ({
    nats,
  }) => {
    const dir = await mkdtemp(join(tmpdir(), "mcpq-vs-"));
    const file = join(dir, "policy.json");
    await writeFile(
      file,
      JSON.stringify({
        ...POLICY,
        servers: {
          math: { tools: ["add"] },
          docs: { resources: ["mcpq://example/*"], prompts: ["*"] },
        },
      }),
    );
    const edge = await factories.startEdge(nats.url, {
      MCPQ_POLICY_FILE: file,
      MCPQ_AUTH_TOKENS: "ta=alice,tb=bob,to=ops-1",
    });
    try {
      const base = edge.url;
      const ops = await sdkClient(`${base}/math`, { headers: { authorization: "Bearer to" } });
      expect((await ops.client.listTools()).tools.map((t) => t.name)).toEqual(["add"]);
      expect((await ops.client.listResources()).resources).toEqual([]);
      const r = await ops.client.callTool({ name: "add", arguments: { a: 2, b: 3 } });
      expect(r.structuredContent).toEqual({ sum: 5 });
      const raw = await rawSession(`${base}/math`, { authorization: "Bearer to" });
      expect((await raw.call("echo", { text: "x" })).message?.error?.message).toBe(
        "Unknown tool: echo",
      );
      // The same caller through the full endpoint sees everything its rules grant.
      const full = await sdkClient(base, { headers: { authorization: "Bearer to" } });
      expect((await full.client.listTools()).tools.length).toBeGreaterThan(1);
      // Alice may not use `add` at all, so /mcp/math is empty for her; /mcp/docs shows her resources.
      const alice = await sdkClient(`${base}/math`, { headers: { authorization: "Bearer ta" } });
      expect((await alice.client.listTools()).tools).toEqual([]);
      const docs = await sdkClient(`${base}/docs`, { headers: { authorization: "Bearer ta" } });
      expect((await docs.client.listResources()).resources.map((x) => x.uri)).toEqual([
        "mcpq://example/readme",
      ]);
      expect((await docs.client.listTools()).tools).toEqual([]);
      // Unknown virtual servers are 404; other methods on a known one 405.
      expect(
        (
          await fetch(`${base}/nope`, {
            method: "POST",
            headers: { "content-type": "application/json" },
            body: "{}",
          })
        ).status,
      ).toBe(404);
      expect((await fetch(`${base}/math`, { method: "PUT" })).status).toBe(405);
      await raw.close();
      for (const c of [ops, full, alice, docs]) await c.client.close();
    } finally {
      await edge.close();
    }
  });
});
