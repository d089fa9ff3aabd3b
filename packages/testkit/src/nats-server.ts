import { existsSync } from "node:fs";
import {
  findNatsServer as findBinary,
  startLocalCluster as launchCluster,
  startLocalNats as launchNats,
  type LocalCluster,
  type LocalClusterOptions,
  type LocalNats,
  type LocalNatsOptions,
} from "@mcpq/nats-launcher";

export { freePort, type LocalCluster, type LocalNats } from "@mcpq/nats-launcher";

/** A NATS server with JetStream for tests. */
export interface NatsHandle {
  url: string;
  port: number;
  /** "local" (a nats-server child process) or "container" (testcontainers). */
  kind: "local" | "container";
  /** Kills the server abruptly (SIGKILL) without removing its store; for chaos tests. */
  kill?(): void | Promise<void>;
  stop(): Promise<void>;
}

// Tests find the binary like the CLI does: MCPQ_NATS_SERVER_BIN, then PATH, then the standard dirs.
const binary = () => ({
  bin: process.env["MCPQ_NATS_SERVER_BIN"],
  searchPath: process.env["PATH"],
});

/** The nats-server binary tests would start (MCPQ_NATS_SERVER_BIN, PATH, the standard dirs); null when none. */
export function findNatsServer(): string | null {
  return findBinary(binary());
}

/** The launcher's `startLocalNats` (random ports, temp store, JetStream ready) with the test binary lookup. */
export function startLocalNats(opts: LocalNatsOptions = {}): Promise<LocalNats> {
  return launchNats({ ...binary(), ...opts });
}

/** The launcher's `startLocalCluster` (N nodes on loopback, kill/restart per node) with the test binary lookup. */
export function startLocalCluster(opts: LocalClusterOptions = {}): Promise<LocalCluster> {
  return launchCluster({ ...binary(), ...opts });
}

/** True when a Docker engine looks reachable (socket present or DOCKER_HOST set). */
function dockerLikelyAvailable(): boolean {
  return Boolean(process.env["DOCKER_HOST"]) || existsSync("/var/run/docker.sock");
}

/**
 * A real NATS with JetStream: testcontainers' NATS module when a Docker engine is reachable,
 * otherwise a local nats-server on a random port with a temporary store.
 */
export async function startNats(): Promise<NatsHandle> {
  if (dockerLikelyAvailable() && process.env["MCPQ_TEST_NO_CONTAINERS"] !== "1") {
    try {
      const { NatsContainer } = await import("@testcontainers/nats");
      const c = await new NatsContainer("nats:2.11-alpine").withJetStream().start();
      const port = c.getMappedPort(4222);
      return {
        url: `nats://${c.getHost()}:${port}`,
        port,
        kind: "container",
        async stop() {
          await c.stop();
        },
      };
    } catch {
      // No usable engine after all: fall back to a local server.
    }
  }
  return startLocalNats();
}
