import { parseArgs } from "node:util";
import { z } from "zod";
import { busEnvShape, recordMaxBytes } from "@mcpq/bus";
import { join } from "node:path";
import {
  renderConfig,
  startLocalCluster,
  startLocalNats,
  type LaunchOptions,
} from "@mcpq/nats-launcher";
import { brokerServerSettings, ensureRoleSecrets } from "./nats-auth.js";

const NATS_USAGE = `mcpq nats — a local nats-server with JetStream for development

Usage: mcpq nats [options]

Options:
  --port P          client port (default 4222; 0 = random free ports); with --cluster N, node i
                    listens on P+i
  --store DIR       JetStream store (default .mcpq/nats); with --cluster, DIR/n0 .. DIR/n{N-1}
  --cluster N       run an N-node JetStream cluster on 127.0.0.1 (2-9 nodes; 3 for R3 streams)
  --auth            least-privilege users edge, worker, replay (anonymous refused); each role's
                    settings go to STORE/auth/<user>.env (kept across restarts)
  --auth-pools P,Q  with --auth, also a user worker-<pool> limited to each pool
  --print-config    print the server settings (max_payload; with --auth the users and their
                    permissions, passwords as $MCPQ_NATS_<USER>_PASSWORD) and exit
  -h, --help        this text

Settings: MCPQ_NATS_SERVER_BIN (the nats-server binary; else PATH and /usr/sbin),
MCPQ_MAX_MESSAGE_BYTES (as on the edge, default 4 MiB; the server's max_payload is twice it,
since a replay record holds a request and its response).
Exits non-zero, naming the port or store, when a port is taken or the store is in use.`;

/** The settings `mcpq nats` reads (a service-level env schema: packages never read process.env). */
const NatsCommandEnvSchema = z.object({
  MCPQ_NATS_SERVER_BIN: z.string().min(1).optional(),
  PATH: z.string().optional(),
  MCPQ_MAX_MESSAGE_BYTES: busEnvShape.MCPQ_MAX_MESSAGE_BYTES,
});

const positiveInt = (name: string, raw: string, min: number, max: number): number => {
  const n = Number(raw);
  if (!/^\d+$/.test(raw) || n < min || n > max)
    throw new Error(`${name} must be an integer from ${min} to ${max}, not '${raw}'`);
  return n;
};

/**
 * `mcpq nats`: runs nats-server (or an N-node cluster) in the foreground until SIGINT/SIGTERM.
 * Rejects (the CLI exits 1) when a port is taken, the store is locked, or a node dies.
 */
export async function nats(
  argv: string[],
  env: Record<string, string | undefined> = process.env,
): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      port: { type: "string", default: "4222" },
      store: { type: "string", default: ".mcpq/nats" },
      cluster: { type: "string" },
      auth: { type: "boolean" },
      "auth-pools": { type: "string" },
      "print-config": { type: "boolean" },
      help: { type: "boolean", short: "h" },
    },
    strict: true,
  });
  if (values.help) {
    console.log(NATS_USAGE);
    return;
  }
  const parsed = NatsCommandEnvSchema.safeParse(env);
  if (!parsed.success)
    throw new Error(
      `invalid environment: ${parsed.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`).join("; ")}`,
    );
  const e = parsed.data;
  // 0: free random ports (tests, a second server beside a running one); the URL is printed.
  const chosen = positiveInt("--port", values.port, 0, 65535);
  const port = chosen === 0 ? undefined : chosen;
  const common: LaunchOptions = {
    bin: e.MCPQ_NATS_SERVER_BIN,
    searchPath: e.PATH,
    maxPayload: recordMaxBytes(e.MCPQ_MAX_MESSAGE_BYTES),
    echo: true,
  };
  const pools = (values["auth-pools"] ?? "")
    .split(",")
    .map((p) => p.trim())
    .filter(Boolean);
  for (const p of pools)
    if (!/^[A-Za-z0-9_-]+$/.test(p))
      throw new Error(`--auth-pools: invalid pool name '${p}' (use [A-Za-z0-9_-])`);
  if (pools.length && !values.auth) throw new Error("--auth-pools needs --auth");
  const settings = brokerServerSettings(recordMaxBytes(e.MCPQ_MAX_MESSAGE_BYTES), pools);
  if (values["print-config"]) {
    process.stdout.write(
      renderConfig(values.auth ? settings : { max_payload: settings.max_payload }),
    );
    return;
  }
  if (values.auth) {
    const dir = join(values.store, "auth");
    const vars = await ensureRoleSecrets(
      dir,
      settings.authorization.users.map((u) => u.user),
    );
    common.settings = { authorization: settings.authorization };
    common.env = { ...env, ...vars };
    console.error(
      `mcpq nats: users ${settings.authorization.users.map((u) => u.user).join(", ")}; anonymous clients are refused.`,
    );
    console.error(
      `mcpq nats: each role's settings are in ${dir}/<user>.env (load one with: set -a; . ${dir}/edge.env; set +a)`,
    );
  }

  let stopping = false;
  let stop: () => Promise<void>;
  let died: Promise<string>;
  if (values.cluster !== undefined) {
    const size = positiveInt("--cluster", values.cluster, 2, 9);
    if (port !== undefined && port + size - 1 > 65535)
      throw new Error(`--port ${port} leaves no room for ${size} nodes`);
    const c = await startLocalCluster({ ...common, nodes: size, port, storeRoot: values.store });
    console.error(
      `mcpq nats: ${size}-node JetStream cluster '${c.name}' (nats-server ${c.version.text}) on 127.0.0.1`,
    );
    for (const n of c.nodes)
      console.error(`  ${n.serverName}: ${n.url}  store ${n.storeDir}  monitoring ${n.monitorUrl}`);
    console.error(
      `mcpq nats: point mcpq at all nodes: MCPQ_NATS_URL=${c.url} MCPQ_REPLICAS=${Math.min(3, size)}; Ctrl-C stops it`,
    );
    stop = () => c.stop();
    // One node dying is a fault to watch the others survive (kill -9 one to try failover): say so and keep
    // running; the command fails only when no node is left.
    for (const n of c.nodes)
      void n
        .exited()
        .then(
          () =>
            !stopping &&
            console.error(
              `mcpq nats: node ${n.serverName} (${n.url}) exited; the others keep running`,
            ),
        );
    died = Promise.all(c.nodes.map((n) => n.exited())).then(
      () => `every node exited: ${c.nodes.map((n) => n.logTail.slice(-300)).join("\n")}`,
    );
  } else {
    const n = await startLocalNats({ ...common, port, storeDir: values.store });
    console.error(
      `mcpq nats: JetStream (nats-server ${n.version.text}) on ${n.url} (store ${n.storeDir}, monitoring ${n.monitorUrl}); Ctrl-C stops it`,
    );
    stop = () => n.stop();
    died = n.exited().then(() => `nats-server on ${n.url} exited: ${n.logTail.slice(-500)}`);
  }
  const shutdown = () => {
    stopping = true;
    void stop().then(() => process.exit(0));
  };
  process.once("SIGINT", shutdown);
  process.once("SIGTERM", shutdown);
  const why = await died;
  if (stopping) return;
  await stop();
  throw new Error(why);
}
