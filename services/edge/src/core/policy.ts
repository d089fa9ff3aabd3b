import { readFile } from "node:fs/promises";
import { z } from "zod";
import { ErrorCode, McpError } from "@mcpq/protocol";
import type { Caller } from "./auth.js";
import type { NameKind } from "./subject-safety.js";

const patterns = z.array(z.string().min(1).max(1024)).max(1_000);

/** One grant: callers it applies to (every condition given must hold) and what they may use. */
const RuleSchema = z
  .object({
    /** Principal patterns (`*` matches any run of characters); any one matching suffices. */
    principals: patterns.optional(),
    /** Scopes the caller's token must all carry. */
    scopes: z.array(z.string().min(1)).max(100).optional(),
    /** Claims that must equal the value (or, for array claims, contain it). */
    claims: z.record(z.string(), z.union([z.string(), z.number(), z.boolean()])).optional(),
    /** Tool names, resource URIs (also matched against resource templates), prompt names. */
    tools: patterns.optional(),
    resources: patterns.optional(),
    prompts: patterns.optional(),
  })
  .strict();

/** A virtual server: a named subset of the catalog served at its own path (`/mcp/<name>`). */
const ServerSchema = z
  .object({
    tools: patterns.optional(),
    resources: patterns.optional(),
    prompts: patterns.optional(),
  })
  .strict();

/**
 * The authorization policy file (MCPQ_POLICY_FILE, JSON). Without a policy every authenticated
 * caller may use everything. With one, a caller may use exactly what the rules that apply to it
 * grant (union); `exposeClaims` names the token claims copied into the request envelope for
 * workers (the token itself never leaves the edge).
 */
export const PolicySchema = z
  .object({
    /** Absent: every caller may use everything (a file with only `servers`). */
    rules: z.array(RuleSchema).max(10_000).optional(),
    exposeClaims: z.array(z.string().min(1)).max(50).default([]),
    /** Virtual servers by name ([A-Za-z0-9_-]): each a subset of the catalog at `/mcp/<name>`. */
    servers: z.record(z.string().regex(/^[A-Za-z0-9_-]{1,64}$/), ServerSchema).default({}),
  })
  .strict();
export type PolicyFile = z.infer<typeof PolicySchema>;

interface CompiledRule {
  principals: RegExp[] | undefined;
  scopes: string[];
  claims: [string, string | number | boolean][];
  tools: RegExp[];
  resources: RegExp[];
  prompts: RegExp[];
}

/** What a list item is matched by: tools and prompts by name, resources by URI or URI template. */
export type ListedKind = "tools" | "resources" | "resourceTemplates" | "prompts";

/** What a request may reach: checked before routing, applied to lists. */
export interface TargetView {
  check(caller: Caller, kind: NameKind, name: string, completionRefIsPrompt?: boolean): void;
  filter<T>(caller: Caller, kind: ListedKind, items: readonly T[]): T[];
}

/**
 * Per-caller access to tools, resources and prompts. Lists show only what the caller may use;
 * a forbidden call is answered exactly like a call to a target that does not exist, so the
 * answer never tells whether it does.
 */
export class AccessPolicy implements TargetView {
  readonly #rules: CompiledRule[];
  /** No `rules` in the file: callers are not restricted (only virtual servers are defined). */
  readonly #open: boolean;
  /** Virtual servers (`/mcp/<name>`), each a view of its own subset. */
  readonly servers: ReadonlyMap<string, TargetView>;
  readonly exposeClaims: readonly string[];
  /** Per-caller decisions are cached per (principal, scopes, claims) fingerprint. */
  readonly #grants = new Map<string, CompiledRule[]>();

