import { describe, expect, afterAll, afterEach } from "vitest";
import { natsTest as it, eventually, type NatsHandle, type Stack } from "@mcpq/testkit";
import { H, outboundHeaders, subjects, type Msg } from "@mcpq/bus";
import type { RunningEdge } from "@mcpq/edge";
import type { RunningWorker } from "@mcpq/worker";
import { factories, sdkClient, stack } from "./support/stack.js";
import { featuresCatalog, observed, startCatalogWorker } from "./support/features-worker.js";
import { startHoldableRelay } from "./support/tcp-proxy.js";
import { RpcClient, wsWire, type Message } from "./support/socket-client.js";
import { metricValue } from "./support/raw-http.js";
import { rawClient, readSse, type RawClient, type SseEvent } from "./support/raw-sse.js";

/** Short, but long enough for the worker to have started the call before it passes. */
const TIMEOUT_MS = 1_000;

/** A socket client's call to a tool that runs until cancelled, with a short deadline (id "late"). */
const lateCall = (c: RpcClient, marker: string) =>
  c.call(
    "tools/call",
    { name: "wait_for_cancel", arguments: { marker }, _meta: { "io.mcpq/timeoutMs": TIMEOUT_MS } },
    "late",
  );

const workerStarted = (marker: string) =>
  eventually(() => observed.started.has(marker), { what: "the worker started the call" });

/**
 * The edge answers -32001 at a request's deadline; the worker, aborted at the same deadline,
 * answers too. Its answer is delayed here (a relay between the worker and NATS is held) so it
 * certainly comes after the edge's, the worst case for a client that resumes: whatever the
 * replay holds, the client must see exactly one response per request id, on socket connections
 * and on Streamable HTTP POST streams (resumed with GET + Last-Event-ID) alike.
 */
