export {
  BUCKETS,
  EDGE_CACHE_QUEUE_GROUP,
  EDGE_QUEUE_GROUP,
  INBOX_PREFIX,
  MAX_SUBJECT_TOKEN,
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
  subjectToken,
  subscriptionPrefix,
  type TargetKind,
} from "./subjects.js";
export {
  ANSWERED_CONTROL,
  H,
  answeredHeaders,
  controlHeaders,
  decodeControl,
  decodeOutboundHeaders,
  decodeEnvelope,
  encodeEnvelope,
  outboundHeaders,
  type OutboundKind,
  type RequestEnvelope,
} from "./envelope.js";
export { DEFAULT_BUS_LIMITS } from "./limits.js";
export { connectBus, type Bus } from "./connection.js";
export { headerValue } from "./headers.js";
export { AckedPublisher, type AckedPublish, type PubAck } from "./acked-publish.js";
export { countKeys, distinctKeys, eraseKey } from "./kv-keys.js";
export { ensurePoolConsumer } from "./pool.js";
export { openCacheBucket, provision } from "./provision.js";
export { Correlator } from "./correlator.js";
export { isNotFound, isWrongLastSequence, publishFailure, publishMayHaveLanded } from "./errors.js";
export {
  RECORD_VERSION,
  REDACTED,
  RecordSchema,
  RecordedResponseSchema,
  decodeRecords,
  isErrorResponse,
  kindOfMethod,
  recordHeaders,
  recordMaxBytes,
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
export { BusEnvSchema, busAuthFromEnv, busEnvShape, busLimitsFromEnv } from "./env-schema.js";
export { idGenerator } from "./ids.js";
export { brokerUsers, type BrokerUser } from "./permissions.js";
export {
  PRIMING_TOKEN,
  cacheInvalidateContract,
  cancelContract,
  eventId,
  isResponseToken,
  isServerRequestId,
  parseEventId,
  primingEventId,
  publishRequest,
  registryContract,
  resourceUpdatedContract,
  responseEventId,
  sessionChangedContract,
  UNRETAINED_ANSWER_TOKEN,
  unretainedAnswerEventId,
  type CancelNotice,
  type RegistryEntry,
} from "./contracts.js";
export { batchWrites, corkPerTurn } from "./write-batching.js";
/** Types of `connectBus`'s options and of the shared settings, for services to name. @public */
export type { BusLimits } from "./limits.js";
/** @public */
export type { ConnectBusOptions } from "./connection.js";
/** @public */
export type { BusEnv } from "./env-schema.js";
/** The broker credentials type services' configs carry (`natsAuth`). @public */
export type { BusAuth } from "./auth.js";
export { SelfHeal, type HealReport } from "./self-heal.js";
export { LivenessView, startLivenessBeats } from "./liveness.js";
export {
  DEFAULT_TASKS_MAX_PER_PRINCIPAL,
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
/** The options of `TaskStore` (MCPQ_TASKS_MAX_PER_PRINCIPAL). @public */
export type { TaskStoreOptions } from "./tasks.js";
