import { afterAll, describe, expect } from "vitest";
import { natsTest as it, eventually, type Stack } from "@mcpq/testkit";
import type { RunningEdge } from "@mcpq/edge";
import type { RunningWorker } from "@mcpq/worker";
import { sdkClient, stack } from "./support/stack.js";

// A refill of one token takes 1000 s: within the test, a bucket only holds what its burst gave.
const RATE = "0.001";
const BURST = 6;
const alice = { authorization: "Bearer tok-a" };

/**
 * The per-principal tools/call token bucket holds across edges (shared-limits.ts): what one
 * edge granted is charged on every other edge, so two edges together grant the burst once, not
 * twice. The session cap per principal is counted in the broker (session-lifecycle.test.ts
 * checks it across two edges).
 */
describe("cluster-wide rate limits across two edges", () => {
  let s: Stack<RunningEdge, RunningWorker> | undefined;
  afterAll(() => s?.close());

  it("a principal's burst spent on edge A is not granted again on edge B", async ({ nats }) => {
    s = await stack(nats, {
      edges: 2,
      edgeEnv: {
        MCPQ_AUTH_TOKENS: "tok-a=alice,tok-b=bob",
        MCPQ_TOOL_RATE_PER_SEC: RATE,
        MCPQ_TOOL_RATE_BURST: String(BURST),
        MCPQ_SHARED_LIMITS_MS: "100",
      },
    });
    const [a, b] = s.edges;
    const onA = await sdkClient(a!.url, { headers: alice });
    const onB = await sdkClient(b!.url, { headers: alice });
    const call = (c: typeof onA) =>
      c.client.callTool({ name: "echo", arguments: { text: "x" } }).then(
        () => "ok",
        (err: unknown) => (/429|-32011|rate limit/i.test(String(err)) ? "limited" : String(err)),
      );
    const fromA: string[] = [];
    for (let i = 0; i < BURST + 1; i++) fromA.push(await call(onA));
    expect(fromA).toEqual([...Array<string>(BURST).fill("ok"), "limited"]);
    // Edge B has been told about the BURST tokens edge A granted.
    await eventually(() => (b!.runtime.sharedLimits?.charged ?? 0) >= BURST, {
      what: "edge B charged A's grants",
    });
    expect(await call(onB)).toBe("limited");
    // Another principal has its own bucket.
    const bob = await sdkClient(b!.url, { headers: { authorization: "Bearer tok-b" } });
    expect(await call(bob)).toBe("ok");
    await Promise.all([onA.client.close(), onB.client.close(), bob.client.close()]);
  });

  it("grants on both edges add up: together they never exceed one burst", async () => {
    const [a, b] = s!.edges;
    const edges = [a!, b!];
    // bob (tok-b) spent 1 token on edge B above; spend the rest alternately through both edges.
    const clients = [
      await sdkClient(a!.url, { headers: { authorization: "Bearer tok-b" } }),
      await sdkClient(b!.url, { headers: { authorization: "Bearer tok-b" } }),
    ];
    await eventually(() => (a!.runtime.sharedLimits?.charged ?? 0) >= 1, {
      what: "edge A charged bob's first grant",
    });
    const expected = edges.map((e) => e.runtime.sharedLimits!.charged);
    let ok = 0;
    for (let i = 0; i < BURST * 2; i++) {
      const me = i % 2;
      const granted = await clients[me]!.client.callTool({
        name: "echo",
        arguments: { text: "x" },
      }).then(
        () => true,
        () => false,
      );
      if (!granted) continue;
      ok++;
      // The other edge hears of this grant before the next call: no race between the two buckets.
      const other = 1 - me;
      expected[other]!++;
      await eventually(() => edges[other]!.runtime.sharedLimits!.charged >= expected[other]!, {
        what: "grant reported to the other edge",
      });
    }
    expect(ok).toBe(BURST - 1);
    await Promise.all(clients.map((c) => c.client.close()));
  });
});
