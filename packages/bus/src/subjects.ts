import { createHash } from "node:crypto";

/**
 * Every subject, stream, consumer and bucket name mcpq uses is defined here and nowhere else.
 *
 * Requests:   mcpq.req.<pool>.<kind>.<target>      (stream MCPQ_REQ, work queue, bounded)
 * Outbound:   mcpq.out.<session>.<stream>          (stream MCPQ_OUT, resumability window)
 *             mcpq.out.replay.<id>.<n>             (same stream; one `mcpq replay` run's answers, under
 *                                                  one token so a replay credential reads only these)
 * Records:    mcpq.rec.<pool>.<kind>.<target>      (stream MCPQ_REC, replay window)
 * Replies:    mcpq.s2c.<principal-key>.<session>.<token>   (core; client answers to server requests)
 * Cancels:    mcpq.cancel.<principal-key>.<session>        (core; fan-out to workers and edges)
 * Events:     mcpq.evt.resources.updated           (core; external publishers may use it)
 *             mcpq.evt.session.changed             (core; session cache eviction between edges)
 *             mcpq.evt.cache.invalidate            (core; edge response-cache eviction by tag)
 * Contracts of the core messages: contracts.ts; of requests and outbound messages: envelope.ts.
 * Liveness:   mcpq.live.<pool>.<worker>            (core; worker beats, watched by edges)
 * Limits:     mcpq.limits.usage                    (core; edges' token use, cluster-wide limits)
 */
export const STREAMS = {
  requests: "MCPQ_REQ",
  outbound: "MCPQ_OUT",
  records: "MCPQ_REC",
} as const;

export const BUCKETS = {
  sessions: "mcpq_sessions",
  registry: "mcpq_registry",
  subscriptions: "mcpq_subs",
  /** Tasks of the tasks extension (`t.<task id>`), any edge answers tasks/* from it (tasks.ts). */
  tasks: "mcpq_tasks",
  /** MRTR `requestState` tokens already used (`<token digest>`), so a state is accepted once. */
  usedStates: "mcpq_used_states",
} as const;

/** The edges' shared response cache (L2); provisioned by edges only (`openCacheBucket`), so not in BUCKETS. */
export const CACHE_BUCKET = "mcpq_cache";

/** Kinds of routed work; each gets its own subject so pools and consumers can be split by kind. */
export type TargetKind = "tool" | "resource" | "prompt" | "complete";

const SAFE = /^[A-Za-z0-9_-]+$/;

/**
 * Longest subject token `subjectToken` produces. Client-chosen names (tool names, resource URIs,
 * client answer ids) end up in subjects, and nats-server drops a connection whose control line
 * (`PUB <subject> <reply> <sizes>`) passes 4,096 bytes: one long URI would cut every session
 * sharing the edge's NATS connection off. Longer encodings keep a readable prefix and end in a
 * digest of the whole name, so distinct names stay distinct and every subject stays short.
 */
export const MAX_SUBJECT_TOKEN = 160;
const DIGEST_MARK = "~~";

/**
 * Encodes an arbitrary name (tool names may contain dots) as one subject token:
 * [A-Za-z0-9_-] pass through, every other UTF-8 byte becomes `~XX`. Encodings longer than
 * MAX_SUBJECT_TOKEN become `<prefix>~~<digest>` (a digest of the full name), at most that long.
 */
export function subjectToken(name: string): string {
  let out: string;
  if (SAFE.test(name)) {
    out = name;
  } else {
    out = "";
    for (const byte of Buffer.from(name, "utf8")) {
      const c = String.fromCharCode(byte);
      out += /[A-Za-z0-9_-]/.test(c) ? c : `~${byte.toString(16).padStart(2, "0")}`;
      if (out.length > MAX_SUBJECT_TOKEN) break;
    }
  }
  if (out.length <= MAX_SUBJECT_TOKEN) return out;
  const digest = digestToken(name);
  return `${out.slice(0, MAX_SUBJECT_TOKEN - DIGEST_MARK.length - digest.length)}${DIGEST_MARK}${digest}`;
}

/** Short stable digest used where a value must become a subject token (principals, URIs). */
export function digestToken(value: string): string {
  return createHash("sha256").update(value).digest("base64url").slice(0, 22);
}

/** Pool names become subject tokens; they must already be safe. */
export function assertPoolName(pool: string): string {
  if (!SAFE.test(pool))
    throw new Error(`invalid pool name ${JSON.stringify(pool)}: use [A-Za-z0-9_-]`);
  return pool;
}

/** A replay id as a subject token (validated like its session id). */
const replayToken = (replayId: string): string => {
  replaySession(replayId);
  return replayId;
};

