// Fuzzing every transport against a real stack (issue 14, point 4). `make test` runs a small
// seeded slice; `make fuzz` runs MCPQ_FUZZ_INPUTS (default there 12,000) with a fresh seed and
// prints the figures. Asserted for every input: no crash, no hang, no 5xx (or a transport's
// equivalent: gRPC INTERNAL, WebSocket 1011), nothing on the wire that gives away internals
// (stack frames, source paths); and afterwards a correct `echo` on every transport.
import { mkdir, writeFile } from "node:fs/promises";
import { afterAll, describe, expect } from "vitest";
import { natsTest as it, type Stack } from "@mcpq/testkit";
import type { RunningEdge } from "@mcpq/edge";
import type { RunningWorker } from "@mcpq/worker";
import { stack } from "./support/stack.js";
import { connect as tcpConnect } from "node:net";
import {
  fuzzInputs,
  leaksInternals,
  rawHttpInputs,
  type FuzzInput,
} from "./support/fuzz-inputs.js";
import { grpcWire, tcpWire, wsWire, type Wire } from "./support/socket-client.js";

const TOTAL = Number(process.env["MCPQ_FUZZ_INPUTS"] ?? 500);
const SEED = Number(process.env["MCPQ_FUZZ_SEED"] ?? 20261201);
const REPORT = process.env["MCPQ_FUZZ_REPORT"];
/** Inputs sent on a socket before a sentinel echo must come back (the hang check). */
const BATCH = 25;
/** A sentinel not answered in this long is a hang (a detector, not a performance figure). */
const HANG_MS = 60_000;
/** Generous per-test bound for big runs (a hang is caught per sentinel long before). */
const TEST_TIMEOUT = { timeout: Math.max(120_000, TOTAL * 60) };
const TRANSPORTS = ["http", "sse", "ws", "tcp", "grpc"] as const;
/** Raw HTTP/1.1 requests with mutated request lines and headers (on top of TOTAL), a tenth as many. */
const RAW_HTTP = Math.ceil(TOTAL / 10);
type Transport = (typeof TRANSPORTS)[number];

const INIT = {
  protocolVersion: "2025-11-25",
  capabilities: {},
  clientInfo: { name: "fuzz", version: "1" },
};
const V2024 = {
  protocolVersion: "2024-11-05",
  capabilities: {},
  clientInfo: { name: "fuzz", version: "1" },
};

interface Tally {
  inputs: number;
  byInputClass: Record<string, number>;
  outcomes: Record<string, number>;
  leaks: string[];
  fatal: string[];
}
const tally = (): Tally => ({ inputs: 0, byInputClass: {}, outcomes: {}, leaks: [], fatal: [] });
const bump = (r: Record<string, number>, k: string) => void (r[k] = (r[k] ?? 0) + 1);

/** The class of one JSON-RPC reply: result, error:<code>, or what else came. */
function replyClass(text: string): string {
  try {
    const m = JSON.parse(text) as { result?: unknown; error?: { code?: unknown }; method?: string };
    if (m.error) return `error:${String(m.error.code)}`;
    if (m.result !== undefined) return "result";
    return m.method
      ? `server:${m.method.startsWith("notifications/") ? "notification" : "request"}`
      : "other";
  } catch {
    return "unparseable";
  }
}