describe("late worker answers after the edge's deadline answer: exactly one response per id, also across a resume", () => {
  let s: Stack<RunningEdge, RunningWorker> | undefined;
  let relay: Awaited<ReturnType<typeof startHoldableRelay>> | undefined;
  let worker: Awaited<ReturnType<typeof startCatalogWorker>> | undefined;
  // A test that failed while holding the worker's relay must not starve the next ones.
  afterEach(() => relay?.release());
  afterAll(async () => {
    await worker?.close();
    await relay?.close();
    await s?.close();
  });

  const setUp = async (nats: NatsHandle) => {
    if (!s) {
      s = await stack(nats, { edges: 2, workers: [] });
      relay = await startHoldableRelay(nats.port);
      worker = await startCatalogWorker(
        `nats://127.0.0.1:${relay.port}`,
        [featuresCatalog],
        "late-features",
      );
      for (const e of s.edges)
        await eventually(() => e.runtime.catalog.toolPool("wait_for_cancel"), {
          what: "tool registered",
        });
    }
    return { s, relay: relay! };
  };

  /** Watches a session's outbound subject on NATS (what the edges and the worker publish). */
  const watch = (edge: RunningEdge, sessionId: string) => {
    const seen: Msg[] = [];
    const sub = edge.runtime.bus.nc.subscribe(subjects.sessionOutbound(sessionId), {
      callback: (_e, m) => void seen.push(m),
    });
    const responses = () => seen.filter((m) => m.headers?.get(H.kind) === "response");
    const byWorker = () => responses().find((m) => m.headers?.get(H.request));
    const byEdge = () => responses().find((m) => !m.headers?.get(H.request));
    return {
      /** A worker's answer carries the internal request id; the edge's own answers do not. */
      workerAnswered: () => byWorker() !== undefined,
      edgeAnswered: () => byEdge() !== undefined,
      /** The event ids they were published with. */
      workerEventId: () => byWorker()?.headers?.get(H.event),
      edgeEventId: () => byEdge()?.headers?.get(H.event),
      stop: () => sub.unsubscribe(),
    };
  };

  /** Publishes a notification on `stream` the client has not seen: it is replayed after everything before it. */
  const fence = async (edge: RunningEdge, sessionId: string, stream: string, tag: string) => {
    const json = JSON.stringify({
      jsonrpc: "2.0",
      method: "notifications/message",
      params: { level: "info", data: tag },
    });
    await edge.runtime.bus.js.publish(subjects.outbound(sessionId, stream), json, {
      headers: outboundHeaders("notification", `${stream}_${tag}`),
    });
  };
  const fenced = (c: RpcClient, tag: string) =>
    c.notifications("notifications/message").some((m) => m.params?.["data"] === tag);
  const answersTo = (c: RpcClient, id: string): Message[] =>
    c.received.filter((m) => m.id === id && m.method === undefined);

  /** A Streamable HTTP stream read in the background, event by event. */
  const reading = (res: Response) => {
    const r = readSse(res);
    return Object.assign(r, {
      fenced: (tag: string) =>
        r.events.some(
          (e) =>
            e.message?.method === "notifications/message" && e.message.params?.["data"] === tag,
        ),
    });
  };

  /** Responses (not requests or notifications) to the JSON-RPC id `id` among SSE events. */
  const sseAnswers = (events: SseEvent[], id: string) =>
    events.filter((e) => e.message?.id === id && e.message.method === undefined);
  const call = (c: RawClient, url: string, marker: string, signal?: AbortSignal) =>
    c.post(
      url,
      {
        jsonrpc: "2.0",
        id: "late",
        method: "tools/call",
        params: {
          name: "wait_for_cancel",
          arguments: { marker },
          _meta: { "io.mcpq/timeoutMs": TIMEOUT_MS },
        },
      },
      {},
      signal,
    );
  /**
   * Runs `body` with an extra edge whose publishes can be held (`edgeRelay.hold()`; it still
   * receives), serving the test catalog; stops it afterwards.
   */
  const withHoldableEdge = async (
    nats: NatsHandle,
    body: (edge: RunningEdge, edgeRelay: { hold(): void; release(): void }) => Promise<void>,
  ) => {
    const edgeRelay = await startHoldableRelay(nats.port);
    const edge = await factories.startEdge(`nats://127.0.0.1:${edgeRelay.port}`, {});
    try {
      await eventually(() => edge.runtime.catalog.toolPool("wait_for_cancel"), {
        what: "tool registered",
      });
      await body(edge, edgeRelay);
    } finally {
      edgeRelay.release();
      await edge.close();
      await edgeRelay.close();
    }
  };
  /** A resume after a stream's response, on any edge: 405, nothing can follow it (no second answer). */
  const expectEnded = async (c: RawClient, url: string, lastId: string) => {
    const res = await c.get(url, lastId);
    expect(res.status).toBe(405);
    expect(await res.json()).toMatchObject({ error: { data: { lastEventId: lastId } } });
  };

  it("the connection is open at the deadline: the edge answers; resuming on another edge replays no second answer", async ({
    nats,
  }) => {
    const { s, relay } = await setUp(nats);
    const [edge0, edge1] = [s.edges[0]!, s.edges[1]!];
    const before = await metricValue(
      edge0.runtime.registry,
      "mcpq_edge_late_responses_dropped_total",
    );
    const c = new RpcClient(await wsWire(edge0.wsUrl!));
    await c.initialize();
    const w = watch(edge0, c.sessionId!);
    const oldStream = c.streamId!;

    const answer = lateCall(c, "open-late");
    await workerStarted("open-late");
    relay.hold();
    expect((await answer).error?.code).toBe(-32001);
    relay.release();
    await eventually(() => w.workerAnswered(), { what: "the worker's late answer published" });
    // The live connection never shows it...
    await eventually(
      async () =>
        (await metricValue(edge0.runtime.registry, "mcpq_edge_late_responses_dropped_total")) >
        before,
      { what: "the late answer dropped on the live connection" },
    );
    expect(answersTo(c, "late")).toHaveLength(1);

    // ...and neither does a resume on another edge, replaying the old stream after what it saw.
    c.wire.close();
    const r = await c.resume(await wsWire(edge1.wsUrl!));
    expect(r.result).toMatchObject({ sessionId: c.sessionId });
    await fence(edge0, c.sessionId!, oldStream, "fence-open");
    await eventually(() => fenced(c, "fence-open"), { what: "the replay reached the fence" });
    expect(answersTo(c, "late")).toHaveLength(1);
    w.stop();
    c.wire.close();
  });

  it("the connection is gone at the deadline: the resume on the same edge gets one answer, not the edge's and the worker's", async ({
    nats,
  }) => {
    const { s, relay } = await setUp(nats);
    const edge0 = s.edges[0]!;
    const c = new RpcClient(await wsWire(edge0.wsUrl!));
    await c.initialize();
    const w = watch(edge0, c.sessionId!);
    const oldStream = c.streamId!;

    void lateCall(c, "gone-late");
    await workerStarted("gone-late");
    relay.hold();
    c.wire.close();
    // The edge answers at the deadline with nobody connected (kept for the resume)...
    await eventually(() => w.edgeAnswered(), { what: "the edge's deadline answer published" });
    relay.release();
    // ...and the worker's answer follows.
    await eventually(() => w.workerAnswered(), { what: "the worker's late answer published" });

    const r = await c.resume(await wsWire(edge0.wsUrl!));
    expect(r.result).toMatchObject({ sessionId: c.sessionId });
    await fence(edge0, c.sessionId!, oldStream, "fence-gone");
    await eventually(() => fenced(c, "fence-gone") && answersTo(c, "late").length > 0, {
      what: "the replay reached the fence",
    });
    const answers = answersTo(c, "late");
    expect(answers).toHaveLength(1);
    expect(answers[0]!.error?.code).toBe(-32001);
    w.stop();
    c.wire.close();
  });

  it("the worker's answer is retained before the edge's claim: it is the one response, the edge sends none", async ({
    nats,
  }) => {
    await setUp(nats);
    // An edge whose publishes can be held (it still receives): its claim comes second.
    const edgeRelay = await startHoldableRelay(nats.port);
    const edge = await factories.startEdge(`nats://127.0.0.1:${edgeRelay.port}`, {});
    try {
      await eventually(() => edge.runtime.catalog.toolPool("wait_for_cancel"), {
        what: "tool registered",
      });
      const before = await metricValue(
        edge.runtime.registry,
        "mcpq_edge_late_responses_dropped_total",
      );
      const c = new RpcClient(await wsWire(edge.wsUrl!));
      await c.initialize();
      const w = watch(edge, c.sessionId!);
      const answer = lateCall(c, "claim-lost");
      await workerStarted("claim-lost");
      edgeRelay.hold();
      await eventually(() => w.workerAnswered(), { what: "the worker's answer retained" });
      edgeRelay.release();
      expect((await answer).error?.code).toBe(-32001);

      await fence(edge, c.sessionId!, c.streamId!, "fence-lost");
      await eventually(() => fenced(c, "fence-lost"), { what: "the fence delivered" });
      expect(answersTo(c, "late")).toHaveLength(1);
      expect(w.edgeAnswered()).toBe(false);
      expect(
        await metricValue(edge.runtime.registry, "mcpq_edge_late_responses_dropped_total"),
      ).toBe(before);
      w.stop();
      c.wire.close();
    } finally {
      await edge.close();
      await edgeRelay.close();
    }
  });
  it("HTTP: the POST stream is open at the deadline: its one response is the edge's -32001, with an event id; resuming on another edge replays no second answer", async ({
    nats,
  }) => {
    const { s, relay } = await setUp(nats);
    const [edge0, edge1] = [s.edges[0]!, s.edges[1]!];
    const before = await metricValue(
      edge0.runtime.registry,
      "mcpq_edge_late_responses_dropped_total",
    );
    const c = await rawClient(edge0.url);
    const w = watch(edge0, c.sessionId);

    const post = reading(await call(c, edge0.url, "http-open-late"));
    await workerStarted("http-open-late");
    relay.hold();
    // The edge answers at the deadline, on the open stream; the worker's answer comes after.
    await post.done;
    relay.release();
    await eventually(() => w.workerAnswered(), { what: "the worker's late answer published" });

    // The client resumes the stream after the last event it saw (its answer), on another edge.
    await expectEnded(c, edge1.url, post.lastId!);
    expect(sseAnswers(post.events, "late")).toHaveLength(1);
    const [answer] = sseAnswers(post.events, "late");
    expect(answer!.id).toBe(post.lastId);
    expect(answer!.message!.error?.code).toBe(-32001);
    // It is the edge's answer, retained under its own event id (so a resume skips it)...
    expect(answer!.id).toBe(w.edgeEventId());
    // ...and the worker's late answer, not retained, is dropped live as well.
    await eventually(
      async () =>
        (await metricValue(edge0.runtime.registry, "mcpq_edge_late_responses_dropped_total")) >
        before,
      { what: "the late answer dropped live" },
    );
    w.stop();
  });

  it("HTTP: the POST stream is gone at the deadline: resuming it on another edge gets the edge's -32001, not the worker's late answer", async ({
    nats,
  }) => {
    const { s, relay } = await setUp(nats);
    const [edge0, edge1] = [s.edges[0]!, s.edges[1]!];
    const c = await rawClient(edge0.url);
    const w = watch(edge0, c.sessionId);

    const ctl = new AbortController();
    const post = reading(await call(c, edge0.url, "http-gone-late", ctl.signal));
    await workerStarted("http-gone-late");
    await eventually(() => post.lastId, { what: "the priming event" });
    relay.hold();
    ctl.abort();
    // The edge answers at the deadline with nobody reading (kept for the resume)...
    await eventually(() => w.edgeAnswered(), { what: "the edge's deadline answer published" });
    relay.release();
    // ...and the worker's answer follows.
    await eventually(() => w.workerAnswered(), { what: "the worker's late answer published" });

    const resumed = reading(await c.get(edge1.url, post.lastId));
    // A resumed request stream ends with its response.
    await resumed.done;
    expect(sseAnswers(post.events, "late")).toHaveLength(0);
    const answers = sseAnswers(resumed.events, "late");
    expect(answers).toHaveLength(1);
    expect(answers[0]!.message!.error?.code).toBe(-32001);
    expect(answers[0]!.id).toBe(w.edgeEventId());
    w.stop();
  });

  it("HTTP: the worker's answer is retained before the edge's claim: it is the POST stream's one response, the edge sends none", async ({
    nats,
  }) => {
    const { relay } = await setUp(nats);
    // An edge whose publishes can be held: its claim comes second.
    await withHoldableEdge(nats, async (edge, edgeRelay) => {
      const registry = edge.runtime.registry;
      const lateBefore = await metricValue(registry, "mcpq_edge_late_responses_dropped_total");
      const timeoutsBefore = await metricValue(registry, "mcpq_edge_errors_total", {
        code: "-32001",
      });
      const c = await rawClient(edge.url);
      const w = watch(edge, c.sessionId);

      const post = reading(await call(c, edge.url, "http-claim-lost"));
      await workerStarted("http-claim-lost");
      // The worker's answer and the edge's claim both wait until the deadline has passed; then
      // the worker's answer is stored first.
      relay.hold();
      edgeRelay.hold();
      await eventually(
        async () =>
          (await metricValue(registry, "mcpq_edge_errors_total", { code: "-32001" })) >
          timeoutsBefore,
        { what: "the edge's deadline passed" },
      );
      relay.release();
      await eventually(() => w.workerAnswered(), { what: "the worker's answer retained" });
      edgeRelay.release();
      await post.done;

      const answers = sseAnswers(post.events, "late");
      expect(answers).toHaveLength(1);
      expect(answers[0]!.id).toBe(w.workerEventId());
      expect(w.edgeAnswered()).toBe(false);
      expect(await metricValue(registry, "mcpq_edge_late_responses_dropped_total")).toBe(
        lateBefore,
      );

      // Resuming after it replays nothing more.
      await expectEnded(c, edge.url, answers[0]!.id!);
      w.stop();
    });
  });

  it("HTTP: the edge's claim cannot reach NATS at the deadline: its -32001 goes out unretained, under an id that a resume on any edge honours, though the worker's answer was retained", async ({
    nats,
  }) => {
    const { s, relay } = await setUp(nats);
    // An edge whose publishes can be held: its claim never gets a PubAck.
    await withHoldableEdge(nats, async (edge, edgeRelay) => {
      const c = await rawClient(edge.url);
      const w = watch(s.edges[0]!, c.sessionId);

      const post = reading(await call(c, edge.url, "http-claim-unknown"));
      await workerStarted("http-claim-unknown");
      relay.hold();
      edgeRelay.hold();
      // The edge answers at the deadline without a claim (its publish times out)...
      await post.done;
      relay.release();
      // ...and the worker's answer is retained after all.
      await eventually(() => w.workerAnswered(), { what: "the worker's answer retained" });
      edgeRelay.release();

      const answers = sseAnswers(post.events, "late");
      expect(answers).toHaveLength(1);
      expect(answers[0]!.message!.error?.code).toBe(-32001);
      // The answer's event id is the stream's last one: the id a client resumes after (SDK
      // 1.32.2 resumes a POST stream after an error response; an answer without an id would
      // make it resume from the priming event, and replay the worker's answer too).
      expect(post.lastId).toBe(answers[0]!.id);
      expect(answers[0]!.id).not.toBe(w.workerEventId());

      // Resuming after it, on an edge that never saw the request, replays no second answer.
      await expectEnded(c, s.edges[0]!.url, post.lastId!);
      w.stop();
    });
  });

  it("SDK 1.32.2 resumes a POST stream after an error response as if none had come: that GET gets a 405 at once and no stream is left open", async ({
    nats,
  }) => {
    const { s } = await setUp(nats);
    const edge = s.edges[0]!;
    // Every GET the client sends with Last-Event-ID, and the status it got.
    const resumes: { lastEventId: string; status: number }[] = [];
    const recording: typeof fetch = async (input, init) => {
      const res = await fetch(input, init);
      const last = new Headers(init?.headers).get("last-event-id");
      if (init?.method === "GET" && last) resumes.push({ lastEventId: last, status: res.status });
      return res;
    };
    const { client } = await sdkClient(edge.url, { fetch: recording });
    const errors: string[] = [];
    client.onerror = (e) => errors.push(e.message);
    const streams = () => metricValue(edge.runtime.registry, "mcpq_edge_open_streams");
    await eventually(async () => (await streams()) === 1, { what: "the standalone GET open" });
    for (let i = 1; i <= 3; i++) {
      // The worker's answer is a JSON-RPC error (its result breaks the tool's outputSchema).
      await expect(
        client.callTool({ name: "structured_bad", arguments: {} }),
      ).rejects.toMatchObject({ code: -32603 });
      await eventually(() => resumes.length === i, { what: `the client's resume ${i}` });
    }
    // An error the edge answers itself (not retained) likewise.
    await expect(client.listTools({ cursor: "not-a-cursor" })).rejects.toMatchObject({
      code: -32602,
    });
    await eventually(() => resumes.length === 4, { what: "the client's resume 4" });
    expect(resumes.map((r) => r.status)).toEqual([405, 405, 405, 405]);
    // Only the session's standalone GET stays open (without the 405, one more per error).
    await eventually(async () => (await streams()) === 1, { what: "no resumed stream held" });
    expect(errors).toEqual([]);
    await client.close();
  });
});
