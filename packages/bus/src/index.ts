export {
  BUCKETS,
  EDGE_QUEUE_GROUP,
  REPLAY_PRINCIPAL,
  STANDALONE_STREAM,
  STREAMS,
  assertPoolName,
  digestToken,
  isReplaySession,
  poolConsumer,
  registryKey,
  replaySession,
  subjects,
  subscriptionKey,
  subscriptionPrefix,
  type TargetKind,
} from "./subjects.js";
export {
  ANSWERED_CONTROL,
  H,
  answeredHeaders,
  controlHeaders,
  decodeControl,
  decodeEnvelope,
  encodeEnvelope,
  outboundHeaders,
  type OutboundKind,
  type RequestEnvelope,
} from "./envelope.js";
export { DEFAULT_BUS_LIMITS } from "./limits.js";
export { connectBus, type Bus } from "./connection.js";
export { ensurePoolConsumer } from "./pool.js";
export { Correlator } from "./correlator.js";
export {
  BROKER_UNAVAILABLE_REASON,
  QUEUE_FULL_REASON,
  TARGET_QUEUE_FULL_REASON,
  isWrongLastSequence,
  publishFailure,
  publishMayHaveLanded,
} from "./errors.js";
export {
  RECORD_VERSION,
  REDACTED,
  RecordSchema,
  RecordedResponseSchema,
  decodeRecord,
  isErrorResponse,
  kindOfMethod,
  recordHeaders,
  recordSubject,
  type RecordedResponse,
  type RequestRecord,
} from "./record.js";
export {
  formatPath,
  maskAtPaths,
  parsePathPattern,
  parsePathPatterns,
  pathMatches,
  type PathPattern,
  type PathSegment,
} from "./json-path.js";
export type { Msg, MsgHdrs, NatsConnection, Subscription } from "@nats-io/transport-node";
export type { JsMsg } from "@nats-io/jetstream";
export type { KV } from "@nats-io/kv";
export { BusEnvSchema, busEnvShape, busLimitsFromEnv } from "./env-schema.js";
export { idGenerator } from "./ids.js";
export { brokerUsers, type BrokerUser } from "./permissions.js";
export * from "./contracts.js";
export { corkPerTurn } from "./write-batching.js";
/** Types of `connectBus`'s options and of the shared settings, for services to name. @public */
export type { BusLimits } from "./limits.js";
/** @public */
export type { ConnectBusOptions } from "./connection.js";
/** @public */
export type { BusEnv } from "./env-schema.js";
export { INBOX_PREFIX, MAX_SUBJECT_TOKEN, subjectToken } from "./subjects.js";
export { provision } from "./provision.js";
export { busAuthFromEnv } from "./env-schema.js";
/** The broker credentials type services' configs carry (`natsAuth`). @public */
export type { BusAuth } from "./auth.js";
export { SelfHeal, type HealReport } from "./self-heal.js";
export { LivenessView, startLivenessBeats } from "./liveness.js";
export { decodeOutboundHeaders } from "./envelope.js";
export { openCacheBucket } from "./provision.js";
export { EDGE_CACHE_QUEUE_GROUP } from "./subjects.js";
export {
  TASKS_CAPABILITY,
  TASKS_EXTENSION,
  TaskStore,
  isTerminal,
  newTaskId,
  taskOwner,
  taskView,
  legacyTaskView,
  type TaskRecord,
} from "./tasks.js";
