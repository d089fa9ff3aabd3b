import { z } from "zod";
import type { Catalog } from "@mcpq/protocol";
import type { Bus } from "./connection.js";
import type { MsgHdrs } from "@nats-io/transport-node";
import { encodeEnvelope, type RequestEnvelope } from "./envelope.js";
import { subjects } from "./subjects.js";

/**
 * Typed contracts of the core NATS messages beside the request and outbound streams (whose
 * envelope headers live in envelope.ts): subject, zod schema, encode, decode. Consumers decode
 * (validate) what anyone may publish; a malformed message decodes to null and is ignored, never
 * thrown. The model is record.ts (MCPQ_REC).
 */

// ---------------------------------------------------------------- requests

/**
 * The request contract (edge -> worker): `body` (the JSON-RPC request text, forwarded as the
 * client sent it) on `mcpq.req.<pool>.<kind>.<target>` in MCPQ_REQ, the envelope as headers
 * (`encodeEnvelope`; workers validate it with `decodeEnvelope` and term what fails), the internal
 * request id as JetStream message id (a re-publish within the duplicate window is stored once).
 * Resolves on the PubAck, waiting at most `timeoutMs`; rejects with the publish error (map it
 * with `publishFailure`). Its answer comes on `env.replyTo`. Used by edges and by `mcpq replay`.
 */
export async function publishRequest(
  bus: Pick<Bus, "publisher">,
  pool: string,
  env: RequestEnvelope,
  body: string,
  timeoutMs?: number,
  /** The envelope headers when the caller built them already (`encodeEnvelope(env)`, maybe with trace context added). */
  headers: MsgHdrs = encodeEnvelope(env),
): Promise<void> {
  // The envelope headers carry the request id as `Nats-Msg-Id`.
  await bus.publisher.publish(subjects.request(pool, env.targetKind, env.target), body, {
    headers,
    timeoutMs,
  });
}

// ---------------------------------------------------------------- event ids

/**
 * Event ids of `mcpq.out.<session>.<stream>` messages: `<stream>_<token>`, unique across a
 * session's streams; they become SSE `id:` lines and `$/mcpq/event` markers. Stream ids are
 * `[A-Za-z0-9-]+` (no `_`).
 */
export function eventId(stream: string, token: string): string {
  return `${stream}_${token}`;
}

/** The token a priming event carries: "replay this stream from its start". */
export const PRIMING_TOKEN = "0";

/** The priming event id of `stream` (`<stream>_0`). */
export function primingEventId(stream: string): string {
  return eventId(stream, PRIMING_TOKEN);
}

/**
 * The event id of a response an edge sent on a POST stream without retaining it (a local
 * method's answer, or a routed request's answer while NATS could not take the edge's claim or
 * publish): `<stream>_a.` ("." is in no generated token). A client that resumes after it has the
 * stream's one response: nothing follows it on any edge, and the worker's answer may have been
 * retained after all, so a resume must not replay the stream.
 */
export function unretainedAnswerEventId(stream: string): string {
  return eventId(stream, UNRETAINED_ANSWER_TOKEN);
}

/** The token of `unretainedAnswerEventId`. */
export const UNRETAINED_ANSWER_TOKEN = "a.";

/**
 * The event id of a response (a worker's, or an edge's retained answer): `<stream>_r.<token>`.
 * A client resuming after it has the request's response, which an edge can tell from the id
 * alone, even while NATS cannot be asked (`isResponseToken`).
 */
export function responseEventId(stream: string, token: string): string {
  return eventId(stream, `${RESPONSE_TOKEN_PREFIX}${token}`);
}

const RESPONSE_TOKEN_PREFIX = "r.";

/** Whether an event id's token is a response's (`responseEventId`). */
export function isResponseToken(token: string): boolean {
  return token.startsWith(RESPONSE_TOKEN_PREFIX);
}

