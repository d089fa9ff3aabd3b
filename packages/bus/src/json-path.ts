/**
 * A small JSON-path dialect shared by recording (redaction) and replay (`--ignore`): producer and
 * consumers must agree on what a path means, so it lives next to the record contract.
 *
 *   arguments.password        key, key
 *   $.result.content[0].text  optional `$` / `$.` root, array index
 *   content[*].text, a.*.b    `*` / `[*]`: exactly one key or index
 *   **.token, $..token        `**` / `..`: any number of levels (including none)
 *   ["odd.key"], ['x y']      quoted keys for names with dots, spaces or brackets
 *
 * A pattern that matches a location also covers everything below it.
 */

/** One step of a concrete location in a JSON value: an object key or an array index. */
export type PathSegment = string | number;

type PatternSegment =
  { k: "key"; key: string } | { k: "index"; index: number } | { k: "any" } | { k: "deep" };

/** A compiled path pattern (see the module comment for the syntax). */
export interface PathPattern {
  readonly source: string;
  readonly segments: readonly PatternSegment[];
}

/** Parses a pattern; throws `Error` naming the position on bad syntax. */
export function parsePathPattern(text: string): PathPattern {
  const src = text.trim();
  if (!src) throw new Error("empty JSON path");
  const segs: PatternSegment[] = [];
  let i = 0;
  if (src[0] === "$") i = 1;
  const fail = (why: string): never => {
    throw new Error(`invalid JSON path ${JSON.stringify(text)} at ${i}: ${why}`);
  };
  const readName = (): string => {
    const start = i;
    while (i < src.length && src[i] !== "." && src[i] !== "[") i++;
    if (i === start) fail("expected a name");
    return src.slice(start, i);
  };
  let first = true;
  while (i < src.length) {
    const c = src[i]!;
    if (c === ".") {
      if (src[i + 1] === ".") {
        segs.push({ k: "deep" });
        i += 2;
        if (src[i] === "[") continue;
      } else {
        i++;
      }
      pushName(readName());
    } else if (c === "[") {
      const close = findClose(src, i);
      if (close < 0) fail("unclosed [");
      const inner = src.slice(i + 1, close).trim();
      i = close + 1;
      if (inner === "*") segs.push({ k: "any" });
      else if (/^\d+$/.test(inner)) segs.push({ k: "index", index: Number(inner) });
      else if (/^(['"]).*\1$/s.test(inner)) segs.push({ k: "key", key: unquote(inner) });
      else fail(`bad subscript [${inner}]`);
    } else if (first) {
      pushName(readName());
    } else {
      fail(`unexpected ${JSON.stringify(c)}`);
    }
    first = false;
  }
  if (segs.length === 0) fail("no segments");
  return { source: src, segments: segs };

  function pushName(name: string): void {
    if (name === "*") segs.push({ k: "any" });
    else if (name === "**") segs.push({ k: "deep" });
    else segs.push({ k: "key", key: name });
  }
}

function findClose(src: string, open: number): number {
  let quote: string | undefined;
  for (let j = open + 1; j < src.length; j++) {
    const c = src[j];
    if (quote) {
      if (c === "\\") j++;
      else if (c === quote) quote = undefined;
    } else if (c === "'" || c === '"') quote = c;
    else if (c === "]") return j;
  }
  return -1;
}

function unquote(s: string): string {
  return s.slice(1, -1).replace(/\\(.)/g, "$1");
}

/** Compiles several patterns, e.g. from a comma-separated env value or repeated CLI flags. */
export function parsePathPatterns(list: readonly string[]): PathPattern[] {
  return list
    .map((s) => s.trim())
    .filter(Boolean)
    .map(parsePathPattern);
}

/** True when `pattern` matches `path` exactly. */
export function pathMatches(pattern: PathPattern, path: readonly PathSegment[]): boolean {
  return match(pattern.segments, 0, path, 0);
}

function match(
  p: readonly PatternSegment[],
  pi: number,
  path: readonly PathSegment[],
  xi: number,
): boolean {
  if (pi === p.length) return xi === path.length;
  const s = p[pi]!;
  if (s.k === "deep") {
    for (let skip = xi; skip <= path.length; skip++) if (match(p, pi + 1, path, skip)) return true;
    return false;
  }
  if (xi === path.length) return false;
  const x = path[xi]!;
  const ok =
    s.k === "any" || (s.k === "key" && String(x) === s.key) || (s.k === "index" && x === s.index);
  return ok && match(p, pi + 1, path, xi + 1);
}

/** Renders a concrete location the way patterns are written: `result.content[0].text`. */
export function formatPath(path: readonly PathSegment[]): string {
  if (path.length === 0) return "$";
  let out = "";
  for (const seg of path) {
    if (typeof seg === "number") out += `[${seg}]`;
    else if (/^[A-Za-z_$][A-Za-z0-9_$-]*$/.test(seg) && seg !== "*" && seg !== "**")
      out += out ? `.${seg}` : seg;
    else out += `[${JSON.stringify(seg)}]`;
  }
  return out;
}

/**
 * Replaces every value whose location a pattern matches with `mask`, in place, and returns the
 * masked locations (formatted). Masked values are not descended into.
 */
export function maskAtPaths(
  root: unknown,
  patterns: readonly PathPattern[],
  mask: unknown,
): string[] {
  const masked: string[] = [];
  if (patterns.length === 0) return masked;
  const walk = (node: unknown, path: PathSegment[]) => {
    if (node === null || typeof node !== "object") return;
    const entries: [PathSegment, unknown][] = Array.isArray(node)
      ? node.map((v, i) => [i, v])
      : Object.entries(node);
    for (const [k, v] of entries) {
      const here = [...path, k];
      if (patterns.some((p) => pathMatches(p, here))) {
        (node as Record<string | number, unknown>)[k] = mask;
        masked.push(formatPath(here));
      } else {
        walk(v, here);
      }
    }
  };
  walk(root, []);
  return masked;
}
