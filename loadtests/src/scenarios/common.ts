import { CpuMeter, RssSampler } from "../lib/procstat.js";
import type { Target } from "../lib/target.js";

export interface CpuSet {
  start(): void;
  /** target cpu %, plus extras: client_cpu_pct and <sibling>_cpu_pct */
  stop(): { cpu_pct: number | null; extra: Record<string, number | null> };
}

/** `more`: further processes to meter this time (e.g. a load generator child) */
export function cpuSet(target: Target, more: Record<string, number> = {}): CpuSet {
  const main = new CpuMeter(target.proc.pid);
  const self = new CpuMeter("self");
  const sib = Object.entries({ ...(target.siblings ?? {}), ...more }).map(
    ([k, pid]) => [k, new CpuMeter(pid)] as const,
  );
  return {
    start() {
      main.start();
      self.start();
      for (const [, m] of sib) m.start();
    },
    stop() {
      const extra: Record<string, number | null> = { client_cpu_pct: self.stop() };
      for (const [k, m] of sib) extra[`${k}_cpu_pct`] = m.stop();
      return { cpu_pct: main.stop(), extra };
    },
  };
}

export function rssSampler(target: Target, everyMs = 250): RssSampler {
  return new RssSampler(target.proc, everyMs);
}

export type Log = (msg: string) => void;
export const defaultLog: Log = (m) => process.stderr.write(`${m}\n`);
