import { UsageError, explainBootError, listFlag, parseFlags } from "../args.js";
import type { CliEnv } from "../env.js";
import {
  clusterIndex,
  isClusterWorker,
  processesFlag,
  runPrimary,
  shareMetrics,
} from "../cluster.js";
import { findOverlaps, overlapWarning, readRegistry } from "../pool-overlap.js";

export const USAGE = `mcpq worker — a worker serving named catalogs of tools, resources and prompts

Usage: mcpq worker [--catalog NAME[,NAME]] [--pool NAME] [--shadow] [--processes N]

  --catalog NAMES  catalogs to serve (default MCPQ_CATALOGS or example); known: see
                   services/worker/src/catalogs/index.ts
  --pool NAME      the pool to join (default MCPQ_POOL, else the sorted catalog names joined by _,
                   so --catalog example joins pool example). Workers of one pool share its
                   JetStream consumer pool-NAME on mcpq.req.NAME.>, so each one adds capacity
  --shadow         a replay candidate (mcpq replay --against POOL): registered, never routed
  --processes N    run N worker processes in the pool (node:cluster; "auto" = one per CPU); with
                   MCPQ_WORKER_METRICS_PORT set they share it and /metrics answers for all of them

Warns when another pool already serves one of its tools, prompts or resources: an edge routes
each of them to one pool only, so capacity is added by joining that pool (--pool). Connects to
MCPQ_NATS_URL; other settings are MCPQ_* variables (README, "Worker"). Stops on SIGINT/SIGTERM
after its running handlers finish.`;

/** `mcpq worker`: the worker service in this process, with flags over MCPQ_CATALOGS/MCPQ_POOL. */
export async function run(argv: string[], env: Readonly<CliEnv>): Promise<void> {
  const v = parseFlags(
    argv,
    {
      catalog: { type: "string" },
      pool: { type: "string" },
      shadow: { type: "boolean" },
      processes: { type: "string" },
    },
    USAGE,
  );
  if (!v) return;
  const overrides: { catalogs?: string[]; pool?: string; shadow?: boolean } = {};
  if (v.catalog !== undefined) overrides.catalogs = listFlag("--catalog", v.catalog);
  if (v.shadow === true) overrides.shadow = true;
  const { main, loadWorkerConfig, resolveCatalogs, WorkerEnvSchema } = await import("@mcpq/worker");
  if (v.pool !== undefined) {
    if (!WorkerEnvSchema.shape.MCPQ_POOL.safeParse(v.pool).success)
      throw new UsageError(`--pool must be letters, digits, _ or -, not ${JSON.stringify(v.pool)}`);
    overrides.pool = v.pool;
  }
  // Check flags and environment before connecting, so a mistake names itself at once.
  const config = loadWorkerConfig(process.env, overrides);
  try {
    resolveCatalogs(config.catalogs);
  } catch (err) {
    const source = v.catalog !== undefined ? "--catalog" : "MCPQ_CATALOGS";
    throw new UsageError(`${source}: ${err instanceof Error ? err.message : String(err)}`);
  }
  const processes = v.processes !== undefined ? processesFlag(v.processes) : 1;
  if (processes > 1 && !isClusterWorker()) return runPrimary("worker", processes);
  let running;
  try {
    running = await main(overrides);
  } catch (err) {
    throw explainBootError(err, {
      natsUrl: env.MCPQ_NATS_URL,
      ports: { [config.metricsPort]: "the metrics port (MCPQ_WORKER_METRICS_PORT)" },
    });
  }
  if (isClusterWorker()) shareMetrics(running.registry);
  // One warning per command, not one per process.
  if (config.shadow || (clusterIndex() ?? 1) !== 1) return;
  const others = await readRegistry(running.bus).catch(() => []);
  const warning = overlapWarning(
    config.pool,
    findOverlaps({ pool: config.pool, catalog: running.worker.catalog }, others),
  );
  if (warning) console.error(warning);
}
