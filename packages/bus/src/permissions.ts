import {
  BUCKETS,
  CACHE_BUCKET,
  INBOX_PREFIX,
  REPLAY_PRINCIPAL,
  STREAMS,
  digestToken,
  poolConsumer,
  subjects,
} from "./subjects.js";

/** The roles that connect to the broker, each with its own user and permissions. */
type BrokerRole = "edge" | "worker" | "replay";

/** nats-server `permissions` of one user: the subjects it may publish to and subscribe to (nothing else). */
interface NatsPermissions {
  publish: { allow: string[] };
  subscribe: { allow: string[] };
}

const API = "$JS.API";
const kvStream = (bucket: string) => `KV_${bucket}`;
const ALL_STREAMS = [
  STREAMS.requests,
  STREAMS.outbound,
  STREAMS.records,
  ...Object.values(BUCKETS).map(kvStream),
  kvStream(CACHE_BUCKET),
];

/** Creating, inspecting and updating mcpq's own streams and buckets (provisioning), by name. */
const provisioning = ALL_STREAMS.flatMap((s) => [
  `${API}.STREAM.INFO.${s}`,
  `${API}.STREAM.CREATE.${s}`,
  `${API}.STREAM.UPDATE.${s}`,
]);

/** Reading one stream through consumers: create (named or not), info, next (pull), delete; flow control. */
function consume(stream: string, consumer = "*"): string[] {
  return [
    `${API}.CONSUMER.CREATE.${stream}`,
    `${API}.CONSUMER.CREATE.${stream}.${consumer}.>`,
    `${API}.CONSUMER.CREATE.${stream}.${consumer}`,
    `${API}.CONSUMER.DURABLE.CREATE.${stream}.${consumer}`,
    `${API}.CONSUMER.INFO.${stream}.${consumer}`,
    `${API}.CONSUMER.MSG.NEXT.${stream}.${consumer}`,
    `${API}.CONSUMER.DELETE.${stream}.${consumer}`,
    `$JS.FC.${stream}.>`,
  ];
}

/** Reading a KV bucket: its stream's info, direct and stored gets, and keys/watch consumers. */
function kvRead(bucket: string): string[] {
  const s = kvStream(bucket);
  return [
    `${API}.STREAM.INFO.${s}`,
    `${API}.DIRECT.GET.${s}`,
    `${API}.DIRECT.GET.${s}.>`,
    `${API}.STREAM.MSG.GET.${s}`,
    ...consume(s),
  ];
}

/**
 * What each role may do on the broker, derived from subjects.ts and the JetStream API calls the
 * code makes — and nothing else (a subject not listed is refused by the server):
 *
 * - `edge`: provisions mcpq's streams and buckets; publishes requests (`mcpq.req.>`), outbound
 *   messages it makes itself, cancels, client replies and session events; reads and writes the
 *   sessions, subscriptions and response-cache buckets; reads the registry and MCPQ_OUT (priming, resumption).
 * - `worker` (one pool, or every pool with `pool` omitted): pulls its pool's requests through its
 *   pool consumer and acks them, publishes answers and notifications (`mcpq.out.>`), records
 *   (`mcpq.rec.>`), resource-updated and cache-invalidation events, and its own registry entries; hears cancels and
 *   client replies. It cannot read sessions, publish requests, or create or change a stream.
 * - `replay`: reads records (MCPQ_REC) and the registry, re-sends recorded requests
 *   (`mcpq.req.>`) as the replay principal and hears only replay runs' answers
 *   (`mcpq.out.replay.>`), never a live session's.
 */
function rolePermissions(role: BrokerRole, opts: { pool?: string } = {}): NatsPermissions {
  const p = permissionsOf(role, opts);
  return {
    publish: { allow: [...new Set(p.publish.allow)] },
    subscribe: { allow: [...new Set(p.subscribe.allow)] },
  };
}

