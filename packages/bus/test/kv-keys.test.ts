import { afterAll, describe, expect } from "vitest";
import { natsTest as it } from "@mcpq/testkit";
import { connectBus, distinctKeys, type Bus } from "@mcpq/bus";

// distinctKeys (packages/bus/src/kv-keys.ts) against a real nats-server: a KV listing that
// keeps being written to while it drains (heartbeats, touches) still names every key once.
describe("distinctKeys: every key of a KV listing once, while the bucket is written to", () => {
  let bus: Bus | undefined;
  afterAll(async () => bus?.close());

  it("lists all keys under the filter, none twice, though the ones already listed are rewritten meanwhile", async ({
    nats,
  }) => {
    bus = await connectBus({ url: nats.url, name: "kv-keys-test" });
    const kv = bus.kv.subscriptions;
    const n = 400;
    await Promise.all(Array.from({ length: n }, (_, i) => kv.put(`a.k${i}`, "v")));
    await kv.put("b.other", "v");
    const listed: string[] = [];
    for await (const k of distinctKeys(kv, "a.*")) {
      listed.push(k);
      // rewrite what was listed already, as a heartbeat would, while the listing is still live
      if (listed.length <= 50) await kv.put(k, "again");
    }
    expect(listed).toHaveLength(n);
    expect(new Set(listed).size).toBe(n);
    expect([...listed].sort()).toEqual(Array.from({ length: n }, (_, i) => `a.k${i}`).sort());
  });
});
