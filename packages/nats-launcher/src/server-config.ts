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

const VAR = /"\\u0000\$([A-Za-z_][A-Za-z0-9_]*)"/g;

/**
 * A value the server reads from its environment when it loads the config (`$NAME`), so a
 * generated config can name a secret without holding it. Use it anywhere in `settings`.
 */
export function confVariable(name: string): string {
  if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(name)) throw new TypeError(`not a variable name: ${name}`);
  return `\u0000$${name}`;
}

/** Renders settings as nats-server config text (JSON, which the server parses, plus `$NAME` variables). */
export function renderConfig(settings: Readonly<Record<string, unknown>>): string {
  return `${JSON.stringify(settings, null, 2).replace(VAR, "$$$1")}\n`;
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
  return renderConfig(conf);
}
