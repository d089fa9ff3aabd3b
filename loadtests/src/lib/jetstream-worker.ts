/**
 * Worker half of the raw JetStream micro-benchmark (runs as its own process, like an mcpq
 * worker): pull-consume the work-queue stream, reply with core `nc.publish` to the subject
 * carried in the `reply-to` header, then ack.
 * argv: --url nats://127.0.0.1:P --stream NAME --consumer NAME [--batch 256]
 */
import { connect } from "@nats-io/transport-node";
import { jetstream } from "@nats-io/jetstream";
import { parseArgs, str, num } from "./args.js";

const { flags } = parseArgs();
const url = str(flags, "url", "nats://127.0.0.1:4222");
const streamName = str(flags, "stream", "LTBENCH");
const consumerName = str(flags, "consumer", "ltworkers");
const batch = num(flags, "batch", 256);

const nc = await connect({ servers: url, name: "lt-jetstream-worker" });
const js = jetstream(nc);
const consumer = await js.consumers.get(streamName, consumerName);
let handled = 0;
const msgs = await consumer.consume({
  max_messages: batch,
  callback: (m) => {
    const reply = m.headers?.get("reply-to");
    if (reply) nc.publish(reply, m.data);
    m.ack();
    handled++;
  },
});
process.stdout.write("WORKER READY\n");
const stop = async () => {
  await msgs.close().catch(() => undefined);
  await nc.drain().catch(() => undefined);
  process.stderr.write(`worker handled ${handled}\n`);
  process.exit(0);
};
process.on("SIGTERM", () => void stop());
process.on("SIGINT", () => void stop());
