import { describe, expect, it } from "vitest";
import { EdgeAuth } from "../src/core/auth.js";
import { duplicateHost, hostAllowed, originAllowed } from "../src/core/security.js";
import { loadEdgeConfig, parseAuthTokens } from "../src/env.js";

const ORIGINS = [
  "http://localhost:*",
  "http://127.0.0.1:*",
  "http://[::1]:*",
  "https://app.example.com",
];

describe("Host / Origin validation (DNS rebinding)", () => {
  it("allows loopback hosts on any port and refuses others", () => {
    const hosts = ["localhost", "127.0.0.1", "[::1]"];
    expect(hostAllowed("127.0.0.1:8080", hosts)).toBe(true);
    expect(hostAllowed("localhost", hosts)).toBe(true);
    expect(hostAllowed("[::1]:9", hosts)).toBe(true);
    expect(hostAllowed("evil.example.com", hosts)).toBe(false);
    expect(hostAllowed("127.0.0.1.evil.com:80", hosts)).toBe(false);
    expect(hostAllowed(undefined, hosts)).toBe(false);
    expect(hostAllowed("anything", ["*"])).toBe(true);
  });
  it("allows a missing Origin, matching origins, and refuses the rest", () => {
    expect(originAllowed(undefined, ORIGINS)).toBe(true);
    expect(originAllowed("http://localhost:3000", ORIGINS)).toBe(true);
    expect(originAllowed("http://127.0.0.1:6274", ORIGINS)).toBe(true);
    expect(originAllowed("http://[::1]:1", ORIGINS)).toBe(true);
    expect(originAllowed("https://app.example.com", ORIGINS)).toBe(true);
    expect(originAllowed("https://app.example.com:8443", ORIGINS)).toBe(false);
    expect(originAllowed("http://evil.example.com", ORIGINS)).toBe(false);
    expect(originAllowed("https://localhost:3000", ORIGINS)).toBe(false);
    expect(originAllowed("null", ORIGINS)).toBe(false);
  });
});

describe("principals", () => {
  it("is anonymous (keyed per client address) without tokens and requires a known bearer token with them", async () => {
    const open = new EdgeAuth({ staticTokens: new Map() });
    expect(await open.authenticate(undefined, "10.0.0.1")).toMatchObject({
      principal: "anonymous",
      quotaKey: "anonymous@10.0.0.1",
      anonymous: true,
    });
    expect(await open.authenticate(undefined, "10.0.0.2")).toMatchObject({
      quotaKey: "anonymous@10.0.0.2",
    });
    const auth = new EdgeAuth({ staticTokens: parseAuthTokens("s3cret=alice, other=bob") });
    expect(await auth.authenticate("Bearer s3cret", "a")).toMatchObject({
      principal: "alice",
      quotaKey: "alice",
    });
    expect(await auth.authenticate("bearer other", "a")).toMatchObject({ principal: "bob" });
    expect(await auth.authenticate("Bearer nope", "a")).toMatchObject({
      status: 401,
      error: "invalid_token",
    });
    expect(await auth.authenticate(undefined, "a")).toMatchObject({ status: 401 });
    expect(await auth.authenticate("Basic x", "a")).toMatchObject({
      status: 401,
      error: "invalid_request",
    });
    expect(() => parseAuthTokens("justatoken")).toThrow(/token=principal/);
  });
  it("refuses a request carrying two Host headers", () => {
    expect(duplicateHost(["Host", "a", "Accept", "x", "host", "b"])).toBe(true);
    expect(duplicateHost(["Host", "a", "Accept", "x"])).toBe(false);
  });
});

describe("edge configuration", () => {
  it("defaults to loopback and fails fast on a bad environment", () => {
    const cfg = loadEdgeConfig({});
    expect(cfg.host).toBe("127.0.0.1");
    expect(cfg.port).toBe(8080);
    expect(Object.isFrozen(cfg)).toBe(true);
    expect(() => loadEdgeConfig({ MCPQ_PORT: "eighty" })).toThrow(/MCPQ_PORT/);
  });
});

describe("listener ports", () => {
  it("TCP and gRPC follow the HTTP port, stay in range, and can be set explicitly", () => {
    expect(loadEdgeConfig({})).toMatchObject({ port: 8080, tcpPort: 8090, grpcPort: 50051 });
    expect(loadEdgeConfig({ MCPQ_PORT: "8081" })).toMatchObject({ tcpPort: 8091, grpcPort: 50052 });
    expect(loadEdgeConfig({ MCPQ_PORT: "42341" })).toMatchObject({ tcpPort: 42351, grpcPort: 0 });
    expect(loadEdgeConfig({ MCPQ_PORT: "0" })).toMatchObject({ tcpPort: 0, grpcPort: 0 });
    expect(
      loadEdgeConfig({ MCPQ_PORT: "8081", MCPQ_TCP_PORT: "9000", MCPQ_GRPC_PORT: "9001" }),
    ).toMatchObject({ tcpPort: 9000, grpcPort: 9001 });
  });
});
