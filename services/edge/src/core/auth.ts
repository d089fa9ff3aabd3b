import { ANONYMOUS } from "./security.js";
import {
  createRemoteJWKSet,
  decodeProtectedHeader,
  errors as joseErrors,
  jwtVerify,
  type JWTPayload,
} from "jose";

/**
 * Who is calling, as every transport hands it to the core: the principal sessions belong to,
 * the key its quotas are counted under, and what an authorization policy may look at. The
 * bearer token itself is never kept here: it never travels past the edge.
 */
export interface Caller {
  principal: string;
  /**
   * Sessions per principal and circuit-breaker attribution are counted under this key: the
   * principal, or in anonymous mode `anonymous@<client address>` (one client cannot exhaust the
   * sessions of every other anonymous client).
   */
  quotaKey: string;
  anonymous: boolean;
  /** OAuth scopes granted by the token (static tokens and anonymous callers have none). */
  scopes: readonly string[];
  /** The token's claims (JWT payload or introspection answer); empty for static tokens. */
  claims: Readonly<Record<string, unknown>>;
}

/** A refused authentication: 401 (no or bad token) or 403 (valid token, scope missing). */
export interface AuthFailure {
  status: 401 | 403;
  /** RFC 6750 error code; absent when no token was sent at all. */
  error?: "invalid_request" | "invalid_token" | "insufficient_scope";
  description: string;
}

export function isAuthFailure(r: Caller | AuthFailure): r is AuthFailure {
  return "status" in r;
}

/** RFC 9728 §3.1: the metadata URL of a resource, `/.well-known/oauth-protected-resource` + its path. */
export function resourceMetadataUrl(resource: string): string {
  const u = new URL(resource);
  const path = u.pathname === "/" ? "" : u.pathname.replace(/\/$/, "");
  return `${u.origin}/.well-known/oauth-protected-resource${path}`;
}

/** OAuth 2.1 resource-server settings (MCPQ_OAUTH_*); see docs/security.md. */
export interface OAuthConfig {
  /** The authorization server's issuer identifier (`iss` must equal it). */
  issuer: string;
  /** JWKS of the issuer; when unset, discovered from the issuer's metadata. */
  jwksUrl?: string | undefined;
  /** This server's canonical resource URI (RFC 8707, RFC 9728 `resource`): the required `aud`. */
  resource: string;
  /** Scopes every token must carry to use this server at all (403 insufficient_scope otherwise). */
  requiredScopes: readonly string[];
  /** Scopes advertised in the protected-resource metadata (defaults to requiredScopes). */
  scopesSupported: readonly string[];
  /** Claim naming the principal (default `sub`). */
  principalClaim: string;
  /** Allowed clock skew for exp/nbf, seconds. */
  clockToleranceSec: number;
  /** How long fetched keys are used before the key set is fetched again (ms). */
  jwksCacheMs: number;
  /** Least time between two key-set fetches triggered by an unknown `kid` (rotation), ms. */
  jwksCooldownMs: number;
  /** RFC 7662 introspection for opaque (non-JWT) tokens; unset = opaque tokens are refused. */
  introspection?:
    | { url: string; clientId: string; clientSecret: string; cacheMs: number; maxCached: number }
    | undefined;
  /** Bound on one key-set fetch or introspection call (ms). */
  httpTimeoutMs: number;
}

/** The checks every transport runs on a bearer credential; built once per edge. */
export interface AuthOptions {
  /** Static development tokens: token -> principal. */
  staticTokens: ReadonlyMap<string, string>;
  oauth?: OAuthConfig | undefined;
}

/**
 * Resolves callers from the `Authorization` header value (or its in-band equivalent on
 * sockets). With neither static tokens nor OAuth configured every caller is anonymous, keyed by
 * client address. Otherwise a missing or bad token is a 401, a valid token lacking the server's
 * required scopes a 403. Verification of JWT access tokens: signature against the issuer's JWKS
 * (fetched, cached, refetched when an unknown key id appears: key rotation), `iss`, `aud` equal
 * to this server's resource URI, `exp` and `nbf`. Opaque tokens go to RFC 7662 introspection when
 * configured (answers cached briefly, bounded).
 */
export class EdgeAuth {
  readonly #static: ReadonlyMap<string, string>;
  readonly #oauth: OAuthConfig | undefined;
  #jwks: ReturnType<typeof createRemoteJWKSet> | undefined;
  #jwksPending: Promise<ReturnType<typeof createRemoteJWKSet>> | undefined;
  readonly #introspected = new Map<string, { at: number; result: Caller | AuthFailure }>();

  constructor(opts: AuthOptions) {
    this.#static = opts.staticTokens;
    this.#oauth = opts.oauth;
  }

  /** Whether callers must present a token (static tokens or OAuth configured). */
  get required(): boolean {
    return this.#static.size > 0 || this.#oauth !== undefined;
  }

