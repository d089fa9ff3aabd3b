import { spawn, type ChildProcess } from "node:child_process";
import { fileURLToPath } from "node:url";
import { connect as tcpConnect } from "node:net";
import { startLocalNats, type LocalNats } from "@mcpq/nats-launcher";
import { UsageError, listFlag, parseFlags, portFlag } from "../args.js";
import type { CliEnv } from "../env.js";

const MAIN = fileURLToPath(new URL("../main.js", import.meta.url));
const DEFAULT_CATALOGS = "example,conformance";

export const USAGE = `mcpq dev — NATS + one edge + one worker per catalog, in the foreground (Ctrl-C stops all)

Usage: mcpq dev [--port N] [--catalog NAME[,NAME]] [--store DIR]

  --port N         the edge's HTTP port (default MCPQ_PORT or 8080; 0 = random)
  --catalog NAMES  catalogs to serve (default MCPQ_CATALOGS or ${DEFAULT_CATALOGS}); each gets its own
                   worker in a pool named after it, so \`mcpq worker --catalog NAME\` adds capacity
                   (with MCPQ_POOL set: one worker serving all of them in that pool)
  --store DIR      JetStream store of the nats-server it starts (default .mcpq/nats)

Uses the NATS server at MCPQ_NATS_URL when one answers there, otherwise starts nats-server on
that (loopback) port. \`make dev PORT=8081 CATALOGS=example\` passes --port and --catalog.`;

/**
 * `mcpq dev`: NATS (unless one already answers at MCPQ_NATS_URL) + one edge + one worker per
 * catalog, as child processes in the foreground. Every setting is checked before anything
 * starts; Ctrl-C or SIGTERM stops every child, and one child's exit stops the rest.
 */
export async function run(argv: string[], env: Readonly<CliEnv>): Promise<void> {
  const v = parseFlags(
    argv,
    { port: { type: "string" }, catalog: { type: "string" }, store: { type: "string" } },
    USAGE,
  );
  if (!v) return;
  const port = v.port !== undefined ? portFlag("--port", v.port) : (env.MCPQ_PORT ?? 8080);
  const catalogs =
    v.catalog !== undefined
      ? listFlag("--catalog", v.catalog)
      : listFlag("MCPQ_CATALOGS", env.MCPQ_CATALOGS ?? DEFAULT_CATALOGS);
  const storeDir = v.store ?? ".mcpq/nats";

  // The children parse the same environment; check it here so a mistake is reported once, first.
  const [{ loadEdgeConfig }, { loadWorkerConfig, resolveCatalogs }] = await Promise.all([
    import("@mcpq/edge"),
    import("@mcpq/worker"),
  ]);
  loadEdgeConfig(process.env, { port });
  loadWorkerConfig(process.env, { catalogs });
  try {
    resolveCatalogs(catalogs);
  } catch (err) {
    throw new UsageError(
      `${v.catalog !== undefined ? "--catalog" : "MCPQ_CATALOGS"}: ${err instanceof Error ? err.message : String(err)}`,
    );
  }

  const natsUrl = env.MCPQ_NATS_URL;
  let nats: LocalNats | undefined;
  const target = natsTarget(natsUrl);
  if (!target || (await reachable(target.host, target.port))) {
    console.error(`mcpq dev: using the NATS server already at ${natsUrl}`);
  } else if (!target.loopback) {
    throw new Error(
      `no NATS server answers at MCPQ_NATS_URL=${JSON.stringify(natsUrl)}; mcpq dev starts one only on a loopback address (e.g. nats://127.0.0.1:4222)`,
    );
  } else {
    nats = await startLocalNats({
      port: target.port,
      storeDir,
      bin: process.env["MCPQ_NATS_SERVER_BIN"],
      searchPath: process.env["PATH"],
    });
    console.error(`mcpq dev: nats-server with JetStream on ${nats.url} (store ${storeDir})`);
  }
  const childEnv = { ...process.env, MCPQ_NATS_URL: natsUrl };
  const children: ChildProcess[] = [];
  let stopping = false;
  const stop = async (code: number) => {
    if (stopping) return;
    stopping = true;
    for (const c of children) c.kill("SIGTERM");
    await Promise.all(
      children.map((c) =>
        c.exitCode === null && c.signalCode === null
          ? new Promise((r) => c.once("exit", r))
          : undefined,
      ),
    );
    await nats?.stop();
    process.exit(code);
  };
  const start = (args: string[]) => {
    const c = spawn(process.execPath, [MAIN, ...args], { stdio: "inherit", env: childEnv });
    children.push(c);
    c.once("exit", (code, signal) => {
      if (!stopping) {
        console.error(
          `mcpq dev: '${args.join(" ")}' exited (${signal ?? code}); stopping everything`,
        );
        void stop(1);
      }
    });
  };
  process.once("SIGINT", () => void stop(0));
  process.once("SIGTERM", () => void stop(0));
  // One worker per catalog: each catalog is its own pool (named after it), so a worker started
  // by hand with `mcpq worker --catalog NAME` joins that pool and adds capacity for its tools.
  if (env.MCPQ_POOL) start(["worker", "--catalog", catalogs.join(",")]);
  else for (const c of catalogs) start(["worker", "--catalog", c]);
  start(["edge", "--port", String(port)]);
  const pools = env.MCPQ_POOL ? `pool ${env.MCPQ_POOL}` : `pools ${catalogs.join(", ")}`;
  const where =
    port === 0
      ? 'on a random port (see the edge\'s "edge listening" line)'
      : `http://127.0.0.1:${port}/mcp`;
  console.error(`mcpq dev: MCP endpoint ${where}; workers in ${pools} (Ctrl-C stops all)`);
}

/** Host and port of a NATS URL (of a cluster URL list: its first, where dev probes and may start one). */
function natsTarget(
  natsUrls: string,
): { host: string; port: number; loopback: boolean } | undefined {
  const natsUrl = natsUrls.split(",")[0]!.trim();
  const u = new URL(
    /^[a-z]+:\/\//i.test(natsUrl) ? natsUrl.replace(/^[a-z]+:/i, "http:") : `http://${natsUrl}`,
  );
  const host = u.hostname.replace(/^\[|\]$/g, "");
  return {
    host,
    port: Number(u.port || 4222),
    loopback: ["127.0.0.1", "localhost", "::1"].includes(host),
  };
}

function reachable(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = tcpConnect({ host, port });
    s.once("connect", () => (s.destroy(), resolve(true)));
    s.once("error", () => resolve(false));
  });
}
