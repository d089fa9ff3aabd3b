/** Why a nats-server could not be launched (string codes; never sent on any wire). */
export type NatsLaunchErrorCode =
  /** No nats-server binary where we looked. */
  | "not-found"
  /** The binary is older than {@link MIN_NATS_SERVER_VERSION}. */
  | "too-old"
  /** A port the server needs is taken by another process. */
  | "port-in-use"
  /** Another live nats-server (started by this launcher) uses the store directory. */
  | "store-locked"
  /** The server process exited while starting. */
  | "exited"
  /** The server did not become ready (JetStream, cluster leader) in time. */
  | "not-ready";

/** One error class for every launch failure; `code` says which, the message names the port/store. */
export class NatsLaunchError extends Error {
  override readonly name = "NatsLaunchError";
  constructor(
    readonly code: NatsLaunchErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}
