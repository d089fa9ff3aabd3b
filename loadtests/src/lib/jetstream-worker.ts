/**
 * Worker half of the raw JetStream micro-benchmark (runs as its own process, like an mcpq
 * worker): pull-consume the work-queue stream, reply to the subject carried in the `reply-to`
 * header, then ack. The reply is a core `nc.publish`, or with `--stored` a publish into a stream
 * whose PubAck comes before the ack (mcpq's "ack after the answer is stored"; a failed store
 * naks for redelivery), through mcpq's `AckedPublisher` and write batching.
 * argv: --url nats://127.0.0.1:P --stream NAME --consumer NAME [--batch 256] [--stored]
 */
import { jetstream } from "@nats-io/jetstream";
import { benchConnection } from "./bench-connection.js";
import { parseArgs, str, num, bool } from "./args.js";

const { flags } = parseArgs();
const url = str(flags, "url", "nats://127.0.0.1:4222");
const streamName = str(flags, "stream", "LTBENCH");
const consumerName = str(flags, "consumer", "ltworkers");
const batch = num(flags, "batch", 256);

const stored = bool(flags, "stored");

const { nc, acked } = await benchConnection(url, "lt-jetstream-worker", stored);
const js = jetstream(nc);
const consumer = await js.consumers.get(streamName, consumerName);
let handled = 0;
const msgs = await consumer.consume({
  max_messages: batch,
  callback: (m) => {
    const reply = m.headers?.get("reply-to");
    handled++;
    if (!reply) return void m.ack();
    if (!acked) {
      nc.publish(reply, m.data);
      return void m.ack();
    }
    acked.send(reply, m.data, undefined, (err) => (err ? m.nak() : m.ack()));
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
