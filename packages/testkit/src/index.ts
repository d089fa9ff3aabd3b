export {
  findNatsServer,
  startNats,
  freePort,
  startLocalNats,
  startLocalCluster,
  type NatsHandle,
  type LocalNats,
  type LocalCluster,
} from "./nats-server.js";
export { eventually, startStack, type Stack, type StackOptions } from "./stack.js";
export { BusClient, type BusCallOptions, type BusRpcResponse } from "./bus-client.js";
export { natsTest } from "./fixtures.js";
export { replayFixtures } from "./replay-fixtures.js";
/** Options of `replayFixtures`, for tests to name. @public */
export type { ReplayFixturesOptions } from "./replay-fixtures.js";
/** Types of `startStack`'s parameters, for tests to name. @public */
export type { EdgeLike, StackFactories, WorkerLike } from "./stack.js";
export { startOtlpReceiver, type OtlpReceiver, type ReceivedSpan } from "./otlp-receiver.js";
export { startProxy } from "./tcp-proxy.js";
