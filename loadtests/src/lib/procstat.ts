/**
 * Process sampling from /proc: CPU (utime+stime ticks deltas) and RSS.
 * Also reads `process_resident_memory_bytes` from a Prometheus /metrics endpoint.
 */
import { readdirSync, readFileSync } from "node:fs";
import { request } from "undici";

const CLK_TCK = 100; // Linux USER_HZ; sysconf(_SC_CLK_TCK) is 100 on every mainstream kernel config.

function readCpuTicks(pid: number | "self"): number | null {
  try {
    const s = readFileSync(`/proc/${pid}/stat`, "utf8");
    // comm may contain spaces/parens: fields after the last ')' are fixed.
    const rest = s.slice(s.lastIndexOf(")") + 2).split(" ");
    // rest[0] is field 3 (state); utime is field 14, stime field 15 → rest[11], rest[12]
    return Number(rest[11]) + Number(rest[12]);
  } catch {
    return null;
  }
}

/** `pid` and every process below it (a `--processes N` primary and its forks), from /proc. */
export function processTree(pid: number): number[] {
  const out = [pid];
  for (let i = 0; i < out.length; i++) {
    const p = out[i]!;
    try {
      for (const tid of readdirSync(`/proc/${p}/task`)) {
        const kids = readFileSync(`/proc/${p}/task/${tid}/children`, "utf8").trim();
        if (kids) for (const k of kids.split(" ")) out.push(Number(k));
      }
    } catch {
      /* gone, or no children file */
    }
  }
  return out;
}

/** `read` summed over `pid` and its descendants alive now; null when none could be read. */
function sumOverTree(pid: number, read: (p: number) => number | null): number | null {
  let sum = 0;
  let any = false;
  for (const p of processTree(pid)) {
    const v = read(p);
    if (v !== null) {
      sum += v;
      any = true;
    }
  }
  return any ? sum : null;
}

/** CPU ticks of `pid` and its descendants (those alive now). */
function readTreeTicks(pid: number): number | null {
  return sumOverTree(pid, readCpuTicks);
}

/** RSS of `pid` and its descendants (a `--processes N` edge: the primary plus its forks). */
export function readTreeRssBytes(pid: number): number | null {
  return sumOverTree(pid, readRssBytes);
}

export function readRssBytes(pid: number | "self"): number | null {
  try {
    const s = readFileSync(`/proc/${pid}/status`, "utf8");
    const m = /VmRSS:\s+(\d+)\s+kB/.exec(s);
    return m ? Number(m[1]) * 1024 : null;
  } catch {
    return null;
  }
}

async function readMetricsRss(url: string): Promise<number | null> {
  try {
    const r = await request(url, { headersTimeout: 2000, bodyTimeout: 2000 });
    const text = await r.body.text();
    if (r.statusCode !== 200) return null;
    const m = /^process_resident_memory_bytes(?:\{[^}]*\})?\s+([0-9.eE+]+)/m.exec(text);
    return m ? Number(m[1]) : null;
  } catch {
    return null;
  }
}

/** How to observe a target process: by pid, by /metrics URL, or both. */
export interface ProcTarget {
  pid?: number;
  metricsUrl?: string;
}

export async function sampleRss(t: ProcTarget): Promise<number | null> {
  if (t.metricsUrl) {
    const v = await readMetricsRss(t.metricsUrl);
    if (v !== null) return v;
  }
  if (t.pid !== undefined) return readRssBytes(t.pid);
  return null;
}

/**
 * CPU meter: start() then stop() → percent of ONE core (can exceed 100 for multi-threaded
 * processes). A numeric pid counts the process and its descendants, so a `--processes N`
 * primary is metered with every fork (they are forked before a measurement starts).
 */
export class CpuMeter {
  private t0 = 0;
  private c0: number | null = null;
  constructor(private readonly pid: number | "self" | undefined) {}
  #ticks(): number | null {
    if (this.pid === undefined) return null;
    return this.pid === "self" ? readCpuTicks("self") : readTreeTicks(this.pid);
  }
  start(): void {
    this.t0 = performance.now();
    this.c0 = this.#ticks();
  }
  stop(): number | null {
    if (this.pid === undefined || this.c0 === null) return null;
    const c1 = this.#ticks();
    if (c1 === null) return null;
    const wallS = (performance.now() - this.t0) / 1000;
    if (wallS <= 0) return null;
    return Math.round(((c1 - this.c0) / CLK_TCK / wallS) * 1000) / 10;
  }
}

/** Periodic RSS sampler: tracks first/last/peak while running. */
export class RssSampler {
  first: number | null = null;
  last: number | null = null;
  peak: number | null = null;
  private timer: NodeJS.Timeout | undefined;
  private busy = false;
  constructor(
    private readonly target: ProcTarget,
    private readonly everyMs = 250,
  ) {}
  async sampleNow(): Promise<number | null> {
    const v = await sampleRss(this.target);
    if (v !== null) {
      if (this.first === null) this.first = v;
      this.last = v;
      if (this.peak === null || v > this.peak) this.peak = v;
    }
    return v;
  }
  start(): void {
    this.timer = setInterval(() => {
      if (this.busy) return;
      this.busy = true;
      void this.sampleNow().finally(() => {
        this.busy = false;
      });
    }, this.everyMs);
    this.timer.unref();
  }
  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    await this.sampleNow();
  }
}

export const mib = (b: number | null): number | null =>
  b === null ? null : Math.round((b / 1048576) * 10) / 10;
