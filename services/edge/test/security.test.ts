import { describe, expect, it } from "vitest";
import { hostAllowed, originAllowed, principalOf } from "../src/core/security.js";
import { loadEdgeConfig, parseAuthTokens } from "../src/env.js";

const ORIGINS = ["http://localhost:*", "http://127.0.0.1:*", "http://[::1]:*", "https://app.example.com"];

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
  it("is anonymous without tokens and requires a known bearer token with them", () => {
    expect(principalOf(undefined, new Map())).toBe("anonymous");
    const tokens = parseAuthTokens("s3cret=alice, other=bob");
    expect(principalOf("Bearer s3cret", tokens)).toBe("alice");
    expect(principalOf("bearer other", tokens)).toBe("bob");
    expect(principalOf("Bearer nope", tokens)).toBeNull();
    expect(principalOf(undefined, tokens)).toBeNull();
    expect(() => parseAuthTokens("justatoken")).toThrow(/token=principal/);
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
    expect(loadEdgeConfig({ MCPQ_PORT: "8081", MCPQ_TCP_PORT: "9000", MCPQ_GRPC_PORT: "9001" })).toMatchObject({ tcpPort: 9000, grpcPort: 9001 });
  });
});
