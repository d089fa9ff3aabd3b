import { createServer, connect, type Socket } from "node:net";

/**
 * A TCP relay to one upstream whose client->upstream direction can be held: what the client
 * writes while held waits in the relay and goes on, in order, on release. Placed between a
 * worker and NATS, it delays the worker's publishes (its late answers) without touching anything
 * else.
 */
export async function startHoldableRelay(upstreamPort: number): Promise<{
  port: number;
  /** Stops forwarding what clients send (they are not told; bytes queue in the relay). */
  hold(): void;
  /** Forwards everything held, then carries on (no-op when not held). */
  release(): void;
  close(): Promise<void>;
}> {
  const sockets = new Set<Socket>();
  const pipes = new Set<{ client: Socket; up: Socket }>();
  let held = false;
  const server = createServer((client) => {
    client.pause();
    const up = connect({ host: "127.0.0.1", port: upstreamPort });
    for (const s of [client, up]) {
      sockets.add(s);
      s.on("error", () => undefined);
      s.on("close", () => {
        sockets.delete(s);
        client.destroy();
        up.destroy();
      });
    }
    up.once("connect", () => {
      const pipe = { client, up };
      pipes.add(pipe);
      client.on("close", () => pipes.delete(pipe));
      up.pipe(client);
      if (!held) {
        client.pipe(up);
        client.resume();
      }
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const addr = server.address();
  return {
    port: typeof addr === "object" && addr ? addr.port : 0,
    hold() {
      held = true;
      for (const { client, up } of pipes) {
        client.unpipe(up);
        client.pause();
      }
    },
    release() {
      // Piping a client to its upstream twice would send its bytes twice.
      if (!held) return;
      held = false;
      for (const { client, up } of pipes) {
        client.pipe(up);
        client.resume();
      }
    },
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}
