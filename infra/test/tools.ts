/**
 * Where the infra tests find the external tools they run (each test skips with the reason when
 * one is absent). One place, so a move of the lookup helpers touches one import.
 */
import { existsSync } from "node:fs";
import { join } from "node:path";
import { findNatsServer } from "@mcpq/testkit";

/** The nats-server binary the test kit would start: MCPQ_NATS_SERVER_BIN, PATH, the standard dirs. */
export function natsServerBin(): string | null {
  return findNatsServer();
}

/** promtool from Debian's prometheus package (PATH, then the standard directories). */
export function promtoolBin(): string | null {
  const dirs = [...(process.env.PATH ?? "").split(":"), "/usr/bin", "/usr/local/bin"];
  for (const d of dirs) if (d && existsSync(join(d, "promtool"))) return join(d, "promtool");
  return null;
}
