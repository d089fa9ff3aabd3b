/**
 * Guards docker-compose.yml: a 3-node NATS JetStream cluster (official image, cluster routes,
 * one volume per node, a payload limit that fits mcpq's messages), exactly two edges and two
 * workers pointed at all three nodes with MCPQ_REPLICAS=3, Prometheus scraping every edge and
 * worker with the mcpq rules, Grafana provisioned with the datasource and dashboard, an
 * OpenTelemetry collector receiving OTLP/HTTP from the services, and every published port bound
 * to 127.0.0.1. The node config is also parsed by the real nats-server (-t) where present
 * (promtool checks the Prometheus config in prometheus.test.ts).
 *
 * Two sources are checked with the same assertions:
 *  - `docker compose config --format json` (Compose v2's normalized model), when the docker
 *    client with the compose plugin is present (no engine needed); skipped otherwise, with the
 *    reason printed;
 *  - the YAML file parsed directly (anchors and `<<` merges resolved), always.
 */
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { parse as parseYaml } from "yaml";
import { DEFAULT_BUS_LIMITS } from "@mcpq/bus";
import { natsServerBin } from "./tools.js";

const repoRoot = fileURLToPath(new URL("../..", import.meta.url));
const composeFile = "docker-compose.yml";

interface Port {
  hostIp: string | undefined;
  published: string | undefined;
  target: string;
}
interface Mount {
  source: string;
  target: string;
}
interface Service {
  name: string;
  image: string | undefined;
  command: string[];
  ports: Port[];
  env: Record<string, string>;
  volumes: Mount[];
  dependsOn: string[];
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

/** Short syntax SOURCE:TARGET[:MODE] or the long object; bind sources made repo-relative. */
function toMount(v: unknown): Mount {
  const rel = (src: string) =>
    src.startsWith(repoRoot) ? `./${src.slice(repoRoot.length).replace(/^\//, "")}` : src;
  if (isObj(v)) return { source: rel(String(v.source ?? "")), target: String(v.target) };
  const [source = "", target = ""] = String(v).split(":");
  return { source: rel(source), target };
}

function toDependsOn(v: unknown): string[] {
  if (Array.isArray(v)) return v.map(String);
  if (isObj(v)) return Object.keys(v);
  return [];
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
      volumes: Array.isArray(s.volumes) ? s.volumes.map(toMount) : [],
      dependsOn: toDependsOn(s.depends_on),
    };
  });
}

const OFFICIAL_NATS = /^(?:docker\.io\/)?(?:library\/)?nats(?::[\w.-]+)?(?:@sha256:[0-9a-f]+)?$/;

const NATS_NODES = ["nats-1", "nats-2", "nats-3"];
const NATS_CONF = "./infra/nats/compose-cluster.conf";

