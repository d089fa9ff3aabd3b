import { STREAMS, type Bus } from "@mcpq/bus";
import { silentLogger, type Logger } from "@mcpq/protocol";

/** Where periodic broker-side figures go (Prometheus gauges in the service). */
export interface BusStatsSink {
  /** MCPQ_REQ: queued (unacked) requests and their bytes. */
  stream(messages: number, bytes: number): void;
  /** One pool consumer: not yet delivered, delivered but unacked, and waiting pull requests. */
  consumers(pools: { pool: string; pending: number; ackPending: number; waiting: number }[]): void;
}

const POOL_CONSUMER_PREFIX = "pool-";

/**
 * Polls MCPQ_REQ's stream info and its pool consumers every `everyMs` (two JetStream API calls
 * per period, never per request) and reports them. One poll at a time; failures are logged at
 * debug level and the figures keep their last values. Returns a stop function.
 */
export function startBusStats(
  bus: Bus,
  everyMs: number,
  sink: BusStatsSink,
  log: Logger = silentLogger,
): () => void {
  if (everyMs <= 0) return () => undefined;
  let running = false;
  let stopped = false;
  const poll = async () => {
    if (running || stopped || bus.nc.isClosed()) return;
    running = true;
    try {
      const si = await bus.jsm.streams.info(STREAMS.requests);
      sink.stream(si.state.messages, si.state.bytes);
      const pools: { pool: string; pending: number; ackPending: number; waiting: number }[] = [];
      for await (const ci of bus.jsm.consumers.list(STREAMS.requests)) {
        const name = ci.name;
        pools.push({
          pool: name.startsWith(POOL_CONSUMER_PREFIX)
            ? name.slice(POOL_CONSUMER_PREFIX.length)
            : name,
          pending: ci.num_pending,
          ackPending: ci.num_ack_pending,
          waiting: ci.num_waiting,
        });
      }
      sink.consumers(pools);
    } catch (err) {
      log.debug({ err }, "bus stats poll failed");
    } finally {
      running = false;
    }
  };
  void poll();
  const timer = setInterval(() => void poll(), everyMs);
  timer.unref();
  return () => {
    stopped = true;
    clearInterval(timer);
  };
}
