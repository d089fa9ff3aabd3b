/**
 * Raw JetStream request/response micro-benchmark: the broker's limit on this machine.
 *
 *  stream  LTBENCH (retention workqueue, storage memory, subject ltbench.req)
 *  consumer durable pull "ltworkers" (ack explicit)
 *  client  js.publish(ltbench.req, payload, {headers: reply-to=<inbox>.<id>}) awaiting the PubAck,
 *          then awaits the reply on its wildcard inbox subscription; closed loop, C in flight
 *  worker  separate process (src/lib/jetstream-worker.ts): consume → nc.publish(reply-to) → ack
 *
 * Latency = publish start → reply received (includes the PubAck round trip).
 * Starts its own nats-server (random port, temp store) unless --url is given.
 *
 * Usage: tsx src/raw-jetstream.ts [--url nats://127.0.0.1:P] [--c 16,64,256] [--duration 8] [--warmup 1]
 *                                 [--payload 32] [--out file.json]
 */
import { writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { connect, createInbox, headers, type NatsConnection } from "@nats-io/transport-node";
import {
  AckPolicy,
  RetentionPolicy,
  StorageType,
  jetstream,
  jetstreamManager,
} from "@nats-io/jetstream";
import { LatencyHistogram } from "./lib/histogram.js";
import { parseArgs, num, numList, str } from "./lib/args.js";
import { CpuMeter, mib, readRssBytes } from "./lib/procstat.js";
import { installExitHooks, startNats, startProcess, type Managed } from "./lib/procs.js";
import { captureEnvironment, makeResult, printResult, type WorkloadResult } from "./lib/report.js";
import { assertLoopback } from "./client/http.js";

const STREAM = "LTBENCH";
const SUBJECT = "ltbench.req";
const CONSUMER = "ltworkers";

export interface RawJsOpts {
  url?: string;
  natsPid?: number;
  concurrencies: number[];
  durationMs: number;
  warmupMs?: number;
  payloadBytes?: number;
  timeoutMs?: number;
  log?: (m: string) => void;
}

async function startWorker(url: string): Promise<Managed> {
  const script = fileURLToPath(new URL("./lib/jetstream-worker.ts", import.meta.url));
  const w = startProcess("js-worker", process.execPath, [
    ...process.execArgv,
    script,
    "--url",
    url,
    "--stream",
    STREAM,
    "--consumer",
    CONSUMER,
  ]);
  await new Promise<void>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error("jetstream worker not ready in 20 s")), 20_000);
    let buf = "";
    let errBuf = "";
    w.child.stderr?.on("data", (d: Buffer) => (errBuf += d.toString()));
    w.child.stdout?.on("data", (d: Buffer) => {
      buf += d.toString();
      if (buf.includes("WORKER READY")) {
        clearTimeout(t);
        resolve();
      }
    });
    void w.exited.then((code) => {
      clearTimeout(t);
      reject(new Error(`jetstream worker exited (${code}): ${errBuf.slice(-2000)}`));
    });
  });
  return w;
}

async function oneRun(
  nc: NatsConnection,
  C: number,
  o: RawJsOpts,
): Promise<{
  hist: LatencyHistogram;
  ok: number;
  requests: number;
  errors: Record<string, number>;
  duration_s: number;
}> {
  const js = jetstream(nc);
  const inbox = createInbox();
  const pending = new Map<string, () => void>();
  const sub = nc.subscribe(`${inbox}.>`, {
    callback: (_err, m) => {
      const r = pending.get(m.subject);
      if (r) {
        pending.delete(m.subject);
        r();
      }
    },
  });
  const payload = new Uint8Array(o.payloadBytes ?? 32).fill(120);
  const hist = new LatencyHistogram();
  const errors: Record<string, number> = {};
  let ok = 0;
  let requests = 0;
  let seq = 0;
  const timeout = o.timeoutMs ?? 10_000;
  const t0 = performance.now();
  const tMeasure = t0 + (o.warmupMs ?? 1000);
  const tEnd = tMeasure + o.durationMs;
  const slot = async () => {
    for (;;) {
      const start = performance.now();
      if (start >= tEnd) return;
      const subj = `${inbox}.${seq++}`;
      let code: string | null = null;
      let timer: NodeJS.Timeout | undefined;
      const replied = new Promise<void>((resolve) => {
        pending.set(subj, resolve);
        timer = setTimeout(() => {
          if (pending.delete(subj)) {
            code = "timeout";
            resolve();
          }
        }, timeout);
      });
      const h = headers();
      h.set("reply-to", subj);
      try {
        await js.publish(SUBJECT, payload, { headers: h });
        await replied;
      } catch (e) {
        pending.delete(subj);
        code = (e as { code?: string }).code ?? (e as Error).name ?? "publish_error";
      }
      clearTimeout(timer);
      const end = performance.now();
      if (end > tEnd) return;
      if (start < tMeasure) continue; // started during warm-up: not counted
      requests++;
      if (code) errors[code] = (errors[code] ?? 0) + 1;
      else {
        ok++;
        hist.record((end - start) * 1000);
      }
    }
  };
  await Promise.all(Array.from({ length: C }, slot));
  sub.unsubscribe();
  return { hist, ok, requests, errors, duration_s: o.durationMs / 1000 };
}

