export {
  findNatsServer,
  requireNatsServer,
  readServerVersion,
  parseServerVersion,
  versionAtLeast,
  MIN_NATS_SERVER_VERSION,
  type FindNatsServerOptions,
  type ServerVersion,
} from "./binary.js";
export { NatsLaunchError, type NatsLaunchErrorCode } from "./errors.js";
export { freePort } from "./ports.js";
export { STORE_LOCK_FILE } from "./store-lock.js";
export { confVariable, renderConfig, renderNodeConfig, type NodeConfig } from "./server-config.js";
export type { LogOptions } from "./server-process.js";
export {
  startLocalNats,
  DEFAULT_MAX_PAYLOAD,
  type LaunchOptions,
  type LocalNats,
  type LocalNatsOptions,
} from "./local-server.js";
export {
  startLocalCluster,
  type ClusterNode,
  type LocalCluster,
  type LocalClusterOptions,
} from "./cluster.js";
