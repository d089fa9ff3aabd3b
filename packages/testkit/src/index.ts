export * from "./nats-server.js";
export * from "./stack.js";
export { BusClient, type BusCallOptions, type BusRpcResponse } from "./bus-client.js";
export { natsTest } from "./fixtures.js";
export { replayFixtures, type ReplayFixturesOptions } from "./replay-fixtures.js";
export { startOtlpReceiver, type OtlpReceiver, type ReceivedSpan } from "./otlp-receiver.js";
