import { spawn } from "node:child_process";
import { createServer } from "node:net";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { runCli } from "./support/replay-stack.js";

/** The repo-root launcher the README's commands use (`./mcpq …`). */
const LAUNCHER = fileURLToPath(new URL("../../../mcpq", import.meta.url));

/** A loopback port with nothing listening on it (bound, then released). */
async function closedPort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, "127.0.0.1", r));
  const { port } = s.address() as { port: number };
  await new Promise((r) => s.close(r));
  return port;
}

describe("mcpq: --help on every command, errors that name the flag or variable", () => {
  it.each(["dev", "edge", "worker", "stdio", "replay"])(
    "mcpq %s --help prints its usage and exits 0",
    async (cmd) => {
      const r = await runCli([cmd, "--help"], {});
      expect(r.code).toBe(0);
      // stdio's usage goes to stderr: its stdout is reserved for JSON-RPC.
      expect(cmd === "stdio" ? r.stderr : r.stdout).toMatch(new RegExp(`Usage: mcpq ${cmd}`));
    },
  );

  it("mcpq --help lists every command; an unknown command exits 2 with the list", async () => {
    const ok = await runCli(["--help"], {});
    expect(ok.code).toBe(0);
    for (const c of ["dev", "edge", "worker", "stdio", "nats", "replay"])
      expect(ok.stdout).toMatch(new RegExp(`^  ${c} `, "m"));
    const bad = await runCli(["serve"], {});
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/unknown command "serve"[\s\S]*Commands:/);
  });

  it.each([
    [["edge", "--port", "abc"], /--port must be a port number 0-65535, not "abc"/],
    [["dev", "--port", "70000"], /--port must be a port number 0-65535, not "70000"/],
    [["edge", "--prot", "8081"], /Unknown option '--prot'[\s\S]*Usage: mcpq edge/],
    [
      ["worker", "--catalog", "nope"],
      /--catalog: unknown catalog "nope"; known: example, conformance/,
    ],
    [["worker", "--pool", "a.b"], /--pool must be letters, digits, _ or -, not "a.b"/],
    [["dev", "--catalog", ","], /--catalog needs at least one name/],
    [["stdio", "--url", "localhost:8080"], /--url must be an http\(s\) URL/],
    [
      ["stdio", "--url", "http://127.0.0.1:1/mcp", "--retry-timeout", "soon"],
      /--retry-timeout must be a positive number/,
    ],
    [["replay", "--since", "yesterday", "--list"], /--since: invalid time "yesterday"/],
    [
      ["replay", "--diff", "--concurrency", "many"],
      /--concurrency must be a positive number, not "many"/,
    ],
    [["edge", "--processes", "0"], /--processes must be an integer 1-256 or "auto", not "0"/],
  ])("mcpq %j exits 2 naming the flag", async (args, message) => {
    const r = await runCli(args, {});
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(message);
    expect(r.stdout).toBe("");
  });

  it.each([
    [["edge"], { MCPQ_PORT: "70000" }, /MCPQ_PORT="70000": expected a port number 0-65535/],
    [["dev"], { MCPQ_PORT: "http" }, /MCPQ_PORT="http": expected a port number 0-65535/],
    [["dev"], { MCPQ_CATALOGS: "example,nope" }, /MCPQ_CATALOGS: unknown catalog "nope"/],
    [
      ["worker"],
      { MCPQ_NATS_URL: "nats://[::1" },
      /MCPQ_NATS_URL="nats:\/\/\[::1": expected comma-separated NATS URLs/,
    ],
    [["worker"], { MCPQ_POOL: "a b" }, /MCPQ_POOL="a b"/],
    [["edge", "--port", "0"], { MCPQ_TCP_PORT: "65536" }, /MCPQ_TCP_PORT/],
  ])("mcpq %j with %j fails naming the variable, before connecting", async (args, env, message) => {
    const r = await runCli(args, env);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(message);
  });

  it("a NATS server that cannot be reached is reported with MCPQ_NATS_URL and its value", async () => {
    const url = `nats://127.0.0.1:${await closedPort()}`;
    const r = await runCli(["worker"], { MCPQ_NATS_URL: url });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`cannot connect to NATS at MCPQ_NATS_URL="${url}"`);
    const replay = await runCli(["replay", "--diff"], { MCPQ_NATS_URL: url });
    expect(replay.code).toBe(4);
    expect(replay.stderr).toContain(`cannot connect to NATS at MCPQ_NATS_URL="${url}"`);
  });

  it("./mcpq stdio writes nothing but JSON-RPC on stdout, even when no edge answers", async () => {
    const port = await closedPort();
    const child = spawn(
      LAUNCHER,
      ["stdio", "--url", `http://127.0.0.1:${port}/mcp`, "--retry-timeout", "300"],
      { stdio: ["pipe", "pipe", "pipe"] },
    );
    let stdout = "";
    child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    const exited = new Promise((r) => child.once("exit", r));
    child.stdin.write(
      `${JSON.stringify({ jsonrpc: "2.0", id: 1, method: "initialize", params: { protocolVersion: "2025-11-25", capabilities: {}, clientInfo: { name: "t", version: "1" } } })}\n`,
    );
    child.stdin.end();
    await exited;
    const lines = stdout.split("\n").filter(Boolean);
    expect(lines.length).toBeGreaterThan(0);
    for (const line of lines) expect(JSON.parse(line)).toMatchObject({ jsonrpc: "2.0" });
    expect(JSON.parse(lines[0]!)).toMatchObject({ id: 1, error: { code: expect.any(Number) } });
  });
});
