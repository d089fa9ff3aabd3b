import { createServer } from "node:net";
import { NatsLaunchError } from "./errors.js";

/**
 * A port that was free a moment ago on `host` (bind port 0, read, close). Another process can
 * take it before the server binds: callers that did not choose the port retry on `port-in-use`.
 */
export function freePort(host = "127.0.0.1"): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.once("error", reject);
    srv.listen(0, host, () => {
      const addr = srv.address();
      const port = typeof addr === "object" && addr ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

/**
 * Fails fast with a message naming the port when something already listens on it (nats-server
 * itself would only say so in its log and exit).
 * @throws NatsLaunchError `port-in-use`
 */
export function assertPortFree(port: number, host: string, what: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.once("error", (err: NodeJS.ErrnoException) => {
      if (err.code === "EADDRINUSE")
        reject(
          new NatsLaunchError(
            "port-in-use",
            `${what} port ${port} on ${host} is already in use (another nats-server or process listens there)`,
            { cause: err },
          ),
        );
      else
        reject(
          new NatsLaunchError(
            "port-in-use",
            `${what} port ${port} on ${host} cannot be bound: ${err.message}`,
            { cause: err },
          ),
        );
    });
    srv.listen({ port, host, exclusive: true }, () => srv.close(() => resolve()));
  });
}
