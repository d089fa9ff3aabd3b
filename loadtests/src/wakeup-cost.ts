/**
 * wakeup-cost: what one event-loop wakeup costs on this machine, with nothing else to do. A
 * process sleeps on a timer (`--every` ms) and wakes `--n` times; its CPU time (process.cpuUsage)
 * divided by the wakeups is the floor under any per-message cost at low rates, where every
 * broker message wakes its receiver alone (see docs/bench/scale-out.md). On bare metal this is
 * a few µs; on the 2-core Firecracker dev VM it is over 100 µs.
 *
 *   pnpm --filter @mcpq/loadtests wakeup-cost [--n 2000] [--every 5]
 */
import { parseArgs, num } from "./lib/args.js";

const { flags } = parseArgs(process.argv.slice(2));
const N = num(flags, "n", 2_000);
const EVERY = num(flags, "every", 5);

let woke = 0;
const cpu0 = process.cpuUsage();
const t0 = performance.now();
await new Promise<void>((done) => {
  const tick = () => (++woke >= N ? done() : void setTimeout(tick, EVERY));
  setTimeout(tick, EVERY);
});
const cpu = process.cpuUsage(cpu0);
const per = (us: number) => (us / woke).toFixed(1);
console.log(
  `wakeup-cost: ${woke} timer wakeups every ${EVERY} ms over ${((performance.now() - t0) / 1000).toFixed(1)} s: ` +
    `${per(cpu.user + cpu.system)} µs CPU per wakeup (user ${per(cpu.user)}, system ${per(cpu.system)})`,
);
