import { Histogram, type Registry } from "prom-client";
import { CLIENT_REQUEST_METHODS } from "@mcpq/protocol";

/** The one label value every name outside the known set (or beyond the bound) collapses to. */
const OTHER_LABEL = "_other";

/** Default bound on distinct tool/prompt label values per metric (MCPQ_METRICS_MAX_NAMES). */
export const DEFAULT_MAX_LABEL_NAMES = 200;

/**
 * The `method` / `mcp_method_name` label of a request: the method when MCP defines it as a
 * client request, else `_other`, so a client sending arbitrary method names cannot grow a
 * metric's label set (every metric labelled by method goes through this).
 */
export function methodLabel(method: string): string {
  return CLIENT_REQUEST_METHODS.has(method) ? method : OTHER_LABEL;
}

/**
 * Bounded label values for names clients choose (tool, prompt): only names `known` accepts
 * (the registry/catalog knows them), and at most `max` distinct ones for the life of the
 * process; anything else is `_other`. An absent name is "" (Prometheus: label not set).
 */
export class BoundedLabel {
  readonly #seen = new Set<string>();

  constructor(
    private readonly max: number,
    private readonly known: (name: string) => boolean,
  ) {}

  value(name: string | undefined): string {
    if (name === undefined) return "";
    if (this.#seen.has(name)) return name;
    if (!this.known(name) || this.#seen.size >= this.max) return OTHER_LABEL;
    this.#seen.add(name);
    return name;
  }
}

/** Label names of `mcp_server_operation_duration_seconds` (the convention's attributes, Prometheus-style). */
export const OPERATION_LABELS = [
  "mcp_method_name",
  "gen_ai_tool_name",
  "gen_ai_prompt_name",
  "error_type",
  "service",
] as const;

/**
 * `mcp.server.operation.duration` of the MCP semantic conventions as a Prometheus histogram,
 * `mcp_server_operation_duration_seconds{mcp_method_name, gen_ai_tool_name, gen_ai_prompt_name,
 * error_type, service}`; `service` is `edge` (receipt to answer) or `worker` (handler run).
 * `error_type` is "" on success, `tool_error` for an isError result, else the JSON-RPC code.
 */
export function operationDurationHistogram(
  registry: Registry,
): Histogram<(typeof OPERATION_LABELS)[number]> {
  return new Histogram({
    name: "mcp_server_operation_duration_seconds",
    help: "MCP server operation duration (mcp.server.operation.duration) by method, tool/prompt and error type; service=edge is receipt to answer, service=worker the handler run",
    labelNames: OPERATION_LABELS,
    // The convention's advised buckets.
    buckets: [0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 30, 60, 120, 300],
    registers: [registry],
  });
}