function assertTopology(services: Service[]): void {
  const byName = new Map(services.map((s) => [s.name, s]));
  const nats = services.filter((s) => s.image !== undefined && OFFICIAL_NATS.test(s.image));
  expect(nats.map((s) => s.name).sort(), "three NATS nodes from the official nats image").toEqual(
    NATS_NODES,
  );
  const dataVolumes = new Set<string>();
  for (const n of nats) {
    expect(n.command, `${n.name} loads the cluster config`).toEqual([
      "--config",
      "/etc/nats/nats.conf",
    ]);
    expect(n.volumes, `${n.name} mounts the shared node config`).toContainEqual({
      source: NATS_CONF,
      target: "/etc/nats/nats.conf",
    });
    expect(n.env.NATS_SERVER_NAME, `${n.name} has its own server_name`).toBe(n.name);
    const data = n.volumes.find((v) => v.target === "/data");
    expect(data, `${n.name} keeps its JetStream store in a volume`).toBeDefined();
    dataVolumes.add(data!.source);
    expect(n.ports, `${n.name} is reachable on the compose network only`).toEqual([]);
  }
  expect(dataVolumes.size, "one store volume per node").toBe(3);

  const edges = services.filter((s) => s.command[0] === "edge");
  const workers = services.filter((s) => s.command[0] === "worker");
  expect(edges.map((s) => s.name).sort(), "exactly two edge services").toHaveLength(2);
  expect(workers.map((s) => s.name).sort(), "exactly two worker services").toHaveLength(2);
  // An MRTR retry may reach either worker: both open each other's requestState.
  const keys = workers.map((s) => s.env["MCPQ_REQUEST_STATE_KEYS"]);
  expect(keys[0], "workers have a requestState key").toBeTruthy();
  expect(keys[1], "workers share one requestState key list").toBe(keys[0]);

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
    const urls = url!.split(",").map((u) => new URL(u));
    for (const u of urls) expect(u.protocol, `${s.name} MCPQ_NATS_URL scheme`).toBe("nats:");
    expect(
      urls.map((u) => `${u.hostname}:${u.port}`),
      `${s.name} lists every NATS node`,
    ).toEqual(NATS_NODES.map((n) => `${n}:4222`));
    expect(
      s.env.MCPQ_REPLICAS,
      `${s.name} replicates streams and buckets over the three nodes`,
    ).toBe("3");
    expect([...s.dependsOn].sort(), `${s.name} waits for the NATS nodes`).toEqual(NATS_NODES);
    const otel = new URL(s.env.OTEL_EXPORTER_OTLP_ENDPOINT ?? "http://unset");
    expect(`${otel.protocol}//${otel.host}`, `${s.name} sends OTLP/HTTP to the collector`).toBe(
      "http://otel-collector:4318",
    );
    expect(s.env.OTEL_SERVICE_NAME, `${s.name} names itself for tracing`).toMatch(
      /^mcpq-(edge|worker)$/,
    );
  }
  for (const s of edges) {
    expect(s.env.MCPQ_HOST, `${s.name} listens on all interfaces inside the container`).toBe(
      "0.0.0.0",
    );
  }

  // Prometheus: the official image, the repo's config and rules, and exactly the edges' HTTP
  // ports and the workers' metrics ports as targets.
  const prom = byName.get("prometheus");
  expect(prom?.image, "prometheus uses the official image").toMatch(
    /^(?:docker\.io\/)?prom\/prometheus:v[\d.]+$/,
  );
  expect(prom!.volumes).toContainEqual({ source: "./infra/prometheus", target: "/etc/prometheus" });
  const promConfig = parseYaml(
    readFileSync(join(repoRoot, "infra/prometheus/prometheus.yml"), "utf8"),
  ) as {
    rule_files: string[];
    scrape_configs: { job_name: string; static_configs: { targets: string[] }[] }[];
  };
  expect(promConfig.rule_files.sort()).toEqual(["alerts.rules.yml", "recording.rules.yml"]);
  const targets = (job: string) =>
    promConfig.scrape_configs
      .find((c) => c.job_name === job)
      ?.static_configs.flatMap((c) => c.targets)
      .sort();
  const edgePort = (s: Service) =>
    s.command[s.command.indexOf("--port") + 1] ?? s.env.MCPQ_PORT ?? "8080";
  expect(targets("mcpq-edge"), "Prometheus scrapes every edge").toEqual(
    edges.map((s) => `${s.name}:${edgePort(s)}`).sort(),
  );
  for (const w of workers) {
    expect(Number(w.env.MCPQ_WORKER_METRICS_PORT), `${w.name} exposes /metrics`).toBeGreaterThan(0);
    expect(w.env.MCPQ_WORKER_METRICS_HOST, `${w.name} /metrics reachable from Prometheus`).toBe(
      "0.0.0.0",
    );
  }
  expect(targets("mcpq-worker"), "Prometheus scrapes every worker").toEqual(
    workers.map((s) => `${s.name}:${s.env.MCPQ_WORKER_METRICS_PORT}`).sort(),
  );

  // Grafana: official image, provisioned datasource (the prometheus service) and dashboards.
  const grafana = byName.get("grafana");
  expect(grafana?.image, "grafana uses the official image").toMatch(
    /^(?:docker\.io\/)?grafana\/grafana(?:-oss)?:[\d.]+$/,
  );
  expect(grafana!.volumes).toContainEqual({
    source: "./infra/grafana/provisioning",
    target: "/etc/grafana/provisioning",
  });
  const datasources = parseYaml(
    readFileSync(join(repoRoot, "infra/grafana/provisioning/datasources/prometheus.yml"), "utf8"),
  ) as {
    datasources: { type: string; url: string }[];
  };
  expect(datasources.datasources).toContainEqual(
    expect.objectContaining({ type: "prometheus", url: "http://prometheus:9090" }),
  );
  const providers = parseYaml(
    readFileSync(join(repoRoot, "infra/grafana/provisioning/dashboards/mcpq.yml"), "utf8"),
  ) as {
    providers: { options: { path: string } }[];
  };
  const dashMount = grafana!.volumes.find((v) => v.source === "./infra/grafana/dashboards");
  expect(dashMount?.target, "the dashboard provider reads the mounted dashboards").toBe(
    providers.providers[0]!.options.path,
  );

  // OpenTelemetry collector: official image, OTLP/HTTP receiver on 4318.
  const otel = byName.get("otel-collector");
  expect(otel?.image, "the collector uses an official image").toMatch(
    /^(?:docker\.io\/)?otel\/opentelemetry-collector(?:-contrib)?:[\d.]+$/,
  );
  const mount = otel!.volumes.find((v) => v.source === "./infra/otel/collector.yaml");
  expect(otel!.command.join(" "), "the collector loads the mounted config").toContain(
    `--config=${mount?.target}`,
  );
  const collector = parseYaml(
    readFileSync(join(repoRoot, "infra/otel/collector.yaml"), "utf8"),
  ) as {
    receivers: { otlp: { protocols: { http: { endpoint: string } } } };
    service: { pipelines: Record<string, { receivers: string[] }> };
  };
  expect(collector.receivers.otlp.protocols.http.endpoint).toBe("0.0.0.0:4318");
  expect(collector.service.pipelines.traces?.receivers).toContain("otlp");
}

