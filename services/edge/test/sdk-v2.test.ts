import { afterAll, describe, expect } from "vitest";
import {
  Client,
  StreamableHTTPClientTransport,
  type VersionNegotiationMode,
} from "@modelcontextprotocol/client";
import { StdioClientTransport } from "@modelcontextprotocol/client/stdio";
import { natsTest as it, eventually, type NatsHandle, type Stack } from "@mcpq/testkit";
import type { RunningEdge } from "@mcpq/edge";
import type { RunningWorker } from "@mcpq/worker";
import { stack } from "./support/stack.js";
import { featuresCatalog, startCatalogWorker } from "./support/features-worker.js";
import { CLI } from "./support/stdio-bridge.js";

/** Workers of one pool share the key that seals MRTR requestState, so a retry may reach either. */
const STATE_KEY = "sdk-v2-test-request-state-key-0123456789abcdef";

/**
 * A fetch that sends each POST to the next edge in turn: with two edges every request lands on
 * the edge the previous one did not, so an MRTR retry always reaches the other edge (and, through
 * the pool's shared consumer, whichever worker pulls it).
 */
function alternating(urls: string[]): { fetch: typeof fetch; hits: string[] } {
  let next = 0;
  const hits: string[] = [];
  return {
    hits,
    fetch: (input, init) => {
      const url = urls[next++ % urls.length]!;
      const method =
        (init?.headers as Record<string, string> | undefined)?.["mcp-method"] ??
        new Headers(init?.headers).get("mcp-method") ??
        "";
      hits.push(`${url} ${method}`);
      return fetch(url, init);
    },
  };
}

async function connect(urls: string[], mode: VersionNegotiationMode) {
  const client = new Client(
    { name: "sdk-v2-test", version: "1.0.0" },
    { capabilities: { elicitation: {}, sampling: {} }, versionNegotiation: { mode } },
  );
  client.setRequestHandler("elicitation/create", async () => ({
    action: "accept",
    content: { name: "Ada" },
  }));
  client.setRequestHandler("sampling/createMessage", async () => ({
    model: "test-model",
    role: "assistant",
    content: { type: "text", text: "Paris" },
  }));
  const routed = alternating(urls);
  await client.connect(
    new StreamableHTTPClientTransport(new URL(urls[0]!), { fetch: routed.fetch }),
  );
  return { client, hits: routed.hits };
}

const textOf = (r: { content?: unknown }) =>
  ((r.content as { type: string; text?: string }[] | undefined) ?? []).find(
    (c) => c.type === "text",
  )?.text;

/**
 * The official TypeScript SDK 2.x client (the 2026-07-28 era) against two edges and two workers
 * of one pool, in both negotiation modes: `auto` (probe server/discover, fall back to initialize)
 * and pinned to 2026-07-28 (modern only). Every call alternates edges.
 */
