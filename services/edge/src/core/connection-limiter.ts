/** Transports whose connections are counted (label of the open-connections gauge). */
export type ConnectionKind = "http" | "sse" | "ws" | "tcp" | "grpc";

/** Hooks the service backs with metrics; optional. */
export interface ConnectionMetrics {
  opened(kind: ConnectionKind): void;
  closed(kind: ConnectionKind): void;
  refused(kind: ConnectionKind): void;
}

/**
 * One edge-wide count of client connections shared by every transport: an HTTP request in
 * flight (including a long-lived SSE stream), a WebSocket, a TCP socket, a gRPC stream. When
 * `max` are open the next one is refused by its transport in its own terms (HTTP 503 +
 * Retry-After, WebSocket close 1013, gRPC RESOURCE_EXHAUSTED, TCP an error line then close).
 * Per-session and per-principal admission of requests is a separate concern (admission.ts).
 */
export class ConnectionLimiter {
  #open = 0;
  readonly #byKind = new Map<ConnectionKind, number>();
  readonly #byClient = new Map<string, number>();

  /**
   * `max` 0 means unlimited (counting only). `maxPerClient` (0 = off) bounds the connections
   * one client address may hold, so one source opening connections it never uses (slowloris)
   * cannot take every slot from other clients.
   */
  constructor(
    readonly max: number,
    private readonly metrics?: ConnectionMetrics,
    /** Retry hint sent with refusals (ms). */
    readonly retryAfterMs = 1_000,
    readonly maxPerClient = 0,
  ) {}

  /** Connections open now across all transports. */
  get open(): number {
    return this.#open;
  }

  count(kind: ConnectionKind): number {
    return this.#byKind.get(kind) ?? 0;
  }

  /**
   * Takes a slot for a new connection; returns its release (idempotent), or null when the edge
   * is at its limit and the caller must refuse the connection.
   */
  tryAcquire(kind: ConnectionKind, client?: string): (() => void) | null {
    const mine =
      client === undefined || this.maxPerClient === 0
        ? undefined
        : (this.#byClient.get(client) ?? 0);
    if (
      (this.max > 0 && this.#open >= this.max) ||
      (mine !== undefined && mine >= this.maxPerClient)
    ) {
      this.metrics?.refused(kind);
      return null;
    }
    if (mine !== undefined) this.#byClient.set(client!, mine + 1);
    this.#open++;
    this.#byKind.set(kind, this.count(kind) + 1);
    this.metrics?.opened(kind);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      if (mine !== undefined) {
        const n = (this.#byClient.get(client!) ?? 1) - 1;
        if (n <= 0) this.#byClient.delete(client!);
        else this.#byClient.set(client!, n);
      }
      this.#open--;
      this.#byKind.set(kind, this.count(kind) - 1);
      this.metrics?.closed(kind);
    };
  }
}
