import { connect, type NatsConnection } from "@nats-io/transport-node";
import { AckedPublisher, batchWrites } from "@mcpq/bus";

/**
 * A NATS connection of the raw JetStream benchmark (client and worker alike). With `asMcpq` it
 * connects as mcpq's services do (no async stack traces, socket writes batched per event-loop
 * iteration) and comes with mcpq's `AckedPublisher` (PubAcks on one subscription); without,
 * plain nats.js and no publisher.
 */
export async function benchConnection(
  url: string,
  name: string,
  asMcpq: boolean,
): Promise<{ nc: NatsConnection; acked: AckedPublisher | null }> {
  const nc = await connect({ servers: url, name, ...(asMcpq ? { noAsyncTraces: true } : {}) });
  if (!asMcpq) return { nc, acked: null };
  batchWrites(nc);
  return { nc, acked: new AckedPublisher(nc, { inboxPrefix: "_INBOX", timeoutMs: 10_000 }) };
}
