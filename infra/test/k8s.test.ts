/**
 * Renders every overlay under infra/k8s/overlays with the real kustomize (`kubectl kustomize`,
 * offline) and checks each object against the Kubernetes and KEDA schemas, then what the schemas
 * cannot say: references resolve, selectors match, probes and security settings are there, the
 * KEDA trigger watches the real stream and pool consumer (names from @mcpq/bus), every MCPQ_*
 * variable is a real setting, and the NATS server config parses with the real nats-server (-t).
 * Skipped with its reason when kubectl is absent.
 */
import { execFileSync } from "node:child_process";
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { DEFAULT_BUS_LIMITS, STREAMS, poolConsumer } from "@mcpq/bus";
import { EdgeEnvSchema } from "@mcpq/edge";
import { WorkerEnvSchema } from "@mcpq/worker";
import { probeKubectl, render, validateObject, type K8sObject } from "./k8s-models.js";
import { natsServerBin } from "./tools.js";

const k8sDir = fileURLToPath(new URL("../k8s", import.meta.url));
/** The built mcpq CLI (`make test` builds first). */
const cliMain = fileURLToPath(new URL("../../services/cli/dist/main.js", import.meta.url));
const overlays = readdirSync(join(k8sDir, "overlays"));

/**
 * Settings the manifests use that another change in flight adds (the worker's health/metrics
 * bind address). Drop each from here once its env.ts has it.
 */
const PENDING_SETTINGS = new Set(["MCPQ_WORKER_METRICS_HOST"]);
const KNOWN_SETTINGS = new Set([
  ...Object.keys(EdgeEnvSchema.shape),
  ...Object.keys(WorkerEnvSchema.shape),
]);

/** Secrets the production overlay expects to exist already (never committed). */
const EXTERNAL_SECRETS: Record<string, string[]> = {
  production: ["nats-auth", "mcpq-nats-edge", "mcpq-nats-worker", "mcpq-worker-request-state"],
};

interface EnvVar {
  name: string;
  value?: string;
  valueFrom?: {
    secretKeyRef?: { name: string; key: string; optional?: boolean };
    configMapKeyRef?: { name: string; key: string };
  };
}
interface HttpProbe {
  httpGet?: { path: string; port: string | number };
}
interface Container {
  name: string;
  image: string;
  args?: string[];
  env?: EnvVar[];
  envFrom?: { configMapRef?: { name: string }; secretRef?: { name: string } }[];
  ports?: { name?: string; containerPort: number }[];
  startupProbe?: HttpProbe;
  livenessProbe?: HttpProbe;
  readinessProbe?: HttpProbe;
  lifecycle?: { preStop?: { exec?: { command: string[] } } };
  resources?: { requests?: Record<string, string>; limits?: Record<string, string> };
  securityContext?: {
    readOnlyRootFilesystem?: boolean;
    allowPrivilegeEscalation?: boolean;
    runAsNonRoot?: boolean;
    capabilities?: { drop?: string[] };
  };
}
interface PodSpec {
  containers: Container[];
  terminationGracePeriodSeconds?: number;
  securityContext?: { runAsNonRoot?: boolean; runAsUser?: number };
  volumes?: {
    name: string;
    configMap?: { name: string };
    secret?: { secretName: string };
    projected?: { sources: { configMap?: { name: string }; secret?: { name: string } }[] };
  }[];
}
interface Workload extends K8sObject {
  spec: {
    replicas?: number;
    selector: { matchLabels: Record<string, string> };
    template: { metadata: { labels: Record<string, string> }; spec: PodSpec };
  };
}
interface ScaledObjectSpec {
  scaleTargetRef: { name: string; kind?: string };
  minReplicaCount?: number;
  triggers: { type: string; metadata: Record<string, string> }[];
}

const kubectl = probeKubectl();
if (!kubectl.ok)
  console.warn(`[k8s.test] skipping the Kubernetes manifest checks: ${kubectl.reason}`);

