/**
 * One generator process of `conn-flood` (../conn-flood.ts): opens its share of idle MCP
 * sessions and holds them — Streamable HTTP sessions as a held `GET /mcp` SSE stream on the
 * connection that initialized them (one socket each, raw HTTP/1.1), WebSocket sessions as one
 * initialized socket each — from its own source addresses (127.0.0.x), so neither this
 * process's file limit nor the 4-tuple space is shared with the others. Not meant to be run by
 * hand.
 *
 * Protocol with the parent (one JSON line each on stdout): `PROGRESS {...}` every second while
 * ramping, `RAMPED {...}` when every open was tried; on stdin `STATUS` answers `STATUS {...}`
 * (held now, dropped so far), `CLOSE` closes everything, answers `RESULT {...}` and exits.
 */
import { connect, type Socket } from "node:net";
import WebSocket from "ws";
import { CLIENT_INFO, DEFAULT_PROTOCOL_VERSION } from "../client/types.js";
import { assertLoopback } from "../client/http.js";
import { HttpResponseReader } from "../storm/storm-proc.js";

export interface FloodProcConfig {
  /** http://127.0.0.1:P/mcp */
  mcpUrl: string;
  /** ws://127.0.0.1:P/ws */
  wsUrl: string;
  http: number;
  ws: number;
  /** this process's source addresses, used in order, `perAddress` sockets each */
  addresses: string[];
  perAddress: number;
  rampConcurrency: number;
  openTimeoutMs: number;
  /** no new opens after this long from the start (ms) */
  rampDeadlineMs: number;
}

export interface FloodProcStatus {
  held_http: number;
  held_ws: number;
  /** held once, closed since (by the server, or a reset) */
  dropped_http: number;
  dropped_ws: number;
  failed: Record<string, number>;
  /** SSE bytes (keep-alive comments, priming) received on held GET streams */
  sse_bytes: number;
  ramp_s: number | null;
}

interface Held {
  close(): void;
}

/** Where a connection comes from: its own address and port (see the ramp loop). */
interface Source {
  localAddress: string;
  localPort: number;
}

/**
 * Source ports this generator binds explicitly: 20000..59999 on its own 127.0.0.x addresses
 * (no other process binds those; `--per-address` stays below the span).
 */
const SOURCE_PORT_MIN = 20_000;
const SOURCE_PORT_SPAN = 40_000;

const initBody = JSON.stringify({
  jsonrpc: "2.0",
  id: 0,
  method: "initialize",
  params: { protocolVersion: DEFAULT_PROTOCOL_VERSION, capabilities: {}, clientInfo: CLIENT_INFO },
});
const initializedBody = JSON.stringify({ jsonrpc: "2.0", method: "notifications/initialized" });

class Failure extends Error {
  constructor(readonly code: string) {
    super(code);
  }
}