describe("official SDK 2.x client over Streamable HTTP, two edges and two workers", () => {
  let s: Stack<RunningEdge, RunningWorker> | undefined;
  let features: Awaited<ReturnType<typeof startCatalogWorker>> | undefined;
  const clients: Client[] = [];
  let ready: Promise<Stack<RunningEdge, RunningWorker>> | undefined;
  const setup = (nats: NatsHandle) =>
    (ready ??= (async () => {
      s = await stack(nats, {
        edges: 2,
        workers: [
          { catalogs: ["example", "conformance"] },
          { catalogs: ["example", "conformance"] },
        ],
        workerEnv: { MCPQ_REQUEST_STATE_KEYS: STATE_KEY },
      });
      features = await startCatalogWorker(nats.url, [featuresCatalog], "features");
      for (const e of s.edges) {
        await eventually(
          () =>
            e.runtime.catalog.workerCount === 3 &&
            e.runtime.catalog.toolPool("touch_resource") !== undefined,
          { what: "three workers on every edge" },
        );
      }
      return s;
    })());

  afterAll(async () => {
    await Promise.allSettled(clients.map((c) => c.close()));
    await features?.close();
    await s?.close();
  });

  for (const [label, mode] of [
    ["auto", "auto"],
    ["pinned 2026-07-28", { pin: "2026-07-28" }],
  ] as [string, VersionNegotiationMode][]) {
    it(`${label}: discover, list, call, read, prompt; elicitation and sampling MRTR retried on the other edge; listen gets a worker's update`, async ({
      nats,
    }) => {
      const st = await setup(nats);
      const urls = st.edges.map((e) => e.url);
      const { client, hits } = await connect(urls, mode);
      clients.push(client);
      expect(client.getProtocolEra()).toBe("modern");
      expect(client.getNegotiatedProtocolVersion()).toBe("2026-07-28");
      expect(client.getServerVersion()?.name).toBe("mcpq");
      expect(client.getServerCapabilities()?.tools).toBeDefined();

      const tools = await client.listTools();
      expect(tools.tools.map((t) => t.name)).toEqual(
        expect.arrayContaining(["echo", "test_input_required_result_elicitation"]),
      );
      expect(textOf(await client.callTool({ name: "echo", arguments: { text: label } }))).toBe(
        label,
      );
      const resources = await client.listResources();
      const first = resources.resources[0]!;
      const read = await client.readResource({ uri: first.uri });
      expect(read.contents.length).toBeGreaterThan(0);
      const prompt = await client.getPrompt({ name: "test_simple_prompt" });
      expect(prompt.messages.length).toBeGreaterThan(0);

      // MRTR: the first round answers input_required, the client fulfils it and retries.
      hits.length = 0;
      expect(
        textOf(
          await client.callTool({ name: "test_input_required_result_elicitation", arguments: {} }),
        ),
      ).toBe("Hello, Ada!");
      const rounds = hits.filter((h) => h.endsWith(" tools/call"));
      expect(rounds).toHaveLength(2);
      expect(rounds[0]!.split(" ")[0]).not.toBe(rounds[1]!.split(" ")[0]);
      hits.length = 0;
      expect(
        textOf(
          await client.callTool({ name: "test_input_required_result_sampling", arguments: {} }),
        ),
      ).toBe("LLM response: Paris");
      const samplingRounds = hits.filter((h) => h.endsWith(" tools/call"));
      expect(samplingRounds).toHaveLength(2);
      expect(samplingRounds[0]!.split(" ")[0]).not.toBe(samplingRounds[1]!.split(" ")[0]);

      // subscriptions/listen on one edge; the update is published by a worker behind the other.
      const updates: string[] = [];
      client.setNotificationHandler(
        "notifications/resources/updated",
        (n) => void updates.push(n.params.uri),
      );
      const uri = `test://sdk-v2/${label.replace(/\W/g, "-")}`;
      const sub = await client.listen({ resourceSubscriptions: [uri] });
      expect(sub.honoredFilter.resourceSubscriptions).toEqual([uri]);
      expect(textOf(await client.callTool({ name: "touch_resource", arguments: { uri } }))).toBe(
        `touched ${uri}`,
      );
      await eventually(() => updates.includes(uri), {
        what: "resource update on the listen stream",
      });
      await sub.close();
      expect(await sub.closed).toBe("local");
    });
  }

  it("over the stdio bridge (`mcpq stdio --url A --url B`), auto negotiation finds the 2026-07-28 era: calls and an MRTR round trip", async ({
    nats,
  }) => {
    const st = await setup(nats);
    const client = new Client(
      { name: "sdk-v2-stdio", version: "1.0.0" },
      { capabilities: { elicitation: {} }, versionNegotiation: { mode: "auto" } },
    );
    client.setRequestHandler("elicitation/create", async () => ({
      action: "accept",
      content: { name: "Grace" },
    }));
    clients.push(client);
    await client.connect(
      new StdioClientTransport({
        command: process.execPath,
        args: [CLI, "stdio", "--url", st.edges[0]!.url, "--url", st.edges[1]!.url],
        stderr: "pipe",
      }),
    );
    expect(client.getProtocolEra()).toBe("modern");
    expect(textOf(await client.callTool({ name: "echo", arguments: { text: "stdio" } }))).toBe(
      "stdio",
    );
    expect(
      textOf(
        await client.callTool({ name: "test_input_required_result_elicitation", arguments: {} }),
      ),
    ).toBe("Hello, Grace!");
  });

  it("the 1.32.2-era default (legacy negotiation) still gets a 2025 session from the same edges", async ({
    nats,
  }) => {
    const st = await setup(nats);
    const client = new Client({ name: "sdk-v2-legacy", version: "1.0.0" }, {});
    clients.push(client);
    const transport = new StreamableHTTPClientTransport(new URL(st.edges[1]!.url));
    await client.connect(transport);
    expect(client.getProtocolEra()).toBe("legacy");
    expect(transport.sessionId).toBeTruthy();
    expect(textOf(await client.callTool({ name: "echo", arguments: { text: "legacy" } }))).toBe(
      "legacy",
    );
  });
});