const byKind = <T extends K8sObject>(objs: K8sObject[], kind: string) =>
  objs.filter((o) => o.kind === kind) as T[];
const one = <T extends K8sObject>(objs: K8sObject[], kind: string, name: string): T => {
  const found = objs.find((o) => o.kind === kind && o.metadata.name === name);
  if (!found) throw new Error(`no ${kind} ${name} in the render`);
  return found as T;
};
const envOf = (c: Container) => Object.fromEntries((c.env ?? []).map((e) => [e.name, e.value]));
const matches = (selector: Record<string, string>, labels: Record<string, string>) =>
  Object.entries(selector).every(([k, v]) => labels[k] === v);
/** A generated ConfigMap/Secret keeps its name as prefix plus a content hash. */
const baseName = (name: string, generated: Set<string>) => {
  for (const g of generated)
    if (name === g || new RegExp(`^${g}-[a-z0-9]{10}$`).test(name)) return g;
  return name;
};

describe.skipIf(!kubectl.ok)(
  `Kubernetes manifests (${kubectl.ok ? kubectl.version : "skipped"})`,
  () => {
    it("finds the development and production overlays", () => {
      expect(overlays.sort()).toEqual(["development", "production"]);
    });

    describe.each(overlays)("overlay %s", (overlay) => {
      const objs = render(join(k8sDir, "overlays", overlay));
      const workloads = [
        ...byKind<Workload>(objs, "Deployment"),
        ...byKind<Workload>(objs, "StatefulSet"),
      ];
      const configMaps = byKind<K8sObject & { data?: Record<string, string> }>(objs, "ConfigMap");
      const secrets = byKind(objs, "Secret");
      const cmNames = new Set(configMaps.map((c) => c.metadata.name));
      const secretNames = new Set(secrets.map((s) => s.metadata.name));
      const external = new Set(EXTERNAL_SECRETS[overlay] ?? []);
      const namespace = byKind(objs, "Namespace")[0]?.metadata.name;
      const mcpqConfig =
        configMaps.find((c) => c.metadata.name.startsWith("mcpq-config-"))?.data ?? {};

      it("every object passes its Kubernetes / KEDA schema", () => {
        expect(objs.length).toBeGreaterThanOrEqual(15);
        for (const o of objs) validateObject(o);
        const kinds = new Set(objs.map((o) => o.kind));
        for (const k of [
          "Deployment",
          "StatefulSet",
          "Service",
          "HorizontalPodAutoscaler",
          "ScaledObject",
          "PodDisruptionBudget",
        ]) {
          expect(kinds, `${overlay} renders a ${k}`).toContain(k);
        }
      });

      it("everything lives in the overlay's namespace", () => {
        expect(namespace).toBeTruthy();
        for (const o of objs.filter((x) => x.kind !== "Namespace"))
          expect(o.metadata.namespace, `${o.kind} ${o.metadata.name}`).toBe(namespace);
      });

      it("every ConfigMap and Secret a pod uses is rendered (or, in production, created out of band)", () => {
        for (const w of workloads) {
          const spec = w.spec.template.spec;
          const refs: { kind: "cm" | "secret"; name: string }[] = [];
          for (const c of spec.containers) {
            for (const f of c.envFrom ?? []) {
              if (f.configMapRef) refs.push({ kind: "cm", name: f.configMapRef.name });
              if (f.secretRef) refs.push({ kind: "secret", name: f.secretRef.name });
            }
            for (const e of c.env ?? []) {
              // An optional reference may name a Secret that does not exist (the variable is then unset).
              if (e.valueFrom?.secretKeyRef && !e.valueFrom.secretKeyRef.optional)
                refs.push({ kind: "secret", name: e.valueFrom.secretKeyRef.name });
              if (e.valueFrom?.configMapKeyRef)
                refs.push({ kind: "cm", name: e.valueFrom.configMapKeyRef.name });
            }
          }
          for (const v of spec.volumes ?? []) {
            if (v.configMap) refs.push({ kind: "cm", name: v.configMap.name });
            if (v.secret) refs.push({ kind: "secret", name: v.secret.secretName });
            for (const s of v.projected?.sources ?? []) {
              if (s.configMap) refs.push({ kind: "cm", name: s.configMap.name });
              if (s.secret) refs.push({ kind: "secret", name: s.secret.name });
            }
          }
          for (const r of refs) {
            const where = `${w.kind} ${w.metadata.name} -> ${r.kind} ${r.name}`;
            if (r.kind === "cm") expect(cmNames.has(r.name), where).toBe(true);
            else expect(secretNames.has(r.name) || external.has(r.name), where).toBe(true);
          }
        }
        // Production commits no secret: every one is expected to exist in the cluster already.
        for (const name of external)
          expect(secretNames.has(name), `${overlay} must not render Secret ${name}`).toBe(false);
      });

      it("Services, PodDisruptionBudgets and the HPA select real pods and ports", () => {
        const podLabels = workloads.map((w) => w.spec.template.metadata.labels);
        for (const w of workloads)
          expect(
            matches(w.spec.selector.matchLabels, w.spec.template.metadata.labels),
            w.metadata.name,
          ).toBe(true);
        for (const s of byKind<
          K8sObject & {
            spec: {
              selector: Record<string, string>;
              ports: { name: string; targetPort: string | number }[];
            };
          }
        >(objs, "Service")) {
          const targets = workloads.filter((w) =>
            matches(s.spec.selector, w.spec.template.metadata.labels),
          );
          expect(targets.length, `Service ${s.metadata.name} selects a workload`).toBeGreaterThan(
            0,
          );
          const portNames = new Set(
            targets.flatMap((w) =>
              w.spec.template.spec.containers.flatMap((c) => (c.ports ?? []).map((p) => p.name)),
            ),
          );
          for (const p of s.spec.ports)
            expect(portNames, `Service ${s.metadata.name} port ${p.name}`).toContain(p.targetPort);
        }
        for (const p of byKind<
          K8sObject & { spec: { selector: { matchLabels: Record<string, string> } } }
        >(objs, "PodDisruptionBudget")) {
          expect(
            podLabels.some((l) => matches(p.spec.selector.matchLabels, l)),
            `PDB ${p.metadata.name}`,
          ).toBe(true);
        }
        for (const h of byKind<
          K8sObject & {
            spec: { scaleTargetRef: { kind: string; name: string }; minReplicas: number };
          }
        >(objs, "HorizontalPodAutoscaler")) {
          one(objs, h.spec.scaleTargetRef.kind, h.spec.scaleTargetRef.name);
          expect(h.spec.minReplicas).toBeGreaterThanOrEqual(1);
        }
        // Exactly the edge is scaled by a plain HPA: KEDA creates the workers' own.
        expect(
          byKind<K8sObject & { spec: { scaleTargetRef: { name: string } } }>(
            objs,
            "HorizontalPodAutoscaler",
          ).map((h) => h.spec.scaleTargetRef.name),
        ).toEqual(["mcpq-edge"]);
        for (const w of workloads.filter((x) => x.kind === "Deployment"))
          expect(
            w.spec.replicas,
            `${w.metadata.name}: the autoscaler owns replicas`,
          ).toBeUndefined();
      });

      it("the broker's NetworkPolicy admits every edge and worker pod and KEDA's monitoring reads", () => {
        const np = one<
          K8sObject & {
            spec: {
              podSelector: { matchLabels: Record<string, string> };
              ingress: {
                from: {
                  podSelector?: { matchLabels: Record<string, string> };
                  namespaceSelector?: { matchLabels: Record<string, string> };
                }[];
                ports: { port: number }[];
              }[];
            };
          }
        >(objs, "NetworkPolicy", "nats");
        const nats = one<Workload>(objs, "StatefulSet", "nats");
        expect(
          matches(np.spec.podSelector.matchLabels, nats.spec.template.metadata.labels),
          "applies to the NATS pods",
        ).toBe(true);
        const admits = (labels: Record<string, string>, port: number) =>
          np.spec.ingress.some(
            (r) =>
              r.ports.some((p) => p.port === port) &&
              r.from.some((f) => f.podSelector && matches(f.podSelector.matchLabels, labels)),
          );
        for (const w of workloads) {
          expect(
            admits(w.spec.template.metadata.labels, 4222),
            `${w.metadata.name} reaches NATS clients port`,
          ).toBe(true);
        }
        expect(
          admits(nats.spec.template.metadata.labels, 6222),
          "NATS nodes reach each other's routes",
        ).toBe(true);
        expect(
          np.spec.ingress.some(
            (r) => r.ports.some((p) => p.port === 8222) && r.from.some((f) => f.namespaceSelector),
          ),
          "KEDA reads the monitoring port",
        ).toBe(true);
      });

      it("every container is non-root, read-only, capability-free, bounded and probed", () => {
        for (const w of workloads) {
          const spec = w.spec.template.spec;
          for (const c of spec.containers) {
            const where = `${w.metadata.name}/${c.name}`;
            expect(
              spec.securityContext?.runAsNonRoot ?? c.securityContext?.runAsNonRoot,
              `${where} runAsNonRoot`,
            ).toBe(true);
            expect(
              c.securityContext?.readOnlyRootFilesystem,
              `${where} readOnlyRootFilesystem`,
            ).toBe(true);
            expect(
              c.securityContext?.allowPrivilegeEscalation,
              `${where} allowPrivilegeEscalation`,
            ).toBe(false);
            expect(c.securityContext?.capabilities?.drop, `${where} drops capabilities`).toEqual([
              "ALL",
            ]);
            expect(c.resources?.requests?.cpu, `${where} cpu request`).toBeTruthy();
            expect(c.resources?.requests?.memory, `${where} memory request`).toBeTruthy();
            expect(c.resources?.limits?.memory, `${where} memory limit`).toBeTruthy();
            expect(c.livenessProbe?.httpGet, `${where} liveness probe`).toBeTruthy();
            expect(c.readinessProbe?.httpGet, `${where} readiness probe`).toBeTruthy();
            const ports = new Set((c.ports ?? []).map((p) => p.name));
            for (const p of [c.startupProbe, c.livenessProbe, c.readinessProbe])
              if (p?.httpGet) expect(ports, `${where} probe port`).toContain(p.httpGet.port);
          }
        }
      });

      it("edges listen on all interfaces, probe /healthz and /readyz and drain within their grace period", () => {
        const edge = one<Workload>(objs, "Deployment", "mcpq-edge");
        const spec = edge.spec.template.spec;
        const c = spec.containers[0]!;
        expect(c.args).toEqual(["edge"]);
        const env = envOf(c);
        expect(env.MCPQ_HOST, "the edge's own default is 127.0.0.1").toBe("0.0.0.0");
        expect(c.livenessProbe?.httpGet?.path).toBe("/healthz");
        expect(c.readinessProbe?.httpGet?.path).toBe("/readyz");
        expect(c.lifecycle?.preStop?.exec?.command[0], "preStop waits for endpoint removal").toBe(
          "sleep",
        );
        const preStop = Number(c.lifecycle?.preStop?.exec?.command[1]);
        const requestTimeoutS =
          EdgeEnvSchema.shape.MCPQ_REQUEST_TIMEOUT_MS.parse(env.MCPQ_REQUEST_TIMEOUT_MS) / 1000;
        expect(spec.terminationGracePeriodSeconds ?? 30).toBeGreaterThan(preStop + requestTimeoutS);
        expect(c.envFrom?.map((f) => f.secretRef?.name ?? f.configMapRef?.name)).toEqual([
          expect.stringMatching(/^mcpq-config-/),
          expect.stringMatching(/^mcpq-nats-edge/),
        ]);
      });

      it("workers probe /healthz and /readyz on their metrics port and finish handlers before the kill", () => {
        for (const w of byKind<Workload>(objs, "Deployment").filter(
          (d) => d.spec.template.spec.containers[0]!.args?.[0] === "worker",
        )) {
          const spec = w.spec.template.spec;
          const c = spec.containers[0]!;
          const env = envOf(c);
          const port = Number(env.MCPQ_WORKER_METRICS_PORT);
          expect(port, "the metrics/health port is on").toBeGreaterThan(0);
          expect(
            c.ports?.find((p) => p.name === c.livenessProbe?.httpGet?.port)?.containerPort,
          ).toBe(port);
          expect(
            env.MCPQ_WORKER_METRICS_HOST,
            "the kubelet and Prometheus reach it from outside the pod",
          ).toBe("0.0.0.0");
          expect(c.livenessProbe?.httpGet?.path).toBe("/healthz");
          expect(c.readinessProbe?.httpGet?.path).toBe("/readyz");
          const handlerS =
            WorkerEnvSchema.shape.MCPQ_HANDLER_TIMEOUT_MS.parse(env.MCPQ_HANDLER_TIMEOUT_MS) / 1000;
          expect(spec.terminationGracePeriodSeconds ?? 30).toBeGreaterThan(handlerS);
          expect(
            c.envFrom?.some((f) => f.secretRef?.name.startsWith("mcpq-nats-worker")),
            "worker broker credentials",
          ).toBe(true);
          expect(
            c.envFrom?.some((f) => f.secretRef?.name.startsWith("mcpq-worker-request-state")),
            "every worker pod opens the others' MRTR requestState",
          ).toBe(true);
        }
      });

      it("each worker pool is scaled by KEDA's nats-jetstream scaler on its own consumer of MCPQ_REQ", () => {
        const scaled = byKind<K8sObject & { spec: ScaledObjectSpec }>(objs, "ScaledObject");
        expect(scaled.length).toBeGreaterThan(0);
        for (const s of scaled) {
          const target = one<Workload>(
            objs,
            s.spec.scaleTargetRef.kind ?? "Deployment",
            s.spec.scaleTargetRef.name,
          );
          const pool = envOf(target.spec.template.spec.containers[0]!).MCPQ_POOL;
          expect(
            pool,
            `${target.metadata.name} pins MCPQ_POOL (it names the consumer)`,
          ).toBeTruthy();
          expect(s.spec.triggers).toHaveLength(1);
          const t = s.spec.triggers[0]!;
          expect(t.type).toBe("nats-jetstream");
          expect(t.metadata.stream).toBe(STREAMS.requests);
          expect(t.metadata.consumer).toBe(poolConsumer(pool!));
          expect(t.metadata.account).toBe("$G");
          expect(Number(t.metadata.lagThreshold)).toBeGreaterThan(0);
          // KEDA runs in its own namespace; in a cluster it prefixes the consumer leader's
          // server_name (the pod name) to this host, so it must be the headless Service.
          expect(t.metadata.natsServerMonitoringEndpoint).toBe(
            `nats-headless.${namespace}.svc.cluster.local:8222`,
          );
          expect(
            s.spec.minReplicaCount ?? 0,
            "never scaled to zero: -32012 would answer cold calls",
          ).toBeGreaterThanOrEqual(1);
        }
      });

      it("every MCPQ_* variable is a setting of the edge or the worker", () => {
        const names = new Set(Object.keys(mcpqConfig));
        for (const w of workloads)
          for (const c of w.spec.template.spec.containers)
            for (const e of c.env ?? []) names.add(e.name);
        for (const s of secrets as (K8sObject & { data?: Record<string, string> })[])
          for (const k of Object.keys(s.data ?? {})) if (k.startsWith("MCPQ_")) names.add(k);
        for (const n of [...names].filter((x) => x.startsWith("MCPQ_"))) {
          // Variables NATS itself reads for its auth include are not mcpq settings.
          if (/^MCPQ_NATS_[A-Z0-9_]+_PASSWORD$/.test(n) && n !== "MCPQ_NATS_PASSWORD") continue;
          expect(
            KNOWN_SETTINGS.has(n) || PENDING_SETTINGS.has(n),
            `${n} is not a setting in services/*/src/env.ts`,
          ).toBe(true);
        }
      });

      it("the broker topology and MCPQ_REPLICAS agree, and nats-server accepts the rendered config", () => {
        const nats = one<Workload>(objs, "StatefulSet", "nats");
        const replicas = nats.spec.replicas ?? 1;
        expect(replicas).toBe(overlay === "production" ? 3 : 1);
        expect(mcpqConfig.MCPQ_REPLICAS).toBe(String(replicas));
        const urls = mcpqConfig.MCPQ_NATS_URL!.split(",").map((u) => new URL(u));
        const conf = configMaps.find((c) => c.metadata.name.startsWith("nats-config-"))!.data![
          "nats.conf"
        ]!;
        if (replicas > 1) {
          const pods = Array.from({ length: replicas }, (_, i) => `nats-${i}.nats-headless`);
          expect(urls.map((u) => u.hostname)).toEqual(pods);
          for (const p of pods) expect(conf).toContain(`nats://${p}:6222`);
          expect(mcpqConfig.MCPQ_REQ_STORAGE).toBe("file");
        }
        const maxPayload = Number(/^max_payload:\s*(\d+)/m.exec(conf)?.[1]);
        expect(
          maxPayload,
          "records (MCPQ_REC) carry a request and its response",
        ).toBeGreaterThanOrEqual(2 * DEFAULT_BUS_LIMITS.maxMessageBytes);

        const bin = natsServerBin();
        if (!bin)
          return console.warn("[k8s.test] nats-server absent: not parsing the rendered nats.conf");
        const dir = mkdtempSync(join(tmpdir(), "mcpq-k8s-nats-"));
        try {
          writeFileSync(join(dir, "nats.conf"), conf);
          const auth = secrets.find((s) => s.metadata.name.startsWith("nats-auth-")) as
            (K8sObject & { data: Record<string, string> }) | undefined;
          // Production's auth include is created out of band, the documented way: the roles'
          // least-privilege users from `mcpq nats --auth --print-config` (docs/deploy.md).
          const include = auth
            ? Buffer.from(auth.data["auth.conf"]!, "base64")
            : execFileSync(process.execPath, [cliMain, "nats", "--auth", "--print-config"], {
                stdio: ["ignore", "pipe", "pipe"],
              });
          writeFileSync(join(dir, "auth.conf"), include);
          const podEnv: Record<string, string> = { POD_NAME: "nats-0" };
          for (const e of nats.spec.template.spec.containers[0]!.env ?? [])
            podEnv[e.name] = e.value ?? "stand-in";
          // Exits non-zero (execFileSync throws, with the server's message) on any config error,
          // including a $VARIABLE the pod's environment does not define.
          execFileSync(bin, ["-t", "-c", join(dir, "nats.conf")], {
            stdio: ["ignore", "pipe", "pipe"],
            env: { PATH: process.env.PATH ?? "", ...podEnv },
          });
        } finally {
          rmSync(dir, { recursive: true, force: true });
        }
      });

      it("generated ConfigMaps and Secrets carry a content hash (a config change rolls the pods)", () => {
        const generated = new Set([
          "mcpq-config",
          "nats-config",
          "nats-auth",
          "mcpq-nats-edge",
          "mcpq-nats-worker",
          "mcpq-worker-request-state",
        ]);
        for (const o of [...configMaps, ...secrets]) {
          expect(baseName(o.metadata.name, generated), o.metadata.name).not.toBe(o.metadata.name);
        }
      });
    });
  },
);
