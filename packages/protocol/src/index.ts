export * from "./errors.js";
export * from "./jsonrpc.js";
export * from "./versions.js";
export * from "./mcp.js";
export * from "./logger.js";
export * from "./grpc.js";
export * from "./socket-resume.js";
export * from "./modern.js";
