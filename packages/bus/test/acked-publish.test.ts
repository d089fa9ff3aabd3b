import { afterAll, describe, expect } from "vitest";
import { natsTest as it } from "@mcpq/testkit";
import { headers as natsHeaders } from "@nats-io/transport-node";
import {
  AckedPublisher,
  connectBus,
  publishFailure,
  publishMayHaveLanded,
  type Bus,
  type PubAck,
} from "@mcpq/bus";

// AckedPublisher (packages/bus/src/acked-publish.ts) against a real nats-server: every publish
// settles exactly once, with the PubAck or with the error nats.js's js.publish would have given
// (publishFailure classifies both alike), and nothing stays awaited afterwards.
describe("AckedPublisher: JetStream publishes with PubAcks on one shared subscription", () => {
  let bus: Bus | undefined;
  afterAll(async () => bus?.close());

  const withId = (id: string) => {
    const h = natsHeaders();
    h.append("Nats-Msg-Id", id);
    return h;
  };

  it("resolves each publish with its own PubAck, in any order of arrival; a repeated message id is a duplicate", async ({
    nats,
  }) => {
    bus = await connectBus({ url: nats.url, name: "acked-publish-test" });
    await bus.jsm.streams.add({ name: "T_ACKED", subjects: ["t-acked.>"], storage: "memory" });
    const acks = await Promise.all(
      Array.from({ length: 200 }, (_, i) =>
        bus!.publisher.publish(`t-acked.${i % 7}`, `m${i}`, { headers: withId(`id-${i}`) }),
      ),
    );
    expect(acks.every((a) => a.stream === "T_ACKED" && !a.duplicate)).toBe(true);
    expect(new Set(acks.map((a) => a.seq)).size).toBe(200);
    // Each publish got the PubAck of its own message: read the message back at that sequence.
    const m = await bus.jsm.streams.getMessage("T_ACKED", { seq: acks[123]!.seq });
    expect(m?.string()).toBe("m123");
    const again: PubAck = await bus.publisher.publish("t-acked.0", "m0 again", {
      headers: withId("id-0"),
    });
    expect(again).toMatchObject({ duplicate: true, seq: acks[0]!.seq });
    expect(bus.publisher.inFlight).toBe(0);
  });

  it("a refusing stream rejects with the JetStream API error (stream_full); a subject no stream takes is broker_unavailable", async ({
    nats,
  }) => {
    bus ??= await connectBus({ url: nats.url, name: "acked-publish-test" });
    await bus.jsm.streams.add({
      name: "T_FULL",
      subjects: ["t-full.>"],
      storage: "memory",
      max_msgs: 2,
      discard: "new",
    });
    await bus.publisher.publish("t-full.a", "1");
    await bus.publisher.publish("t-full.a", "2");
    const full = await bus.publisher.publish("t-full.a", "3").catch((e: unknown) => e);
    expect(publishFailure(full).kind).toBe("stream_full");
    expect(publishMayHaveLanded(full)).toBe(false);
    const none = await bus.publisher.publish("t-nowhere.a", "x").catch((e: unknown) => e);
    expect(publishFailure(none).kind).toBe("broker_unavailable");
    expect(publishMayHaveLanded(none)).toBe(false);
    expect(bus.publisher.inFlight).toBe(0);
  });

  it("no PubAck within the timeout rejects with a TimeoutError (may have landed); a late reply is ignored", async ({
    nats,
  }) => {
    bus ??= await connectBus({ url: nats.url, name: "acked-publish-test" });
    // A core subscriber (not a stream) takes the subject: the server does not answer 503, and
    // nobody sends a PubAck until this test does, after the timeout.
    let replyTo = "";
    const sub = bus.nc.subscribe("t-silent.>", {
      callback: (_e, m) => {
        replyTo = m.reply ?? "";
      },
    });
    const publisher = new AckedPublisher(bus.nc, { inboxPrefix: "_INBOX", timeoutMs: 200 });
    const seen: unknown[] = [];
    publisher.send("t-silent.a", "x", undefined, (err, ack) => seen.push(err ?? ack));
    const err = await new Promise<unknown>((resolve) => {
      const t = setInterval(() => {
        if (seen.length > 0) {
          clearInterval(t);
          resolve(seen[0]);
        }
      }, 20);
    });
    expect((err as Error).name).toBe("TimeoutError");
    expect(publishFailure(err).kind).toBe("broker_unavailable");
    expect(publishMayHaveLanded(err)).toBe(true);
    expect(publisher.inFlight).toBe(0);
    // The PubAck arriving now settles nothing a second time.
    expect(replyTo).not.toBe("");
    bus.nc.publish(replyTo, JSON.stringify({ stream: "X", seq: 1 }));
    await bus.nc.flush();
    await bus.nc.flush();
    expect(seen).toHaveLength(1);
    sub.unsubscribe();
  });

  it("a timed-out publish is rejected before a timer of the same length fires: a caller bounding the wait by its deadline hears of it first", async ({
    nats,
  }) => {
    bus ??= await connectBus({ url: nats.url, name: "acked-publish-test" });
    const sub = bus.nc.subscribe("t-deadline.>", { callback: () => undefined });
    await bus.nc.flush();
    const publisher = new AckedPublisher(bus.nc, { inboxPrefix: "_INBOX", timeoutMs: 60_000 });
    const order: string[] = [];
    const TIMEOUT_MS = 600;
    const rejected = publisher
      .publish("t-deadline.a", "x", { timeoutMs: TIMEOUT_MS })
      .catch((e: unknown) => order.push(`publish ${(e as Error).name}`));
    const deadline = new Promise<void>((r) =>
      setTimeout(() => {
        order.push("deadline");
        r();
      }, TIMEOUT_MS),
    );
    await Promise.all([rejected, deadline]);
    expect(order).toEqual(["publish TimeoutError", "deadline"]);
    sub.unsubscribe();
  });

  it("a payload over the server's max_payload and a closed connection reject at once, and so do PubAcks awaited when it closes", async ({
    nats,
  }) => {
    const own = await connectBus({ url: nats.url, name: "acked-publish-closed" });
    await own.jsm.streams.add({ name: "T_BIG", subjects: ["t-big.>"], storage: "memory" });
    const big = new Uint8Array(own.nc.info!.max_payload + 1);
    await expect(own.publisher.publish("t-big.a", big)).rejects.toThrow();
    // Awaited when the connection closes: rejected then, not at its (hour-long) timeout.
    own.nc.subscribe("t-silent-close.>", { callback: () => undefined });
    await own.nc.flush();
    const patient = new AckedPublisher(own.nc, { inboxPrefix: "_INBOX", timeoutMs: 3_600_000 });
    const waiting = patient.publish("t-silent-close.a", "x").catch((e: unknown) => e);
    await own.nc.flush();
    expect(patient.inFlight).toBe(1);
    await own.nc.close();
    expect(publishFailure(await waiting).kind).toBe("broker_unavailable");
    expect(patient.inFlight).toBe(0);
    const closed = await own.publisher.publish("t-big.a", "x").catch((e: unknown) => e);
    expect(publishFailure(closed).kind).toBe("broker_unavailable");
    expect(own.publisher.inFlight).toBe(0);
  });
});
