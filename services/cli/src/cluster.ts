import cluster from "node:cluster";
import { availableParallelism } from "node:os";
import { AggregatorRegistry, type Registry } from "@mcpq/observability";
import { UsageError } from "./args.js";

const METRICS_REQ = "mcpq:cluster-metrics-req";
const METRICS_RES = "mcpq:cluster-metrics-res";
/** How long a process waits for the primary's aggregated metrics before answering its own. */
const METRICS_TIMEOUT_MS = 10_000;

/** `--processes N` (or `auto` = one per CPU): an integer 1-256; anything else names the flag. */
export function processesFlag(value: string): number {
  if (value === "auto") return availableParallelism();
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1 || n > 256)
    throw new UsageError(
      `--processes must be an integer 1-256 or "auto", not ${JSON.stringify(value)}`,
    );
  return n;
}

/** True in a process forked by `runPrimary` (it runs the service itself). */
export const isClusterWorker = (): boolean => cluster.isWorker;

/** 1-based index of this forked process (undefined outside a cluster). */
export const clusterIndex = (): number | undefined => cluster.worker?.id;

/**
 * The primary of `mcpq edge|worker --processes N` (node:cluster): forks N copies of this command,
 * which share every listening socket (the primary hands out connections round-robin), answers
 * their requests for cluster-wide metrics (prom-client's AggregatorRegistry), passes SIGINT and
 * SIGTERM on and waits for every process to finish; one process exiting on its own stops the rest
 * (exit 1), like `mcpq dev`.
 */
export async function runPrimary(what: string, n: number): Promise<void> {
  const aggregator = new AggregatorRegistry();
  cluster.on("message", (w, msg: { type?: unknown; id?: unknown }) => {
    if (msg?.type !== METRICS_REQ) return;
    aggregator.clusterMetrics().then(
      (text) => w.isConnected() && w.send({ type: METRICS_RES, id: msg.id, text }),
      (err: unknown) =>
        w.isConnected() &&
        w.send({
          type: METRICS_RES,
          id: msg.id,
          error: err instanceof Error ? err.message : String(err),
        }),
    );
  });
  let stopping = false;
  const stop = async (code: number) => {
    if (stopping) return;
    stopping = true;
    const alive = Object.values(cluster.workers ?? {}).filter((w) => w && !w.isDead());
    await Promise.all(
      alive.map(
        (w) =>
          new Promise<void>((r) => {
            w!.once("exit", () => r());
            w!.process.kill("SIGTERM");
          }),
      ),
    );
    process.exit(code);
  };
  cluster.on("exit", (w, code, signal) => {
    if (stopping) return;
    console.error(
      `mcpq ${what}: process ${w.id} (pid ${w.process.pid}) exited (${signal ?? code}); stopping the others`,
    );
    void stop(1);
  });
  process.once("SIGINT", () => void stop(0));
  process.once("SIGTERM", () => void stop(0));
  for (let i = 0; i < n; i++) cluster.fork();
  console.error(
    `mcpq ${what}: ${n} processes (pid ${process.pid} is the primary; they share their listening ports)`,
  );
}

/**
 * In a forked process: `registry.metrics()` (what /metrics serves) returns every process's
 * metrics, aggregated by the primary, so a scrape that reaches any process sees the cluster:
 * counters and histograms with equal labels are summed, and series labelled per process (the
 * edge's `edge` id) stay apart. Falls back to this process's own metrics if the primary is gone.
 */
export function shareMetrics(registry: Registry): void {
  AggregatorRegistry.setRegistries([registry]);
  // Constructing one installs the listener that answers the primary's collection requests.
  new AggregatorRegistry();
  const own = registry.metrics.bind(registry);
  const waiting = new Map<number, { resolve: (t: string) => void; timer: NodeJS.Timeout }>();
  let next = 0;
  process.on(
    "message",
    (msg: { type?: unknown; id?: unknown; text?: unknown; error?: unknown }) => {
      if (msg?.type !== METRICS_RES || typeof msg.id !== "number") return;
      const w = waiting.get(msg.id);
      if (!w) return;
      waiting.delete(msg.id);
      clearTimeout(w.timer);
      if (typeof msg.text === "string") w.resolve(msg.text);
      else void own().then(w.resolve);
    },
  );
  registry.metrics = () =>
    new Promise<string>((resolve) => {
      const id = next++;
      const timer = setTimeout(() => {
        waiting.delete(id);
        void own().then(resolve);
      }, METRICS_TIMEOUT_MS);
      if (!process.connected || !process.send) {
        // Not connected to the primary any more: answer with this process's own metrics.
        clearTimeout(timer);
        void own().then(resolve);
        return;
      }
      waiting.set(id, { resolve, timer });
      process.send({ type: METRICS_REQ, id });
    });
}
