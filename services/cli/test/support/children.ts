import type { ChildProcess } from "node:child_process";

/** SIGTERMs every child that is still running and waits until each has exited. */
export async function stopChildren(children: readonly ChildProcess[]): Promise<void> {
  await Promise.all(
    children.map((child) =>
      child.exitCode !== null || child.signalCode !== null
        ? undefined
        : new Promise((r) => {
            child.once("exit", r);
            child.kill("SIGTERM");
          }),
    ),
  );
}