export const subjects = {
  requestsAll: "mcpq.req.>",
  outboundAll: "mcpq.out.>",
  recordsAll: "mcpq.rec.>",
  request: (pool: string, kind: TargetKind, target: string) =>
    `mcpq.req.${pool}.${kind}.${subjectToken(target)}`,
  poolRequests: (pool: string) => `mcpq.req.${pool}.>`,
  record: (pool: string, kind: TargetKind, target: string) =>
    `mcpq.rec.${pool}.${kind}.${subjectToken(target)}`,
  /** Filter over MCPQ_REC; an omitted token is a wildcard (`*`). */
  recordFilter: (pool?: string, kind?: TargetKind, target?: string) =>
    `mcpq.rec.${pool ?? "*"}.${kind ?? "*"}.${target === undefined ? "*" : subjectToken(target)}`,
  /** Outbound subjects of one replay run (`mcpq replay`): its own subjects, never a live client's session's. */
  replayOutbound: (replayId: string) => `mcpq.out.replay.${replayToken(replayId)}.>`,
  /** Where a replayed request's answer goes (the envelope's replyTo). */
  replayReply: (replayId: string, n: string) =>
    `mcpq.out.replay.${replayToken(replayId)}.${subjectToken(n)}`,
  /** Every replay run's answers (the replay role's subscribe permission). */
  replayOutboundAll: "mcpq.out.replay.>",
  outbound: (session: string, stream: string) => `mcpq.out.${session}.${stream}`,
  sessionOutbound: (session: string) => `mcpq.out.${session}.>`,
  clientReply: (principal: string, session: string, token: string) =>
    `mcpq.s2c.${digestToken(principal)}.${session}.${subjectToken(token)}`,
  cancel: (principal: string, session: string) =>
    `mcpq.cancel.${digestToken(principal)}.${session}`,
  cancelAll: "mcpq.cancel.>",
  resourceUpdated: "mcpq.evt.resources.updated",
  sessionChanged: "mcpq.evt.session.changed",
  /** Core liveness beats of one worker (see liveness.ts); edges watch `livenessAll`. */
  liveness: (pool: string, workerId: string) => `mcpq.live.${pool}.${subjectToken(workerId)}`,
  livenessAll: "mcpq.live.>",
  /** Core: each edge's recent rate-limit token use, so every edge charges it (shared-limits.ts). */
  limitsUsage: "mcpq.limits.usage",
  cacheInvalidate: "mcpq.evt.cache.invalidate",
} as const;

/** Queue group in which one edge purges the shared cache bucket per invalidation. */
export const EDGE_CACHE_QUEUE_GROUP = "mcpq-edge-cache";

/** Session ids of replay runs start with this; workers do not record them (no replay of replays). */
const REPLAY_SESSION_PREFIX = "replay-";
/** Principal every replayed request runs as (never a live client's). */
export const REPLAY_PRINCIPAL = "mcpq-replay";
/** Session id of one replay run; `replayId` must be a safe token. */
export function replaySession(replayId: string): string {
  if (!SAFE.test(replayId))
    throw new Error(`invalid replay id ${JSON.stringify(replayId)}: use [A-Za-z0-9_-]`);
  return `${REPLAY_SESSION_PREFIX}${replayId}`;
}
export function isReplaySession(session: string): boolean {
  return session.startsWith(REPLAY_SESSION_PREFIX);
}

/** The standalone GET stream of a session (server-initiated messages unrelated to a request). */
export const STANDALONE_STREAM = "g";

/**
 * Inbox prefixes per role (replies to requests, JetStream API answers, pull deliveries): each role
 * is allowed to subscribe to its own only, so an edge cannot read a worker's deliveries.
 */
export const INBOX_PREFIX = {
  edge: "_INBOX_edge",
  /** A pool's workers: `_INBOX_worker.<pool>`. */
  worker: (pool: string) => `_INBOX_worker.${assertPoolName(pool)}`,
  replay: "_INBOX_replay",
} as const;

/** Durable consumer name of a worker pool. */
export const poolConsumer = (pool: string) => `pool-${pool}`;
/** Queue group edges share to fan out resource updates once per update. */
export const EDGE_QUEUE_GROUP = "mcpq-edges";
/** Registry key of one worker. */
export const registryKey = (pool: string, workerId: string) => `${pool}.${workerId}`;
/** Subscription key: resource digest, then session, so one prefix scan finds all subscribers. */
export const subscriptionKey = (uri: string, session: string) => `${digestToken(uri)}.${session}`;
export const subscriptionPrefix = (uri: string) => `${digestToken(uri)}.>`;