export async function runRawJetStream(o: RawJsOpts): Promise<WorkloadResult[]> {
  const log = o.log ?? ((m: string) => process.stderr.write(`${m}\n`));
  installExitHooks();
  let nats: Awaited<ReturnType<typeof startNats>> | undefined;
  let url = o.url;
  let natsPid = o.natsPid;
  if (!url) {
    nats = await startNats();
    url = nats.url;
    natsPid = nats.pid;
    log(`  raw-jetstream: started nats-server ${url} (pid ${natsPid})`);
  }
  assertLoopback(new URL(url.replace(/^nats:/, "http:")).hostname);
  const nc = await connect({ servers: url, name: "lt-jetstream-client" });
  const jsm = await jetstreamManager(nc);
  try {
    await jsm.streams.delete(STREAM);
  } catch {
    /* absent */
  }
  await jsm.streams.add({
    name: STREAM,
    subjects: [SUBJECT],
    retention: RetentionPolicy.Workqueue,
    storage: StorageType.Memory,
  });
  await jsm.consumers.add(STREAM, {
    durable_name: CONSUMER,
    ack_policy: AckPolicy.Explicit,
    max_ack_pending: 20_000,
  });
  const worker = await startWorker(url);
  const results: WorkloadResult[] = [];
  try {
    for (const C of o.concurrencies) {
      await jsm.streams.purge(STREAM);
      const cpuN = new CpuMeter(natsPid);
      const cpuW = new CpuMeter(worker.pid);
      const cpuSelf = new CpuMeter("self");
      const warm = o.warmupMs ?? 1000;
      const mt = setTimeout(() => {
        cpuN.start();
        cpuW.start();
        cpuSelf.start();
      }, warm);
      const r = await oneRun(nc, C, o);
      clearTimeout(mt);
      const natsRss = natsPid !== undefined ? readRssBytes(natsPid) : null;
      const res = makeResult({
        workload_id: `raw-jetstream-c${C}`,
        target: "raw-jetstream",
        transport: "nats-jetstream",
        sessions: 1,
        in_flight: C,
        duration_s: r.duration_s,
        requests: r.requests,
        ok: r.ok,
        hist: r.hist,
        errors_by_code: r.errors,
        edge_rss_bytes: null,
        cpu_pct: cpuN.stop(),
        extra: {
          cpu_of: "nats-server",
          worker_cpu_pct: cpuW.stop(),
          client_cpu_pct: cpuSelf.stop(),
          nats_server_rss_mib: mib(natsRss),
          payload_bytes: o.payloadBytes ?? 32,
          pattern: "js.publish(+PubAck) → pull consume → core publish reply → ack",
        },
      });
      results.push(res);
    }
  } finally {
    await worker.stop("SIGTERM");
    try {
      await jsm.streams.delete(STREAM);
    } catch {
      /* ignore */
    }
    await nc.drain();
    if (nats) await nats.stop();
  }
  return results;
}

const isMain =
  process.argv[1] &&
  fileURLToPath(import.meta.url) === (await import("node:fs")).realpathSync(process.argv[1]);
if (isMain) {
  const { flags } = parseArgs();
  const results = await runRawJetStream({
    url: str(flags, "url"),
    concurrencies: numList(flags, "c", [16, 64, 256]),
    durationMs: num(flags, "duration", 8) * 1000,
    warmupMs: num(flags, "warmup", 1) * 1000,
    payloadBytes: num(flags, "payload", 32),
  });
  process.stdout.write("raw-jetstream results:\n");
  for (const r of results) printResult(r);
  const outFile = str(flags, "out");
  if (outFile) {
    writeFileSync(
      outFile,
      JSON.stringify({ environment: captureEnvironment(), workloads: results }, null, 2),
    );
    process.stdout.write(`wrote ${outFile}\n`);
  }
  process.exit(0);
}
