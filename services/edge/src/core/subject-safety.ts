import { ErrorCode, McpError } from "@mcpq/protocol";

/** What a client-chosen name is, for the error message. */
export type NameKind = "tool" | "resource" | "prompt" | "complete" | "subscription";

const LABEL: Record<NameKind, string> = {
  tool: "tool name",
  resource: "resource URI",
  prompt: "prompt name",
  complete: "completion reference",
  subscription: "resource URI",
};

// C0 controls and DEL: never part of a tool name or a URI (RFC 3986), and a line break in a NATS
// header value would be read as the end of the header.
// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001f\u007f]/;

/**
 * Refuses a client-chosen name (tool, prompt, resource URI, completion reference) that must not
 * reach the broker: longer than `maxBytes` UTF-8 bytes (MCPQ_MAX_NAME_BYTES; 0 = no bound) or
 * containing control characters. The answer is `-32602 Invalid params` and nothing is published
 * (subject tokens are bounded by `subjectToken` too; this bound keeps envelopes and session
 * records small). Called before the target is looked up, so the refusal says nothing about
 * whether the target exists.
 */
export function checkTargetName(kind: NameKind, name: string, maxBytes: number): void {
  if (maxBytes > 0 && name.length > maxBytes / 3 && Buffer.byteLength(name, "utf8") > maxBytes) {
    throw new McpError(
      ErrorCode.InvalidParams,
      `Invalid params: ${LABEL[kind]} longer than ${maxBytes} bytes`,
      { maxBytes },
    );
  }
  if (CONTROL.test(name)) {
    throw new McpError(
      ErrorCode.InvalidParams,
      `Invalid params: ${LABEL[kind]} contains control characters`,
    );
  }
}

/** The client-chosen name a routed request targets, read without validating the rest of params. */
export function requestedName(
  method: string,
  params: Record<string, unknown> | undefined,
): { kind: NameKind; name: string; promptRef?: boolean } | undefined {
  const p = params ?? {};
  switch (method) {
    case "tools/call":
      return typeof p["name"] === "string" ? { kind: "tool", name: p["name"] } : undefined;
    case "prompts/get":
      return typeof p["name"] === "string" ? { kind: "prompt", name: p["name"] } : undefined;
    case "resources/read":
      return typeof p["uri"] === "string" ? { kind: "resource", name: p["uri"] } : undefined;
    case "resources/subscribe":
    case "resources/unsubscribe":
      return typeof p["uri"] === "string" ? { kind: "subscription", name: p["uri"] } : undefined;
    case "completion/complete": {
      const ref = p["ref"] as { type?: unknown; name?: unknown; uri?: unknown } | undefined;
      const v = ref?.type === "ref/prompt" ? ref.name : ref?.uri;
      return typeof v === "string"
        ? { kind: "complete", name: v, promptRef: ref?.type === "ref/prompt" }
        : undefined;
    }
    default:
      return undefined;
  }
}