function permissionsOf(role: BrokerRole, opts: { pool?: string }): NatsPermissions {
  const jsInfo = `${API}.INFO`;
  switch (role) {
    case "edge":
      return {
        publish: {
          allow: [
            jsInfo,
            ...provisioning,
            `${API}.STREAM.MSG.GET.${STREAMS.outbound}`,
            `${API}.STREAM.INFO.${STREAMS.requests}`,
            `${API}.CONSUMER.LIST.${STREAMS.requests}`,
            // Readiness and backlog: whether the pools' consumers exist and what they hold.
            `${API}.CONSUMER.INFO.${STREAMS.requests}.*`,
            `${API}.STREAM.PURGE.${kvStream(BUCKETS.sessions)}`,
            ...kvRead(BUCKETS.sessions),
            ...kvRead(BUCKETS.subscriptions),
            ...kvRead(BUCKETS.registry),
            // Tasks: any edge answers tasks/get, tasks/update, tasks/cancel; a cancel erases the
            // task's per-principal quota key (a stream purge by subject, tasks.ts).
            ...kvRead(BUCKETS.tasks),
            `$KV.${BUCKETS.tasks}.>`,
            `${API}.STREAM.PURGE.${kvStream(BUCKETS.tasks)}`,
            // The response cache's L2 (get, put, keys, purge).
            ...kvRead(CACHE_BUCKET),
            `$KV.${BUCKETS.sessions}.>`,
            `$KV.${BUCKETS.subscriptions}.>`,
            `$KV.${CACHE_BUCKET}.>`,
            subjects.requestsAll,
            subjects.outboundAll,
            subjects.cancelAll,
            "mcpq.s2c.>",
            "mcpq.evt.>",
            // Cluster-wide rate limits: the tokens this edge granted (shared-limits.ts).
            subjects.limitsUsage,
          ],
        },
        subscribe: {
          // Worker liveness beats and the other edges' granted tokens (docs/chaos.md).
          allow: [
            `${INBOX_PREFIX.edge}.>`,
            subjects.outboundAll,
            subjects.cancelAll,
            "mcpq.evt.>",
            subjects.livenessAll,
            subjects.limitsUsage,
          ],
        },
      };
    case "worker": {
      const pool = opts.pool ?? "*";
      // A consumer name is one subject token (`pool-<pool>`): every pool's is `*`.
      const consumer = opts.pool ? poolConsumer(opts.pool) : "*";
      return {
        publish: {
          allow: [
            jsInfo,
            `${API}.STREAM.INFO.${STREAMS.requests}`,
            `${API}.STREAM.INFO.${kvStream(BUCKETS.registry)}`,
            // Only its pool consumer, named and filtered in the subject itself (the server checks the
            // body matches), so the credential cannot make a consumer over another pool's requests.
            `${API}.CONSUMER.CREATE.${STREAMS.requests}.${consumer}.${subjects.poolRequests(pool)}`,
            `${API}.CONSUMER.INFO.${STREAMS.requests}.${consumer}`,
            `${API}.CONSUMER.MSG.NEXT.${STREAMS.requests}.${consumer}`,
            `$JS.ACK.${STREAMS.requests}.${consumer}.>`,
            `$KV.${BUCKETS.registry}.${pool}.>`,
            // Tasks it runs (create, progress, result; the end erases the task's per-principal
            // quota key by a stream purge, no more than it may already overwrite) and used MRTR
            // states (single use).
            ...kvRead(BUCKETS.tasks),
            `$KV.${BUCKETS.tasks}.>`,
            `${API}.STREAM.PURGE.${kvStream(BUCKETS.tasks)}`,
            ...kvRead(BUCKETS.usedStates),
            `$KV.${BUCKETS.usedStates}.>`,
            subjects.outboundAll,
            subjects.recordsAll,
            subjects.resourceUpdated,
            // Its liveness beats (liveness.ts), under its own pool only.
            `mcpq.live.${pool}.*`,
            subjects.cacheInvalidate,
          ],
        },
        subscribe: {
          allow: [
            `${opts.pool ? INBOX_PREFIX.worker(opts.pool) : "_INBOX_worker.*"}.>`,
            subjects.cancelAll,
            "mcpq.s2c.>",
          ],
        },
      };
    }
    case "replay": {
      const me = digestToken(REPLAY_PRINCIPAL);
      return {
        publish: {
          allow: [
            jsInfo,
            ...consume(STREAMS.records),
            `${API}.STREAM.INFO.${STREAMS.records}`,
            ...kvRead(BUCKETS.registry),
            subjects.requestsAll,
            `mcpq.cancel.${me}.>`,
            `mcpq.s2c.${me}.>`,
          ],
        },
        subscribe: { allow: [`${INBOX_PREFIX.replay}.>`, subjects.replayOutboundAll] },
      };
    }
  }
}

/** One user of a generated server config; `password` may be a `$VARIABLE` the server resolves from its environment. */
export interface BrokerUser {
  user: string;
  password: string;
  permissions: NatsPermissions;
}

/**
 * The `authorization` block for a nats-server config: one user per role (`edge`, `worker`,
 * `replay`) plus `worker-<pool>` for each pool in `pools`. Anonymous clients are refused once
 * any user exists.
 */
export function brokerUsers(
  passwords: (user: string) => string,
  pools: string[] = [],
): BrokerUser[] {
  const users: BrokerUser[] = (["edge", "worker", "replay"] as const).map((role) => ({
    user: role,
    password: passwords(role),
    permissions: rolePermissions(role),
  }));
  for (const pool of pools)
    users.push({
      user: `worker-${pool}`,
      password: passwords(`worker-${pool}`),
      permissions: rolePermissions("worker", { pool }),
    });
  return users;
}
