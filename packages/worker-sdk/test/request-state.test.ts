import { describe, expect, it } from "vitest";
import {
  RequestStateError,
  canonicalJson,
  createRequestStateSealer,
  paramsDigest,
  type RequestStateBinding,
} from "../src/request-state.js";

const KEY_A = "a".repeat(16) + "-first-shared-secret-key";
const KEY_B = "b".repeat(16) + "-second-shared-secret-key";
const binding: RequestStateBinding = {
  principal: "alice",
  method: "tools/call",
  target: "deploy",
  digest: paramsDigest({ name: "deploy", arguments: { env: "prod" } }),
};

function refusal(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    if (err instanceof RequestStateError) return err.reason;
    throw err;
  }
  throw new Error("expected a refusal");
}

describe("requestState sealing", () => {
  const sealer = createRequestStateSealer({ keys: [KEY_A], ttlMs: 60_000, maxBytes: 4096 });

  it("opens what it sealed, with the same binding, before expiry; every seal differs", () => {
    const t1 = sealer.seal(binding, { n: 1, a: { x: 1 } }, 1_000);
    const t2 = sealer.seal(binding, { n: 1, a: { x: 1 } }, 1_000);
    expect(t1).not.toBe(t2);
    expect(t1).toMatch(/^ms1\.[A-Za-z0-9_-]{8}\.[A-Za-z0-9_-]+$/);
    expect(sealer.open(t1, binding, 60_999)).toEqual({ n: 1, a: { x: 1 } });
  });

  it("does not carry the sealed data in the clear", () => {
    const t = sealer.seal(binding, { secret: "hunter2-value" });
    expect(Buffer.from(t.split(".")[2]!, "base64url").toString("latin1")).not.toContain("hunter2");
    expect(t).not.toContain("alice");
  });

  it("refuses a tampered token: appended text, a flipped byte, a swapped key id, garbage", () => {
    const t = sealer.seal(binding, { n: 1 });
    expect(refusal(() => sealer.open(`${t}-TAMPERED`, binding))).toMatch(/tampered|malformed/);
    const [p, kid, body] = t.split(".") as [string, string, string];
    const bytes = Buffer.from(body, "base64url");
    bytes[20] = bytes[20]! ^ 0x01;
    expect(refusal(() => sealer.open(`${p}.${kid}.${bytes.toString("base64url")}`, binding))).toBe(
      "tampered",
    );
    expect(refusal(() => sealer.open(`${p}.AAAAAAAA.${body}`, binding))).toBe("unknown-key");
    expect(refusal(() => sealer.open("ms2." + kid + "." + body, binding))).toBe("malformed");
    expect(refusal(() => sealer.open("not a state", binding))).toBe("malformed");
    expect(refusal(() => sealer.open(`${p}.${kid}.AAAA`, binding))).toBe("malformed");
  });

  it("refuses an expired token", () => {
    const t = sealer.seal(binding, { n: 1 }, 1_000);
    expect(refusal(() => sealer.open(t, binding, 61_000))).toBe("expired");
  });

  it("refuses a token presented by another principal, on another method, target or request", () => {
    const t = sealer.seal(binding, { n: 1 });
    expect(refusal(() => sealer.open(t, { ...binding, principal: "mallory" }))).toBe("mismatch");
    expect(refusal(() => sealer.open(t, { ...binding, method: "prompts/get" }))).toBe("mismatch");
    expect(refusal(() => sealer.open(t, { ...binding, target: "destroy" }))).toBe("mismatch");
    const other = paramsDigest({ name: "deploy", arguments: { env: "staging" } });
    expect(refusal(() => sealer.open(t, { ...binding, digest: other }))).toBe("mismatch");
  });

  it("rotates: the first key seals, every key opens; a dropped key's tokens are refused", () => {
    const old = createRequestStateSealer({ keys: [KEY_A], ttlMs: 60_000, maxBytes: 4096 });
    const rolling = createRequestStateSealer({
      keys: [KEY_B, KEY_A],
      ttlMs: 60_000,
      maxBytes: 4096,
    });
    const done = createRequestStateSealer({ keys: [KEY_B], ttlMs: 60_000, maxBytes: 4096 });
    const fromOld = old.seal(binding, { v: "old" });
    const fromRolling = rolling.seal(binding, { v: "new" });
    expect(rolling.open(fromOld, binding)).toEqual({ v: "old" });
    expect(refusal(() => old.open(fromRolling, binding))).toBe("unknown-key");
    expect(done.open(fromRolling, binding)).toEqual({ v: "new" });
    expect(refusal(() => done.open(fromOld, binding))).toBe("unknown-key");
  });

  it("bounds the token size both ways and refuses short keys", () => {
    const small = createRequestStateSealer({ keys: [KEY_A], ttlMs: 60_000, maxBytes: 200 });
    expect(refusal(() => small.seal(binding, { blob: "x".repeat(300) }))).toBe("too-large");
    expect(refusal(() => small.open("ms1." + "A".repeat(300), binding))).toBe("too-large");
    expect(() => createRequestStateSealer({ keys: ["short"], ttlMs: 1, maxBytes: 100 })).toThrow(
      /at least 32/,
    );
  });

  it("digests params canonically and without the MRTR fields and _meta", () => {
    expect(canonicalJson({ b: 1, a: { d: [1, { z: 1, y: 2 }], c: null } })).toBe(
      '{"a":{"c":null,"d":[1,{"y":2,"z":1}]},"b":1}',
    );
    const d = paramsDigest({ name: "t", arguments: { x: 1, y: 2 } });
    expect(
      paramsDigest({
        arguments: { y: 2, x: 1 },
        name: "t",
        inputResponses: { k: {} },
        requestState: "s",
        _meta: { a: 1 },
      }),
    ).toBe(d);
    expect(paramsDigest({ name: "t", arguments: { x: 2, y: 2 } })).not.toBe(d);
  });
});
