import { connectBus, type Bus } from "@mcpq/bus";
import { eventually, type NatsHandle, type Stack, type StackOptions } from "@mcpq/testkit";
import type { RunningEdge } from "@mcpq/edge";
import type { RunningWorker } from "@mcpq/worker";
import { stack } from "./stack.js";

/**
 * One stack per test file, started by the first test that asks for it (the nats fixture is per
 * file): the edges and workers of `opts`, a read-only bus beside them (`readerName`), and the
 * conformance catalog's task tool `slow_compute` routable on every edge before a test calls.
 */
export function sharedConformanceStack(opts: StackOptions, readerName: string) {
  let s: Stack<RunningEdge, RunningWorker> | undefined;
  let bus: Bus | undefined;
  let ready: Promise<Stack<RunningEdge, RunningWorker>> | undefined;
  const setup = (nats: NatsHandle) =>
    (ready ??= (async () => {
      s = await stack(nats, opts);
      bus = await connectBus({ url: nats.url, name: readerName, provision: false });
      for (const e of s.edges)
        await eventually(() => e.runtime.catalog.toolPool("slow_compute"), {
          what: "the conformance catalog on every edge",
        });
      return s;
    })());
  return {
    setup,
    url: async (nats: NatsHandle, i: number) => (await setup(nats)).edges[i]!.url,
    /** The read-only bus (after `setup`). */
    get bus(): Bus {
      if (!bus) throw new Error("sharedConformanceStack: setup() first");
      return bus;
    },
    async close() {
      await bus?.close();
      await s?.close();
    },
  };
}
