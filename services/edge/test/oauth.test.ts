// OAuth 2.1 resource server (issue 14, point 1) against a real authorization server on loopback
// (oauth2-mock-server: JWKS, RFC 8414/OIDC discovery, client_credentials with RFC 8707 resource).
import { createServer } from "node:net";
import { afterAll, beforeAll, describe, expect } from "vitest";
import { OAuth2Server } from "oauth2-mock-server";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { ClientCredentialsProvider } from "@modelcontextprotocol/sdk/client/auth-extensions.js";
import { connect } from "@nats-io/transport-node";
import { natsTest as it, type Stack } from "@mcpq/testkit";
import { RESUME_METHOD } from "@mcpq/protocol";
import type { RunningEdge } from "@mcpq/edge";
import type { RunningWorker } from "@mcpq/worker";
import { stack } from "./support/stack.js";
import { RpcClient, grpcWire, tcpWire, wsWire } from "./support/socket-client.js";

async function freePort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((r) => srv.listen(0, "127.0.0.1", () => r()));
  const port = (srv.address() as { port: number }).port;
  await new Promise<void>((r) => srv.close(() => r()));
  return port;
}

const INIT = { jsonrpc: "2.0", id: 0, method: "initialize", params: { protocolVersion: "2025-11-25", capabilities: {}, clientInfo: { name: "o", version: "1" } } };

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
    as.service.on("beforeTokenSigning", (token: { payload: Record<string, unknown> }, req: { body?: Record<string, string>; headers: Record<string, string | undefined> }) => {
      const basic = /^Basic (.+)$/.exec(req.headers["authorization"] ?? "");
      const client = basic ? decodeURIComponent(Buffer.from(basic[1]!, "base64").toString().split(":")[0]!) : req.body?.["client_id"];
      token.payload["sub"] = client;
      if (req.body?.["resource"]) token.payload["aud"] = req.body["resource"];
    });
    await as.start(0, "127.0.0.1");
    await other.start(0, "127.0.0.1");
  });
  afterAll(async () => {
    await s?.close();
    await as.stop();
    await other.stop();
  });

  const token = (opts: { aud?: string; scope?: string; expiresIn?: number; sub?: string; server?: OAuth2Server; kid?: string } = {}) =>
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
      headers: { "content-type": "application/json", accept: "application/json, text/event-stream", ...(auth ? { authorization: auth } : {}) },
      body: JSON.stringify(INIT),
    });

  it("the official SDK client's OAuth flow (401 -> metadata -> token for this resource) ends in a working session", async ({ nats }) => {
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
    const provider = new ClientCredentialsProvider({ clientId: "sdk-client", clientSecret: "s3cret", scope: "mcp", expectedIssuer: as.issuer.url! });
    const client = new Client({ name: "oauth-test", version: "1" });
    await client.connect(new StreamableHTTPClientTransport(new URL(resource), { authProvider: provider }));
    const r = await client.callTool({ name: "echo", arguments: { text: "through oauth" } });
    expect(r.content).toEqual([{ type: "text", text: "through oauth" }]);
    expect(provider.tokens()?.access_token).toBeTruthy();
    await client.close();
  });

  it("401 names the protected-resource metadata and scopes; the metadata is served at both well-known forms", async () => {
    const res = await post();
    expect(res.status).toBe(401);
    const challenge = res.headers.get("www-authenticate")!;
    expect(challenge).toContain(`resource_metadata="http://127.0.0.1:${port}/.well-known/oauth-protected-resource/mcp"`);
    expect(challenge).toContain('scope="mcp"');
    expect(((await res.json()) as { error: { code: number } }).error.code).toBeLessThan(0);
    for (const path of ["/.well-known/oauth-protected-resource/mcp", "/.well-known/oauth-protected-resource"]) {
      const meta = (await (await fetch(`http://127.0.0.1:${port}${path}`)).json()) as Record<string, unknown>;
      expect(meta).toMatchObject({ resource, authorization_servers: [as.issuer.url], scopes_supported: ["mcp"], bearer_methods_supported: ["header"] });
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

  it("WebSocket upgrade, gRPC metadata and the TCP first frame take the same tokens; tokens never reach the broker", async ({ nats }) => {
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
      await expect(wsWire(edge.wsUrl!, { headers: { authorization: `Bearer ${await token({ aud: "x" })}` } })).rejects.toMatchObject({ status: 401 });
      const ws = new RpcClient(await wsWire(edge.wsUrl!, { headers: { authorization: `Bearer ${good}` } }));
      await ws.initialize();
      expect(await ws.request("tools/call", { name: "echo", arguments: { text: "ws" } })).toEqual({ content: [{ type: "text", text: "ws" }] });
      ws.wire.close();

      const tcpBad = new RpcClient(await tcpWire(edge.tcpPort!));
      const refused = await tcpBad.call(RESUME_METHOD, { authorization: `Bearer ${await token({ server: other })}` });
      expect(refused.error?.message).toMatch(/Unauthorized/);
      const tcp = new RpcClient(await tcpWire(edge.tcpPort!));
      const resumed = await tcp.call(RESUME_METHOD, { authorization: `Bearer ${good}` });
      expect(resumed.result).toBeDefined();
      const init = await tcp.call("initialize", INIT.params);
      expect(init.result).toBeDefined();
      expect(await tcp.request("tools/call", { name: "echo", arguments: { text: "tcp" } })).toEqual({ content: [{ type: "text", text: "tcp" }] });
      tcp.wire.close();

      const g = new RpcClient(grpcWire(edge.grpcPort!, { authorization: `Bearer ${good}` }));
      await g.initialize();
      expect(await g.request("tools/call", { name: "echo", arguments: { text: "grpc" } })).toEqual({ content: [{ type: "text", text: "grpc" }] });
      g.wire.close();
      const gBad = grpcWire(edge.grpcPort!, { authorization: `Bearer ${await token({ expiresIn: -100 })}` });
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
});
