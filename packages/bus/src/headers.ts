import { MsgHdrsImpl, type MsgHdrs } from "@nats-io/transport-node";

/**
 * Header reads and writes for the hot path. nats.js's `MsgHdrs.get` copies every key into an
 * array and filters it per call, and `append` also canonicalises the key and builds a regular
 * expression per call: a request's envelope (13-16 headers) did that on every header, on the
 * edge and again on the worker. These work on nats.js's own header map (`MsgHdrsImpl.headers`,
 * exact names as written) and fall back to the interface for any other `MsgHdrs`.
 */

/** The first value of header `name` (exact name): undefined when absent, "" when empty. */
export function headerValue(h: MsgHdrs | undefined, name: string): string | undefined {
  if (!h) return undefined;
  if (h instanceof MsgHdrsImpl) return h.headers.get(name)?.[0];
  return h.has(name) ? h.get(name) : undefined;
}

const CR_LF = /[\r\n]/;

/**
 * Adds header `name` (a constant of ours, exact) with `value` to headers that do not have it yet,
 * as nats.js's `append` would: a value with CR or LF is refused (throws), surrounding space is
 * trimmed.
 */
export function addHeader(h: MsgHdrs, name: string, value: string): void {
  if (CR_LF.test(value)) throw new TypeError(`header ${name}: values cannot contain \\r or \\n`);
  if (h instanceof MsgHdrsImpl) h.headers.set(name, [value.trim()]);
  else h.append(name, value);
}
