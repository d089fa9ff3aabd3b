import { z } from "zod";
import {
  isErrorResponse,
  isReplaySession,
  kindOfMethod,
  subjects,
  type RequestRecord,
} from "@mcpq/bus";

/**
 * Which recorded requests to replay or export. Saved as JSON (`mcpq replay --save-selection`,
 * read back with `--selection FILE`); times are ISO-8601 or relative to now (`15m`, `2h`, `1d`).
 */
export const SelectionSchema = z
  .object({
    since: z.string().optional(),
    until: z.string().optional(),
    /** Only records of this pool (default: every pool). */
    pool: z
      .string()
      .regex(/^[A-Za-z0-9_-]+$/)
      .optional(),
    session: z.string().optional(),
    principal: z.string().optional(),
    /** A routed method: tools/call, resources/read, prompts/get, completion/complete. */
    method: z.string().optional(),
    /** The target: tool or prompt name, resource URI (completion: prompt name or template URI). */
    name: z.string().optional(),
    /** Only requests that ended in an error (JSON-RPC error, `isError` result, or timeout). */
    errorsOnly: z.boolean().optional(),
    /** Exactly these requests (the `requestId` of each record). */
    requestIds: z.array(z.string()).optional(),
    /** Stop after this many matching records. */
    limit: z.number().int().positive().optional(),
  })
  .strict();
export type Selection = z.infer<typeof SelectionSchema>;

/** A selection with its times resolved to epoch ms. */
export type ResolvedSelection = Omit<Selection, "since" | "until"> & {
  since?: number;
  until?: number;
};

const UNITS: Record<string, number> = {
  ms: 1,
  s: 1_000,
  m: 60_000,
  h: 3_600_000,
  d: 86_400_000,
  w: 604_800_000,
};

/** `15m`, `90s`, `2h`, `1d` (before `now`) or an ISO-8601 timestamp -> epoch ms. Throws on anything else. */
export function parseTimeArg(value: string, now = Date.now()): number {
  const v = value.trim();
  const rel = /^(\d+(?:\.\d+)?)(ms|s|m|h|d|w)$/.exec(v);
  if (rel) return now - Number(rel[1]) * UNITS[rel[2]!]!;
  if (/^\d{4}-\d{2}-\d{2}/.test(v)) {
    const t = Date.parse(v);
    if (Number.isFinite(t)) return t;
  }
  throw new Error(
    `invalid time ${JSON.stringify(value)}: use ISO-8601 (2026-01-31T12:00:00Z) or a duration before now (15m, 2h, 1d)`,
  );
}

/** Validates and resolves a selection (relative times against `now`). */
export function resolveSelection(sel: Selection, now = Date.now()): ResolvedSelection {
  const parsed = SelectionSchema.parse(sel);
  if (parsed.method !== undefined && !kindOfMethod(parsed.method)) {
    throw new Error(
      `method ${JSON.stringify(parsed.method)} is never recorded; recorded methods: tools/call, resources/read, prompts/get, completion/complete`,
    );
  }
  const { since, until, ...rest } = parsed;
  const out: ResolvedSelection = { ...rest };
  if (since !== undefined) out.since = parseTimeArg(since, now);
  if (until !== undefined) out.until = parseTimeArg(until, now);
  if (out.since !== undefined && out.until !== undefined && out.since > out.until)
    throw new Error("--since is after --until");
  return out;
}

/** The narrowest MCPQ_REC filter subject for a selection (the rest is checked per record). */
export function selectionFilterSubject(sel: ResolvedSelection): string {
  const kind = sel.method === undefined ? undefined : kindOfMethod(sel.method);
  return subjects.recordFilter(sel.pool, kind, sel.name);
}

/** True when a record belongs to the selection. Records of replay runs never do. */
export function matchesSelection(r: RequestRecord, sel: ResolvedSelection): boolean {
  if (isReplaySession(r.session)) return false;
  if (sel.since !== undefined && r.receivedAt < sel.since) return false;
  if (sel.until !== undefined && r.receivedAt > sel.until) return false;
  if (sel.pool !== undefined && r.pool !== sel.pool) return false;
  if (sel.session !== undefined && r.session !== sel.session) return false;
  if (sel.principal !== undefined && r.principal !== sel.principal) return false;
  if (sel.method !== undefined && r.method !== sel.method) return false;
  if (sel.name !== undefined && r.target !== sel.name) return false;
  if (
    sel.errorsOnly &&
    !(isErrorResponse(r.response) || r.outcome === "error" || r.outcome === "timeout")
  )
    return false;
  if (sel.requestIds !== undefined && !sel.requestIds.includes(r.requestId)) return false;
  return true;
}

/** A resolved selection as a saveable `Selection` (absolute ISO times, so it replays the same window later). */
export function toSavedSelection(
  sel: ResolvedSelection,
  requestIds?: readonly string[],
): Selection {
  const { since, until, ...rest } = sel;
  const out: Selection = { ...rest };
  if (since !== undefined) out.since = new Date(since).toISOString();
  if (until !== undefined) out.until = new Date(until).toISOString();
  if (requestIds) out.requestIds = [...requestIds];
  return out;
}