export async function runFloodProcess(
  cfg: FloodProcConfig,
  io: { emit(kind: string, payload: unknown): void; commands: AsyncIterable<string> },
): Promise<void> {
  const mcp = new URL(cfg.mcpUrl);
  assertLoopback(mcp.hostname);
  assertLoopback(new URL(cfg.wsUrl).hostname);
  const host = mcp.hostname;
  const port = Number(mcp.port || 80);
  const path = mcp.pathname + mcp.search;
  const st: FloodProcStatus = {
    held_http: 0,
    held_ws: 0,
    dropped_http: 0,
    dropped_ws: 0,
    failed: {},
    sse_bytes: 0,
    ramp_s: null,
  };
  const held = new Set<Held>();
  let closing = false;
  const fail = (code: string) => (st.failed[code] = (st.failed[code] ?? 0) + 1);

  const head = (method: string, headers: Record<string, string>, body: string) => {
    let h = `${method} ${path} HTTP/1.1\r\nhost: ${host}:${port}\r\n`;
    for (const [k, v] of Object.entries(headers)) h += `${k}: ${v}\r\n`;
    return `${h}content-length: ${Buffer.byteLength(body)}\r\n\r\n${body}`;
  };

  /** initialize + initialized + GET on one keep-alive connection; the GET stays open. */
  const openHttp = ({ localAddress, localPort }: Source) =>
    new Promise<void>((resolve, reject) => {
      const sock: Socket = connect({ host, port, localAddress, localPort, noDelay: true });
      const reader = new HttpResponseReader();
      let step = 0; // 0 initialize, 1 initialized, 2 GET headers, 3 held
      let sid = "";
      let acc: Buffer | undefined;
      const timer = setTimeout(() => bail("open_timeout"), cfg.openTimeoutMs);
      const bail = (code: string) => {
        clearTimeout(timer);
        sock.destroy();
        reject(new Failure(code));
      };
      const h: Held = { close: () => sock.destroy() };
      const base = {
        accept: "application/json, text/event-stream",
        "content-type": "application/json",
        "mcp-protocol-version": DEFAULT_PROTOCOL_VERSION,
      };
      sock.once("connect", () => sock.write(head("POST", base, initBody)));
      sock.on("error", (e: NodeJS.ErrnoException) => {
        if (e.code === "EADDRINUSE") bail("source_port_in_use");
      });
      sock.on("close", () => {
        if (step === 3) {
          held.delete(h);
          st.held_http--;
          if (!closing) st.dropped_http++;
        } else bail(`http_closed_at_step_${step}`);
      });
      sock.on("data", (chunk: Buffer) => {
        if (step === 3) {
          st.sse_bytes += chunk.length;
          return;
        }
        if (step < 2) {
          reader.push(chunk);
          let r: ReturnType<HttpResponseReader["take"]>;
          try {
            r = reader.take();
          } catch {
            return bail("bad_http");
          }
          if (!r) return;
          if (step === 0) {
            sid = r.headers.get("mcp-session-id") ?? "";
            if (r.status !== 200 || !sid) return bail(`initialize_http_${r.status}`);
            step = 1;
            sock.write(head("POST", { ...base, "mcp-session-id": sid }, initializedBody));
          } else {
            if (r.status !== 202 && r.status !== 200) return bail(`initialized_http_${r.status}`);
            step = 2;
            sock.write(
              head(
                "GET",
                {
                  accept: "text/event-stream",
                  "mcp-protocol-version": DEFAULT_PROTOCOL_VERSION,
                  "mcp-session-id": sid,
                },
                "",
              ).replace("content-length: 0\r\n", ""),
            );
          }
          return;
        }
        // step 2: the GET's status line and headers
        acc = acc ? Buffer.concat([acc, chunk]) : chunk;
        const end = acc.indexOf("\r\n\r\n");
        if (end < 0) return;
        const status = Number(acc.toString("latin1", 9, 12));
        if (status !== 200) return bail(`get_http_${status}`);
        st.sse_bytes += acc.length - end - 4;
        acc = undefined;
        step = 3;
        clearTimeout(timer);
        held.add(h);
        st.held_http++;
        resolve();
      });
    });

  const openWs = ({ localAddress, localPort }: Source) =>
    new Promise<void>((resolve, reject) => {
      const ws = new WebSocket(cfg.wsUrl, "mcp", {
        perMessageDeflate: false,
        handshakeTimeout: cfg.openTimeoutMs,
        localAddress,
        // passed through to http.request (ws forwards its options)
        ...({ localPort } as object),
      });
      let isHeld = false;
      const timer = setTimeout(() => bail("open_timeout"), cfg.openTimeoutMs);
      const bail = (code: string) => {
        clearTimeout(timer);
        ws.terminate();
        reject(new Failure(code));
      };
      const h: Held = { close: () => ws.terminate() };
      ws.once("open", () => ws.send(initBody));
      ws.once("unexpected-response", (_q, res) => bail(`ws_upgrade_http_${res.statusCode}`));
      ws.on("error", (e: NodeJS.ErrnoException) => {
        if (e.code === "EADDRINUSE") bail("source_port_in_use");
      });
      ws.on("message", (d: Buffer) => {
        if (isHeld) return;
        let m: { id?: unknown; error?: unknown };
        try {
          m = JSON.parse(d.toString("utf8")) as typeof m;
        } catch {
          return bail("ws_bad_json");
        }
        if (m.id !== 0) return;
        if (m.error) return bail("ws_initialize_error");
        ws.send(initializedBody);
        isHeld = true;
        clearTimeout(timer);
        held.add(h);
        st.held_ws++;
        resolve();
      });
      ws.on("close", (code) => {
        if (isHeld) {
          held.delete(h);
          st.held_ws--;
          if (!closing) st.dropped_ws++;
        } else bail(`ws_closed_${code}`);
      });
    });

  // interleave the two kinds so the mix holds through the ramp
  const total = cfg.http + cfg.ws;
  const kinds: ("http" | "ws")[] = [];
  for (let i = 0, h = 0; i < total; i++) {
    const wantHttp = Math.round(((i + 1) * cfg.http) / total);
    if (h < wantHttp) {
      kinds.push("http");
      h++;
    } else kinds.push("ws");
  }
  // where this run's ports start: a run right after another one mostly misses its TIME_WAITs
  const portBase = Math.floor(Math.random() * SOURCE_PORT_SPAN);
  const t0 = performance.now();
  const progress = setInterval(() => io.emit("PROGRESS", st), 1000);
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(cfg.rampConcurrency, total) }, async () => {
      for (;;) {
        const i = next++;
        if (i >= total || closing) return;
        if (performance.now() - t0 > cfg.rampDeadlineMs) {
          fail("ramp_deadline");
          continue;
        }
        const addr = cfg.addresses[Math.floor(i / cfg.perAddress)];
        if (!addr) {
          fail("out_of_source_addresses");
          continue;
        }
        // A port of our own per connection: bind(port 0) searches the address's ports for a
        // free one, and with thousands bound that search was 70 % of this process's CPU (the
        // kernel's inet_bind2 conflict checks), slowing the ramp to a crawl past ~50,000.
        // A port still in TIME_WAIT from an earlier run is skipped for the next one.
        for (let attempt = 0; ; attempt++) {
          const localPort = SOURCE_PORT_MIN + ((portBase + i + attempt * 7919) % SOURCE_PORT_SPAN);
          try {
            await (kinds[i] === "http" ? openHttp : openWs)({ localAddress: addr, localPort });
          } catch (e) {
            const code = e instanceof Failure ? e.code : `exception:${(e as Error).message}`;
            if (code === "source_port_in_use" && attempt < 5) continue;
            fail(code);
          }
          break;
        }
      }
    }),
  );
  clearInterval(progress);
  st.ramp_s = Math.round((performance.now() - t0) / 100) / 10;
  io.emit("RAMPED", st);
  for await (const cmd of io.commands) {
    if (cmd === "STATUS") io.emit("STATUS", st);
    if (cmd === "CLOSE") break;
  }
  const final = { ...st, failed: { ...st.failed } };
  closing = true;
  for (const h of held) h.close();
  io.emit("RESULT", final);
}

if (process.argv[1] && import.meta.url.endsWith(process.argv[1].split("/").pop()!)) {
  const cfg = JSON.parse(process.argv[2] ?? "{}") as FloodProcConfig;
  const emit = (kind: string, payload: unknown) =>
    process.stdout.write(`${kind} ${JSON.stringify(payload)}\n`);
  async function* commands(): AsyncIterable<string> {
    process.stdin.setEncoding("utf8");
    let buf = "";
    for await (const chunk of process.stdin as AsyncIterable<string>) {
      buf += chunk;
      let nl: number;
      while ((nl = buf.indexOf("\n")) >= 0) {
        yield buf.slice(0, nl).trim();
        buf = buf.slice(nl + 1);
      }
    }
  }
  // the parent bounds the whole run; this is the backstop if it dies without closing us
  process.stdin.on("end", () => process.exit(0));
  runFloodProcess(cfg, { emit, commands: commands() }).then(
    () => process.exit(0),
    (e: unknown) => {
      process.stderr.write(`flood-proc: ${(e as Error)?.stack ?? String(e)}\n`);
      process.exit(2);
    },
  );
}