/** Splits an event id into its stream and token; null when malformed. */
export function parseEventId(id: string): { stream: string; token: string } | null {
  const i = id.indexOf("_");
  if (i <= 0 || i === id.length - 1) return null;
  const stream = id.slice(0, i);
  return /^[A-Za-z0-9-]+$/.test(stream) ? { stream, token: id.slice(i + 1) } : null;
}

// ---------------------------------------------------------------- server -> client request ids

/**
 * JSON-RPC ids of server->client requests (legacy era: sampling, elicitation, roots) start with
 * this; the client's answer to one is routed to `subjects.clientReply(principal, session, id)`,
 * any other client response is dropped.
 */
const SERVER_REQUEST_ID_PREFIX = "mcpq-";

export function isServerRequestId(id: unknown): id is string {
  return typeof id === "string" && id.startsWith(SERVER_REQUEST_ID_PREFIX);
}

// ---------------------------------------------------------------- cancel notices

/**
 * A client cancelled a request. Subject `mcpq.cancel.<principal-digest>.<session>`
 * (`subjects.cancel`); every edge and worker listens on `subjects.cancelAll`. Core NATS (no
 * stream): a worker not running the request remembers it briefly (a cancel may overtake its request).
 */
const CancelNoticeSchema = z.object({
  /** The session, or a stateless-era request's synthetic scope (`m-<edge>-<stream>`). */
  session: z.string().min(1).max(512),
  principal: z.string().max(1024),
  /** The client's JSON-RPC id of the request being cancelled. */
  requestId: z.union([z.string().max(1024), z.number()]),
  /**
   * The request's internal id (envelope `requestId`), when the sender knows only that: an edge
   * that answered the request itself because of a fault (services/edge/src/self-heal.ts).
   * Workers then match it instead of `requestId`.
   */
  internalId: z.string().max(256).optional(),
  reason: z.string().max(1024).optional(),
});
export type CancelNotice = z.infer<typeof CancelNoticeSchema>;

export const cancelContract = {
  subject: (n: Pick<CancelNotice, "principal" | "session">) =>
    subjects.cancel(n.principal, n.session),
  all: subjects.cancelAll,
  encode: (n: CancelNotice): string => JSON.stringify(n),
  decode: (data: Uint8Array | string): CancelNotice | null => decodeJson(CancelNoticeSchema, data),
} as const;

// ---------------------------------------------------------------- resource updates

/**
 * A resource changed: `{"uri"}` on `mcpq.evt.resources.updated` (core NATS). Workers publish it
 * (`ctx.resourceUpdated`), so may any process; edges fan it out to subscribed sessions (one edge
 * of the queue group per update) and to their own stateless-era listeners (every edge).
 */
const ResourceUpdatedSchema = z.object({ uri: z.string().min(1).max(2048) }).loose();
export type ResourceUpdated = z.infer<typeof ResourceUpdatedSchema>;

export const resourceUpdatedContract = {
  subject: subjects.resourceUpdated,
  encode: (uri: string): string => JSON.stringify({ uri }),
  decode: (data: Uint8Array | string): ResourceUpdated | null =>
    decodeJson(ResourceUpdatedSchema, data),
} as const;

// ---------------------------------------------------------------- cache invalidation

/**
 * Evicts edge response-cache entries: `{"tags":[...]}` every entry whose declaration carries one
 * of the tags (worker SDK `ctx.invalidate`). Core NATS on `mcpq.evt.cache.invalidate`; every
 * edge evicts its L1, one edge (queue group) purges the shared L2. Resource URIs are evicted
 * from `mcpq.evt.resources.updated` (the resource-update contract), not from here.
 */
const CacheInvalidateSchema = z
  .object({ tags: z.array(z.string().min(1).max(128)).min(1).max(64) })
  .loose();
export type CacheInvalidate = z.infer<typeof CacheInvalidateSchema>;

