import { createCipheriv, createDecipheriv, createHash, hkdfSync, randomBytes } from "node:crypto";

/**
 * Sealed `requestState` of a multi round-trip request (MCP 2026-07-28 MRTR).
 *
 * The client echoes the state byte for byte, so it is attacker-controlled input. It is sealed
 * with AES-256-GCM (confidential and integrity-protected): a token is
 * `ms1.<kid>.<base64url(iv ‖ ciphertext ‖ tag)>`, where `kid` names the key that sealed it and the
 * version prefix and `kid` are authenticated as additional data. The sealed payload binds the
 * principal, the method, the target (tool/prompt name or resource URI), a digest of the original
 * request parameters and an expiry; `open` refuses a token whose binding differs from the retry's
 * or whose expiry has passed, so a state cannot be replayed by another principal, on another
 * request, or after its TTL.
 *
 * Keys: every worker of a pool must hold the same keys, since the retry may reach any of them.
 * The first key seals; every key opens (rotation: add the new key second, roll it out, move it
 * first, then drop the old one once its states have expired). Each key is a secret string of at
 * least 32 characters; the AES key is derived from it with HKDF-SHA256.
 */

/** What a sealed state is bound to; a retry must match every field. */
export interface RequestStateBinding {
  principal: string;
  method: string;
  target: string;
  /** Digest of the request's salient parameters (see `paramsDigest`). */
  digest: string;
}

/** Why a token was refused; the wire error is the same for all (no oracle for an attacker). */
export type RequestStateRefusal =
  "malformed" | "unknown-key" | "tampered" | "mismatch" | "expired" | "too-large";

export class RequestStateError extends Error {
  constructor(readonly reason: RequestStateRefusal) {
    super(`requestState refused: ${reason}`);
    this.name = "RequestStateError";
  }
}

export interface RequestStateSealerOptions {
  /** Secrets, first one seals, all open. Each at least 32 characters. */
  keys: readonly string[];
  /** Lifetime of a sealed state (ms). */
  ttlMs: number;
  /** Longest token accepted or produced (characters). */
  maxBytes: number;
}

export interface RequestStateSealer {
  /** Seals `data` bound to `binding`, valid for the sealer's TTL from `now`. Throws `too-large` past `maxBytes`. */
  seal(binding: RequestStateBinding, data: unknown, now?: number): string;
  /** Opens a token and checks its binding and expiry; throws `RequestStateError` when refused. */
  open(token: string, binding: RequestStateBinding, now?: number): unknown;
}

export const MIN_REQUEST_STATE_KEY_LENGTH = 32;
const PREFIX = "ms1";
const IV_BYTES = 12;
const TAG_BYTES = 16;
const B64URL = /^[A-Za-z0-9_-]+$/;

interface Key {
  kid: string;
  key: Buffer;
}

function deriveKey(secret: string): Key {
  if (secret.length < MIN_REQUEST_STATE_KEY_LENGTH) {
    throw new Error(`request-state keys need at least ${MIN_REQUEST_STATE_KEY_LENGTH} characters`);
  }
  const key = Buffer.from(
    hkdfSync("sha256", Buffer.from(secret, "utf8"), Buffer.alloc(0), "mcpq request-state v1", 32),
  );
  // The key id reveals nothing usable about the key (a hash of the derived key, truncated).
  const kid = createHash("sha256").update(key).digest("base64url").slice(0, 8);
  return { kid, key };
}

/** A fresh random secret, for a single worker process that was given no shared key. */
export function randomRequestStateKey(): string {
  return randomBytes(32).toString("base64url");
}

export function createRequestStateSealer(opts: RequestStateSealerOptions): RequestStateSealer {
  if (opts.keys.length === 0) throw new Error("request-state sealer needs at least one key");
  if (!(opts.ttlMs > 0)) throw new Error("request-state TTL must be positive");
  const keys = opts.keys.map(deriveKey);
  const byKid = new Map(keys.map((k) => [k.kid, k]));
  const signer = keys[0]!;

  return {
    seal(binding, data, now = Date.now()) {
      const payload = JSON.stringify({ b: bindingTuple(binding), exp: now + opts.ttlMs, d: data });
      const iv = randomBytes(IV_BYTES);
      const aad = `${PREFIX}.${signer.kid}`;
      const cipher = createCipheriv("aes-256-gcm", signer.key, iv);
      cipher.setAAD(Buffer.from(aad));
      const body = Buffer.concat([
        iv,
        cipher.update(payload, "utf8"),
        cipher.final(),
        cipher.getAuthTag(),
      ]);
      const token = `${aad}.${body.toString("base64url")}`;
      if (token.length > opts.maxBytes) throw new RequestStateError("too-large");
      return token;
    },
    open(token, binding, now = Date.now()) {
      if (token.length > opts.maxBytes) throw new RequestStateError("too-large");
      const parts = token.split(".");
      if (parts.length !== 3 || parts[0] !== PREFIX || !B64URL.test(parts[2]!))
        throw new RequestStateError("malformed");
      const key = byKid.get(parts[1]!);
      if (!key) throw new RequestStateError("unknown-key");
      const body = Buffer.from(parts[2]!, "base64url");
      // Buffer's decoder skips stray characters; only a canonical encoding is accepted.
      if (body.length < IV_BYTES + TAG_BYTES || body.toString("base64url") !== parts[2])
        throw new RequestStateError("malformed");
      let payload: { b?: unknown; exp?: unknown; d?: unknown };
      try {
        const decipher = createDecipheriv("aes-256-gcm", key.key, body.subarray(0, IV_BYTES));
        decipher.setAAD(Buffer.from(`${PREFIX}.${key.kid}`));
        decipher.setAuthTag(body.subarray(body.length - TAG_BYTES));
        const plain = Buffer.concat([
          decipher.update(body.subarray(IV_BYTES, body.length - TAG_BYTES)),
          decipher.final(),
        ]);
        payload = JSON.parse(plain.toString("utf8")) as typeof payload;
      } catch {
        throw new RequestStateError("tampered");
      }
      const expected = bindingTuple(binding);
      const bound = payload.b;
      if (
        !Array.isArray(bound) ||
        bound.length !== expected.length ||
        expected.some((v, i) => bound[i] !== v)
      ) {
        throw new RequestStateError("mismatch");
      }
      if (typeof payload.exp !== "number" || now >= payload.exp)
        throw new RequestStateError("expired");
      return payload.d;
    },
  };
}

function bindingTuple(b: RequestStateBinding): string[] {
  return [b.principal, b.method, b.target, b.digest];
}

/**
 * SHA-256 (base64url) of `params` without the MRTR fields (`inputResponses`, `requestState`) and
 * `_meta`, in canonical JSON (object keys sorted), so a retry carrying the same request matches.
 */
export function paramsDigest(params: Record<string, unknown>): string {
  const { _meta: _m, inputResponses: _i, requestState: _s, ...salient } = params;
  return createHash("sha256").update(canonicalJson(salient)).digest("base64url");
}

/** JSON with object keys sorted at every level (a stable input for digests). */
export function canonicalJson(v: unknown): string {
  if (v === null || typeof v !== "object") return JSON.stringify(v) ?? "null";
  if (Array.isArray(v)) return `[${v.map(canonicalJson).join(",")}]`;
  const o = v as Record<string, unknown>;
  const keys = Object.keys(o)
    .filter((k) => o[k] !== undefined)
    .sort();
  return `{${keys.map((k) => `${JSON.stringify(k)}:${canonicalJson(o[k])}`).join(",")}}`;
}