  get oauth(): OAuthConfig | undefined {
    return this.#oauth;
  }

  /** The anonymous caller from `address` when no credentials are required; undefined otherwise. */
  anonymous(address: string | undefined): Caller | undefined {
    if (this.required) return undefined;
    return {
      principal: ANONYMOUS,
      quotaKey: `${ANONYMOUS}@${address ?? "unknown"}`,
      anonymous: true,
      scopes: [],
      claims: {},
    };
  }

  /** Authenticates one request or connection. `address` is the client's address (anonymous quota key). */
  async authenticate(
    authorization: string | undefined,
    address: string | undefined,
  ): Promise<Caller | AuthFailure> {
    const anon = this.anonymous(address);
    if (anon) return anon;
    if (authorization === undefined || authorization === "") {
      return { status: 401, description: "a bearer token is required" };
    }
    const m = /^Bearer\s+(\S+)\s*$/i.exec(authorization);
    if (!m)
      return {
        status: 401,
        error: "invalid_request",
        description: "malformed Authorization header",
      };
    const token = m[1]!;
    const principal = this.#static.get(token);
    if (principal !== undefined)
      return { principal, quotaKey: principal, anonymous: false, scopes: [], claims: {} };
    if (!this.#oauth) return { status: 401, error: "invalid_token", description: "unknown token" };
    const result = looksLikeJwt(token)
      ? await this.#verifyJwt(token, this.#oauth)
      : await this.#introspect(token, this.#oauth);
    if (isAuthFailure(result)) return result;
    const missing = this.#oauth.requiredScopes.filter((s) => !result.scopes.includes(s));
    if (missing.length > 0) {
      return {
        status: 403,
        error: "insufficient_scope",
        description: `the token lacks the scope ${missing.join(" ")}`,
      };
    }
    return result;
  }

  /**
   * The `WWW-Authenticate` value of a refusal (RFC 6750 §3, RFC 9728 §5.1): with OAuth it names
   * the protected-resource metadata and the scopes to ask for.
   */
  challenge(f: AuthFailure, resourceMetadataUrl: string | undefined): string {
    const parts: string[] = [];
    if (this.#oauth && resourceMetadataUrl)
      parts.push(`resource_metadata="${resourceMetadataUrl}"`);
    const scopes = this.#oauth?.requiredScopes.length
      ? this.#oauth.requiredScopes
      : this.#oauth?.scopesSupported;
    if (scopes && scopes.length > 0) parts.push(`scope="${scopes.join(" ")}"`);
    if (f.error)
      parts.push(
        `error="${f.error}"`,
        `error_description="${f.description.replace(/["\\]/g, "")}"`,
      );
    if (!this.#oauth) parts.unshift('realm="mcpq"');
    return `Bearer ${parts.join(", ")}`;
  }

  async #keySet(o: OAuthConfig): Promise<ReturnType<typeof createRemoteJWKSet>> {
    if (this.#jwks) return this.#jwks;
    this.#jwksPending ??= (async () => {
      const url = o.jwksUrl ?? (await discoverJwksUrl(o.issuer, o.httpTimeoutMs));
      this.#jwks = createRemoteJWKSet(new URL(url), {
        cacheMaxAge: o.jwksCacheMs,
        cooldownDuration: o.jwksCooldownMs,
        timeoutDuration: o.httpTimeoutMs,
      });
      return this.#jwks;
    })().finally(() => {
      this.#jwksPending = undefined;
    });
    return this.#jwksPending;
  }

  async #verifyJwt(token: string, o: OAuthConfig): Promise<Caller | AuthFailure> {
    let payload: JWTPayload;
    try {
      const jwks = await this.#keySet(o);
      ({ payload } = await jwtVerify(token, jwks, {
        issuer: o.issuer,
        audience: o.resource,
        clockTolerance: o.clockToleranceSec,
        requiredClaims: ["exp"],
      }));
    } catch (err) {
      return { status: 401, error: "invalid_token", description: jwtFailure(err) };
    }
    return this.#caller(payload, o);
  }

  #caller(claims: Record<string, unknown>, o: OAuthConfig): Caller | AuthFailure {
    const principal = claims[o.principalClaim];
    if (typeof principal !== "string" || principal === "") {
      return {
        status: 401,
        error: "invalid_token",
        description: `the token has no ${o.principalClaim} claim`,
      };
    }
    return { principal, quotaKey: principal, anonymous: false, scopes: scopesOf(claims), claims };
  }

  async #introspect(token: string, o: OAuthConfig): Promise<Caller | AuthFailure> {
    const intro = o.introspection;
    if (!intro) return { status: 401, error: "invalid_token", description: "unknown token" };
    const now = Date.now();
    const hit = this.#introspected.get(token);
    if (hit && now - hit.at < intro.cacheMs) {
      const exp = !isAuthFailure(hit.result) ? Number(hit.result.claims["exp"]) : Number.NaN;
      if (isAuthFailure(hit.result) || !Number.isFinite(exp) || exp * 1000 > now) return hit.result;
    }
    const result = await this.#introspectNow(token, o, intro);
    if (this.#introspected.size >= intro.maxCached) {
      const first = this.#introspected.keys().next().value;
      if (first !== undefined) this.#introspected.delete(first);
    }
    this.#introspected.set(token, { at: now, result });
    return result;
  }

  async #introspectNow(
    token: string,
    o: OAuthConfig,
    intro: NonNullable<OAuthConfig["introspection"]>,
  ): Promise<Caller | AuthFailure> {
    let body: Record<string, unknown>;
    try {
      const res = await fetch(intro.url, {
        method: "POST",
        headers: {
          "content-type": "application/x-www-form-urlencoded",
          accept: "application/json",
          authorization: `Basic ${Buffer.from(`${encodeURIComponent(intro.clientId)}:${encodeURIComponent(intro.clientSecret)}`).toString("base64")}`,
        },
        body: new URLSearchParams({ token, token_type_hint: "access_token" }).toString(),
        signal: AbortSignal.timeout(o.httpTimeoutMs),
      });
      if (!res.ok)
        return { status: 401, error: "invalid_token", description: "token introspection failed" };
      body = (await res.json()) as Record<string, unknown>;
    } catch {
      return { status: 401, error: "invalid_token", description: "token introspection failed" };
    }
    if (body["active"] !== true)
      return { status: 401, error: "invalid_token", description: "the token is not active" };
    const now = Date.now() / 1000;
    if (typeof body["exp"] === "number" && body["exp"] + o.clockToleranceSec < now) {
      return { status: 401, error: "invalid_token", description: "the token has expired" };
    }
    if (typeof body["nbf"] === "number" && body["nbf"] - o.clockToleranceSec > now) {
      return { status: 401, error: "invalid_token", description: "the token is not yet valid" };
    }
    if (body["iss"] !== undefined && body["iss"] !== o.issuer) {
      return {
        status: 401,
        error: "invalid_token",
        description: "the token was issued by another issuer",
      };
    }
    const aud = body["aud"];
    const auds = Array.isArray(aud) ? aud : aud === undefined ? [] : [aud];
    if (!auds.includes(o.resource)) {
      return {
        status: 401,
        error: "invalid_token",
        description: "the token is not meant for this resource",
      };
    }
    return this.#caller(body, o);
  }
}

