/**
 * Starting the systems under test on free loopback ports:
 *  - the SDK reference server (src/reference-sdk-server.ts) as a child process, and the
 *    node:http floor (src/http-floor-server.ts) the same way
 *  - the mcpq stack: `node <repo>/services/cli/dist/main.js edge --port P` and
 *    `node <repo>/services/cli/dist/main.js worker --catalog example`, both with
 *    MCPQ_NATS_URL=nats://127.0.0.1:NATSPORT; readiness = GET /readyz → 200, then one
 *    successful `echo` tools/call (proves a worker is consuming).
 */
import { existsSync } from "node:fs";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { Pool } from "undici";
import { HttpMcpSession, parseMcpUrl } from "../client/http.js";
import { freePort, httpOk, startProcess, waitUntil, type Managed } from "./procs.js";
import type { LocalNats } from "@mcpq/nats-launcher";
import type { Target } from "./target.js";

export const LOADTESTS_DIR = resolve(fileURLToPath(new URL("../..", import.meta.url)));
export const REPO_DIR = resolve(LOADTESTS_DIR, "..");

export interface Running {
  target: Target;
  procs: Managed[];
  stop(): Promise<void>;
}

export async function startReferenceServer(
  logDir?: string,
  opts: { json?: boolean } = {},
): Promise<Running> {
  return startScriptServer(
    "sdk-reference",
    "reference-sdk-server.ts",
    logDir,
    opts.json ? ["--json"] : [],
  );
}

/** The node:http floor (src/http-floor-server.ts): what node:http alone costs per call. */
export function startFloorServer(logDir?: string): Promise<Running> {
  return startScriptServer("node-http-floor", "http-floor-server.ts", logDir, []);
}

async function startScriptServer(
  name: "sdk-reference" | "node-http-floor",
  file: string,
  logDir: string | undefined,
  extra: string[],
): Promise<Running> {
  const port = await freePort();
  const script = fileURLToPath(new URL(`../${file}`, import.meta.url));
  const args = [...process.execArgv, script, "--port", String(port), ...extra];
  const p = startProcess(name, process.execPath, args, {
    logFile: logDir ? join(logDir, `${name}.log`) : undefined,
  });
  const base = `http://127.0.0.1:${port}`;
  await waitUntil(name, () => httpOk(`${base}/readyz`), 30_000, p);
  const target: Target = { name, mcpUrl: `${base}/mcp`, proc: { pid: p.pid } };
  await waitForEcho(target, 15_000);
  return { target, procs: [p], stop: () => p.stop() };
}

export function mcpqCliPath(): string {
  return process.env.MCPQ_CLI ?? join(REPO_DIR, "services", "cli", "dist", "main.js");
}

/** Returns a reason string when the mcpq stack cannot be started (CLI not built). */
export function mcpqUnavailable(): string | null {
  const cli = mcpqCliPath();
  if (!existsSync(cli))
    return `mcpq CLI not found at ${cli} — build it first (pnpm -r build / tsc -b) or set MCPQ_CLI; mcpq workloads skipped`;
  return null;
}

/** How to shape one mcpq stack (defaults: one edge and one worker process, catalog `example`). */
export interface McpqShape {
  /** `mcpq edge --processes N` */
  edgeProcesses?: number;
  /** `mcpq worker --processes N` */
  workerProcesses?: number;
  /** worker catalog (default MCPQ_LT_CATALOG or `example`) */
  catalog?: string;
  /** settings for both services (e.g. MCPQ_WORKER_CONCURRENCY, MCPQ_MAX_CONNECTIONS) */
  env?: Record<string, string>;
  /** the log files' name suffix (several stacks in one results folder) */
  label?: string;
  /** node flags for both services (e.g. `--cpu-prof`, which NODE_OPTIONS does not allow) */
  nodeArgs?: string[];
}

export async function startMcpq(
  nats: LocalNats,
  logDir?: string,
  shape: McpqShape = {},
): Promise<Running> {
  const cli = mcpqCliPath();
  const port = await freePort();
  const env = { ...process.env, MCPQ_NATS_URL: nats.url, ...(shape.env ?? {}) };
  const procs = (n: number | undefined) => (n && n > 1 ? ["--processes", String(n)] : []);
  const extraEdge = [
    ...procs(shape.edgeProcesses),
    ...(process.env.MCPQ_LT_EDGE_ARGS ?? "").split(" ").filter(Boolean),
  ];
  const extraWorker = [
    ...procs(shape.workerProcesses),
    ...(process.env.MCPQ_LT_WORKER_ARGS ?? "").split(" ").filter(Boolean),
  ];
  const sfx = shape.label ? `-${shape.label}` : "";
  const edge = startProcess(
    "mcpq-edge",
    process.execPath,
    [...(shape.nodeArgs ?? []), cli, "edge", "--port", String(port), ...extraEdge],
    {
      env,
      cwd: REPO_DIR,
      logFile: logDir ? join(logDir, `mcpq-edge${sfx}.log`) : undefined,
    },
  );
  const worker = startProcess(
    "mcpq-worker",
    process.execPath,
    [
      ...(shape.nodeArgs ?? []),
      cli,
      "worker",
      "--catalog",
      shape.catalog ?? process.env.MCPQ_LT_CATALOG ?? "example",
      ...extraWorker,
    ],
    {
      env,
      cwd: REPO_DIR,
      logFile: logDir ? join(logDir, `mcpq-worker${sfx}.log`) : undefined,
    },
  );
  const base = `http://127.0.0.1:${port}`;
  const stopAll = async () => {
    await Promise.all([edge.stop(), worker.stop()]);
  };
  try {
    await waitUntil("mcpq edge /readyz", () => httpOk(`${base}/readyz`), 30_000, edge);
    if (worker.child.exitCode !== null)
      throw new Error(`mcpq worker exited (${worker.child.exitCode}); log: ${worker.logPath}`);
    const target: Target = {
      name: "mcpq",
      mcpUrl: `${base}${process.env.MCPQ_LT_MCP_PATH ?? "/mcp"}`,
      wsUrl: `ws://127.0.0.1:${port}${process.env.MCPQ_LT_WS_PATH ?? "/ws"}`,
      proc: {
        pid: edge.pid,
        metricsUrl: `${base}${process.env.MCPQ_LT_METRICS_PATH ?? "/metrics"}`,
      },
      siblings: { worker: worker.pid, ...(nats.pid !== undefined ? { nats: nats.pid } : {}) },
    };
    await waitForEcho(target, 30_000);
    return { target, procs: [edge, worker], stop: stopAll };
  } catch (e) {
    await stopAll();
    throw e;
  }
}

/** Poll until an `echo` tools/call round-trips OK on a fresh session. */
async function waitForEcho(target: Target, timeoutMs: number): Promise<void> {
  const ep = parseMcpUrl(target.mcpUrl, target.toolName);
  const pool = new Pool(ep.origin, { connections: 2 });
  let last = "";
  try {
    await waitUntil(
      `${target.name} echo round-trip`,
      async () => {
        let s: HttpMcpSession;
        try {
          s = await HttpMcpSession.open(ep, pool, 3000);
        } catch (e) {
          last = (e as Error).message;
          return false;
        }
        const o = await s.callEcho("readiness-check", 3000);
        await s.close();
        last = o.kind === "ok" ? "" : `${o.kind}:${o.code}`;
        return o.kind === "ok";
      },
      timeoutMs,
    ).catch((e: Error) => {
      throw new Error(`${e.message}${last ? ` (last: ${last})` : ""}`);
    });
  } finally {
    await pool.close();
  }
}
