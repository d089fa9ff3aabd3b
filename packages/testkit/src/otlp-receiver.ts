import { createServer, type Server } from "node:http";

/** One span as an OTLP/HTTP JSON export carries it, flattened with its resource. */
export interface ReceivedSpan {
  traceId: string;
  spanId: string;
  parentSpanId: string;
  traceState: string;
  name: string;
  /** OTLP SpanKind: 1 internal, 2 server, 3 client, 4 producer, 5 consumer. */
  kind: number;
  /** String, int and bool attribute values (others omitted). */
  attributes: Record<string, string | number | boolean>;
  /** Resource attributes (`service.name`, `service.instance.id`, ...). */
  resource: Record<string, string | number | boolean>;
  status: { code?: number; message?: string };
}

/**
 * An in-process OTLP/HTTP (JSON) trace receiver on 127.0.0.1 for tests and benchmarks; services
 * export to it with `OTEL_EXPORTER_OTLP_PROTOCOL=http/json`.
 */
export interface OtlpReceiver {
  /** Base URL for OTEL_EXPORTER_OTLP_ENDPOINT (spans are POSTed to `/v1/traces`). */
  url: string;
  /** Spans received so far (kept unless `keepSpans: false`). */
  readonly spans: ReceivedSpan[];
  /** Spans received so far, counted even when not kept. */
  readonly count: number;
  /** Exports received as protobuf (`application/x-protobuf`): accepted, counted, not decoded. */
  readonly protobufExports: number;
  close(): Promise<void>;
}

type AnyValue = {
  stringValue?: string;
  intValue?: number | string;
  boolValue?: boolean;
  doubleValue?: number;
};
type KeyValue = { key: string; value?: AnyValue };

function flatten(kvs: KeyValue[] | undefined): Record<string, string | number | boolean> {
  const out: Record<string, string | number | boolean> = {};
  for (const kv of kvs ?? []) {
    const v = kv.value ?? {};
    if (v.stringValue !== undefined) out[kv.key] = v.stringValue;
    else if (v.intValue !== undefined) out[kv.key] = Number(v.intValue);
    else if (v.doubleValue !== undefined) out[kv.key] = v.doubleValue;
    else if (v.boolValue !== undefined) out[kv.key] = v.boolValue;
  }
  return out;
}

/**
 * Starts a receiver that accepts OTLP/HTTP JSON exports (what @opentelemetry/exporter-trace-otlp-http
 * sends) and answers 200 `{}`. Bodies are bounded (`maxBodyBytes`, 413 beyond).
 */
export async function startOtlpReceiver(
  opts: { keepSpans?: boolean; maxBodyBytes?: number } = {},
): Promise<OtlpReceiver> {
  const keep = opts.keepSpans ?? true;
  const maxBody = opts.maxBodyBytes ?? 32 * 1024 * 1024;
  const spans: ReceivedSpan[] = [];
  let count = 0;
  let protobufExports = 0;
  const server: Server = createServer((req, res) => {
    if (req.method !== "POST" || !req.url?.startsWith("/v1/traces"))
      return void res.writeHead(404).end();
    const chunks: Buffer[] = [];
    let size = 0;
    req.on("data", (c: Buffer) => {
      size += c.length;
      if (size > maxBody) {
        res.writeHead(413).end();
        req.destroy();
        return;
      }
      chunks.push(c);
    });
    req.on("end", () => {
      if (res.headersSent) return;
      if (String(req.headers["content-type"] ?? "").startsWith("application/x-protobuf")) {
        protobufExports++;
        // An empty ExportTraceServiceResponse.
        res.writeHead(200, { "content-type": "application/x-protobuf" }).end();
        return;
      }
      try {
        const body = JSON.parse(Buffer.concat(chunks).toString("utf8")) as {
          resourceSpans?: {
            resource?: { attributes?: KeyValue[] };
            scopeSpans?: { spans?: Record<string, unknown>[] }[];
          }[];
        };
        for (const rs of body.resourceSpans ?? []) {
          const resource = flatten(rs.resource?.attributes);
          for (const ss of rs.scopeSpans ?? []) {
            for (const s of ss.spans ?? []) {
              count++;
              if (!keep) continue;
              spans.push({
                traceId: String(s["traceId"] ?? ""),
                spanId: String(s["spanId"] ?? ""),
                parentSpanId: String(s["parentSpanId"] ?? ""),
                traceState: String(s["traceState"] ?? ""),
                name: String(s["name"] ?? ""),
                kind: Number(s["kind"] ?? 0),
                attributes: flatten(s["attributes"] as KeyValue[] | undefined),
                resource,
                status: (s["status"] as ReceivedSpan["status"] | undefined) ?? {},
              });
            }
          }
        }
        res.writeHead(200, { "content-type": "application/json" }).end("{}");
      } catch {
        res.writeHead(400).end();
      }
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const port = (server.address() as { port: number }).port;
  return {
    url: `http://127.0.0.1:${port}`,
    spans,
    get count() {
      return count;
    },
    get protobufExports() {
      return protobufExports;
    },
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}