const composeV2 = probeComposeV2();
if (!composeV2.ok) {
  console.warn(`[compose.test] skipping 'docker compose config' check: ${composeV2.reason}`);
}
/** Compose v1 (Debian's docker-compose 1.29) also renders the model offline, as YAML. */
function probeComposeV1(): { ok: true } | { ok: false; reason: string } {
  try {
    execFileSync("docker-compose", ["version"], { stdio: "pipe" });
    return { ok: true };
  } catch {
    return { ok: false, reason: "docker-compose (v1) not found on PATH" };
  }
}
const composeV1 = probeComposeV1();
if (!composeV1.ok) {
  console.warn(`[compose.test] skipping 'docker-compose config' check: ${composeV1.reason}`);
}

/** `docker compose up` needs the workers' shared key set (the file refuses without it). */
const COMPOSE_ENV = {
  ...process.env,
  MCPQ_REQUEST_STATE_KEYS: "test-key-for-config-rendering-0123456789",
};

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
        {
          cwd: repoRoot,
          encoding: "utf8",
          stdio: ["ignore", "pipe", "pipe"],
          timeout: 30_000,
          env: COMPOSE_ENV,
        },
      );
      assertTopology(normalize(JSON.parse(json)));
    },
  );

  it.skipIf(!composeV1.ok)(
    `docker-compose config (v1) has the expected topology${composeV1.ok ? "" : ` (skipped: ${composeV1.reason})`}`,
    () => {
      const yaml = execFileSync("docker-compose", ["-f", composeFile, "config"], {
        cwd: repoRoot,
        encoding: "utf8",
        stdio: ["ignore", "pipe", "pipe"],
        env: COMPOSE_ENV,
        timeout: 60_000,
      });
      assertTopology(normalize(parseYaml(yaml)));
    },
  );

  it("the NATS node config forms one cluster of the three nodes and fits mcpq's messages", () => {
    const conf = readFileSync(join(repoRoot, NATS_CONF), "utf8");
    for (const n of NATS_NODES) expect(conf, `route to ${n}`).toContain(`nats://${n}:6222`);
    expect(conf).toMatch(/^server_name: \$NATS_SERVER_NAME$/m);
    expect(conf).toMatch(/^jetstream \{[^}]*store_dir: \/data/m);
    const maxPayload = Number(/^max_payload:\s*(\d+)/m.exec(conf)?.[1]);
    // An MCPQ_REC record holds a request and its response: up to 2 x MCPQ_MAX_MESSAGE_BYTES.
    expect(maxPayload).toBeGreaterThanOrEqual(2 * DEFAULT_BUS_LIMITS.maxMessageBytes);
  });

  const natsBin = natsServerBin();
  it.skipIf(!natsBin)(
    `nats-server -t accepts the node config with each node's environment${natsBin ? "" : " (skipped: nats-server not found)"}`,
    () => {
      for (const n of NATS_NODES) {
        execFileSync(natsBin!, ["-t", "-c", join(repoRoot, NATS_CONF)], {
          stdio: ["ignore", "pipe", "pipe"],
          env: { PATH: process.env.PATH ?? "", NATS_SERVER_NAME: n },
        });
      }
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
