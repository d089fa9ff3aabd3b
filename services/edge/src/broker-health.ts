import {
  STREAMS,
  publishFailure,
  type AckedPublish,
  type Bus,
  type MsgHdrs,
  type PubAck,
} from "@mcpq/bus";
import { Fault, McpError, silentLogger, type Logger } from "@mcpq/protocol";

export interface BrokerHealthOptions {
  /**
   * How long a broker operation made for a client (session lookup, initialize, a publish) may go
   * unanswered before the edge probes the broker; when the probe fails too (within the same
   * bound) the client gets the retryable -32010 refusal. So an unreachable broker is answered
   * within about this long, a disconnected one at once. MCPQ_BROKER_UNAVAILABLE_MS.
   */
  unavailableMs: number;
  /** Retry hint sent with the refusal (ms). */
  retryAfterMs?: number;
  log?: Logger;
  /** Called with true/false when the broker comes back / becomes unavailable. */
  onChange?: (up: boolean) => void;
}

/** Error a guarded publish rejects with; `publishFailure` maps it to the broker-unavailable refusal. */
class BrokerUnreachable extends Error {
  override readonly name = "ConnectionError";
}

/**
 * Error an abandoned publish rejects with: the broker went down while its PubAck was awaited, so
 * the request may be stored after all. Named like nats.js's timeout, which is how
 * `publishMayHaveLanded` and `publishFailure` recognise it (not by its text).
 */
class PubAckAbandoned extends Error {
  override readonly name = "TimeoutError";
}

/**
 * The edge's view of whether the broker can serve clients now. Down at once when the NATS
 * connection drops (status `disconnect`), or when a probe (MCPQ_REQ's stream info, answered by
 * that stream's leader) fails or goes unanswered for `unavailableMs`; a probe runs when a client's broker operation
 * is slower than that or fails as unreachable, and every `unavailableMs / 4` while down. Up
 * again after the connection is back and a probe succeeds.
 *
 * While down, admission refuses routed requests and `guard` refuses session lookups and
 * initialize with -32010 (`data.reason` "broker unavailable", HTTP 503 + Retry-After on HTTP),
 * so every transport answers at once instead of waiting for the client library's timeouts.
 */
export class BrokerHealth {
  #up = true;
  #probing: Promise<boolean> | undefined;
  #retry: NodeJS.Timeout | undefined;
  /** Guarded operations waiting on the broker, and when the broker last answered one. */
  #inFlight = 0;
  #lastAnswer = Date.now();
  #watch: NodeJS.Timeout | undefined;
  /** Operations waiting: abandoned with the refusal when the broker goes down. */
  readonly #waiting = new Set<() => void>();
  readonly #log: Logger;
  #stopped = false;

  constructor(
    private readonly bus: Bus,
    private readonly opts: BrokerHealthOptions,
  ) {
    this.#log = opts.log ?? silentLogger;
  }

  get up(): boolean {
    return this.#up;
  }

