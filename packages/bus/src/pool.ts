import {
  AckPolicy,
  DeliverPolicy,
  JetStreamApiError,
  type JetStreamManager,
} from "@nats-io/jetstream";
import { silentLogger } from "@mcpq/protocol";
import type { BusLimits } from "./limits.js";
import { whileTransient } from "./provision.js";
import { STREAMS, poolConsumer, subjects } from "./subjects.js";

/**
 * Creates or updates the durable pull consumer of a worker pool. All workers of the pool share
 * it, so the broker spreads requests over them; `max_ack_pending` bounds the pool's in-flight work.
 */
export async function ensurePoolConsumer(
  jsm: JetStreamManager,
  pool: string,
  limits: BusLimits,
): Promise<string> {
  const name = poolConsumer(pool);
  const cfg = poolConsumerConfig(pool, name, limits);
  await whileTransient(`consumer ${name}`, silentLogger, () => reconcileConsumer(jsm, name, cfg));
  return name;
}

function poolConsumerConfig(pool: string, name: string, limits: BusLimits) {
  return {
    durable_name: name,
    ack_policy: AckPolicy.Explicit,
    deliver_policy: DeliverPolicy.All,
    filter_subject: subjects.poolRequests(pool),
    ack_wait: limits.ackWaitMs * 1_000_000,
    max_ack_pending: limits.maxAckPending,
    max_deliver: limits.maxDeliver,
    max_waiting: 512,
  };
}

async function reconcileConsumer(
  jsm: JetStreamManager,
  name: string,
  cfg: ReturnType<typeof poolConsumerConfig>,
): Promise<void> {
  try {
    await jsm.consumers.info(STREAMS.requests, name);
    const { durable_name: _d, deliver_policy: _p, filter_subject: _f, ...update } = cfg;
    await jsm.consumers.update(STREAMS.requests, name, update);
  } catch (err) {
    if (
      !(err instanceof JetStreamApiError) &&
      !(err instanceof Error && /not found/i.test(err.message))
    )
      throw err;
    try {
      await jsm.consumers.add(STREAMS.requests, cfg);
    } catch (addErr) {
      if (!(addErr instanceof JetStreamApiError)) throw addErr;
      await jsm.consumers.info(STREAMS.requests, name);
    }
  }
}
