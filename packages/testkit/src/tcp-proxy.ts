import { createServer, connect, type Socket } from "node:net";

/**
 * A TCP load balancer on 127.0.0.1 for failover tests and the chaos benchmark: each new
 * connection goes to the first upstream port that accepts it, so once an edge dies, reconnecting
 * clients land on the next one. Closing either side closes the other. `upstreams` is the port
 * list, or a function read at each connection (upstreams that change while it runs).
 */
export async function startProxy(
  upstreams: readonly number[] | (() => readonly number[]),
): Promise<{ port: number; close(): Promise<void> }> {
  const sockets = new Set<Socket>();
  const server = createServer((client) => {
    sockets.add(client);
    client.on("close", () => sockets.delete(client));
    client.on("error", () => undefined);
    client.pause();
    const ports = typeof upstreams === "function" ? upstreams() : upstreams;
    const tryNext = (i: number) => {
      if (i >= ports.length) return client.destroy();
      const up = connect({ host: "127.0.0.1", port: ports[i]! });
      let connected = false;
      up.once("error", () => {
        if (!connected) tryNext(i + 1);
      });
      up.once("connect", () => {
        connected = true;
        sockets.add(up);
        up.on("error", () => client.destroy());
        up.on("close", () => {
          sockets.delete(up);
          client.destroy();
        });
        client.on("close", () => up.destroy());
        client.pipe(up);
        up.pipe(client);
        client.resume();
      });
    };
    tryNext(0);
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const addr = server.address();
  return {
    port: typeof addr === "object" && addr ? addr.port : 0,
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}
