import { spawn, type ChildProcess } from "node:child_process";
import { fileURLToPath } from "node:url";
import { describe, expect } from "vitest";
import { natsTest as it, eventually } from "@mcpq/testkit";
import { connectBus, STREAMS, H, subjects } from "@mcpq/bus";
import { factories } from "../../edge/test/support/stack.js";

const CLI = fileURLToPath(new URL("../../cli/dist/main.js", import.meta.url));
const ACK_WAIT = "1500";

/** Reads an SSE response body to the end and returns its JSON messages. */
async function sseMessages(res: Response): Promise<Record<string, unknown>[]> {
  const text = await res.text();
  return text
    .split("\n\n")
    .map((ev) =>
      ev
        .split("\n")
        .find((l) => l.startsWith("data: "))
        ?.slice(6),
    )
    .filter((d): d is string => Boolean(d && d.trim()))
    .map((d) => JSON.parse(d) as Record<string, unknown>);
}

describe("a worker killed mid-call", () => {
  it("the request is redelivered to another worker and the client receives exactly one response", async ({
    nats,
  }) => {
    const env = { MCPQ_ACK_WAIT_MS: ACK_WAIT, MCPQ_REGISTRY_TTL_MS: "3000" };
    const edge = await factories.startEdge(nats.url, env);
    // Worker A is a real process so it can die with SIGKILL, acks and all.
    let progressed = 0;
    const a: ChildProcess = spawn(process.execPath, [CLI, "worker", "--catalog", "example"], {
      env: { ...process.env, ...env, MCPQ_NATS_URL: nats.url, MCPQ_LOG_LEVEL: "warn" },
      stdio: "ignore",
    });
    try {
      await eventually(() => edge.runtime.catalog.workerCount === 1, {
        what: "worker A registered",
        timeoutMs: 20_000,
      });
      const headers = {
        "content-type": "application/json",
        accept: "application/json, text/event-stream",
      };
      const initRes = await fetch(edge.url, {
        method: "POST",
        headers,
        body: JSON.stringify({
          jsonrpc: "2.0",
          id: 0,
          method: "initialize",
          params: {
            protocolVersion: "2025-11-25",
            capabilities: {},
            clientInfo: { name: "t", version: "1" },
          },
        }),
      });
      const sid = initRes.headers.get("mcp-session-id")!;

      // Watch the session's outbound subject to see progress and count responses published.
      const bus = await connectBus({ url: nats.url, name: "observer", provision: false });
      let responsesPublished = 0;
      bus.nc.subscribe(subjects.sessionOutbound(sid), {
        callback: (_e, m) => {
          if (m.headers?.get(H.kind) === "response") responsesPublished++;
          else progressed++;
        },
      });

      const call = fetch(edge.url, {
        method: "POST",
        headers: { ...headers, "mcp-session-id": sid, "mcp-protocol-version": "2025-11-25" },
        body: JSON.stringify({
          jsonrpc: "2.0",
          id: 42,
          method: "tools/call",
          params: {
            name: "countdown",
            arguments: { steps: 12, delayMs: 150 },
            _meta: { progressToken: "p1" },
          },
        }),
      });
      await eventually(() => progressed >= 2, { what: "worker A made progress" });
      // B is alive before A dies: the pool keeps a live worker, so the edge waits for the
      // redelivery (with no live worker left it would answer -32012 at once: worker-death.test.ts).
      const b = await factories.startWorker(nats.url, ["example"], env);
      a.kill("SIGKILL");
      const messages = await sseMessages(await call);
      const responses = messages.filter((m) => m["id"] === 42);
      expect(responses).toHaveLength(1);
      expect(responses[0]).toMatchObject({
        result: { content: [{ type: "text", text: "done after 12 steps" }] },
      });
      // The request left the work queue only after worker B acked it (after publishing).
      await eventually(
        async () => (await bus.jsm.streams.info(STREAMS.requests)).state.messages === 0,
        { what: "request acked" },
      );
      // A flush round trip: everything the server sent this observer before it has arrived.
      await bus.nc.flush();
      expect(responsesPublished).toBe(1);
      await bus.close();
      await b.close();
    } finally {
      a.kill("SIGKILL");
      await edge.close();
    }
  });
});