export const cacheInvalidateContract = {
  subject: subjects.cacheInvalidate,
  encode: (n: CacheInvalidate): string => JSON.stringify(n),
  decode: (data: Uint8Array | string): CacheInvalidate | null =>
    decodeJson(CacheInvalidateSchema, data),
} as const;

// ---------------------------------------------------------------- session changed

/**
 * A session record changed or ended: its id (plain text) on `mcpq.evt.session.changed`, so every
 * edge drops its cached copy. Core NATS, best effort (the cache also expires on its own).
 */
export const sessionChangedContract = {
  subject: subjects.sessionChanged,
  encode: (sessionId: string): string => sessionId,
  decode: (data: Uint8Array | string): string | null => {
    const id = typeof data === "string" ? data : new TextDecoder().decode(data);
    return id !== "" && id.length <= 512 && !/\s/.test(id) ? id : null;
  },
} as const;

// ---------------------------------------------------------------- registry entries

const Named = z.object({ name: z.string().min(1) }).loose();
const HintSchema = z.object({
  ttlMs: z.number().int().nonnegative(),
  cacheScope: z.enum(["public", "private"]),
});
const HintMap = z.record(z.string(), HintSchema);
const EdgePolicySchema = z.object({
  ttlMs: z.number().int().positive(),
  scope: z.enum(["public", "principal"]),
  tags: z.array(z.string().min(1).max(128)).max(16).optional(),
  allowProgress: z.boolean().optional(),
});
const EdgePolicyMap = z.record(z.string(), EdgePolicySchema);

/**
 * One worker's entry in the `mcpq_registry` KV bucket, key `<pool>.<workerId>` (`registryKey`),
 * TTL MCPQ_REGISTRY_TTL_MS, refreshed by the worker's heartbeat. Edges watch the bucket and
 * route by it; an entry whose heartbeat is older than its TTL is ignored.
 */
const RegistryEntrySchema = z.object({
  workerId: z.string().min(1),
  pool: z.string().min(1),
  heartbeatAt: z.number(),
  ttlMs: z.number().positive(),
  catalog: z
    .object({
      tools: z.array(Named),
      resources: z.array(z.object({ uri: z.string().min(1), name: z.string() }).loose()),
      resourceTemplates: z.array(
        z.object({ uriTemplate: z.string().min(1), name: z.string() }).loose(),
      ),
      prompts: z.array(Named),
      cacheHints: z
        .object({
          tools: HintMap,
          resources: HintMap,
          resourceTemplates: HintMap,
          prompts: HintMap,
          lists: z.record(z.string(), HintSchema),
          // Edge response-cache policies (optional: older workers publish none, older edges ignore them).
          edge: z
            .object({
              tools: EdgePolicyMap,
              resources: EdgePolicyMap,
              resourceTemplates: EdgePolicyMap,
              prompts: EdgePolicyMap,
            })
            .partial(),
        })
        .partial()
        .optional(),
    })
    .loose(),
  /** A candidate deployment for `mcpq replay`: registered, but never routed to by edges. */
  shadow: z.boolean().optional(),
});
/** A registry entry, its catalog as the protocol types it (the schema checks its structure). */
export type RegistryEntry = Omit<z.infer<typeof RegistryEntrySchema>, "catalog"> & {
  catalog: Catalog;
};

export const registryContract = {
  encode: (e: RegistryEntry): string => JSON.stringify(e),
  decode: (data: Uint8Array | string): RegistryEntry | null =>
    decodeJson(RegistryEntrySchema, data) as RegistryEntry | null,
} as const;

function decodeJson<T extends z.ZodType>(schema: T, data: Uint8Array | string): z.output<T> | null {
  let raw: unknown;
  try {
    raw = JSON.parse(typeof data === "string" ? data : new TextDecoder().decode(data));
  } catch {
    return null;
  }
  const r = schema.safeParse(raw);
  return r.success ? r.data : null;
}
