import type { JsonRpcRequest } from "@mcpq/protocol";
import type { MsgHdrs, TargetKind } from "@mcpq/bus";
import type { OutboundMessage } from "./outbound.js";
import type { SessionRecord } from "./session-store.js";

/**
 * Watches every request the session core dispatches, for telemetry only (never changes what
 * the client gets): `begin` when the core classifies it, then exactly one of `refused` (dispatch
 * threw: nothing was queued) or `answered` (its response promise; a cancel rejects it).
 */
export interface RequestObserver {
  /** `session` is only the principal for `initialize` (the session exists once it succeeded). */
  begin(
    session: SessionRecord | { principal: string; id?: undefined },
    req: JsonRpcRequest,
  ): RequestObservation;
}

/** One request's observation; see `RequestObserver`. */
export interface RequestObservation {
  /** A routed request's target resolved (admission and the publish follow). */
  routed(target: { kind: TargetKind; name: string; pool: string }): void;
  /**
   * Just before the request is published with `headers` (the observer may add trace context);
   * the returned function is called when the broker acknowledged (no argument) or refused it.
   */
  publishing(headers: MsgHdrs, subject: string, requestId: string): (err?: unknown) => void;
  /** The dispatched request: its response (a cancel rejects it) and, when routed, its publish. */
  answered(d: { response: Promise<OutboundMessage>; published?: Promise<void> | undefined }): void;
  refused(err: unknown): void;
}
