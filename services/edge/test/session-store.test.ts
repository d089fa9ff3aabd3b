// Two edges changing one session at once: the record in KV is the single source of truth, and
// every change is a compare-and-set on it, so neither edge's stale copy undoes the other's work.
import { afterEach, describe, expect } from "vitest";
import { natsTest as it } from "@mcpq/testkit";
import { connectBus, isWrongLastSequence, type Bus } from "@mcpq/bus";
import { SessionStore, type SessionRecord } from "../src/core/session-store.js";

const buses: Bus[] = [];
afterEach(async () => {
  for (const b of buses.splice(0)) await b.nc.close();
});

async function twoEdges(url: string): Promise<[SessionStore, SessionStore]> {
  const a = await connectBus({ url, name: "edge-a" });
  const b = await connectBus({ url, name: "edge-b" });
  buses.push(a, b);
  // a long cache window: each edge keeps working from its own copy unless told otherwise
  return [new SessionStore(a, { cacheMs: 60_000 }), new SessionStore(b, { cacheMs: 60_000 })];
}

function newRecord(): SessionRecord {
  const now = Date.now();
  return {
    id: SessionStore.newId(),
    principal: "alice",
    protocolVersion: "2025-11-25",
    clientInfo: { name: "t", version: "1" },
    clientCapabilities: {},
    initialized: true,
    createdAt: now,
    lastSeenAt: now,
  };
}

describe("session store", () => {
  it("changes from two edges holding stale copies both take effect (setLevel on one, subscribe on the other)", async ({
    nats,
  }) => {
    const [a, b] = await twoEdges(nats.url);
    const rec = newRecord();
    await a.create(rec);
    const onA = (await a.get(rec.id, "alice"))!;
    const onB = (await b.get(rec.id, "alice"))!;
    // both copies are now stale with respect to what the other edge writes next
    await a.update(onA, (r) => {
      r.logLevel = "error";
    });
    await b.subscribe(onB, "mcpq://example/readme");
    await a.subscribe(onA, "mcpq://example/other");

    const fresh = await new SessionStore(buses[0]!, { cacheMs: 0 }).get(rec.id, "alice");
    expect(fresh?.logLevel).toBe("error");
    expect(fresh?.subscriptions?.sort()).toEqual(["mcpq://example/other", "mcpq://example/readme"]);
    // the caller's copy reflects the stored record after its own change
    expect(onB.logLevel).toBe("error");
    expect(onA.subscriptions?.sort()).toEqual(["mcpq://example/other", "mcpq://example/readme"]);
  });

  it("a touch with a stale copy neither undoes a change nor brings back an ended session", async ({
    nats,
  }) => {
    const [a, b] = await twoEdges(nats.url);
    const rec = newRecord();
    await a.create(rec);
    const stale = (await b.get(rec.id, "alice"))!;
    await a.update((await a.get(rec.id, "alice"))!, (r) => {
      r.logLevel = "critical";
    });
    await b.touch(stale);
    expect((await new SessionStore(buses[0]!, { cacheMs: 0 }).get(rec.id, "alice"))?.logLevel).toBe(
      "critical",
    );

    await a.delete((await a.get(rec.id, "alice"))!);
    await b.touch(stale);
    expect(await new SessionStore(buses[1]!, { cacheMs: 0 }).get(rec.id, "alice")).toBeNull();
    await expect(
      b.update(stale, (r) => {
        r.logLevel = "info";
      }),
    ).rejects.toMatchObject({ name: "Fault", kind: "session_gone" });
  });

  it("concurrent changes from two edges all land; the broker's lost-race refusal is recognised", async ({
    nats,
  }) => {
    const [a, b] = await twoEdges(nats.url);
    const rec = newRecord();
    await a.create(rec);
    // The refusal a compare-and-set gets when another write landed first, from the real server.
    const kv = buses[0]!.kv.sessions;
    const e = (await kv.get(`s.${rec.id}`))!;
    await kv.update(`s.${rec.id}`, JSON.stringify(rec), e.revision);
    const stale = await kv.update(`s.${rec.id}`, JSON.stringify(rec), e.revision).then(
      () => undefined,
      (err: unknown) => err,
    );
    expect(isWrongLastSequence(stale)).toBe(true);
    expect(isWrongLastSequence(new Error("maximum messages exceeded"))).toBe(false);

    // Twelve subscribes at once through two edges: the losers of each race retry.
    const onA = (await a.get(rec.id, "alice"))!;
    const onB = (await b.get(rec.id, "alice"))!;
    const uris = Array.from({ length: 12 }, (_, i) => `mcpq://example/r${i}`);
    await Promise.all(uris.map((u, i) => (i % 2 ? a.subscribe(onA, u) : b.subscribe(onB, u))));
    const fresh = await new SessionStore(buses[0]!, { cacheMs: 0 }).get(rec.id, "alice");
    expect(fresh?.subscriptions?.sort()).toEqual([...uris].sort());
  });
});
