import { test as base } from "vitest";
import { startNats, type NatsHandle } from "./nats-server.js";

/**
 * vitest fixture handing each test file a real NATS with JetStream (testcontainers when a Docker
 * engine is reachable, else a local nats-server on a random port with a temp store).
 */
export const natsTest = base.extend(
  "nats",
  { scope: "file" }, // eslint-disable-next-line no-empty-pattern -- vitest requires a destructuring pattern here
  async ({}, { onCleanup }): Promise<NatsHandle> => {
    const nats = await startNats();
    onCleanup(() => nats.stop());
    return nats;
  },
);
