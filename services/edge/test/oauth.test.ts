// OAuth 2.1 resource server (issue 14, point 1) against a real authorization server on loopback
// (oauth2-mock-server: JWKS, RFC 8414/OIDC discovery, client_credentials with RFC 8707 resource).
import { mkdtemp, writeFile } from "node:fs/promises";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect } from "vitest";
import { OAuth2Server } from "oauth2-mock-server";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { ClientCredentialsProvider } from "@modelcontextprotocol/sdk/client/auth-extensions.js";
import { connect } from "@nats-io/transport-node";
import { natsTest as it, type Stack } from "@mcpq/testkit";
import { RESUME_METHOD } from "@mcpq/protocol";
import { H } from "@mcpq/bus";
import type { RunningEdge } from "@mcpq/edge";
import type { RunningWorker } from "@mcpq/worker";
import { factories, stack } from "./support/stack.js";
import { rawSession } from "./support/raw-http.js";
import { RpcClient, grpcWire, tcpWire, wsWire } from "./support/socket-client.js";

async function freePort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((r) => srv.listen(0, "127.0.0.1", () => r()));
  const port = (srv.address() as { port: number }).port;
  await new Promise<void>((r) => srv.close(() => r()));
  return port;
}

const INIT = {
  jsonrpc: "2.0",
  id: 0,
  method: "initialize",
  params: {
    protocolVersion: "2025-11-25",
    capabilities: {},
    clientInfo: { name: "o", version: "1" },
  },
};

