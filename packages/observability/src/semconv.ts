/**
 * Attribute names of the OpenTelemetry MCP semantic conventions (status "development",
 * open-telemetry/semantic-conventions-genai docs/gen-ai/mcp.md) and of the messaging
 * conventions for the NATS hop. Copied as strings on purpose: the incubating constants of
 * @opentelemetry/semantic-conventions are deprecated and renamed between releases.
 */
export const ATTR = {
  mcpMethodName: "mcp.method.name",
  mcpProtocolVersion: "mcp.protocol.version",
  mcpSessionId: "mcp.session.id",
  mcpResourceUri: "mcp.resource.uri",
  genAiToolName: "gen_ai.tool.name",
  genAiPromptName: "gen_ai.prompt.name",
  genAiOperationName: "gen_ai.operation.name",
  jsonrpcRequestId: "jsonrpc.request.id",
  rpcResponseStatusCode: "rpc.response.status_code",
  errorType: "error.type",
  networkTransport: "network.transport",
  networkProtocolName: "network.protocol.name",
  messagingSystem: "messaging.system",
  messagingDestinationName: "messaging.destination.name",
  messagingOperationName: "messaging.operation.name",
  messagingOperationType: "messaging.operation.type",
  messagingMessageId: "messaging.message.id",
  messagingConsumerGroupName: "messaging.consumer.group.name",
  messagingBodySize: "messaging.message.body.size",
} as const;

/** `error.type` of a CallToolResult with `isError: true` (the convention's value). */
export const TOOL_ERROR = "tool_error";

/**
 * The convention's span name: `{mcp.method.name} {target}` with the tool or prompt name as the
 * low-cardinality target, else the method alone (resource URIs stay out of names).
 */
export function mcpSpanName(
  method: string,
  target: { tool?: string | undefined; prompt?: string | undefined },
): string {
  const t = target.tool ?? target.prompt;
  return t ? `${method} ${t}` : method;
}

/**
 * MCP attributes of a request from its method and params: target names by method
 * (`gen_ai.tool.name` for tools/call, `gen_ai.prompt.name` for prompts/get and prompt
 * completions, `mcp.resource.uri` for resource methods) and `jsonrpc.request.id`. Never arguments.
 */
export function requestAttributes(
  method: string,
  params: Record<string, unknown> | undefined,
  id: string | number | null | undefined,
): Record<string, string> {
  const a: Record<string, string> = { [ATTR.mcpMethodName]: method };
  if (id !== null && id !== undefined) a[ATTR.jsonrpcRequestId] = String(id);
  const t = targetOf(method, params);
  if (t.tool) {
    a[ATTR.genAiToolName] = t.tool;
    a[ATTR.genAiOperationName] = "execute_tool";
  }
  if (t.prompt) a[ATTR.genAiPromptName] = t.prompt;
  if (t.uri) a[ATTR.mcpResourceUri] = t.uri;
  return a;
}

/** The tool, prompt or resource a request names (strings only; anything else is ignored). */
export function targetOf(
  method: string,
  params: Record<string, unknown> | undefined,
): { tool?: string; prompt?: string; uri?: string } {
  const name = params?.["name"];
  switch (method) {
    case "tools/call":
      return typeof name === "string" ? { tool: name } : {};
    case "prompts/get":
      return typeof name === "string" ? { prompt: name } : {};
    case "resources/read":
    case "resources/subscribe":
    case "resources/unsubscribe": {
      const uri = params?.["uri"];
      return typeof uri === "string" ? { uri } : {};
    }
    case "completion/complete": {
      const ref = params?.["ref"] as { type?: unknown; name?: unknown; uri?: unknown } | undefined;
      if (ref?.type === "ref/prompt" && typeof ref.name === "string") return { prompt: ref.name };
      if (ref?.type === "ref/resource" && typeof ref.uri === "string") return { uri: ref.uri };
      return {};
    }
    default:
      return {};
  }
}