  start(): void {
    void (async () => {
      for await (const s of this.bus.nc.status()) {
        if (this.#stopped) return;
        if (s.type === "disconnect") this.#set(false, "NATS connection lost");
        else if (s.type === "reconnect") void this.probe();
      }
    })().catch(() => undefined);
  }

  stop(): void {
    this.#stopped = true;
    clearTimeout(this.#retry);
    clearInterval(this.#watch);
  }

  /** The refusal clients get while the broker is unavailable (-32010 through the error table). */
  refusal(): Fault {
    return new Fault("broker_unavailable", "broker unavailable", {
      retryAfterMs: this.opts.retryAfterMs ?? 1_000,
    });
  }

  /**
   * Probes the broker once (shared by concurrent callers): true when JetStream answered within
   * `unavailableMs`. Updates the state either way.
   */
  probe(): Promise<boolean> {
    this.#probing ??= (async () => {
      let ok = false;
      let why = "broker probe failed";
      if (!this.bus.nc.isClosed()) {
        const before = this.bus.nc.stats().inMsgs;
        let timer: NodeJS.Timeout | undefined;
        try {
          const answer = await Promise.race([
            // The request stream's info is answered by its own leader: what routed work needs
            // (account info would need the meta leader, whose election does not stop publishes).
            this.bus.jsm.streams.info(STREAMS.requests).then(() => "ok" as const),
            // Judged after the next I/O poll: a stalled process may have the answer unread.
            new Promise<"timeout">(
              (r) =>
                (timer = setTimeout(
                  () => setImmediate(() => r("timeout")),
                  this.opts.unavailableMs,
                )),
            ),
          ]);
          // Unanswered, but the connection kept delivering messages: the broker is slow (or this
          // process is), not gone; refusing everything would turn load into an outage.
          ok = answer === "ok" || (this.#up && this.bus.nc.stats().inMsgs > before);
          if (answer === "timeout") why = ok ? "broker slow" : "broker did not answer";
        } catch (err) {
          // The broker answered that it cannot serve (no responders, no leader, stream gone).
          ok = false;
          why = `broker refused: ${err instanceof Error ? err.message : String(err)}`;
        } finally {
          clearTimeout(timer);
        }
      }
      this.#set(ok, ok ? "broker answered" : why);
      return ok;
    })().finally(() => {
      this.#probing = undefined;
    });
    return this.#probing;
  }

  /**
   * Runs a broker operation made for a client, refused at once while the broker is down. A
   * failure that says the broker is unreachable triggers a probe (and is the refusal for `kv`);
   * so does a broker that has answered no guarded operation for `unavailableMs` while some
   * wait. Every waiting operation is abandoned the moment the broker goes down: `kv` ones
   * (session lookups, initialize) with the refusal, `publish` ones with an error the caller's
   * `publishFailure` maps to it ("may have landed": the caller claims the response slot).
   * Per operation: a counter, a Set entry and one promise (no timer).
   */
  guard<T>(op: () => Promise<T>, kind: "kv" | "publish" = "kv"): Promise<T> {
    if (!this.#up)
      return Promise.reject(
        kind === "kv" ? this.refusal() : new BrokerUnreachable("broker disconnected"),
      );
    if (this.#inFlight++ === 0) this.#lastAnswer = Date.now();
    if (this.#watch === undefined) this.#watchdog();
    const p = op().then(
      (v) => {
        this.#answered();
        return v;
      },
      (err: unknown) => {
        this.#answered();
        if (unreachable(err)) {
          void this.probe();
          if (kind === "kv") throw this.refusal();
        }
        throw err;
      },
    );
    return new Promise<T>((resolve, reject) => {
      const abandon = () =>
        reject(
          kind === "kv"
            ? this.refusal()
            : new PubAckAbandoned("broker disconnected while the publish ack was awaited"),
        );
      this.#waiting.add(abandon);
      p.then(
        (v) => {
          this.#waiting.delete(abandon);
          resolve(v);
        },
        (err: unknown) => {
          this.#waiting.delete(abandon);
          reject(err as Error);
        },
      );
    });
  }

  #answered(): void {
    this.#inFlight--;
    this.#lastAnswer = Date.now();
  }

  /**
   * While operations wait, checks every quarter of `unavailableMs` whether the broker has
   * answered none of them for that long; then a probe decides (a failed one abandons them all).
   */
  #watchdog(): void {
    if (this.#stopped) return;
    const every = Math.max(25, Math.floor(this.opts.unavailableMs / 4));
    this.#watch = setInterval(() => {
      if (this.#inFlight <= 0) {
        clearInterval(this.#watch);
        this.#watch = undefined;
        return;
      }
      if (Date.now() - this.#lastAnswer >= this.opts.unavailableMs) void this.probe();
    }, every);
    this.#watch.unref();
  }

  #set(up: boolean, why: string): void {
    clearTimeout(this.#retry);
    if (!up && !this.#stopped) {
      this.#retry = setTimeout(
        () => void this.probe(),
        Math.max(50, Math.floor(this.opts.unavailableMs / 4)),
      );
      this.#retry.unref();
    }
    if (up === this.#up) return;
    this.#up = up;
    if (up) this.#log.info({ why }, "broker available again");
    else
      this.#log.warn({ why }, "broker unavailable; refusing requests with -32010 until it is back");
    this.opts.onChange?.(up);
    if (!up) for (const abandon of [...this.#waiting]) abandon();
  }
}

/** Whether a failed broker operation means the broker (or the asset) cannot be reached now. */
function unreachable(err: unknown): boolean {
  if (err instanceof McpError || err instanceof Fault) return false;
  if (publishFailure(err).kind === "broker_unavailable") return true;
  // A bucket's stream lost (memory storage across a restart) until self-heal re-creates it.
  return err instanceof Error && /stream not found|no responders/i.test(err.message);
}

/** Methods that return a lister synchronously; they pass through unguarded. */
const SYNC_METHODS = new Set(["list", "names", "codec"]);

/** Wraps every method of `target` (and of the named nested objects) with `guard`. */
function guarded<T extends object>(
  target: T,
  guard: <R>(op: () => Promise<R>) => Promise<R>,
  nested: string[] = [],
): T {
  return new Proxy(target, {
    get(t, prop, receiver) {
      const v = Reflect.get(t, prop, receiver) as unknown;
      if (typeof prop === "string" && nested.includes(prop) && v && typeof v === "object")
        return guarded(v, guard);
      if (typeof v !== "function" || (typeof prop === "string" && SYNC_METHODS.has(prop))) return v;
      return (...args: unknown[]) =>
        guard(() => Promise.resolve((v as (...a: unknown[]) => unknown).apply(t, args)));
    },
  });
}

/**
 * A view of `bus` for the session core and store: session/subscription KV operations and
 * JetStream management calls are guarded (refused with -32010 while the broker is down, or
 * after `unavailableMs` unanswered and a failed probe); publishes are guarded as `publish`
 * (mapped by the caller's `publishFailure`), and `onPublish` sees each request publish and its
 * PubAck (for liveness and queue-time tracking). The registry, NATS connection and other handles pass through unchanged.
 */
export function guardedBus(
  bus: Bus,
  health: BrokerHealth,
  onPublish?: (subject: string, headers: MsgHdrs | undefined, acked: Promise<PubAck>) => void,
): Bus {
  const kvGuard = <R>(op: () => Promise<R>) => health.guard(op, "kv");
  const publisher: AckedPublish = {
    publish(subject, data, opts) {
      const p = health.guard(() => bus.publisher.publish(subject, data, opts), "publish");
      onPublish?.(subject, opts?.headers, p);
      return p;
    },
    // The guarded `publish` above, so both are refused and tracked alike.
    send(subject, data, opts, cb) {
      publisher.publish(subject, data, opts).then(
        (ack) => cb(undefined, ack),
        (err: Error) => cb(err, undefined),
      );
    },
    get inFlight() {
      return bus.publisher.inFlight;
    },
  };
  return {
    ...bus,
    publisher,
    jsm: guarded(bus.jsm, kvGuard, ["consumers", "streams", "direct"]),
    kv: {
      sessions: guarded(bus.kv.sessions, kvGuard),
      subscriptions: guarded(bus.kv.subscriptions, kvGuard),
      registry: bus.kv.registry,
      tasks: guarded(bus.kv.tasks, kvGuard),
      usedStates: bus.kv.usedStates,
    },
    // A getter (the spread above copied the value it had when this view was made).
    get connected() {
      return bus.connected;
    },
    close: () => bus.close(),
  };
}
