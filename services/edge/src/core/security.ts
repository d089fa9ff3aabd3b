/**
 * Host and Origin checks (DNS-rebinding protection). Transport-neutral: callers pass header
 * values, get a decision. Bearer credentials are checked by EdgeAuth (auth.ts).
 */
export function hostAllowed(host: string | undefined, allowed: readonly string[]): boolean {
  if (allowed.includes("*")) return true;
  if (!host) return false;
  const name = stripPort(host.toLowerCase());
  return allowed.some((a) => stripPort(a.toLowerCase()) === name);
}

/** A missing Origin is allowed (non-browser clients); a present one must match the list. */
export function originAllowed(origin: string | undefined, allowed: readonly string[]): boolean {
  if (origin === undefined || allowed.includes("*")) return true;
  let u: URL;
  try {
    u = new URL(origin);
  } catch {
    return false;
  }
  const scheme = u.protocol;
  const hostname = u.hostname.toLowerCase();
  const port = u.port || (scheme === "https:" ? "443" : "80");
  return allowed.some((a) => {
    const m = /^(https?:)\/\/(\[[^\]]+\]|[^:/]+)(?::(\*|\d+))?$/.exec(a.toLowerCase());
    if (!m) return false;
    const [, s, h, p] = m;
    if (
      s !== scheme ||
      h !==
        (hostname.startsWith("[") ? hostname : u.host.startsWith("[") ? `[${hostname}]` : hostname)
    ) {
      return false;
    }
    return p === "*" || (p ?? (s === "https:" ? "443" : "80")) === port;
  });
}

function stripPort(h: string): string {
  if (h.startsWith("[")) return h.slice(0, h.indexOf("]") + 1);
  const i = h.lastIndexOf(":");
  return i >= 0 ? h.slice(0, i) : h;
}

/** Principal used when no tokens are configured (loopback development). */
export const ANONYMOUS = "anonymous";

/**
 * Whether a request carries more than one Host header (rawHeaders is name, value, name, ...).
 * Node keeps the first and drops the rest, so a proxy and this edge could each act on a
 * different one: such a request is refused.
 */
export function duplicateHost(rawHeaders: readonly string[] | undefined): boolean {
  if (!rawHeaders) return false;
  let n = 0;
  for (let i = 0; i < rawHeaders.length; i += 2)
    if (rawHeaders[i]!.toLowerCase() === "host" && ++n > 1) return true;
  return false;
}
