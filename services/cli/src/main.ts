#!/usr/bin/env node
import { UsageError } from "./args.js";
import { loadCliEnv, type CliEnv } from "./env.js";

const USAGE = `mcpq — MCP over NATS JetStream

Usage: mcpq <command> [options]        (mcpq <command> --help for its options)

Commands:
  dev     [--port 8080] [--catalog example,conformance]   NATS + one edge + one worker per catalog (foreground)
  edge    [--port N] [--host ADDR]                        an edge (Streamable HTTP, WebSocket, SSE, TCP, gRPC on 127.0.0.1)
  worker  [--catalog NAME[,NAME]] [--pool NAME] [--shadow]   a worker serving catalogs (--shadow: replay candidate, never routed)
  stdio   --url URL [--url URL2]                          bridge a stdio MCP client to edges, with failover
  nats    [--port 4222] [--store DIR] [--cluster N]       a local JetStream server or N-node cluster
  replay  [--since 15m] [--against POOL] [--diff] [--export FILE]   re-run recorded traffic, diff answers
  status  [--edge URL]... [--watch] [--json]              pools, workers, queue, rates, circuits

Every command reads MCPQ_NATS_URL (default nats://127.0.0.1:4222); see README for all settings.`;

/** One subcommand: parses its own flags (and --help) and runs until done or until signalled. */
type Command = (argv: string[], env: Readonly<CliEnv>) => Promise<void>;

/**
 * The command table: one line per command, each module loaded only when run (so `mcpq stdio`
 * does not load the edge). A new command is a file in commands/ and a line here.
 */
const COMMANDS: Record<string, () => Promise<Command>> = {
  dev: async () => (await import("./commands/dev.js")).run,
  edge: async () => (await import("./commands/edge.js")).run,
  worker: async () => (await import("./commands/worker.js")).run,
  stdio: async () => (await import("./commands/stdio.js")).stdio,
  replay: async () => (await import("./commands/replay.js")).replay,
  status: async () => (await import("./commands/status.js")).status,
  // `mcpq nats` (helper broker's command) reads its own settings from the raw environment.
  nats: async () => {
    const { nats } = await import("./commands/nats.js");
    return (argv) => nats(argv);
  },
};

async function run(argv: string[]): Promise<void> {
  const [cmd, ...rest] = argv;
  if (cmd === undefined || cmd === "help" || cmd === "--help" || cmd === "-h") {
    console.log(USAGE);
    return;
  }
  const load = Object.hasOwn(COMMANDS, cmd) ? COMMANDS[cmd] : undefined;
  if (!load) throw new UsageError(`unknown command ${JSON.stringify(cmd)}`, USAGE);
  const env = loadCliEnv(process.env);
  await (
    await load()
  )(rest, env);
}

const cmd = process.argv[2] ?? "";
run(process.argv.slice(2)).catch((err: unknown) => {
  const prefix = Object.hasOwn(COMMANDS, cmd) ? `mcpq ${cmd}` : "mcpq";
  if (err instanceof UsageError) {
    console.error(`${prefix}: ${err.message}${err.usage ? `\n\n${err.usage}` : ""}`);
    process.exit(2);
  }
  console.error(`${prefix}: ${err instanceof Error ? err.message : String(err)}`);
  if (process.env["MCPQ_DEBUG"] && err instanceof Error && err.stack) console.error(err.stack);
  process.exit(1);
});
