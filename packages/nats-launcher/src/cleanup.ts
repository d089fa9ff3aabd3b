import type { ChildProcess } from "node:child_process";
import { rmSync } from "node:fs";

// What must not outlive this process even when it exits without stopping its servers (an
// uncaught error, process.exit in a signal handler): live servers get SIGKILL, temp stores and
// lock files go. Only synchronous work runs in an 'exit' handler, hence kill + rmSync.
const children = new Set<ChildProcess>();
const paths = new Set<string>();
let installed = false;

function install(): void {
  if (installed) return;
  installed = true;
  process.once("exit", () => {
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill("SIGKILL");
    for (const p of paths) rmSync(p, { recursive: true, force: true });
  });
}

/** Kills `child` if this process exits first. */
export function trackChild(child: ChildProcess): void {
  install();
  children.add(child);
  child.once("exit", () => children.delete(child));
}

/** Removes `path` (recursively) if this process exits before {@link untrackPath}. */
export function trackPath(path: string): void {
  install();
  paths.add(path);
}

export function untrackPath(path: string): void {
  paths.delete(path);
}