describe("OAuth 2.1 resource server", () => {
  const as = new OAuth2Server();
  const other = new OAuth2Server();
  let s: Stack<RunningEdge, RunningWorker>;
  let port: number;
  let resource: string;

  beforeAll(async () => {
    await as.issuer.keys.generate("RS256");
    await other.issuer.keys.generate("RS256");
    // What an RFC 8707 authorization server does: the token's audience is the requested resource.
    as.service.on(
      "beforeTokenSigning",
      (
        token: { payload: Record<string, unknown> },
        req: { body?: Record<string, string>; headers: Record<string, string | undefined> },
      ) => {
        const basic = /^Basic (.+)$/.exec(req.headers["authorization"] ?? "");
        const client = basic
          ? decodeURIComponent(Buffer.from(basic[1]!, "base64").toString().split(":")[0]!)
          : req.body?.["client_id"];
        token.payload["sub"] = client;
        if (req.body?.["resource"]) token.payload["aud"] = req.body["resource"];
      },
    );
    await as.start(0, "127.0.0.1");
    await other.start(0, "127.0.0.1");
  });
  afterAll(async () => {
    await s?.close();
    await as.stop();
    await other.stop();
  });

  const token = (
    opts: {
      aud?: string;
      scope?: string;
      expiresIn?: number;
      sub?: string;
      server?: OAuth2Server;
      kid?: string;
    } = {},
  ) =>
    (opts.server ?? as).issuer.buildToken({
      kid: opts.kid,
      expiresIn: opts.expiresIn ?? 600,
      scopesOrTransform: (_h, p) => {
        p["sub"] = opts.sub ?? "alice";
        p["aud"] = opts.aud ?? resource;
        p["scope"] = opts.scope ?? "mcp";
      },
    });
  const post = (auth?: string) =>
    fetch(`http://127.0.0.1:${port}/mcp`, {
      method: "POST",
      headers: {
        "content-type": "application/json",
        accept: "application/json, text/event-stream",
        ...(auth ? { authorization: auth } : {}),
      },
      body: JSON.stringify(INIT),
    });

  it("the official SDK client's OAuth flow (401 -> metadata -> token for this resource) ends in a working session", async ({
    nats,
  }) => {
    port = await freePort();
    resource = `http://127.0.0.1:${port}/mcp`;
    s = await stack(nats, {
      edges: 1,
      edgeEnv: {
        MCPQ_PORT: String(port),
        MCPQ_OAUTH_ISSUER: as.issuer.url!,
        MCPQ_RESOURCE_URL: resource,
        MCPQ_OAUTH_REQUIRED_SCOPES: "mcp",
        MCPQ_OAUTH_JWKS_COOLDOWN_MS: "0",
      },
    });
    const provider = new ClientCredentialsProvider({
      clientId: "sdk-client",
      clientSecret: "s3cret",
      scope: "mcp",
      expectedIssuer: as.issuer.url!,
    });
    const client = new Client({ name: "oauth-test", version: "1" });
    await client.connect(
      new StreamableHTTPClientTransport(new URL(resource), { authProvider: provider }),
    );
    const r = await client.callTool({ name: "echo", arguments: { text: "through oauth" } });
    expect(r.content).toEqual([{ type: "text", text: "through oauth" }]);
    expect(provider.tokens()?.access_token).toBeTruthy();
    await client.close();
  });

  it("401 names the protected-resource metadata and scopes; the metadata is served at both well-known forms", async () => {
    const res = await post();
    expect(res.status).toBe(401);
    const challenge = res.headers.get("www-authenticate")!;
    expect(challenge).toContain(
      `resource_metadata="http://127.0.0.1:${port}/.well-known/oauth-protected-resource/mcp"`,
    );
    expect(challenge).toContain('scope="mcp"');
    expect(((await res.json()) as { error: { code: number } }).error.code).toBeLessThan(0);
    for (const path of [
      "/.well-known/oauth-protected-resource/mcp",
      "/.well-known/oauth-protected-resource",
    ]) {
      const meta = (await (await fetch(`http://127.0.0.1:${port}${path}`)).json()) as Record<
        string,
        unknown
      >;
      expect(meta).toMatchObject({
        resource,
        authorization_servers: [as.issuer.url],
        scopes_supported: ["mcp"],
        bearer_methods_supported: ["header"],
      });
    }
  });

  it("refuses a wrong audience, an expired token, a foreign issuer and a missing scope; accepts a rotated key", async () => {
    expect((await post(`Bearer ${await token()}`)).status).toBe(200);
    const wrongAud = await post(`Bearer ${await token({ aud: "https://elsewhere.example/mcp" })}`);
    expect(wrongAud.status).toBe(401);
    expect(wrongAud.headers.get("www-authenticate")).toContain('error="invalid_token"');
    expect(wrongAud.headers.get("www-authenticate")).toContain("not meant for this resource");
    const expired = await post(`Bearer ${await token({ expiresIn: -3600 })}`);
    expect(expired.status).toBe(401);
    expect(expired.headers.get("www-authenticate")).toContain("expired");
    const foreign = await post(`Bearer ${await token({ server: other })}`);
    expect(foreign.status).toBe(401);
    expect(foreign.headers.get("www-authenticate")).toContain('error="invalid_token"');
    const noScope = await post(`Bearer ${await token({ scope: "profile" })}`);
    expect(noScope.status).toBe(403);
    expect(noScope.headers.get("www-authenticate")).toContain('error="insufficient_scope"');
    expect(noScope.headers.get("www-authenticate")).toContain('scope="mcp"');
    const garbage = await post("Bearer not.a.jwt");
    expect(garbage.status).toBe(401);
    // The authorization server rotates to a new signing key: the edge fetches the new key set.
    const rotated = await as.issuer.keys.generate("RS256", { kid: "rotated-key" });
    expect((await post(`Bearer ${await token({ kid: rotated.kid })}`)).status).toBe(200);
  });

  it("WebSocket upgrade, gRPC metadata and the TCP first frame take the same tokens; tokens never reach the broker", async ({
    nats,
  }) => {
    const edge = s.edges[0]!;
    const good = await token({ sub: "bob" });
    const monitor = await connect({ servers: nats.url });
    const seen: string[] = [];
    const sub = monitor.subscribe("mcpq.req.>", {
      callback: (_e, m) => {
        seen.push(m.string());
        for (const [k, v] of m.headers ?? []) seen.push(`${k}: ${v.join(",")}`);
      },
    });
    await monitor.flush();
    try {
      await expect(
        wsWire(edge.wsUrl!, { headers: { authorization: `Bearer ${await token({ aud: "x" })}` } }),
      ).rejects.toMatchObject({ status: 401 });
      const ws = new RpcClient(
        await wsWire(edge.wsUrl!, { headers: { authorization: `Bearer ${good}` } }),
      );
      await ws.initialize();
      expect(await ws.request("tools/call", { name: "echo", arguments: { text: "ws" } })).toEqual({
        content: [{ type: "text", text: "ws" }],
      });
      ws.wire.close();

      const tcpBad = new RpcClient(await tcpWire(edge.tcpPort!));
      const refused = await tcpBad.call(RESUME_METHOD, {
        authorization: `Bearer ${await token({ server: other })}`,
      });
      expect(refused.error?.message).toMatch(/Unauthorized/);
      const tcp = new RpcClient(await tcpWire(edge.tcpPort!));
      const resumed = await tcp.call(RESUME_METHOD, { authorization: `Bearer ${good}` });
      expect(resumed.result).toBeDefined();
      const init = await tcp.call("initialize", INIT.params);
      expect(init.result).toBeDefined();
      expect(await tcp.request("tools/call", { name: "echo", arguments: { text: "tcp" } })).toEqual(
        { content: [{ type: "text", text: "tcp" }] },
      );
      tcp.wire.close();

      const g = new RpcClient(grpcWire(edge.grpcPort!, { authorization: `Bearer ${good}` }));
      await g.initialize();
      expect(await g.request("tools/call", { name: "echo", arguments: { text: "grpc" } })).toEqual({
        content: [{ type: "text", text: "grpc" }],
      });
      g.wire.close();
      const gBad = grpcWire(edge.grpcPort!, {
        authorization: `Bearer ${await token({ expiresIn: -100 })}`,
      });
      expect((await gBad.closed).code).toBe(16); // UNAUTHENTICATED
      gBad.client.close();

      await monitor.flush();
      expect(seen.length).toBeGreaterThan(0);
      expect(seen.some((x) => x.includes(good))).toBe(false);
      expect(seen.some((x) => x.includes("bob"))).toBe(true); // the principal travels
    } finally {
      sub.unsubscribe();
      await monitor.close();
    }
  });

  it("a policy keyed on scopes and claims: the envelope carries the exposed claims and the principal, never the token", async ({
    nats,
  }) => {
    const dir = await mkdtemp(join(tmpdir(), "mcpq-oauth-policy-"));
    const file = join(dir, "policy.json");
    await writeFile(
      file,
      JSON.stringify({
        exposeClaims: ["tenant"],
        rules: [{ scopes: ["tools:echo"], claims: { tenant: "acme" }, tools: ["echo"] }],
      }),
    );
    const p2 = await freePort();
    const res2 = `http://127.0.0.1:${p2}/mcp`;
    const edge = await factories.startEdge(nats.url, {
      MCPQ_PORT: String(p2),
      MCPQ_OAUTH_ISSUER: as.issuer.url!,
      MCPQ_RESOURCE_URL: res2,
      MCPQ_POLICY_FILE: file,
    });
    const monitor = await connect({ servers: nats.url });
    const claims: string[] = [];
    const sub = monitor.subscribe("mcpq.req.>", {
      callback: (_e, m) => void claims.push(m.headers?.get(H.claims) ?? ""),
    });
    await monitor.flush();
    try {
      const mk = (scope: string, tenant: string) =>
        as.issuer.buildToken({
          scopesOrTransform: (_h, p) =>
            Object.assign(p, { sub: "carol", aud: res2, scope, tenant }),
        });
      const allowed = await rawSession(res2, {
        authorization: `Bearer ${await mk("tools:echo", "acme")}`,
      });
      expect((await allowed.request("tools/list", {})).message?.result?.["tools"]).toEqual([
        expect.objectContaining({ name: "echo" }),
      ]);
      expect((await allowed.call("echo", { text: "acme" })).message?.result).toEqual({
        content: [{ type: "text", text: "acme" }],
      });
      const otherTenant = await rawSession(res2, {
        authorization: `Bearer ${await mk("tools:echo", "globex")}`,
      });
      expect((await otherTenant.request("tools/list", {})).message?.result?.["tools"]).toEqual([]);
      expect((await otherTenant.call("echo", { text: "x" })).message?.error?.message).toBe(
        "Unknown tool: echo",
      );
      await monitor.flush();
      expect(claims).toEqual([JSON.stringify({ tenant: "acme" })]);
    } finally {
      sub.unsubscribe();
      await monitor.close();
      await edge.close();
    }
  });

  it("opaque tokens go to RFC 7662 introspection with the edge's client credentials; inactive ones are refused", async ({
    nats,
  }) => {
    const p3 = await freePort();
    const res3 = `http://127.0.0.1:${p3}/mcp`;
    let active = true;
    let credentials: string | undefined;
    const onIntrospect = (
      response: { body: Record<string, unknown> },
      req: { headers: Record<string, string | undefined> },
    ) => {
      credentials = req.headers["authorization"];
      response.body = active
        ? {
            active: true,
            sub: "dave",
            aud: res3,
            iss: as.issuer.url,
            scope: "mcp",
            exp: Math.floor(Date.now() / 1000) + 600,
          }
        : { active: false };
    };
    as.service.on("beforeIntrospect", onIntrospect);
    const edge = await factories.startEdge(nats.url, {
      MCPQ_PORT: String(p3),
      MCPQ_OAUTH_ISSUER: as.issuer.url!,
      MCPQ_RESOURCE_URL: res3,
      MCPQ_OAUTH_INTROSPECTION_URL: `${as.issuer.url}/introspect`,
      MCPQ_OAUTH_CLIENT_ID: "edge",
      MCPQ_OAUTH_CLIENT_SECRET: "edge-secret",
      MCPQ_OAUTH_INTROSPECTION_CACHE_MS: "0",
    });
    try {
      const ok = await rawSession(res3, { authorization: "Bearer opaque-token-1" });
      expect((await ok.call("echo", { text: "opaque" })).message?.result).toBeDefined();
      expect(credentials).toBe(`Basic ${Buffer.from("edge:edge-secret").toString("base64")}`);
      active = false;
      const refused = await fetch(res3, {
        method: "POST",
        headers: {
          "content-type": "application/json",
          accept: "application/json, text/event-stream",
          authorization: "Bearer opaque-token-2",
        },
        body: JSON.stringify(INIT),
      });
      expect(refused.status).toBe(401);
      expect(refused.headers.get("www-authenticate")).toContain("not active");
    } finally {
      as.service.off("beforeIntrospect", onIntrospect);
      await edge.close();
    }
  });
});
