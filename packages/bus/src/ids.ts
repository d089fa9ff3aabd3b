import { randomBytes } from "node:crypto";

/**
 * Fast unique ids for internal identifiers (request ids, event tokens, stream ids): a random
 * per-generator prefix plus a counter. Unique across processes (64 random bits of prefix), cheap
 * on the hot path (no syscall per id). Not for secrets: session ids stay fully random.
 */
export function idGenerator(alphabet: "base64url" | "hex" = "base64url"): () => string {
  const prefix =
    alphabet === "hex"
      ? randomBytes(4).toString("hex")
      : randomBytes(6).toString("base64url").replace(/_/g, "-");
  let n = 0;
  return alphabet === "hex"
    ? () => prefix + (n++).toString(16).padStart(4, "0")
    : () => prefix + (n++).toString(36);
}
