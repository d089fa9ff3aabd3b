import type { FastifyInstance } from "fastify";
import { ErrorCode } from "@mcpq/protocol";

/**
 * Every request no route takes gets a JSON-RPC body, never fastify's own error shape: 405 with
 * `Allow` for another method on an MCP endpoint (PUT, PATCH, OPTIONS on /mcp), 404 otherwise.
 * Registered inside the edge's plugin, so its content-type parsing and error handler apply
 * (a PUT with an empty JSON body no longer answers FST_ERR_CTP_EMPTY_JSON_BODY).
 */
export function httpFallbacks(
  app: FastifyInstance,
  opts: { sse: boolean; virtualServers: readonly string[] },
): void {
  // Methods each enabled MCP endpoint answers; another method on it is 405 with `Allow`.
  const allowed = new Map<string, string>([["/mcp", "GET, POST, DELETE"]]);
  for (const name of opts.virtualServers) allowed.set(`/mcp/${name}`, "GET, POST, DELETE");
  if (opts.sse) {
    allowed.set("/sse", "GET");
    allowed.set("/messages", "POST");
  }
  app.setNotFoundHandler((req, reply) => {
    const path = req.url.split("?")[0]!;
    const allow = allowed.get(path);
    const body = (message: string) => ({
      jsonrpc: "2.0",
      id: null,
      error: { code: ErrorCode.InvalidRequest, message },
    });
    if (allow)
      return reply
        .code(405)
        .header("allow", allow)
        .type("application/json")
        .send(body("Method Not Allowed"));
    return reply.code(404).type("application/json").send(body("Not Found"));
  });
}
