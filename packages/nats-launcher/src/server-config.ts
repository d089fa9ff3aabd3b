/** The nats-server settings the launcher writes for one node (rendered as JSON, which the server's config parser accepts). */
export interface NodeConfig {
  serverName: string;
  host: string;
  port: number;
  /** The monitoring port (/healthz, /varz, /jsz) readiness polls; always on `host`. */
  httpPort: number;
  storeDir: string;
  /** Largest message a client may publish (the server's `max_payload`). */
  maxPayload: number;
  cluster?: { name: string; port: number; routes: number[] } | undefined;
  /** Extra top-level settings merged in as they are: `authorization`, `accounts`, `tls`, ... */
  settings?: Readonly<Record<string, unknown>> | undefined;
}

/** Renders one node's config file text. `settings` cannot override the launcher's own keys. */
export function renderNodeConfig(c: NodeConfig): string {
  const conf: Record<string, unknown> = {
    ...c.settings,
    server_name: c.serverName,
    listen: `${c.host}:${c.port}`,
    http: `${c.host}:${c.httpPort}`,
    max_payload: c.maxPayload,
    jetstream: { store_dir: c.storeDir },
  };
  if (c.cluster) {
    conf["cluster"] = {
      name: c.cluster.name,
      listen: `${c.host}:${c.cluster.port}`,
      // Every node lists every route (its own is ignored), so any node can restart alone and rejoin.
      routes: c.cluster.routes.map((p) => `nats-route://${c.host}:${p}`),
    };
  }
  return `${JSON.stringify(conf, null, 2)}\n`;
}
