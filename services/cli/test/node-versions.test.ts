import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { fileURLToPath } from "node:url";
import { afterAll, describe, expect } from "vitest";
import WebSocket from "ws";
import { Client as SdkClient } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport as SdkHttpTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { Client, StreamableHTTPClientTransport } from "@modelcontextprotocol/client";
import { natsTest as it, eventually, freePort } from "@mcpq/testkit";
import { stopChildren } from "./support/children.js";

const CLI = fileURLToPath(new URL("../dist/main.js", import.meta.url));
const NODE_SH = fileURLToPath(new URL("../../../scripts/node.sh", import.meta.url));

/**
 * The Node majors mcpq supports (package.json engines >= 20.19; the Docker image runs 22) other
 * than the one running the suite. Each gets an edge and a worker of its own, built code as
 * deployed, against a real nats-server. Node 22 and 24 changed `ServerResponse` corking so that
 * `cork(); write(a); end(b)` drops `b`: every tool answer that came within the SSE head hold was
 * lost there while the suite, on Node 20, passed.
 */
const SUPPORTED = [20, 22, 24];
const OWN = Number(process.versions.node.split(".")[0]);

/** A Node binary of `major` (`scripts/node.sh`: the system node, or node@major from npm, cached). */
function nodeOf(major: number): string {
  return execFileSync("bash", [NODE_SH, String(major)], {
    encoding: "utf8",
    stdio: ["ignore", "pipe", "inherit"],
  }).trim();
}

const textOf = (r: object) =>
  (
    ((r as { content?: unknown }).content as { type: string; text?: string }[] | undefined) ?? []
  ).find((c) => c.type === "text")?.text;

/** One JSON-RPC exchange per message over a WebSocket: resolves with the answers by id. */
async function overWebSocket(url: string, messages: Record<string, unknown>[]) {
  const ws = new WebSocket(url, "mcp");
  const answers = new Map<unknown, Record<string, unknown>>();
  await new Promise<void>((resolve, reject) => {
    ws.once("error", reject);
    ws.once("open", () => {
      ws.on("message", (data: Buffer) => {
        const m = JSON.parse(data.toString()) as Record<string, unknown>;
        if (m["id"] !== undefined) answers.set(m["id"], m);
        if (answers.size === messages.filter((x) => x["id"] !== undefined).length) resolve();
      });
      // One at a time: the call goes after the initialize answer.
      void (async () => {
        for (const m of messages) {
          ws.send(JSON.stringify(m));
          if (m["id"] !== undefined)
            await eventually(async () => answers.has(m["id"]), {
              timeoutMs: 20_000,
              what: `the WebSocket answer to ${String(m["method"])}`,
            });
        }
      })().catch(reject);
    });
  });
  ws.close();
  return answers;
}

for (const major of SUPPORTED.filter((m) => m !== OWN)) {
  describe(`an edge and a worker on Node ${major}`, () => {
    const procs: ChildProcess[] = [];
    afterAll(() => stopChildren(procs));

    it(
      "serve the official SDK clients of both eras over Streamable HTTP and WebSocket",
      {
        timeout: 120_000,
      },
      async ({ nats }) => {
        const bin = nodeOf(major);
        expect(execFileSync(bin, ["-v"], { encoding: "utf8" })).toMatch(
          new RegExp(`^v${major}\\.`),
        );
        const [http, tcp, grpc, workerMetrics] = [
          await freePort(),
          await freePort(),
          await freePort(),
          await freePort(),
        ];
        const env = { ...process.env, MCPQ_NATS_URL: nats.url, MCPQ_LOG_LEVEL: "warn" };
        const start = (args: string[], extra: Record<string, string>) => {
          const child = spawn(bin, [CLI, ...args], {
            env: { ...env, ...extra },
            stdio: ["ignore", "ignore", "inherit"],
          });
          procs.push(child);
        };
        start(["worker", "--catalog", "example"], {
          MCPQ_WORKER_METRICS_PORT: String(workerMetrics),
        });
        start(["edge", "--port", String(http)], {
          MCPQ_TCP_PORT: String(tcp),
          MCPQ_GRPC_PORT: String(grpc),
        });
        const base = `http://127.0.0.1:${http}`;
        // Ready means the broker's streams and consumers are in place and a worker is registered.
        await eventually(
          async () => (await fetch(`${base}/readyz`).catch(() => undefined))?.status === 200,
          { timeoutMs: 40_000, what: `an edge on Node ${major} ready with its worker` },
        );

        // 2025-11-25 (SDK 1.32.2): an answer within the SSE head hold and one after it.
        const legacy = new SdkClient({ name: "node-versions", version: "1.0.0" });
        await legacy.connect(new SdkHttpTransport(new URL(`${base}/mcp`)));
        try {
          expect((await legacy.listTools()).tools.map((t) => t.name)).toContain("echo");
          const quick = await legacy.callTool({ name: "echo", arguments: { text: `on ${major}` } });
          expect(textOf(quick)).toBe(`on ${major}`);
          const later = await legacy.callTool({ name: "sleep", arguments: { ms: 120 } });
          expect(textOf(later)).toBe("slept 120 ms");
        } finally {
          await legacy.close();
        }

        // 2026-07-28 (SDK 2.x pinned to it: server/discover, stateless requests).
        const modern = new Client(
          { name: "node-versions", version: "1.0.0" },
          { versionNegotiation: { mode: { pin: "2026-07-28" } } },
        );
        await modern.connect(new StreamableHTTPClientTransport(new URL(`${base}/mcp`)));
        try {
          const r = await modern.callTool({ name: "echo", arguments: { text: "modern" } });
          expect(textOf(r)).toBe("modern");
        } finally {
          await modern.close();
        }

        // WebSocket: initialize, then a call.
        const answers = await overWebSocket(`ws://127.0.0.1:${http}/ws`, [
          {
            jsonrpc: "2.0",
            id: 1,
            method: "initialize",
            params: {
              protocolVersion: "2025-11-25",
              capabilities: {},
              clientInfo: { name: "node-versions", version: "1.0.0" },
            },
          },
          { jsonrpc: "2.0", method: "notifications/initialized" },
          {
            jsonrpc: "2.0",
            id: 2,
            method: "tools/call",
            params: { name: "echo", arguments: { text: "ws" } },
          },
        ]);
        expect(answers.get(1)?.["result"]).toMatchObject({ protocolVersion: "2025-11-25" });
        expect(answers.get(2)?.["result"]).toMatchObject({
          content: [{ type: "text", text: "ws" }],
        });
      },
    );
  });
}
