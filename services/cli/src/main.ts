#!/usr/bin/env node
import { parseArgs } from "node:util";

const USAGE = `mcpq — MCP over NATS JetStream

Usage: mcpq <command> [options]

Commands:
  dev     [--port 8080] [--catalog example,conformance]   NATS + one edge + one worker (foreground)
  edge    [--port N]                                      an edge (Streamable HTTP on 127.0.0.1)
  stdio   --url URL [--url URL2]                          bridge a stdio MCP client to edges, with failover (stdio --help)
  worker  [--catalog NAME[,NAME]] [--pool NAME] [--shadow]   a worker serving catalogs (--shadow: replay candidate, never routed)
  nats    [--port 4222] [--store DIR] [--cluster N]       a local JetStream server or N-node cluster (nats --help)
  replay  [--since 15m] [--against POOL] [--diff] [--export FILE]   re-run recorded traffic, diff answers (replay --help)

Every command reads MCPQ_NATS_URL (default nats://127.0.0.1:4222); see README for all settings.`;

/** Handlers for later commands register here (stdio, replay). */
export const extraCommands = new Map<string, (argv: string[]) => Promise<void>>();

async function run(argv: string[]): Promise<void> {
  const [cmd, ...rest] = argv;
  switch (cmd) {
    case "dev": {
      const { values } = parseArgs({ args: rest, options: { port: { type: "string", default: "8080" }, catalog: { type: "string", default: "example" }, store: { type: "string", default: ".mcpq/nats" } } });
      const { dev } = await import("./commands/dev.js");
      return dev({ port: Number(values.port), catalogs: values.catalog, storeDir: values.store });
    }
    case "edge": {
      const { values } = parseArgs({ args: rest, options: { port: { type: "string" }, host: { type: "string" } } });
      const { main } = await import("@mcpq/edge");
      const overrides: { port?: number; host?: string } = {};
      if (values.port !== undefined) overrides.port = Number(values.port);
      if (values.host !== undefined) overrides.host = values.host;
      await main(overrides);
      return;
    }
    case "worker": {
      const { values } = parseArgs({ args: rest, options: { catalog: { type: "string" }, pool: { type: "string" }, shadow: { type: "boolean" } } });
      const { main } = await import("@mcpq/worker");
      const overrides: { catalogs?: string[]; pool?: string; shadow?: boolean } = {};
      if (values.catalog) overrides.catalogs = values.catalog.split(",").map((s) => s.trim()).filter(Boolean);
      if (values.pool) overrides.pool = values.pool;
      if (values.shadow) overrides.shadow = true;
      if (overrides.catalogs && !overrides.pool && !process.env["MCPQ_POOL"]) overrides.pool = [...overrides.catalogs].sort().join("_");
      await main(overrides);
      return;
    }
    case "stdio": {
      const { stdio } = await import("./commands/stdio.js");
      return stdio(rest);
    }
    case "replay": {
      const { replay } = await import("./commands/replay.js");
      return replay(rest);
    }
    case "nats": {
      const { nats } = await import("./commands/nats.js");
      return nats(rest);
    }
    case undefined:
    case "help":
    case "--help":
    case "-h":
      console.log(USAGE);
      return;
    default: {
      const extra = extraCommands.get(cmd);
      if (extra) return extra(rest);
      console.error(`unknown command: ${cmd}\n\n${USAGE}`);
      process.exitCode = 2;
    }
  }
}

run(process.argv.slice(2)).catch((err: unknown) => {
  console.error(`mcpq: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(1);
});
