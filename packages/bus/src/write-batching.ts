import type { Socket } from "node:net";
import type { NatsConnection } from "@nats-io/transport-node";

const BATCHED = Symbol("mcpq.batchedWrites");

/**
 * Returns the function to call before each write to `socket`: the first call of a turn corks
 * the socket and schedules the uncork with `defer`, so all writes of that turn leave in one
 * syscall. `process.nextTick` ends the turn with the current callback and its microtasks;
 * `setImmediate` with the event-loop iteration (every I/O callback of it).
 */
export function corkPerTurn(
  socket: { cork(): void; uncork(): void },
  defer: (fn: () => void) => void,
): () => void {
  let corked = false;
  const flush = () => {
    corked = false;
    socket.uncork();
  };
  return () => {
    if (corked) return;
    corked = true;
    socket.cork();
    defer(flush);
  };
}

/**
 * Coalesces the NATS client's socket writes per event-loop iteration. nats.js flushes its
 * outbound buffer at the end of every microtask drain, i.e. once per I/O callback: under load
 * that is a write syscall per request or ack, and on small VMs a loopback write costs as much as
 * the rest of the publish. The socket is corked at the first write of an iteration and uncorked
 * in that iteration's check phase (`setImmediate`), so everything the iteration's callbacks
 * published leaves in one `writev`. Applied again after every reconnect (a new socket).
 *
 * It reaches into nats.js internals (`protocol.transport.socket`); when they are not where
 * expected it does nothing and the client behaves as before.
 */
export function batchWrites(nc: NatsConnection): void {
  const apply = () => {
    const sock = (nc as unknown as { protocol?: { transport?: { socket?: Socket } } }).protocol
      ?.transport?.socket;
    if (
      !sock ||
      typeof sock.cork !== "function" ||
      (sock as unknown as Record<symbol, boolean>)[BATCHED]
    )
      return;
    (sock as unknown as Record<symbol, boolean>)[BATCHED] = true;
    const write = sock.write;
    const beforeWrite = corkPerTurn(sock, setImmediate);
    sock.write = function (this: Socket, ...args: Parameters<Socket["write"]>) {
      if (!sock.destroyed) beforeWrite();
      return write.apply(this, args);
    } as Socket["write"];
  };
  apply();
  void (async () => {
    for await (const s of nc.status()) if (s.type === "reconnect") apply();
  })().catch(() => undefined);
}
