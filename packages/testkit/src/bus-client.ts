import {
  encodeEnvelope,
  subjects,
  type Bus,
  type Msg,
  type Subscription,
  type TargetKind,
} from "@mcpq/bus";
import type { LogLevel, ProtocolVersion, RequestId } from "@mcpq/protocol";
import { eventually } from "./stack.js";

/** A JSON-RPC response as a worker published it. */
export interface BusRpcResponse {
  id: RequestId;
  result?: Record<string, unknown>;
  error?: { code: number; message: string; data?: unknown };
}

export interface BusCallOptions {
  protocolVersion?: ProtocolVersion;
  /** Top-level capability names the client declared (the envelope's `Mcpq-Client-Capabilities`). */
  clientCapabilities?: string[];
  principal?: string;
  logLevel?: LogLevel;
  deadlineMs?: number;
}

/**
 * Stands in for an edge in worker tests: publishes requests with a full envelope straight onto a
 * pool's request subjects of a real JetStream and collects what workers publish on the session's
 * outbound subjects (responses by id, notifications, server->client requests).
 */
export class BusClient {
  readonly requests: Record<string, unknown>[] = [];
  readonly notifications: Record<string, unknown>[] = [];
  readonly #responses = new Map<RequestId, BusRpcResponse>();
  readonly #sub: Subscription;
  #nextId = 1;

  constructor(
    private readonly bus: Bus,
    private readonly pool: string,
    readonly session = `busClient${Math.random().toString(36).slice(2).padEnd(12, "x")}`,
  ) {
    this.#sub = bus.nc.subscribe(subjects.sessionOutbound(this.session), {
      callback: (_e, m: Msg) => {
        if (m.data.length === 0) return; // control messages
        const body = m.json<Record<string, unknown>>();
        if (typeof body["method"] === "string")
          (body["id"] === undefined ? this.notifications : this.requests).push(body);
        else this.#responses.set(body["id"] as RequestId, body as unknown as BusRpcResponse);
      },
    });
  }

  /** Publishes one request as an edge would and waits for its response. */
  async call(
    method: string,
    kind: TargetKind,
    target: string,
    params: Record<string, unknown>,
    o: BusCallOptions = {},
  ): Promise<BusRpcResponse> {
    const id = this.#nextId++;
    const requestId = `bc-${id}-${Math.random().toString(36).slice(2)}`;
    await this.bus.publisher.publish(
      subjects.request(this.pool, kind, target),
      JSON.stringify({ jsonrpc: "2.0", id, method, params }),
      {
        headers: encodeEnvelope({
          requestId,
          session: this.session,
          principal: o.principal ?? "alice",
          protocolVersion: o.protocolVersion ?? ("2026-07-28" as ProtocolVersion),
          deadline: Date.now() + (o.deadlineMs ?? 30_000),
          replyTo: subjects.outbound(this.session, `s${id}`),
          logLevel: o.logLevel,
          targetKind: kind,
          target,
          edge: "bus-client",
          receivedAt: Date.now(),
          traceparent: undefined,
          clientCapabilities: o.clientCapabilities ?? ["sampling", "elicitation", "roots"],
        }),
      },
    );
    await eventually(() => this.#responses.has(id), {
      what: `response to ${method} ${target} #${id}`,
    });
    return this.#responses.get(id)!;
  }

  /** `tools/call` of `name` (arguments `{}` unless `extra` sets them, plus any other params). */
  tool(
    name: string,
    extra: Record<string, unknown> = {},
    o?: BusCallOptions,
  ): Promise<BusRpcResponse> {
    return this.call("tools/call", "tool", name, { name, arguments: {}, ...extra }, o);
  }

  close(): void {
    this.#sub.unsubscribe();
  }
}
