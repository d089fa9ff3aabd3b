import { spawn, type ChildProcess } from "node:child_process";
import { fileURLToPath } from "node:url";
import { describe, expect } from "vitest";
import { McpError } from "@modelcontextprotocol/sdk/types.js";
import { natsTest as it, eventually } from "@mcpq/testkit";
import { factories, sdkClient } from "../../edge/test/support/stack.js";

const CLI = fileURLToPath(new URL("../../cli/dist/main.js", import.meta.url));
/** Far beyond anything the test waits for: an answer at the deadline would be the bug. */
const DEADLINE_MS = 120_000;

describe("fast worker-death handling", () => {
  it("when the pool's last worker is killed -9, calls it held get -32012 long before their deadline, and new calls are refused -32012", async ({
    nats,
  }) => {
    // The registry TTL is long, so only the liveness beats can tell the edge the worker is gone.
    const env = { MCPQ_REGISTRY_TTL_MS: "600000" };
    const edge = await factories.startEdge(nats.url, env);
    const w: ChildProcess = spawn(process.execPath, [CLI, "worker", "--catalog", "example"], {
      env: {
        ...process.env,
        ...env,
        MCPQ_NATS_URL: nats.url,
        MCPQ_LOG_LEVEL: "warn",
        MCPQ_WORKER_LIVENESS_MS: "200",
      },
      stdio: "ignore",
    });
    try {
      await eventually(() => edge.runtime.catalog.workerCount === 1, {
        what: "worker registered",
        timeoutMs: 20_000,
      });
      const { client } = await sdkClient(edge.url);
      let progressed = 0;
      const calls = Array.from({ length: 4 }, (_, i) =>
        client
          .callTool(
            {
              name: "countdown",
              arguments: { steps: 400, delayMs: 250 },
              _meta: { "io.mcpq/timeoutMs": DEADLINE_MS, progressToken: `p${i}` },
            },
            undefined,
            { timeout: DEADLINE_MS * 2, onprogress: () => progressed++ },
          )
          .then(
            () => "result",
            (err: unknown) => (err instanceof McpError ? err.code : String(err)),
          ),
      );
      await eventually(() => progressed >= 8, {
        what: "the worker runs every call",
        timeoutMs: 30_000,
      });
      w.kill("SIGKILL");
      // Settled by the edge with the retryable "unavailable" error, not a timeout at the deadline.
      expect(await Promise.all(calls)).toEqual([-32012, -32012, -32012, -32012]);
      const after = await client
        .callTool({ name: "countdown", arguments: { steps: 1, delayMs: 1 } })
        .then(
          () => "result",
          (err: unknown) => String(err),
        );
      expect(after).toMatch(/503|-32012|no live worker/);
      // A worker that comes back is used at once (liveness says alive before the registry TTL matters).
      const back = await factories.startWorker(nats.url, ["example"], env);
      await eventually(
        async () =>
          (await client.callTool({ name: "echo", arguments: { text: "back" } })).isError !== true,
        { what: "calls work again", timeoutMs: 30_000 },
      );
      await back.close();
      await client.close();
    } finally {
      w.kill("SIGKILL");
      await edge.close();
    }
  });
});