describe(`fuzz: ${TOTAL} generated inputs over five transports (seed ${SEED})`, () => {
  let s: Stack<RunningEdge, RunningWorker>;
  const results = new Map<Transport | "http-raw", Tally>(
    [...TRANSPORTS, "http-raw" as const].map((t) => [t, tally()]),
  );
  afterAll(async () => {
    const figures = Object.fromEntries(
      [...results].map(([t, r]) => [
        t,
        { inputs: r.inputs, byInputClass: r.byInputClass, outcomes: r.outcomes },
      ]),
    );
    console.log(`fuzz figures (seed ${SEED}):\n${JSON.stringify(figures, null, 1)}`);
    if (REPORT) {
      await mkdir(REPORT.replace(/\/[^/]+$/, ""), { recursive: true });
      await writeFile(REPORT, JSON.stringify({ seed: SEED, total: TOTAL, figures }, null, 2));
    }
    await s?.close();
  });

  const inputs = fuzzInputs(TOTAL, SEED);
  const share = (t: Transport): FuzzInput[] =>
    inputs.filter((_x, i) => TRANSPORTS[i % TRANSPORTS.length] === t);
  const setup = async (nats: { url: string }) =>
    (s ??= await stack(nats as never, {
      edgeEnv: {
        // Limits stay on (they are part of what is fuzzed) except the tool rate, so the
        // sentinel echo is never refused for having been sent after a burst.
        MCPQ_TOOL_RATE_PER_SEC: "0",
        MCPQ_REQUEST_TIMEOUT_MS: "5000",
      },
    }));

  it(
    "Streamable HTTP: every POST answers below 500, without internals",
    TEST_TIMEOUT,
    async ({ nats }) => {
      const edge = (await setup(nats)).edges[0]!;
      const r = results.get("http")!;
      const init = await fetch(edge.url, {
        method: "POST",
        headers: {
          "content-type": "application/json",
          accept: "application/json, text/event-stream",
        },
        body: JSON.stringify({
          jsonrpc: "2.0",
          id: 0,
          method: "initialize",
          params: { ...INIT, protocolVersion: "2025-03-26" },
        }),
      });
      const sid = init.headers.get("mcp-session-id")!;
      await init.text();
      const headers = {
        "content-type": "application/json",
        accept: "application/json, text/event-stream",
        "mcp-session-id": sid,
        "mcp-protocol-version": "2025-03-26",
      };
      const work = share("http");
      // A few in parallel, as real clients send.
      const lanes = 4;
      await Promise.all(
        Array.from({ length: lanes }, async (_v, lane) => {
          for (let i = lane; i < work.length; i += lanes) {
            const input = work[i]!;
            r.inputs++;
            bump(r.byInputClass, input.cls);
            // Some inputs also get odd headers: no session, a bad version, JSON-only Accept.
            const h = { ...headers } as Record<string, string>;
            if (i % 17 === 0) delete h["mcp-session-id"];
            if (i % 19 === 0) h["mcp-protocol-version"] = "1999-01-01";
            if (i % 7 === 0) h.accept = "application/json";
            const res = await fetch(edge.url, {
              method: "POST",
              headers: h,
              body: input.text,
              signal: AbortSignal.timeout(HANG_MS),
            });
            const body = await res.text();
            bump(r.outcomes, `http:${res.status}`);
            // The JSON-RPC answers inside (a JSON body, or an SSE stream's data lines).
            const datas =
              body.startsWith("{") || body.startsWith("[")
                ? [body]
                : body
                    .split("\n")
                    .filter((l) => l.startsWith("data: {"))
                    .map((l) => l.slice(6));
            for (const d of datas) bump(r.outcomes, `reply:${replyClass(d)}`);
            if (res.status >= 500)
              r.fatal.push(`${res.status} for ${input.cls}: ${input.text.slice(0, 200)}`);
            if (leaksInternals(body)) r.leaks.push(body.slice(0, 300));
          }
        }),
      );
      expect(r.fatal).toEqual([]);
      expect(r.leaks).toEqual([]);
      const echo = await fetch(edge.url, {
        method: "POST",
        headers,
        body: JSON.stringify({
          jsonrpc: "2.0",
          id: "after",
          method: "tools/call",
          params: { name: "echo", arguments: { text: "still correct" } },
        }),
      });
      const text = await echo.text();
      expect(text).toContain('"text":"still correct"');
    },
  );

  it(
    "legacy HTTP+SSE: every POST /messages answers below 500; answers on the stream carry no internals",
    TEST_TIMEOUT,
    async ({ nats }) => {
      const edge = (await setup(nats)).edges[0]!;
      const r = results.get("sse")!;
      const ctl = new AbortController();
      const stream = await fetch(edge.sseUrl!, {
        headers: { accept: "text/event-stream" },
        signal: ctl.signal,
      });
      const received: string[] = [];
      let endpoint: string | undefined;
      const waiters = new Map<string, () => void>();
      // The endpoint event's data is not JSON: read the raw stream.
      const reader = (async () => {
        const decoder = new TextDecoder();
        let buf = "";
        for await (const chunk of stream.body!) {
          buf += decoder.decode(chunk, { stream: true });
          let i: number;
          while ((i = buf.indexOf("\n\n")) >= 0) {
            const block = buf.slice(0, i);
            buf = buf.slice(i + 2);
            const data = block
              .split("\n")
              .filter((l) => l.startsWith("data:"))
              .map((l) => l.slice(5).trim())
              .join("\n");
            if (block.includes("event: endpoint")) endpoint = data;
            else if (data) {
              received.push(data);
              const id = (JSON.parse(data) as { id?: unknown }).id;
              if (typeof id === "string") waiters.get(id)?.();
            }
          }
        }
      })().catch(() => undefined);
      const base = new URL(edge.sseUrl!).origin;
      const until = Date.now() + HANG_MS;
      while (!endpoint && Date.now() < until) await new Promise((res) => setTimeout(res, 10));
      expect(endpoint).toBeDefined();
      const post = (body: string) =>
        fetch(`${base}${endpoint}`, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body,
          signal: AbortSignal.timeout(HANG_MS),
        });
      const answered = (id: string) => new Promise<void>((resolve) => waiters.set(id, resolve));
      const a0 = answered("init");
      await (
        await post(
          JSON.stringify({ jsonrpc: "2.0", id: "init", method: "initialize", params: V2024 }),
        )
      ).text();
      await a0;
      await (
        await post(JSON.stringify({ jsonrpc: "2.0", method: "notifications/initialized" }))
      ).text();
      const work = share("sse");
      for (let i = 0; i < work.length; i++) {
        const input = work[i]!;
        r.inputs++;
        bump(r.byInputClass, input.cls);
        const res = await post(input.text);
        const body = await res.text();
        bump(r.outcomes, `http:${res.status}`);
        if (res.status >= 500)
          r.fatal.push(`${res.status} for ${input.cls}: ${input.text.slice(0, 200)}`);
        if (leaksInternals(body)) r.leaks.push(body);
        if (i % BATCH === BATCH - 1) {
          const id = `sentinel-${i}`;
          const got = answered(id);
          await (await post(JSON.stringify({ jsonrpc: "2.0", id, method: "ping" }))).text();
          await got;
        }
      }
      const done = answered("after");
      await (
        await post(
          JSON.stringify({
            jsonrpc: "2.0",
            id: "after",
            method: "tools/call",
            params: { name: "echo", arguments: { text: "still correct" } },
          }),
        )
      ).text();
      await done;
      for (const m of received) {
        bump(r.outcomes, `reply:${replyClass(m)}`);
        if (leaksInternals(m)) r.leaks.push(m.slice(0, 300));
      }
      expect(received.some((m) => m.includes('"text":"still correct"'))).toBe(true);
      ctl.abort();
      await reader;
      expect(r.fatal).toEqual([]);
      expect(r.leaks).toEqual([]);
    },
  );

  /** Runs one socket transport: batches of inputs, each followed by a sentinel that must come back. */
  async function socketRun(t: "ws" | "tcp" | "grpc", open: () => Promise<Wire>): Promise<void> {
    const r = results.get(t)!;
    interface Conn {
      wire: Wire;
      closed: boolean;
      ending: boolean;
      received: string[];
      waiters: Map<string, () => void>;
    }
    let conn!: Conn;
    const send = (text: string) => {
      try {
        conn.wire.send(text);
      } catch {
        // the connection is gone; the next sentinel sees it closed
      }
    };
    const roundTrip = (id: string, msg: unknown) =>
      new Promise<"answered" | "closed" | "hang">((resolve) => {
        const c = conn;
        if (c.closed) return resolve("closed");
        const timer = setTimeout(() => resolve("hang"), HANG_MS);
        c.waiters.set(id, () => {
          clearTimeout(timer);
          resolve(c.closed ? "closed" : "answered");
        });
        send(JSON.stringify(msg));
      });
    const connect = async () => {
      const c: Conn = {
        wire: await open(),
        closed: false,
        ending: false,
        received: [],
        waiters: new Map(),
      };
      conn = c;
      c.wire.onMessage((text) => {
        c.received.push(text);
        bump(r.outcomes, `reply:${replyClass(text)}`);
        if (leaksInternals(text)) r.leaks.push(text.slice(0, 300));
        try {
          const id = (JSON.parse(text) as { id?: unknown }).id;
          if (typeof id === "string") c.waiters.get(id)?.();
        } catch {
          // counted as unparseable above
        }
      });
      void c.wire.closed.then((why) => {
        c.closed = true;
        if (!c.ending)
          bump(r.outcomes, `closed:${String(why.code ?? why.reason?.slice(0, 80) ?? "")}`);
        if (why.code === 13 || why.code === 1011)
          r.fatal.push(`${t} closed with ${String(why.code)}`);
        for (const fn of c.waiters.values()) fn();
      });
      if (
        (await roundTrip("init", {
          jsonrpc: "2.0",
          id: "init",
          method: "initialize",
          params: INIT,
        })) !== "answered"
      ) {
        throw new Error(`${t}: initialize not answered`);
      }
      send(JSON.stringify({ jsonrpc: "2.0", method: "notifications/initialized" }));
    };
    await connect();
    const work = share(t);
    for (let i = 0; i < work.length; i++) {
      const input = work[i]!;
      r.inputs++;
      bump(r.byInputClass, input.cls);
      // TCP frames are lines: a line break inside an input would split it into several inputs.
      send(t === "tcp" ? input.text.replace(/[\r\n]/g, " ") : input.text);
      if (i % BATCH === BATCH - 1 || i === work.length - 1) {
        const id = `sentinel-${i}`;
        const outcome = await roundTrip(id, { jsonrpc: "2.0", id, method: "ping" });
        if (outcome === "hang") r.fatal.push(`${t}: sentinel ${id} not answered (hang)`);
        if (outcome !== "answered") await connect();
      }
    }
    expect(
      await roundTrip("after", {
        jsonrpc: "2.0",
        id: "after",
        method: "tools/call",
        params: { name: "echo", arguments: { text: "still correct" } },
      }),
    ).toBe("answered");
    expect(conn.received.find((m) => m.includes('"id":"after"'))).toContain(
      '"text":"still correct"',
    );
    conn.ending = true;
    conn.wire.close();
    expect(r.fatal).toEqual([]);
    expect(r.leaks).toEqual([]);
  }

  it(
    "WebSocket: no hang, no internal failure, no internals on the wire; echo still correct",
    TEST_TIMEOUT,
    async ({ nats }) => {
      const edge = (await setup(nats)).edges[0]!;
      await socketRun("ws", () => wsWire(edge.wsUrl!));
    },
  );

  it(
    "TCP: no hang, no internal failure, no internals on the wire; echo still correct",
    TEST_TIMEOUT,
    async ({ nats }) => {
      const edge = (await setup(nats)).edges[0]!;
      await socketRun("tcp", () => tcpWire(edge.tcpPort!));
    },
  );

  it(
    "gRPC: no hang, no INTERNAL status, no internals on the wire; echo still correct",
    TEST_TIMEOUT,
    async ({ nats }) => {
      const edge = (await setup(nats)).edges[0]!;
      await socketRun("grpc", () => Promise.resolve(grpcWire(edge.grpcPort!)));
    },
  );

  it(
    "raw HTTP/1.1: mutated request lines, headers and framing never get a 5xx or internals",
    TEST_TIMEOUT,
    async ({ nats }) => {
      const edge = (await setup(nats)).edges[0]!;
      const r = results.get("http-raw")!;
      const requests = rawHttpInputs(RAW_HTTP, SEED + 7, `127.0.0.1:${edge.port}`);
      const lanes = 8;
      await Promise.all(
        Array.from({ length: lanes }, async (_v, lane) => {
          for (let i = lane; i < requests.length; i += lanes) {
            r.inputs++;
            bump(r.byInputClass, "raw-http");
            const sock = tcpConnect({ host: "127.0.0.1", port: edge.port });
            sock.on("error", () => undefined);
            let answer = "";
            sock.setEncoding("latin1");
            sock.on("data", (d: string) => (answer += d));
            const gone = new Promise<void>((resolve) => sock.once("close", () => resolve()));
            sock.once("connect", () => sock.end(requests[i]!, "latin1"));
            let timer: NodeJS.Timeout | undefined;
            const hung = await Promise.race([
              gone.then(() => false),
              new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(true), HANG_MS))),
            ]);
            clearTimeout(timer);
            sock.destroy();
            if (hung)
              r.fatal.push(
                `raw http: no answer or close for ${JSON.stringify(requests[i]!.slice(0, 120))}`,
              );
            const status = /^HTTP\/1\.1 (\d{3})/.exec(answer)?.[1] ?? "none";
            bump(r.outcomes, `http:${status}`);
            if (status.startsWith("5"))
              r.fatal.push(`${status} for ${JSON.stringify(requests[i]!.slice(0, 200))}`);
            if (leaksInternals(answer)) r.leaks.push(answer.slice(0, 300));
          }
        }),
      );
      expect(r.fatal).toEqual([]);
      expect(r.leaks).toEqual([]);
    },
  );

  it("the edge is still healthy and connected to NATS", TEST_TIMEOUT, async ({ nats }) => {
    const edge = (await setup(nats)).edges[0]!;
    expect((await fetch(edge.url.replace("/mcp", "/healthz"))).status).toBe(200);
    expect(edge.runtime.bus.nc.isClosed()).toBe(false);
    const total = [...results.values()].reduce((n, r) => n + r.inputs, 0);
    expect(total).toBe(TOTAL + RAW_HTTP);
  });
});
