import { z } from "zod";
import { deepFreeze } from "@mcpq/protocol";

/** A TCP port: an integer 0-65535 (0 = a random free port). */
const port = () =>
  z.coerce
    .number({ error: "expected a port number 0-65535" })
    .int("expected a port number 0-65535")
    .min(0, "expected a port number 0-65535")
    .max(65_535, "expected a port number 0-65535");

/**
 * One NATS server URL (`nats://host:port`, `tls://…`, `ws(s)://…`) or a bare `host[:port]`, as
 * nats.js accepts; a syntax error is reported here, naming the variable, rather than as Node's
 * "Invalid URL" from deep inside the client.
 */
function isNatsUrl(s: string): boolean {
  const withScheme = /^[a-z][a-z0-9+.-]*:\/\//i.test(s) ? s : `nats://${s}`;
  try {
    const u = new URL(withScheme);
    return ["nats:", "tls:", "ws:", "wss:"].includes(u.protocol) && u.hostname !== "";
  } catch {
    return false;
  }
}

/**
 * What the `mcpq` command itself reads from the environment, parsed once at boot and frozen.
 * Edges and workers parse their own settings (services/edge/src/env.ts, services/worker/src/env.ts);
 * `mcpq dev` checks both before it starts anything. The README's configuration table lists these.
 */
const CliEnvSchema = z.object({
  /** NATS server(s), comma-separated; every command connects here (`mcpq dev` starts one if none answers). */
  MCPQ_NATS_URL: z
    .string()
    .default("nats://127.0.0.1:4222")
    .refine(
      (v) => v.split(",").every((s) => isNatsUrl(s.trim())),
      "expected comma-separated NATS URLs such as nats://127.0.0.1:4222",
    ),
  /** `mcpq dev`: the edge's HTTP port when `--port` is not given (the edge itself reads it too). */
  MCPQ_PORT: port().optional(),
  /** `mcpq dev`: catalogs when `--catalog` is not given (one worker, and pool, per catalog). */
  MCPQ_CATALOGS: z.string().optional(),
  /** `mcpq worker` / `mcpq dev`: an explicit pool instead of one named after the catalogs. */
  MCPQ_POOL: z
    .string()
    .regex(/^[A-Za-z0-9_-]+$/, "expected letters, digits, _ or -")
    .optional(),
  /** `mcpq status`: edges (comma-separated URLs) to read /metrics from when no `--edge` is given. */
  MCPQ_STATUS_EDGES: z.string().optional(),
  /** `mcpq stdio`: bearer token when `--token` is not given. */
  MCPQ_TOKEN: z.string().optional(),
  /** `mcpq replay` and boot errors: print the stack of an unexpected error. */
  MCPQ_DEBUG: z.string().optional(),
});
export type CliEnv = z.infer<typeof CliEnvSchema>;

/** Parses the CLI's environment; throws one Error naming every bad variable and its value. */
export function loadCliEnv(
  env: Record<string, string | undefined> = process.env,
): Readonly<CliEnv> {
  const r = CliEnvSchema.safeParse(env);
  if (!r.success) {
    const bad = r.error.issues.map((i) => {
      const key = String(i.path[0]);
      return `${key}=${JSON.stringify(env[key] ?? "")}: ${i.message}`;
    });
    throw new Error(`invalid environment: ${bad.join("; ")}`);
  }
  return deepFreeze(r.data);
}
