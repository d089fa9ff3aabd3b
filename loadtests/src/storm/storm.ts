/**
 * Parent side of the storm generator (./storm-proc.ts): spawns it as its own process (same
 * Node, same tsx loader), so the storm has a core to itself instead of sharing the probe's
 * event loop, and follows its READY / END / RESULT lines.
 */
import { spawn } from "node:child_process";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import type { StormConfig, StormResult } from "./storm-proc.js";

export type { StormConfig, StormResult } from "./storm-proc.js";

export interface StormHandle {
  /** the child opened its sessions: how many, and the first errors if some failed */
  ready: Promise<{ sessions: number; errors: string[] }>;
  /** start offering load */
  go(): void;
  /** closed mode: the warm-up ended (the measured window starts) */
  measuring: Promise<void>;
  /** the last request was scheduled (the storm stops) */
  ended: Promise<void>;
  /** every request settled */
  result: Promise<StormResult>;
  pid: number;
  kill(): void;
}

const PROC = fileURLToPath(new URL("./storm-proc.ts", import.meta.url));

export function startStorm(cfg: StormConfig): StormHandle {
  // process.execArgv carries tsx's loader when we run under tsx
  const child = spawn(process.execPath, [...process.execArgv, PROC, JSON.stringify(cfg)], {
    stdio: ["pipe", "pipe", "inherit"],
  });
  let onReady!: (v: { sessions: number; errors: string[] }) => void;
  let onEnd!: () => void;
  let onMeasure!: () => void;
  let onResult!: (r: StormResult) => void;
  const failures: ((e: Error) => void)[] = [];
  const ready = new Promise<{ sessions: number; errors: string[] }>((res, rej) => {
    onReady = res;
    failures.push(rej);
  });
  const ended = new Promise<void>((res, rej) => {
    onEnd = res;
    failures.push(rej);
  });
  const measuring = new Promise<void>((res, rej) => {
    onMeasure = res;
    failures.push(rej);
  });
  const result = new Promise<StormResult>((res, rej) => {
    onResult = res;
    failures.push(rej);
  });
  // callers may not await every promise; a failure is reported through the ones they do
  for (const p of [ready, ended, measuring, result]) p.catch(() => undefined);
  const fail = (e: Error) => failures.forEach((f) => f(e));
  createInterface({ input: child.stdout }).on("line", (line) => {
    const sp = line.indexOf(" ");
    const kind = sp > 0 ? line.slice(0, sp) : line;
    const payload = sp > 0 ? (JSON.parse(line.slice(sp + 1)) as unknown) : undefined;
    if (kind === "READY") onReady(payload as { sessions: number; errors: string[] });
    else if (kind === "END") onEnd();
    else if (kind === "MEASURE") onMeasure();
    else if (kind === "RESULT") onResult(payload as StormResult);
  });
  child.on("exit", (code, sig) => {
    process.off("exit", kill);
    fail(new Error(`storm generator exited (${code ?? sig}) before finishing`));
  });
  child.on("error", (e) => fail(e));
  const kill = () => {
    if (child.exitCode === null) child.kill("SIGKILL");
  };
  process.once("exit", kill);
  return {
    ready,
    go: () => child.stdin.write("GO\n"),
    ended,
    measuring,
    result,
    pid: child.pid ?? 0,
    kill,
  };
}
