/**
 * Host and Origin checks (DNS-rebinding protection) and bearer-token principals.
 * Transport-neutral: callers pass header values, get a decision.
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
    if (s !== scheme || h !== (hostname.startsWith("[") ? hostname : u.host.startsWith("[") ? `[${hostname}]` : hostname)) {
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
 * Resolves the principal of a request. With tokens configured, a missing or unknown bearer token
 * yields null (the caller answers 401). Session ids are never accepted as credentials.
 */
export function principalOf(authorization: string | undefined, tokens: ReadonlyMap<string, string>): string | null {
  if (tokens.size === 0) return ANONYMOUS;
  const m = /^Bearer\s+(.+)$/i.exec(authorization ?? "");
  if (!m) return null;
  return tokens.get(m[1]!.trim()) ?? null;
}
