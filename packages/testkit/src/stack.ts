import type { NatsHandle } from "./nats-server.js";

/** The structural shape of a running edge (services/edge `startEdge`). */
export interface EdgeLike {
  url: string;
  port: number;
  close(): Promise<void>;
}
/** The structural shape of a running worker (services/worker `startWorker`). */
export interface WorkerLike {
  close(): Promise<void>;
}

export interface StackFactories<E extends EdgeLike, W extends WorkerLike> {
  /** Starts one edge on 127.0.0.1 with a random port against `natsUrl`. */
  startEdge(natsUrl: string, env: Record<string, string>): Promise<E>;
  /** Starts one worker serving `catalogs`. */
  startWorker(natsUrl: string, catalogs: string[], env: Record<string, string>): Promise<W>;
}

export interface StackOptions {
  edges?: number;
  workers?: { catalogs: string[]; env?: Record<string, string> }[];
  edgeEnv?: Record<string, string>;
  workerEnv?: Record<string, string>;
}

export interface Stack<E extends EdgeLike, W extends WorkerLike> {
  nats: NatsHandle;
  edges: E[];
  workers: W[];
  /** Adds a worker later (e.g. list_changed and redelivery tests). */
  addWorker(catalogs: string[], env?: Record<string, string>): Promise<W>;
  close(): Promise<void>;
}

/**
 * Starts edges and workers in-process against a real NATS. The factories come from the
 * services (packages never import services), so tests call it with `startEdge`/`startWorker`.
 */
export async function startStack<E extends EdgeLike, W extends WorkerLike>(
  nats: NatsHandle,
  f: StackFactories<E, W>,
  opts: StackOptions = {},
): Promise<Stack<E, W>> {
  const workers: W[] = [];
  const edges: E[] = [];
  const addWorker = async (catalogs: string[], env: Record<string, string> = {}) => {
    const w = await f.startWorker(nats.url, catalogs, { ...opts.workerEnv, ...env });
    workers.push(w);
    return w;
  };
  for (const w of opts.workers ?? [{ catalogs: ["example"] }]) await addWorker(w.catalogs, w.env);
  for (let i = 0; i < (opts.edges ?? 1); i++)
    edges.push(await f.startEdge(nats.url, opts.edgeEnv ?? {}));
  return {
    nats,
    edges,
    workers,
    addWorker,
    async close() {
      await Promise.allSettled(edges.map((e) => e.close()));
      await Promise.allSettled(workers.map((w) => w.close()));
    },
  };
}

/** Polls `check` until it returns a truthy value (bounded; no timing assertions, just waiting). */
export async function eventually<T>(
  check: () => T | Promise<T>,
  opts: { timeoutMs?: number; intervalMs?: number; what?: string } = {},
): Promise<NonNullable<T>> {
  const until = Date.now() + (opts.timeoutMs ?? 10_000);
  let last: unknown;
  for (;;) {
    try {
      const v = await check();
      if (v) return v as NonNullable<T>;
    } catch (err) {
      last = err;
    }
    if (Date.now() > until)
      throw new Error(
        `gave up waiting for ${opts.what ?? "condition"}${last ? `: ${String(last)}` : ""}`,
      );
    await new Promise((r) => setTimeout(r, opts.intervalMs ?? 25));
  }
}
