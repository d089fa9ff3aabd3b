import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { delimiter, join } from "node:path";
import { NatsLaunchError } from "./errors.js";

/** A nats-server release, as `nats-server --version` prints it (`nats-server: v2.9.10`). */
export interface ServerVersion {
  readonly major: number;
  readonly minor: number;
  readonly patch: number;
  /** `2.9.10`, or `2.11.0-RC.1` for a pre-release. */
  readonly text: string;
}

/**
 * The oldest release the launcher (and mcpq) supports: Debian 12's 2.9.10 is the floor we test on;
 * 2.9 is the first with stable JetStream clustering, stream replica changes on update and /healthz.
 */
export const MIN_NATS_SERVER_VERSION = "2.9.0";

/** Where Debian, Homebrew and the release tarballs put the binary (often off a non-root PATH). */
const STANDARD_DIRS = [
  "/usr/local/bin",
  "/usr/bin",
  "/usr/local/sbin",
  "/usr/sbin",
  "/opt/homebrew/bin",
];

export interface FindNatsServerOptions {
  /** An explicit binary (a service's MCPQ_NATS_SERVER_BIN); used when it exists. */
  bin?: string | undefined;
  /** A PATH-style list searched before the standard directories (the caller passes its PATH). */
  searchPath?: string | undefined;
}

/**
 * Finds a nats-server binary: `bin`, then each directory of `searchPath`, then the standard
 * install directories. Returns null when there is none. Reads no environment itself.
 */
export function findNatsServer(opts: FindNatsServerOptions = {}): string | null {
  const dirs = [...(opts.searchPath ?? "").split(delimiter).filter(Boolean), ...STANDARD_DIRS];
  const candidates = [opts.bin, ...dirs.map((d) => join(d, "nats-server"))];
  for (const c of candidates) if (c && existsSync(c)) return c;
  return null;
}

/** Parses `v2.9.10` / `nats-server: v2.10.0-beta.3`; null when no version is found. */
export function parseServerVersion(text: string): ServerVersion | null {
  const m = /v?(\d+)\.(\d+)\.(\d+)([-+][0-9A-Za-z.-]+)?/.exec(text);
  if (!m) return null;
  return {
    major: Number(m[1]),
    minor: Number(m[2]),
    patch: Number(m[3]),
    text: m[0].replace(/^v/, ""),
  };
}

/** True when `v` is at least `min` (`"2.10.0"`); pre-release tags are ignored. */
export function versionAtLeast(v: ServerVersion, min: string): boolean {
  const want = parseServerVersion(min);
  if (!want) throw new TypeError(`not a version: ${min}`);
  if (v.major !== want.major) return v.major > want.major;
  if (v.minor !== want.minor) return v.minor > want.minor;
  return v.patch >= want.patch;
}

/**
 * Runs `bin --version` and checks it against {@link MIN_NATS_SERVER_VERSION}.
 * @throws NatsLaunchError `too-old` (or `not-found` when it does not run / prints no version).
 */
export function readServerVersion(bin: string): ServerVersion {
  const r = spawnSync(bin, ["--version"], { encoding: "utf8", timeout: 10_000 });
  const v = parseServerVersion(`${r.stdout ?? ""} ${r.stderr ?? ""}`);
  if (!v)
    throw new NatsLaunchError(
      "not-found",
      `${bin} --version printed no version${r.error ? ` (${r.error.message})` : ""}`,
      { cause: r.error },
    );
  if (!versionAtLeast(v, MIN_NATS_SERVER_VERSION)) {
    throw new NatsLaunchError(
      "too-old",
      `nats-server ${v.text} at ${bin} is too old: mcpq needs ${MIN_NATS_SERVER_VERSION} or newer`,
    );
  }
  return v;
}

/** {@link findNatsServer} that throws a NatsLaunchError `not-found` naming what to install or set. */
export function requireNatsServer(opts: FindNatsServerOptions = {}): string {
  const bin = findNatsServer(opts);
  if (!bin) {
    throw new NatsLaunchError(
      "not-found",
      `nats-server not found${opts.bin ? ` (${opts.bin} does not exist)` : ""}: install it (Debian: apt-get install nats-server) or set MCPQ_NATS_SERVER_BIN`,
    );
  }
  return bin;
}
