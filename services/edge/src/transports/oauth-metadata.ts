import type { FastifyInstance } from "fastify";
import type { EdgeRuntime } from "../runtime.js";

/**
 * RFC 9728 protected-resource metadata, served when OAuth is on, at
 * `/.well-known/oauth-protected-resource` and at the path-suffixed form for the resource's path
 * (`/.well-known/oauth-protected-resource/mcp`): the resource URI tokens must be issued for, its
 * authorization server, and the scopes it understands. A 401 names this document in
 * `WWW-Authenticate: Bearer resource_metadata="…"`, so a client (the official SDK's OAuth flow)
 * finds where to get a token.
 */
export async function oauthMetadata(app: FastifyInstance, rt: EdgeRuntime): Promise<void> {
  const o = rt.auth.oauth;
  if (!o) return;
  const body = {
    resource: o.resource,
    authorization_servers: [o.issuer],
    scopes_supported: o.scopesSupported,
    bearer_methods_supported: ["header"],
    resource_name: "mcpq",
  };
  const path = new URL(o.resource).pathname.replace(/\/$/, "");
  const paths = new Set([
    "/.well-known/oauth-protected-resource",
    `/.well-known/oauth-protected-resource${path}`,
  ]);
  for (const p of paths) {
    app.get(p, async (_req, reply) =>
      reply.header("cache-control", "max-age=300").type("application/json").send(body),
    );
  }
}
