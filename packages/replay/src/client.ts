import { randomBytes } from "node:crypto";
import { ErrorCode, type FaultKind, type ProtocolVersion } from "@mcpq/protocol";
import {
  H,
  REPLAY_PRINCIPAL,
  RecordedResponseSchema,
  assertPoolName,
  publishFailure,
  publishRequest,
  replaySession,
  subjects,
  type Bus,
  type CancelNotice,
  type RecordedResponse,
  type RequestEnvelope,
  type RequestRecord,
  type Subscription,
} from "@mcpq/bus";

/** What one replayed request produced. */
/** Publish refusals a retry can get past (the broker is full or unreachable for now). */
const RETRYABLE_PUBLISH: ReadonlySet<FaultKind> = new Set([
  "stream_full",
  "target_queue_full",
  "broker_unavailable",
]);

export interface ReplayAnswer {
  /** The final response (`{result}` / `{error}`), or null when none arrived (see `failure`). */
  response: RecordedResponse | null;
  /** Notifications the worker sent on the replay stream before the response. */
  notifications: Record<string, unknown>[];
  /** Publish to response (ms), measured by the replaying process. */
  durationMs: number;
  /** Why there is no response: the queue refused the request, or the deadline passed. */
  failure?: string;
}

export interface ReplayClientOptions {
  /** Safe token naming this run; its session is `replay-<id>`. Random by default. */
  id?: string;
  /** Per-request deadline (ms) carried in the envelope; the worker drops work past it. Default 30 000. */
  timeoutMs?: number;
}

/**
 * Publishes recorded requests to a pool's request subjects as a dedicated replay session
 * (`replay-<id>`, principal `mcpq-replay`) and collects the answers from that session's own
 * outbound subjects (`mcpq.out.replay.<id>.<n>`) — never through a live client's session.
 * Each request gets a fresh JSON-RPC id and internal request id. Server->client requests
 * (sampling, elicitation, roots) are answered at once with -32601: a replay has no client.
 */
export class ReplayClient {
  readonly id: string;
  readonly session: string;
  readonly #bus: Bus;
  readonly #timeoutMs: number;
  readonly #waiting = new Map<
    string,
    { resolve: (r: RecordedResponse) => void; notifications: Record<string, unknown>[] }
  >();
  #sub: Subscription | undefined;
  #seq = 0;

  private constructor(bus: Bus, opts: ReplayClientOptions) {
    this.#bus = bus;
    this.id = opts.id ?? randomBytes(6).toString("hex");
    this.session = replaySession(this.id);
    this.#timeoutMs = opts.timeoutMs ?? 30_000;
  }

  /** Subscribes to the run's outbound subjects; call `close()` when done. */
  static async open(bus: Bus, opts: ReplayClientOptions = {}): Promise<ReplayClient> {
    const c = new ReplayClient(bus, opts);
    c.#sub = bus.nc.subscribe(subjects.replayOutbound(c.id), {
      callback: (err, m) => {
        if (err) return;
        const requestId = m.headers?.get(H.request) ?? "";
        const kind = m.headers?.get(H.kind);
        const w = c.#waiting.get(requestId);
        let body: Record<string, unknown>;
        try {
          body = m.json<Record<string, unknown>>();
        } catch {
          return;
        }
        if (kind === "request") return c.#refuseClientRequest(body);
        if (!w) return;
        if (kind === "response") {
          const parsed = RecordedResponseSchema.safeParse(
            "error" in body ? { error: body["error"] } : { result: body["result"] ?? {} },
          );
          w.resolve(
            parsed.success
              ? parsed.data
              : { error: { code: ErrorCode.InternalError, message: "malformed response" } },
          );
        } else if (w.notifications.length < 100) {
          w.notifications.push(body);
        }
      },
    });
    await bus.nc.flush();
    return c;
  }

  /** Sends one recorded request to `pool` and waits for its final response (bounded by the timeout). */
  async send(rec: RequestRecord, pool: string): Promise<ReplayAnswer> {
    assertPoolName(pool);
    const n = ++this.#seq;
    const requestId = `${this.session}-${n}`;
    const started = performance.now();
    const deadline = Date.now() + this.#timeoutMs;
    const notifications: Record<string, unknown>[] = [];
    let resolve!: (r: RecordedResponse) => void;
    const answered = new Promise<RecordedResponse>((r) => (resolve = r));
    this.#waiting.set(requestId, { resolve, notifications });
    const body: Record<string, unknown> = { jsonrpc: "2.0", id: n, method: rec.request.method };
    if (rec.request.params !== undefined) body["params"] = rec.request.params;
    const envelope: RequestEnvelope = {
      requestId,
      session: this.session,
      principal: REPLAY_PRINCIPAL,
      protocolVersion: rec.protocolVersion as ProtocolVersion,
      deadline,
      replyTo: subjects.replayReply(this.id, String(n)),
      logLevel: rec.logLevel as never,
      targetKind: rec.targetKind,
      target: rec.target,
      edge: this.session,
      receivedAt: Date.now(),
      traceparent: undefined,
    };
    try {
      // A full queue is an explicit, retryable refusal: back off until the deadline, like a client would.
      for (;;) {
        try {
          await publishRequest(this.#bus, pool, envelope, JSON.stringify(body));
          break;
        } catch (err) {
          const fault = publishFailure(err, 250);
          const wait = fault.retryAfterMs ?? 250;
          if (!RETRYABLE_PUBLISH.has(fault.kind) || Date.now() + wait >= deadline) {
            return {
              response: null,
              notifications,
              durationMs: performance.now() - started,
              failure: `publish refused: ${fault.kind} (${fault.message})`,
            };
          }
          await new Promise((r) => setTimeout(r, wait));
        }
      }
      let timer: NodeJS.Timeout | undefined;
      const timedOut = new Promise<null>(
        (r) => (timer = setTimeout(() => r(null), Math.max(0, deadline - Date.now()) + 1_000)),
      );
      const response = await Promise.race([answered, timedOut]);
      clearTimeout(timer);
      const durationMs = performance.now() - started;
      if (!response) {
        this.#cancel(n);
        return {
          response: null,
          notifications,
          durationMs,
          failure: `no response within ${this.#timeoutMs} ms`,
        };
      }
      return { response, notifications, durationMs };
    } finally {
      this.#waiting.delete(requestId);
    }
  }

  /** Stops listening. In-flight `send`s resolve by their timeouts. */
  async close(): Promise<void> {
    this.#sub?.unsubscribe();
    this.#sub = undefined;
  }

  #cancel(n: number): void {
    const notice: CancelNotice = {
      session: this.session,
      principal: REPLAY_PRINCIPAL,
      requestId: n,
      reason: "replay timeout",
    };
    this.#bus.nc.publish(subjects.cancel(REPLAY_PRINCIPAL, this.session), JSON.stringify(notice));
  }

  #refuseClientRequest(req: Record<string, unknown>): void {
    const id = req["id"];
    if (typeof id !== "string") return;
    const reply = {
      jsonrpc: "2.0",
      id,
      error: {
        code: ErrorCode.MethodNotFound,
        message: "mcpq replay has no client to answer server requests",
      },
    };
    this.#bus.nc.publish(
      subjects.clientReply(REPLAY_PRINCIPAL, this.session, id),
      JSON.stringify(reply),
    );
  }
}