  constructor(file: PolicyFile) {
    this.#open = file.rules === undefined;
    this.servers = new Map(
      Object.entries(file.servers).map(([name, sv]) => [
        name,
        new AccessPolicy({ rules: [{ ...sv }], exposeClaims: [], servers: {} }),
      ]),
    );
    this.#rules = (file.rules ?? []).map((r) => ({
      principals: r.principals?.map(glob),
      scopes: r.scopes ?? [],
      claims: Object.entries(r.claims ?? {}),
      tools: (r.tools ?? []).map(glob),
      resources: (r.resources ?? []).map(glob),
      prompts: (r.prompts ?? []).map(glob),
    }));
    this.exposeClaims = file.exposeClaims;
  }

  /** Whether `caller` may use the target `name` of `kind`. */
  allows(caller: Caller, kind: NameKind, name: string, completionRefIsPrompt = false): boolean {
    if (this.#open) return true;
    const rules = this.#rulesFor(caller);
    const field: keyof Pick<CompiledRule, "tools" | "resources" | "prompts"> =
      kind === "tool"
        ? "tools"
        : kind === "prompt"
          ? "prompts"
          : kind === "complete"
            ? completionRefIsPrompt
              ? "prompts"
              : "resources"
            : "resources";
    return rules.some((r) => r[field].some((re) => re.test(name)));
  }

  /** The items of a list the caller may see. */
  filter<T>(caller: Caller, kind: ListedKind, items: readonly T[]): T[] {
    if (this.#open) return [...items];
    const rules = this.#rulesFor(caller);
    const field = kind === "tools" ? "tools" : kind === "prompts" ? "prompts" : "resources";
    const key =
      kind === "resources" ? "uri" : kind === "resourceTemplates" ? "uriTemplate" : "name";
    return items.filter((item) => {
      const v = (item as Record<string, unknown>)[key];
      return typeof v === "string" && rules.some((r) => r[field].some((re) => re.test(v)));
    });
  }

  /**
   * Refuses a forbidden call with the error a missing target gets (-32602 unknown tool/prompt,
   * -32002 resource not found), so the refusal says nothing about the target's existence.
   */
  check(caller: Caller, kind: NameKind, name: string, completionRefIsPrompt = false): void {
    if (this.allows(caller, kind, name, completionRefIsPrompt)) return;
    switch (kind) {
      case "tool":
        throw new McpError(ErrorCode.InvalidParams, `Unknown tool: ${name}`);
      case "prompt":
        throw new McpError(ErrorCode.InvalidParams, `Unknown prompt: ${name}`);
      case "complete":
        throw new McpError(ErrorCode.InvalidParams, `Unknown completion reference: ${name}`);
      default:
        throw new McpError(ErrorCode.ResourceNotFound, "Resource not found", { uri: name });
    }
  }

  /** The claims of `caller` a worker may see (`exposeClaims`), or undefined when none. */
  exposed(caller: Caller | undefined): Record<string, unknown> | undefined {
    if (!caller || this.exposeClaims.length === 0) return undefined;
    const out: Record<string, unknown> = {};
    for (const k of this.exposeClaims)
      if (caller.claims[k] !== undefined) out[k] = caller.claims[k];
    return Object.keys(out).length > 0 ? out : undefined;
  }

  #rulesFor(caller: Caller): CompiledRule[] {
    const fp = `${caller.principal}\u0000${caller.scopes.join(" ")}\u0000${this.#claimFingerprint(caller)}`;
    let rules = this.#grants.get(fp);
    if (!rules) {
      rules = this.#rules.filter((r) => applies(r, caller));
      if (this.#grants.size >= 10_000) this.#grants.clear();
      this.#grants.set(fp, rules);
    }
    return rules;
  }

  #claimFingerprint(caller: Caller): string {
    const names = new Set(this.#rules.flatMap((r) => r.claims.map(([k]) => k)));
    return [...names].map((k) => JSON.stringify(caller.claims[k] ?? null)).join(",");
  }
}

function applies(r: CompiledRule, c: Caller): boolean {
  if (r.principals && !r.principals.some((re) => re.test(c.principal))) return false;
  if (!r.scopes.every((s) => c.scopes.includes(s))) return false;
  return r.claims.every(([k, v]) => {
    const have = c.claims[k];
    return Array.isArray(have) ? have.includes(v) : have === v;
  });
}

/** `*` matches any run of characters; everything else is literal; the whole name must match. */
function glob(p: string): RegExp {
  return new RegExp(
    `^${p
      .split("*")
      .map((s) => s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&"))
      .join(".*")}$`,
    "s",
  );
}

/** Reads and validates a policy file; a bad file fails the edge's start with every problem listed. */
export async function loadPolicyFile(path: string): Promise<AccessPolicy> {
  const text = await readFile(path, "utf8");
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new Error(`policy file ${path} is not JSON: ${(err as Error).message}`, { cause: err });
  }
  const r = PolicySchema.safeParse(json);
  if (!r.success) throw new Error(`invalid policy file ${path}: ${z.prettifyError(r.error)}`);
  return new AccessPolicy(r.data);
}
