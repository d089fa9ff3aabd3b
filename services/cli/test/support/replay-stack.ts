import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { loadEdgeConfig, startEdge, type RunningEdge } from "@mcpq/edge";
import { CATALOGS, loadWorkerConfig, startWorker, type RunningWorker } from "@mcpq/worker";
import { defineCatalog, defineTool, z, type CatalogDefinition } from "@mcpq/worker-sdk";

const TEST_ENV = { MCPQ_LOG_LEVEL: "silent", MCPQ_REGISTRY_TTL_MS: "6000" };

/** Test-local tools: a login whose password must be redacted, and two side-effecting tools. */
export const shopCatalog = defineCatalog({
  name: "shop",
  tools: [
    defineTool({
      name: "login",
      description: "Logs a user in (the password is redacted from recordings).",
      input: z.object({ user: z.string(), password: z.string() }),
      handler: ({ user }) => `welcome ${user}`,
    }),
    defineTool({
      name: "delete_item",
      description: "Deletes an item (destructive).",
      input: z.object({ id: z.string() }),
      annotations: { destructiveHint: true },
      handler: ({ id }) => `deleted ${id}`,
    }),
    defineTool({
      name: "charge",
      description: "Charges a card (not replayable).",
      input: z.object({ cents: z.number() }),
      replayable: false,
      handler: ({ cents }) => `charged ${cents}`,
    }),
  ],
});

/** The candidate deployment: the example catalog, except that echo now uppercases. */
export const candidateCatalogs = (): CatalogDefinition[] => {
  const example = CATALOGS["example"]!;
  const upper = defineTool({
    ...example.tools!.find((t) => t.name === "echo")!,
    handler: ({ text }: { text: string }) => text.toUpperCase(),
  });
  const tools = (example.tools ?? []).map((t) => (t.name === "echo" ? upper : t));
  return [{ ...example, tools }, shopCatalog];
};

export function startTestEdge(natsUrl: string): Promise<RunningEdge> {
  return startEdge(loadEdgeConfig({ MCPQ_NATS_URL: natsUrl, MCPQ_PORT: "0", ...TEST_ENV }));
}

/** A worker through the production path (env -> config -> recorder), optionally with test-local catalogs. */
export function startTestWorker(
  natsUrl: string,
  pool: string,
  env: Record<string, string> = {},
  catalogs?: CatalogDefinition[],
): Promise<RunningWorker> {
  const config = loadWorkerConfig({
    MCPQ_NATS_URL: natsUrl,
    MCPQ_CATALOGS: "example",
    MCPQ_POOL: pool,
    ...TEST_ENV,
    ...env,
  });
  return startWorker(config, undefined, catalogs ? { catalogs } : {});
}

export async function sdkClient(url: string) {
  const client = new Client({ name: "mcpq-replay-test", version: "1.0.0" }, { capabilities: {} });
  const transport = new StreamableHTTPClientTransport(new URL(url));
  await client.connect(transport);
  return { client, transport };
}

const CLI = fileURLToPath(new URL("../../dist/main.js", import.meta.url));

/** Runs the built CLI (`node services/cli/dist/main.js ...`) as a child process. */
/** Runs the built CLI; `onStderr` sees all stderr so far each time more arrives (to wait on progress). */
export function runCli(
  args: string[],
  env: Record<string, string>,
  onStderr?: (stderrSoFar: string) => void,
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], {
      env: { ...process.env, ...env },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    child.stderr.on("data", (d: Buffer) => {
      stderr += d.toString();
      onStderr?.(stderr);
    });
    child.once("error", reject);
    child.once("exit", (code) => resolve({ code, stdout, stderr }));
  });
}
