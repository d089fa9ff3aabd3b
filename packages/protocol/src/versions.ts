/** MCP protocol revisions mcpq speaks, newest first. */
const SUPPORTED_PROTOCOL_VERSIONS = [
  "2025-11-25",
  "2025-06-18",
  "2025-03-26",
  "2024-11-05",
] as const;
export type ProtocolVersion = (typeof SUPPORTED_PROTOCOL_VERSIONS)[number];
const LATEST_PROTOCOL_VERSION: ProtocolVersion = "2025-11-25";
/** Streamable HTTP: a missing MCP-Protocol-Version header means this revision. */
export const DEFAULT_HTTP_PROTOCOL_VERSION: ProtocolVersion = "2025-03-26";

export function isSupportedProtocolVersion(v: unknown): v is ProtocolVersion {
  return typeof v === "string" && (SUPPORTED_PROTOCOL_VERSIONS as readonly string[]).includes(v);
}

/**
 * Lifecycle negotiation: echo the client's requested version when supported, else answer the
 * latest version we support (the client then decides whether to disconnect).
 */
export function negotiateProtocolVersion(requested: unknown): ProtocolVersion {
  return isSupportedProtocolVersion(requested) ? requested : LATEST_PROTOCOL_VERSION;
}

/** Revisions that still allow JSON-RPC batches (removed in 2025-06-18). */
export function allowsBatching(v: string): boolean {
  return v === "2025-03-26" || v === "2024-11-05";
}

/** The first revision of the stateless era: no sessions, per-request `_meta`, MRTR, `resultType`. */
const MODERN_ERA_PROTOCOL_VERSION = "2026-07-28";

/** Stateless-era revisions mcpq speaks (per request, no session), newest first. */
const MODERN_PROTOCOL_VERSIONS = ["2026-07-28"] as const;
export type ModernProtocolVersion = (typeof MODERN_PROTOCOL_VERSIONS)[number];
/** A revision of either era. */
export type AnyProtocolVersion = ProtocolVersion | ModernProtocolVersion;
/** Every revision mcpq speaks, newest first (`server/discover` supportedVersions, -32022 `data.supported`). */
export const ALL_PROTOCOL_VERSIONS: readonly AnyProtocolVersion[] = [
  ...MODERN_PROTOCOL_VERSIONS,
  ...SUPPORTED_PROTOCOL_VERSIONS,
];

export function isModernProtocolVersion(v: unknown): v is ModernProtocolVersion {
  return typeof v === "string" && (MODERN_PROTOCOL_VERSIONS as readonly string[]).includes(v);
}

/** True for a revision of the stateless era (2026-07-28 or later; revisions are dates, so they compare as strings). */
export function isModernEra(protocolVersion: string | undefined): boolean {
  return protocolVersion !== undefined && protocolVersion >= MODERN_ERA_PROTOCOL_VERSION;
}
