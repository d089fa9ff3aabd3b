export {
  findNatsServer,
  requireNatsServer,
  readServerVersion,
  parseServerVersion,
  versionAtLeast,
} from "./binary.js";
export { NatsLaunchError } from "./errors.js";
export { freePort } from "./ports.js";
export { STORE_LOCK_FILE } from "./store-lock.js";
export { confVariable, renderConfig } from "./server-config.js";
export {
  startLocalNats,
  type LaunchOptions,
  type LocalNats,
  type LocalNatsOptions,
} from "./local-server.js";
export { startLocalCluster, type LocalCluster, type LocalClusterOptions } from "./cluster.js";
