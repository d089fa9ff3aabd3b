/**
 * Guards docker-compose.yml: official NATS image with JetStream, exactly two edges and two
 * workers, every published port bound to 127.0.0.1, and edges/workers pointed at the nats service.
 *
 * Two sources are checked with the same assertions:
 *  - `docker compose config --format json` (Compose v2's normalized model), when the docker
 *    client with the compose plugin is present (no engine needed); skipped otherwise, with the
 *    reason printed;
 *  - the YAML file parsed directly (anchors and `<<` merges resolved), always.
 */
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { parse as parseYaml } from "yaml";

const repoRoot = fileURLToPath(new URL("../..", import.meta.url));
const composeFile = "docker-compose.yml";

interface Port {
  hostIp: string | undefined;
  published: string | undefined;
  target: string;
}
interface Service {
  name: string;
  image: string | undefined;
  command: string[];
  ports: Port[];
  env: Record<string, string>;
}

type Raw = Record<string, unknown>;
const isObj = (v: unknown): v is Raw => typeof v === "object" && v !== null && !Array.isArray(v);

function probeComposeV2(): { ok: true } | { ok: false; reason: string } {
  try {
    execFileSync("docker", ["--version"], { stdio: "pipe" });
  } catch {
    return { ok: false, reason: "docker client not found on PATH" };
  }
  try {
    execFileSync("docker", ["compose", "version"], { stdio: "pipe" });
  } catch {
    return {
      ok: false,
      reason: "docker client present but the compose v2 plugin is not installed",
    };
  }
  return { ok: true };
}

function toCommand(v: unknown): string[] {
  if (Array.isArray(v)) return v.map(String);
  if (typeof v === "string") return v.trim().split(/\s+/).filter(Boolean);
  return [];
}

function toEnv(v: unknown): Record<string, string> {
  const env: Record<string, string> = {};
  if (Array.isArray(v)) {
    for (const item of v.map(String)) {
      const i = item.indexOf("=");
      if (i > 0) env[item.slice(0, i)] = item.slice(i + 1);
    }
  } else if (isObj(v)) {
    for (const [k, val] of Object.entries(v)) env[k] = val == null ? "" : String(val);
  }
  return env;
}

/** Short syntax: [[HOST_IP:]PUBLISHED:]TARGET[/PROTO], HOST_IP possibly [v6]. Long syntax: object. */
function toPort(v: unknown): Port {
  if (isObj(v)) {
    return {
      hostIp: v.host_ip == null ? undefined : String(v.host_ip),
      published: v.published == null ? undefined : String(v.published),
      target: String(v.target),
    };
  }
  const spec = String(v).replace(/\/(tcp|udp|sctp)$/, "");
  const m = /^(?:(\[[^\]]+\]|[^:]+):)?(?:([^:]*):)?([^:]+)$/.exec(spec);
  if (!m) throw new Error(`unparseable port spec: ${String(v)}`);
  const [, a, b, target] = m;
  // "P:T" matches with a=P, b=undefined; "IP:P:T" with a=IP, b=P.
  if (b === undefined) return { hostIp: undefined, published: a, target: target! };
  return { hostIp: a!.replace(/^\[|\]$/g, ""), published: b || undefined, target: target! };
}

function normalize(model: unknown): Service[] {
  if (!isObj(model) || !isObj(model.services)) throw new Error("compose model has no services");
  return Object.entries(model.services).map(([name, raw]) => {
    const s = isObj(raw) ? raw : {};
    return {
      name,
      image: typeof s.image === "string" ? s.image : undefined,
      command: toCommand(s.command),
      ports: Array.isArray(s.ports) ? s.ports.map(toPort) : [],
      env: toEnv(s.environment),
    };
  });
}

const OFFICIAL_NATS = /^(?:docker\.io\/)?(?:library\/)?nats(?::[\w.-]+)?(?:@sha256:[0-9a-f]+)?$/;

function assertTopology(services: Service[]): void {
  const nats = services.find((s) => s.name === "nats");
  expect(nats, "a service named 'nats'").toBeDefined();
  expect(nats!.image, "nats uses the official nats image").toMatch(OFFICIAL_NATS);
  expect(
    nats!.command.some((a) => a === "-js" || a === "--jetstream"),
    `nats command enables JetStream (-js): ${nats!.command.join(" ")}`,
  ).toBe(true);

  const edges = services.filter((s) => s.command[0] === "edge");
  const workers = services.filter((s) => s.command[0] === "worker");
  expect(edges.map((s) => s.name).sort(), "exactly two edge services").toHaveLength(2);
  expect(workers.map((s) => s.name).sort(), "exactly two worker services").toHaveLength(2);

  for (const s of services) {
    for (const p of s.ports) {
      expect(
        p.hostIp,
        `${s.name} publishes ${p.published ?? "?"}->${p.target} on 127.0.0.1 only`,
      ).toBe("127.0.0.1");
    }
  }
  const edgePorts = edges.flatMap((s) => s.ports.map((p) => p.published)).sort();
  expect(edgePorts, "edges publish HTTP 8080/8081, TCP 8090/8091, gRPC 50051/50052").toEqual([
    "50051",
    "50052",
    "8080",
    "8081",
    "8090",
    "8091",
  ]);

  for (const s of [...edges, ...workers]) {
    const url = s.env.MCPQ_NATS_URL;
    expect(url, `${s.name} sets MCPQ_NATS_URL`).toBeTruthy();
    const u = new URL(url!);
    expect(u.protocol, `${s.name} MCPQ_NATS_URL scheme`).toBe("nats:");
    expect(u.hostname, `${s.name} MCPQ_NATS_URL points at the nats service`).toBe("nats");
  }
  for (const s of edges) {
    expect(s.env.MCPQ_HOST, `${s.name} listens on all interfaces inside the container`).toBe(
      "0.0.0.0",
    );
  }
}

const composeV2 = probeComposeV2();
if (!composeV2.ok) {
  console.warn(`[compose.test] skipping 'docker compose config' check: ${composeV2.reason}`);
}

describe("docker-compose.yml", () => {
  it("parsed YAML has the expected topology", () => {
    const model: unknown = parseYaml(
      readFileSync(new URL(`../../${composeFile}`, import.meta.url), "utf8"),
      {
        merge: true,
      },
    );
    assertTopology(normalize(model));
  });

  it.skipIf(!composeV2.ok)(
    `docker compose config --format json has the expected topology${
      composeV2.ok ? "" : ` (skipped: ${composeV2.reason})`
    }`,
    () => {
      const json = execFileSync(
        "docker",
        ["compose", "-f", composeFile, "config", "--format", "json"],
        { cwd: repoRoot, encoding: "utf8", stdio: ["ignore", "pipe", "pipe"], timeout: 30_000 },
      );
      assertTopology(normalize(JSON.parse(json)));
    },
  );

  it("port parser handles the short syntax variants", () => {
    expect(toPort("127.0.0.1:8080:8080")).toEqual({
      hostIp: "127.0.0.1",
      published: "8080",
      target: "8080",
    });
    expect(toPort("8080:8080/tcp")).toEqual({
      hostIp: undefined,
      published: "8080",
      target: "8080",
    });
    expect(toPort("8080")).toEqual({ hostIp: undefined, published: undefined, target: "8080" });
    expect(toPort("[::1]:8081:8080")).toEqual({ hostIp: "::1", published: "8081", target: "8080" });
    expect(toPort("0.0.0.0:8081:8080").hostIp).toBe("0.0.0.0");
  });
});
