import { randomBytes } from "node:crypto";
import { chmod, mkdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { brokerUsers, type BrokerUser } from "@mcpq/bus";
import { confVariable } from "@mcpq/nats-launcher";

/** A generated password nats-server reads back as a string from its environment. */
const SAFE_PASSWORD = /^[A-Za-z][A-Za-z0-9_-]{15,}$/;

/** The environment variable a generated server config reads a user's password from. */
function passwordVariable(user: string): string {
  return `MCPQ_NATS_${user.toUpperCase().replace(/[^A-Z0-9]/g, "_")}_PASSWORD`;
}

/**
 * The server settings of a least-privilege broker: one user per role (edge, worker, replay, and
 * worker-<pool> per pool), passwords read from the server's environment (`$MCPQ_NATS_<USER>_PASSWORD`),
 * so the config holds no secret; `max_payload` fits a replay record (`recordMaxBytes`).
 */
export function brokerServerSettings(
  maxPayload: number,
  pools: string[],
): { max_payload: number; authorization: { users: BrokerUser[] } } {
  return {
    max_payload: maxPayload,
    authorization: { users: brokerUsers((u) => confVariable(passwordVariable(u)), pools) },
  };
}

/** What a role's process sets to use its credential (the worker creates no streams). */
function roleEnv(user: string, password: string): string {
  const lines = [`MCPQ_NATS_USER=${user}`, `MCPQ_NATS_PASSWORD=${password}`];
  if (user.startsWith("worker")) lines.push("MCPQ_PROVISION=off");
  return `${lines.join("\n")}\n`;
}

/**
 * Makes (or reuses, so a restart keeps them) a random password per user and writes
 * `<dir>/<user>.env` (mode 0600) holding that role's MCPQ_NATS_USER/PASSWORD settings. Returns the
 * server's environment entries (`MCPQ_NATS_<USER>_PASSWORD`).
 */
export async function ensureRoleSecrets(
  dir: string,
  users: string[],
): Promise<Record<string, string>> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const vars: Record<string, string> = {};
  for (const user of users) {
    const file = join(dir, `${user}.env`);
    let password = "";
    try {
      password = /^MCPQ_NATS_PASSWORD=(.+)$/m.exec(await readFile(file, "utf8"))?.[1] ?? "";
    } catch {
      password = "";
    }
    // nats-server parses a `$VARIABLE` from the environment as a config value: one starting with a
    // digit or `-` is read as a number and the server refuses to start (base64url did that now
    // and then). A letter first and hex after is always a plain string, never a keyword.
    if (!SAFE_PASSWORD.test(password)) password = `p${randomBytes(24).toString("hex")}`;
    await writeFile(file, roleEnv(user, password), { mode: 0o600 });
    await chmod(file, 0o600);
    vars[passwordVariable(user)] = password;
  }
  return vars;
}
