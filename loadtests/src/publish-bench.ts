/**
 * publish-bench: client CPU per JetStream publish, mcpq's `bus.publisher` (PubAcks on one shared
 * subscription, packages/bus/src/acked-publish.ts) beside nats.js's `js.publish` (a request per
 * publish) as the reference, in the same process against the same local nats-server. Closed
 * loop, C publishes in flight, a 100-byte body with 12 envelope-like headers and a message id,
 * memory stream; the two run alternately `--rounds` times. CPU is this process's
 * (`process.cpuUsage`), so the figure is the publishing client's cost alone.
 *
 *   pnpm --filter @mcpq/loadtests publish-bench [--n 40000] [--c 64] [--rounds 3]
 */
import { headers as natsHeaders } from "@nats-io/transport-node";
import { connectBus } from "@mcpq/bus";
import { parseArgs, num } from "./lib/args.js";
import { installExitHooks, startNats } from "./lib/procs.js";

const { flags: args } = parseArgs(process.argv.slice(2));
const N = num(args, "n", 40_000);
const C = num(args, "c", 64);
const ROUNDS = num(args, "rounds", 3);
const BODY =
  '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"text":"hi"}}}';

installExitHooks();
const nats = await startNats();
const bus = await connectBus({ url: nats.url, name: "publish-bench" });
await bus.jsm.streams.add({
  name: "PUBBENCH",
  subjects: ["pubbench.>"],
  storage: "memory",
  max_msgs: 100_000,
});

const envelope = (id: string) => {
  const h = natsHeaders();
  for (let k = 0; k < 12; k++) h.append(`Mcpq-H${k}`, `value-${k}-${id}`);
  h.append("Nats-Msg-Id", id);
  return h;
};

async function round(publish: (subject: string, id: string) => Promise<unknown>) {
  let i = 0;
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: C }, async () => {
      while (i < N) {
        const k = i++;
        await publish(`pubbench.${k % 8}`, `${k}`);
      }
    }),
  );
  const cpu = process.cpuUsage(cpu0);
  return { cpuUs: (cpu.user + cpu.system) / N, rate: N / ((performance.now() - t0) / 1000) };
}

let run = 0;
const rows: { name: string; cpuUs: number; rate: number }[] = [];
for (let r = 0; r < ROUNDS; r++) {
  run++;
  const ref = await round((s, id) =>
    bus.js.publish(s, BODY, { headers: envelope(`r${run}-${id}`), msgID: `r${run}-${id}` }),
  );
  rows.push({ name: "js.publish (reference)", ...ref });
  const ours = await round((s, id) =>
    bus.publisher.publish(s, BODY, { headers: envelope(`p${run}-${id}`) }),
  );
  rows.push({ name: "bus.publisher", ...ours });
}
console.log(`publish-bench: ${N} publishes per round, ${C} in flight, ${ROUNDS} rounds`);
for (const row of rows)
  console.log(
    `  ${row.name.padEnd(24)} ${row.cpuUs.toFixed(1).padStart(6)} µs CPU/publish  ${Math.round(row.rate).toString().padStart(6)} publishes/s`,
  );
const mean = (name: string) => {
  const xs = rows.filter((x) => x.name === name).map((x) => x.cpuUs);
  return xs.reduce((a, b) => a + b, 0) / xs.length;
};
const ref = mean("js.publish (reference)");
const ours = mean("bus.publisher");
console.log(
  `  mean: bus.publisher ${ours.toFixed(1)} µs vs js.publish ${ref.toFixed(1)} µs = ${(ours / ref).toFixed(2)}×`,
);
await bus.close();
await nats.stop();
