import { describe, expect, afterAll } from "vitest";
import { natsTest as it, eventually, type Stack } from "@mcpq/testkit";
import type { RunningEdge } from "@mcpq/edge";
import type { RunningWorker } from "@mcpq/worker";
import { stack } from "./support/stack.js";
import { rawInitialize } from "./support/raw-init.js";
import { readSse, type SseEvent } from "./support/raw-sse.js";

const VERSION = "2025-11-25";
/** An SSE response read event by event; `abort()` drops the connection like a lost network. */
function sseReader(res: Response, ctl: AbortController) {
  return Object.assign(readSse(res), { abort: () => ctl.abort() });
}

async function session(url: string) {
  const { sessionId: id, headers } = await rawInitialize(url, {
    protocolVersion: VERSION,
    clientName: "resume",
  });
  return {
    id,
    headers,
    /** POSTs a countdown and returns its SSE stream. */
    async countdown(at: string, rid: number, steps: number, delayMs: number, token: string) {
      const ctl = new AbortController();
      const res = await fetch(at, {
        method: "POST",
        headers,
        signal: ctl.signal,
        body: JSON.stringify({
          jsonrpc: "2.0",
          id: rid,
          method: "tools/call",
          params: {
            name: "countdown",
            arguments: { steps, delayMs },
            _meta: { progressToken: token },
          },
        }),
      });
      expect(res.headers.get("content-type")).toMatch(/^text\/event-stream/);
      return sseReader(res, ctl);
    },
    /** GET with Last-Event-ID on `at`. */
    async resume(at: string, lastEventId: string, sessionId = id) {
      const ctl = new AbortController();
      const res = await fetch(at, {
        headers: {
          ...headers,
          "mcp-session-id": sessionId,
          accept: "text/event-stream",
          "last-event-id": lastEventId,
        },
        signal: ctl.signal,
      });
      return { status: res.status, stream: res.ok ? sseReader(res, ctl) : undefined };
    },
  };
}

const progressOf = (events: SseEvent[], token: string) =>
  events
    .filter(
      (e) =>
        e.message?.method === "notifications/progress" &&
        (e.message.params as { progressToken: string }).progressToken === token,
    )
    .map((e) => (e.message!.params as { progress: number }).progress);
const responsesTo = (events: SseEvent[], id: number) =>
  events.filter((e) => e.message && e.message.id === id && e.message.method === undefined);

