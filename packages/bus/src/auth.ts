import { readFileSync } from "node:fs";
import { credsAuthenticator, nkeyAuthenticator, type Authenticator } from "@nats-io/nats-core";
import type { NodeConnectionOptions } from "@nats-io/transport-node";

/**
 * How a service authenticates to NATS and secures the connection (the MCPQ_NATS_* settings).
 * At most one of user/password, token, nkey seed and creds file; TLS combines with any of them.
 * Secrets are read here, at connect, and never logged.
 */
export interface BusAuth {
  user?: string | undefined;
  password?: string | undefined;
  token?: string | undefined;
  /** An nkey seed (`SU…`), or the path of a file holding one. */
  nkeySeed?: string | undefined;
  /** Path of a `.creds` file (user JWT + nkey seed; decentralised auth). */
  credsFile?: string | undefined;
  /** CA that signs the server's certificate (turns TLS on). */
  tlsCa?: string | undefined;
  /** Client certificate and key (mutual TLS; the server may map it to a user). */
  tlsCert?: string | undefined;
  tlsKey?: string | undefined;
}

/**
 * Checks a {@link BusAuth} for contradictions; returns the problems, each naming its setting
 * (an empty list when it is consistent). The services' env.ts report them at boot.
 */
export function busAuthProblems(a: BusAuth): string[] {
  const out: string[] = [];
  const schemes = [
    a.user || a.password ? "MCPQ_NATS_USER/PASSWORD" : "",
    a.token ? "MCPQ_NATS_TOKEN" : "",
    a.nkeySeed ? "MCPQ_NATS_NKEY_SEED" : "",
    a.credsFile ? "MCPQ_NATS_CREDS" : "",
  ].filter(Boolean);
  if (schemes.length > 1) out.push(`set only one of ${schemes.join(", ")}`);
  if (Boolean(a.user) !== Boolean(a.password))
    out.push("MCPQ_NATS_USER and MCPQ_NATS_PASSWORD go together");
  if (Boolean(a.tlsCert) !== Boolean(a.tlsKey))
    out.push("MCPQ_NATS_TLS_CERT and MCPQ_NATS_TLS_KEY go together");
  return out;
}

function seedBytes(seed: string): Uint8Array {
  const text = seed.startsWith("SU") ? seed : readFileSync(seed, "utf8");
  return new TextEncoder().encode(text.trim());
}

/** The nats.js connection options for `a` (files are read now: a missing file fails the connect, naming it). */
export function connectionAuthOptions(a: BusAuth | undefined): Partial<NodeConnectionOptions> {
  if (!a) return {};
  const problems = busAuthProblems(a);
  if (problems.length) throw new Error(`invalid NATS credentials: ${problems.join("; ")}`);
  const o: Partial<NodeConnectionOptions> = {};
  if (a.user) Object.assign(o, { user: a.user, pass: a.password });
  if (a.token) o.token = a.token;
  let authenticator: Authenticator | undefined;
  if (a.nkeySeed) authenticator = nkeyAuthenticator(seedBytes(a.nkeySeed));
  if (a.credsFile) {
    const file = a.credsFile;
    let creds: Uint8Array;
    try {
      creds = readFileSync(file);
    } catch (err) {
      throw new Error(`MCPQ_NATS_CREDS: cannot read ${file}: ${(err as Error).message}`, {
        cause: err,
      });
    }
    authenticator = credsAuthenticator(creds);
  }
  if (authenticator) o.authenticator = authenticator;
  if (a.tlsCa || a.tlsCert) {
    o.tls = {
      ...(a.tlsCa ? { caFile: a.tlsCa } : {}),
      ...(a.tlsCert ? { certFile: a.tlsCert, keyFile: a.tlsKey } : {}),
    };
  }
  return o;
}
