/**
 * Rendering and schema validation of the Kubernetes manifests (infra/k8s), shared by k8s.test.ts.
 *
 * The renderer is the real kustomize built into kubectl (`kubectl kustomize`); the schemas are the
 * Kubernetes OpenAPI schemas compiled in `kubernetes-models` and KEDA's CRD schemas in
 * `@kubernetes-models/keda`. An object whose apiVersion/kind has no schema here is an error, so
 * nothing in a render goes unvalidated.
 */
import { execFileSync } from "node:child_process";
import { parseAllDocuments } from "yaml";
import { ConfigMap, Namespace, Secret, Service, ServiceAccount } from "kubernetes-models/v1";
import { Deployment, StatefulSet } from "kubernetes-models/apps/v1";
import { HorizontalPodAutoscaler } from "kubernetes-models/autoscaling/v2";
import { NetworkPolicy } from "kubernetes-models/networking.k8s.io/v1";
import { PodDisruptionBudget } from "kubernetes-models/policy/v1";
import { ScaledObject } from "@kubernetes-models/keda/keda.sh/v1alpha1";

/** A rendered object; fields are read through the helpers below. */
export type K8sObject = Record<string, unknown> & {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string> };
};

type Validating = new (data: never) => { validate(): void };

const MODELS: Record<string, Validating> = {
  "v1/Namespace": Namespace,
  "v1/ConfigMap": ConfigMap,
  "v1/Secret": Secret,
  "v1/Service": Service,
  "v1/ServiceAccount": ServiceAccount,
  "apps/v1/Deployment": Deployment,
  "apps/v1/StatefulSet": StatefulSet,
  "autoscaling/v2/HorizontalPodAutoscaler": HorizontalPodAutoscaler,
  "policy/v1/PodDisruptionBudget": PodDisruptionBudget,
  "networking.k8s.io/v1/NetworkPolicy": NetworkPolicy,
  "keda.sh/v1alpha1/ScaledObject": ScaledObject,
};

/**
 * kustomize wraps a generated Secret's base64 at 76 columns; the API server's decoder (Go's
 * encoding/base64) skips the line breaks, the schema's "byte" format does not.
 */
function asApiServerReads(obj: K8sObject): K8sObject {
  if (obj.kind !== "Secret" || typeof obj.data !== "object" || obj.data === null) return obj;
  const data = Object.fromEntries(
    Object.entries(obj.data as Record<string, string>).map(([k, v]) => [
      k,
      v.replace(/[\r\n]/g, ""),
    ]),
  );
  return { ...obj, data };
}

/** Throws naming the object when its kind has no schema or the schema rejects it. */
export function validateObject(obj: K8sObject): void {
  const key = `${obj.apiVersion}/${obj.kind}`;
  const Model = MODELS[key];
  if (!Model) throw new Error(`${key} ${obj.metadata.name}: no schema registered for this kind`);
  try {
    new Model(asApiServerReads(obj) as never).validate();
  } catch (err) {
    throw new Error(
      `${key} ${obj.metadata.name}: ${err instanceof Error ? err.message : String(err)}`,
      { cause: err },
    );
  }
}

export type Probe = { ok: true; version: string } | { ok: false; reason: string };

/** Whether `kubectl kustomize` can run here (no cluster is contacted). */
export function probeKubectl(): Probe {
  try {
    const out = execFileSync("kubectl", ["version", "--client", "--output=json"], {
      encoding: "utf8",
      stdio: "pipe",
    });
    const v = JSON.parse(out) as {
      kustomizeVersion?: string;
      clientVersion?: { gitVersion?: string };
    };
    // kubectl reports its built-in kustomize from 1.24 on (kustomize v4.5.4); older ones cannot render `labels:`.
    if (!v.kustomizeVersion)
      return { ok: false, reason: "kubectl reports no built-in kustomize: need kubectl >= 1.24" };
    return {
      ok: true,
      version: `kubectl ${v.clientVersion?.gitVersion ?? "?"}, kustomize ${v.kustomizeVersion}`,
    };
  } catch {
    return {
      ok: false,
      reason: "kubectl not found on PATH (need kubectl >= 1.24 with its built-in kustomize)",
    };
  }
}

/** Renders one kustomization directory with the real kustomize and parses every document. */
export function render(dir: string): K8sObject[] {
  const out = execFileSync("kubectl", ["kustomize", dir], {
    encoding: "utf8",
    stdio: ["ignore", "pipe", "pipe"],
    timeout: 60_000,
  });
  return parseAllDocuments(out)
    .map((d) => d.toJS() as unknown)
    .filter((o): o is K8sObject => typeof o === "object" && o !== null);
}
