import { mkdir, open, readFile, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { NatsLaunchError } from "./errors.js";
import { trackPath, untrackPath } from "./cleanup.js";

/** The lock file the launcher keeps in every store directory it runs a server on. */
export const STORE_LOCK_FILE = "mcpq-nats.lock";

interface LockBody {
  launcher: number;
  server?: number;
  port?: number;
}

function alive(pid: number | undefined): boolean {
  if (!pid) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    // EPERM: it exists but belongs to someone else, which still means "in use".
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}

/** A held store lock; `setServer` records the server's pid, `release` removes the file. */
export interface StoreLock {
  readonly file: string;
  setServer(pid: number, port: number): Promise<void>;
  release(): Promise<void>;
}

/**
 * Locks `storeDir` for one server. nats-server 2.9 does not lock its store, and two servers on
 * one store corrupt it, so the launcher does: a lock whose launcher or server is still alive
 * refuses the start (a stale one, after a crash, is taken over).
 * @throws NatsLaunchError `store-locked` naming the store and the pid holding it.
 */
export async function lockStore(storeDir: string): Promise<StoreLock> {
  await mkdir(storeDir, { recursive: true });
  const file = join(storeDir, STORE_LOCK_FILE);
  for (let attempt = 0; ; attempt++) {
    try {
      const fh = await open(file, "wx");
      await fh.writeFile(JSON.stringify({ launcher: process.pid } satisfies LockBody));
      await fh.close();
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "EEXIST" || attempt > 0) throw err;
      let held: LockBody | undefined;
      try {
        held = JSON.parse(await readFile(file, "utf8")) as LockBody;
      } catch {
        held = undefined; // unreadable or half-written: treat as stale
      }
      // A launcher that is still running (another process) or a server that is still running holds it.
      const launcherAlive =
        held !== undefined && held.launcher !== process.pid && alive(held.launcher);
      if (held && (launcherAlive || alive(held.server))) {
        throw new NatsLaunchError(
          "store-locked",
          `store ${storeDir} is in use by another nats-server (pid ${held.server ?? "?"}, started by pid ${held.launcher}${held.port ? `, port ${held.port}` : ""}); stop it or choose another store (lock file ${file})`,
        );
      }
      await rm(file, { force: true });
    }
  }
  trackPath(file);
  return {
    file,
    async setServer(pid, port) {
      await writeFile(
        file,
        JSON.stringify({ launcher: process.pid, server: pid, port } satisfies LockBody),
      );
    },
    async release() {
      untrackPath(file);
      await rm(file, { force: true });
    },
  };
}