describe("resumability: GET + Last-Event-ID replays exactly the missed events of that stream", () => {
  let s: Stack<RunningEdge, RunningWorker>;
  afterAll(() => s?.close());

  it("every event id encodes its stream and is unique across the session's streams; POST streams start with a priming event", async ({
    nats,
  }) => {
    s = await stack(nats, { edges: 2 });
    const ses = await session(s.edges[0]!.url);
    const [a, b] = await Promise.all([
      ses.countdown(s.edges[0]!.url, 1, 3, 10, "a"),
      ses.countdown(s.edges[0]!.url, 2, 3, 10, "b"),
    ]);
    await Promise.all([a.done, b.done]);
    for (const st of [a, b]) {
      expect(st.events[0]).toEqual({
        id: expect.stringMatching(/^[0-9a-f]+_0$/),
        retry: expect.any(Number),
      });
      const stream = st.events[0]!.id!.split("_")[0];
      for (const e of st.events) expect(e.id?.split("_")[0]).toBe(stream);
    }
    const ids = [...a.events, ...b.events].map((e) => e.id);
    expect(new Set(ids).size).toBe(ids.length);
    expect(a.events[0]!.id!.split("_")[0]).not.toBe(b.events[0]!.id!.split("_")[0]);
  });

  it("a stream dropped mid-call resumes on another edge: the rest of its events, none of another stream's", async () => {
    const ses = await session(s.edges[0]!.url);
    const a = await ses.countdown(s.edges[0]!.url, 1, 8, 60, "a");
    const b = await ses.countdown(s.edges[0]!.url, 2, 8, 60, "b");
    await eventually(() => progressOf(a.events, "a").length >= 3, {
      what: "three progress events on stream a",
    });
    a.abort();
    await a.done;
    const seen = progressOf(a.events, "a");
    const r = await ses.resume(s.edges[1]!.url, a.lastId!);
    expect(r.status).toBe(200);
    await r.stream!.done; // the resumed request stream ends with its response
    expect([...seen, ...progressOf(r.stream!.events, "a")]).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
    expect(responsesTo(r.stream!.events, 1)).toHaveLength(1);
    expect(progressOf(r.stream!.events, "b")).toEqual([]);
    expect(responsesTo(r.stream!.events, 2)).toEqual([]);
    await b.done;
    expect(progressOf(b.events, "b")).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
  });

  it("resuming on the same edge while the original request still waits there delivers its response to the reader", async () => {
    const ses = await session(s.edges[0]!.url);
    const a = await ses.countdown(s.edges[0]!.url, 5, 6, 80, "same");
    await eventually(() => progressOf(a.events, "same").length >= 2, {
      what: "two progress events",
    });
    a.abort();
    await a.done;
    const r = await ses.resume(s.edges[0]!.url, a.lastId!);
    await r.stream!.done;
    expect([...progressOf(a.events, "same"), ...progressOf(r.stream!.events, "same")]).toEqual([
      1, 2, 3, 4, 5, 6,
    ]);
    expect(responsesTo(r.stream!.events, 5)).toHaveLength(1);
  });

  it("the priming id replays a stream from its start; a finished stream replays to its response and ends", async () => {
    const ses = await session(s.edges[0]!.url);
    const a = await ses.countdown(s.edges[0]!.url, 3, 4, 5, "p");
    await a.done;
    const priming = a.events[0]!.id!;
    const r = await ses.resume(s.edges[1]!.url, priming);
    await r.stream!.done;
    expect(progressOf(r.stream!.events, "p")).toEqual([1, 2, 3, 4]);
    expect(responsesTo(r.stream!.events, 3)).toHaveLength(1);
    // From the second progress event on: only what followed it.
    const second = a.events.find(
      (e) => (e.message?.params as { progress?: number } | undefined)?.progress === 2,
    )!.id!;
    const r2 = await ses.resume(s.edges[1]!.url, second);
    await r2.stream!.done;
    expect(progressOf(r2.stream!.events, "p")).toEqual([3, 4]);
  });

  it("an event id the window no longer holds replays everything retained (duplicates over loss)", async () => {
    const ses = await session(s.edges[0]!.url);
    const a = await ses.countdown(s.edges[0]!.url, 4, 3, 5, "gone");
    await a.done;
    const stream = a.events[0]!.id!.split("_")[0]!;
    const r = await ses.resume(s.edges[1]!.url, `${stream}_neverIssued`);
    await r.stream!.done;
    expect(progressOf(r.stream!.events, "gone")).toEqual([1, 2, 3]);
    expect(responsesTo(r.stream!.events, 4)).toHaveLength(1);
  });

  it("another session's event id replays nothing of that session (streams are per session)", async () => {
    const victim = await session(s.edges[0]!.url);
    const a = await victim.countdown(s.edges[0]!.url, 9, 3, 5, "secret");
    await a.done;
    const thief = await session(s.edges[0]!.url);
    const r = await thief.resume(s.edges[1]!.url, a.events[0]!.id!);
    expect(r.status).toBe(200);
    // Nothing of the victim's stream arrives; end the read after a ping on the thief's session proves liveness.
    const ping = await fetch(s.edges[1]!.url, {
      method: "POST",
      headers: thief.headers,
      body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: "ping" }),
    });
    expect(ping.status).toBe(200);
    await ping.text();
    r.stream!.abort();
    await r.stream!.done;
    expect(r.stream!.events.filter((e) => e.message)).toEqual([]);
    // And the victim's session id with the thief's principal would be a 404 (same principal here: anonymous).
    expect((await thief.resume(s.edges[1]!.url, a.events[0]!.id!, "x".repeat(43))).status).toBe(
      404,
    );
  });

  it("a standalone GET stream resumes too: resource updates missed while away are replayed", async () => {
    const ses = await session(s.edges[0]!.url);
    const sub = await fetch(s.edges[0]!.url, {
      method: "POST",
      headers: ses.headers,
      body: JSON.stringify({
        jsonrpc: "2.0",
        id: 1,
        method: "resources/subscribe",
        params: { uri: "mcpq://example/readme" },
      }),
    });
    await sub.text();
    const ctl = new AbortController();
    const g = sseReader(
      await fetch(s.edges[0]!.url, {
        headers: { ...ses.headers, accept: "text/event-stream" },
        signal: ctl.signal,
      }),
      ctl,
    );
    await eventually(() => g.events.length >= 1, { what: "priming event" });
    const notify = () =>
      s.edges[0]!.runtime.bus.nc.publish(
        "mcpq.evt.resources.updated",
        JSON.stringify({ uri: "mcpq://example/readme" }),
      );
    notify();
    await eventually(() => g.events.filter((e) => e.message).length === 1, {
      what: "first update live",
    });
    g.abort();
    await g.done;
    notify();
    notify();
    // All three updates are retained on the session's standalone stream before we come back.
    const subject = `mcpq.out.${ses.id}.g`;
    await eventually(
      async () => {
        const info = await s.edges[0]!.runtime.bus.jsm.streams.info("MCPQ_OUT", {
          subjects_filter: subject,
        });
        return info.state.subjects?.[subject] === 3;
      },
      { what: "three updates retained" },
    );
    const r = await ses.resume(s.edges[1]!.url, g.lastId!);
    await eventually(() => r.stream!.events.filter((e) => e.message).length >= 2, {
      what: "missed updates replayed",
    });
    r.stream!.abort();
    await r.stream!.done;
    expect(r.stream!.events.filter((e) => e.message).map((e) => e.message!.method)).toEqual([
      "notifications/resources/updated",
      "notifications/resources/updated",
    ]);
  });
});