/** OAuth `scope` (space-separated string) or `scp` (array or string) claim, as a list. */
function scopesOf(claims: Record<string, unknown>): string[] {
  const raw = claims["scope"] ?? claims["scp"];
  if (typeof raw === "string") return raw.split(" ").filter(Boolean);
  if (Array.isArray(raw)) return raw.filter((s): s is string => typeof s === "string");
  return [];
}

function looksLikeJwt(token: string): boolean {
  if (token.split(".").length !== 3) return false;
  try {
    decodeProtectedHeader(token);
    return true;
  } catch {
    return false;
  }
}

/** A short reason for a refused JWT (never the token, never a stack). */
function jwtFailure(err: unknown): string {
  if (err instanceof joseErrors.JWTExpired) return "the token has expired";
  if (err instanceof joseErrors.JWTClaimValidationFailed) {
    if (err.claim === "aud") return "the token is not meant for this resource";
    if (err.claim === "iss") return "the token was issued by another issuer";
    if (err.claim === "nbf") return "the token is not yet valid";
    return `the token's ${err.claim} claim is invalid`;
  }
  if (err instanceof joseErrors.JWKSNoMatchingKey)
    return "the token was signed with an unknown key";
  if (err instanceof joseErrors.JWSSignatureVerificationFailed)
    return "the token's signature is invalid";
  return "the token is invalid";
}

/** RFC 8414 metadata (then OpenID discovery) of the issuer: its `jwks_uri`. */
async function discoverJwksUrl(issuer: string, timeoutMs: number): Promise<string> {
  const u = new URL(issuer);
  const path = u.pathname === "/" ? "" : u.pathname.replace(/\/$/, "");
  const candidates = [
    `${u.origin}/.well-known/oauth-authorization-server${path}`,
    `${u.origin}${path}/.well-known/openid-configuration`,
  ];
  for (const url of candidates) {
    try {
      const res = await fetch(url, {
        headers: { accept: "application/json" },
        signal: AbortSignal.timeout(timeoutMs),
      });
      if (!res.ok) continue;
      const meta = (await res.json()) as { jwks_uri?: unknown; issuer?: unknown };
      if (typeof meta.jwks_uri === "string") return meta.jwks_uri;
    } catch {
      // try the next form
    }
  }
  throw new Error(`no jwks_uri in the metadata of ${issuer}`);
}
