import {
  formatPath,
  pathMatches,
  type PathPattern,
  type PathSegment,
  type RecordedResponse,
} from "@mcpq/bus";

/** One difference between a recorded and a replayed response, at a concrete location. */
export interface Change {
  /** e.g. `result.content[0].text` (the syntax `--ignore` takes). */
  path: string;
  kind: "changed" | "added" | "removed";
  before?: unknown;
  after?: unknown;
}

/**
 * Structural diff of two JSON values. Locations an `ignore` pattern matches (and everything below
 * them) are skipped. Object key order never matters; array order does.
 */
export function diffJson(
  before: unknown,
  after: unknown,
  ignore: readonly PathPattern[] = [],
): Change[] {
  const out: Change[] = [];
  const ignored = (path: PathSegment[]) => ignore.some((p) => pathMatches(p, path));
  const walk = (a: unknown, b: unknown, path: PathSegment[]) => {
    if (path.length && ignored(path)) return;
    if (isObject(a) && isObject(b)) {
      for (const k of new Set([...Object.keys(a), ...Object.keys(b)])) {
        const here = [...path, k];
        if (!(k in b)) {
          if (!ignored(here)) out.push({ path: formatPath(here), kind: "removed", before: a[k] });
        } else if (!(k in a)) {
          if (!ignored(here)) out.push({ path: formatPath(here), kind: "added", after: b[k] });
        } else walk(a[k], b[k], here);
      }
      return;
    }
    if (Array.isArray(a) && Array.isArray(b)) {
      const n = Math.max(a.length, b.length);
      for (let i = 0; i < n; i++) {
        const here = [...path, i];
        if (i >= b.length) {
          if (!ignored(here)) out.push({ path: formatPath(here), kind: "removed", before: a[i] });
        } else if (i >= a.length) {
          if (!ignored(here)) out.push({ path: formatPath(here), kind: "added", after: b[i] });
        } else walk(a[i], b[i], here);
      }
      return;
    }
    if (!Object.is(a, b))
      out.push({ path: formatPath(path), kind: "changed", before: a, after: b });
  };
  walk(before, after, []);
  return out;
}

/**
 * Diffs two responses (`{result}` or `{error}`), so paths start with `result` or `error`. An
 * `InputRequiredResult`'s `requestState` (2026-07-28 MRTR) is sealed per answer (a fresh nonce
 * and expiry), so two correct answers never carry the same one: it is compared by presence
 * only, and `inputRequests` and everything else as usual.
 */
export function diffResponses(
  recorded: RecordedResponse,
  replayed: RecordedResponse,
  ignore: readonly PathPattern[] = [],
): Change[] {
  return diffJson(sealedAlike(recorded), sealedAlike(replayed), ignore);
}

const SEALED = "<sealed requestState>";

function sealedAlike(r: RecordedResponse): RecordedResponse {
  const result = (r as { result?: unknown }).result;
  if (!isObject(result) || typeof result["requestState"] !== "string") return r;
  return { ...r, result: { ...result, requestState: SEALED } } as RecordedResponse;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === "object" && !Array.isArray(v);
}
