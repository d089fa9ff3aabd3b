import { connect, type NatsConnection } from "@nats-io/transport-node";
import {
  jetstream,
  jetstreamManager,
  type JetStreamClient,
  type JetStreamManager,
} from "@nats-io/jetstream";
import type { KV } from "@nats-io/kv";
import { silentLogger, type Logger } from "@mcpq/protocol";
import { connectionAuthOptions, type BusAuth } from "./auth.js";
import { DEFAULT_BUS_LIMITS, type BusLimits } from "./limits.js";
import { provision, provisionBuckets } from "./provision.js";
import { batchWrites } from "./write-batching.js";
import { AckedPublisher, type AckedPublish } from "./acked-publish.js";

/** One NATS connection with its JetStream handles and provisioned buckets. */
export interface Bus {
  readonly nc: NatsConnection;
  readonly js: JetStreamClient;
  /**
   * mcpq's JetStream publishes (requests, answers, records, claims): PubAcks on one shared
   * subscription of this connection (`AckedPublisher`), default timeout 10 s.
   */
  readonly publisher: AckedPublish;
  readonly jsm: JetStreamManager;
  readonly limits: Readonly<BusLimits>;
  /** Whether the server was a JetStream cluster at connect (what provisioning needs to know: `ProvisionOptions.clustered`). */
  readonly clustered: boolean;
  /** The prefix of this connection's reply subjects (`ConnectBusOptions.inboxPrefix`, default `_INBOX`). */
  readonly inboxPrefix: string;
  readonly kv: {
    sessions: KV;
    registry: KV;
    subscriptions: KV;
    /** Tasks of the tasks extension (`TaskStore`, tasks.ts). */
    tasks: KV;
    /** Used MRTR request states (single use). */
    usedStates: KV;
  };
  /**
   * False from a disconnect until the client reconnected (and once closed): the broker-connected
   * gauges and readiness probes read it.
   */
  readonly connected: boolean;
  close(): Promise<void>;
}

export interface ConnectBusOptions {
  url: string;
  /** Connection name shown by the server (e.g. `edge-<id>`). */
  name: string;
  limits?: Partial<BusLimits>;
  /**
   * Provision streams and buckets (idempotent; reconciles replicas and limits). Default true.
   * false: create nothing, only open the buckets (read-only clients such as replay).
   */
  provision?: boolean;
  /**
   * Prefix of this connection's reply inboxes (request replies, JetStream API answers, pull
   * deliveries): `INBOX_PREFIX[role]`, so a role's credential needs only its own. Default `_INBOX`.
   */
  inboxPrefix?: string | undefined;
  /** Credentials and TLS (MCPQ_NATS_USER/PASSWORD/TOKEN/NKEY_SEED/CREDS/TLS_*). */
  auth?: BusAuth | undefined;
  /** Where provisioning says what it changed or could not change. Default: silent. */
  log?: Logger | undefined;
  /** Coalesce socket writes per event-loop iteration (`batchWrites`). Default true. */
  batchWrites?: boolean;
}

/**
 * Connects to NATS, provisions streams, consumers' streams and KV buckets idempotently, and
 * returns the handles. Reconnects forever; the caller's readiness probe watches `nc.status()`.
 */
export async function connectBus(opts: ConnectBusOptions): Promise<Bus> {
  const limits = Object.freeze({ ...DEFAULT_BUS_LIMITS, ...opts.limits });
  const nc = await connect({
    ...connectionAuthOptions(opts.auth),
    servers: opts.url.split(","),
    ...(opts.inboxPrefix ? { inboxPrefix: opts.inboxPrefix } : {}),
    name: opts.name,
    maxReconnectAttempts: -1,
    reconnectTimeWait: 500,
    pingInterval: 10_000,
    // nats.js otherwise builds two Error objects (stack captures) per request/publish to give
    // timeouts an async stack; that was ~6-8 % of edge and worker CPU on the hot path.
    noAsyncTraces: true,
  });
  if (opts.batchWrites !== false) batchWrites(nc);
  try {
    const jsm = await jetstreamManager(nc);
    const js = jetstream(nc, { timeout: 10_000 });
    // A clustered server names its cluster in INFO; a single one cannot hold replicas.
    const p = { log: opts.log ?? silentLogger, clustered: Boolean(nc.info?.cluster) };
    if (opts.provision !== false) await provision(jsm, limits, p);
    const kv = await provisionBuckets(js, jsm, limits, { ...p, create: opts.provision !== false });
    let connected = true;
    void (async () => {
      for await (const st of nc.status()) {
        if (st.type === "disconnect") connected = false;
        else if (st.type === "reconnect") connected = true;
      }
    })().catch(() => undefined);
    const inboxPrefix = opts.inboxPrefix ?? "_INBOX";
    return {
      nc,
      js,
      publisher: new AckedPublisher(nc, { inboxPrefix, timeoutMs: 10_000 }),
      jsm,
      limits,
      clustered: p.clustered,
      inboxPrefix,
      kv,
      get connected() {
        return connected && !nc.isClosed();
      },
      async close() {
        await nc.drain().catch(() => nc.close());
      },
    };
  } catch (err) {
    await nc.close();
    throw err;
  }
}
