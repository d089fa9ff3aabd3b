/**
 * Raw JetStream request/response micro-benchmarks: what the broker path costs on this machine
 * with no MCP logic at all. Two shapes:
 *
 * `core` (target `raw-jetstream`): the broker's own limit.
 *  stream  LTBENCH (retention workqueue, storage memory, subject ltbench.req)
 *  consumer durable pull "ltworkers" (ack explicit)
 *  client  js.publish(ltbench.req, payload, {headers: reply-to=<inbox>.<id>}) awaiting the PubAck,
 *          then awaits the reply on its wildcard inbox subscription; closed loop, C in flight
 *  worker  separate process (src/lib/jetstream-worker.ts): consume → nc.publish(reply-to) → ack
 *
 * `stored` (target `broker-floor`): the broker work mcpq's delivery guarantees need per call, done
 * with mcpq's own publish primitive (`AckedPublisher`: PubAcks on one subscription) and write
 * batching (`batchWrites`), so it is the floor under any edge + worker built this way:
 *  streams LTBENCH (workqueue, **file** storage) and LTBENCH_OUT (limits, file storage,
 *          subjects ltbench.out.>): the answer is stored, as mcpq stores it for redelivery/resume
 *  client  publish(ltbench.req) awaiting its PubAck (a full stream is a refusal, not a loss), then
 *          awaits the answer on its subscription to ltbench.out.<id>.>
 *  worker  consume → publish the answer to LTBENCH_OUT awaiting its PubAck → ack (ack after the
 *          answer is stored: a worker that dies before it leaves the request to be redelivered)
 * That is 7 broker messages per call (mcpq's 9 less the recording's publish and PubAck).
 *
 * Latency = publish start → reply received (includes the PubAck round trip). CPU per call =
 * client, worker and nats-server CPU over the window / calls answered in it.
 * Starts its own nats-server (random port, temp store) unless --url is given.
 *
 * Usage: tsx src/raw-jetstream.ts [--shape core|stored] [--url nats://127.0.0.1:P] [--c 16,64,256]
 *                                 [--duration 8] [--warmup 1] [--payload 32] [--out file.json]
 */
import { writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { createInbox, headers, type NatsConnection } from "@nats-io/transport-node";
import {
  AckPolicy,
  RetentionPolicy,
  StorageType,
  jetstream,
  jetstreamManager,
} from "@nats-io/jetstream";
import { benchConnection } from "./lib/bench-connection.js";
import { LatencyHistogram } from "./lib/histogram.js";
import { parseArgs, num, numList, str } from "./lib/args.js";
import { CpuMeter, mib, readRssBytes } from "./lib/procstat.js";
import { installExitHooks, startNats, startProcess, type Managed } from "./lib/procs.js";
import { captureEnvironment, makeResult, printResult, type WorkloadResult } from "./lib/report.js";
import { assertLoopback } from "./client/http.js";

const STREAM = "LTBENCH";
const SUBJECT = "ltbench.req";
const CONSUMER = "ltworkers";
/** The `stored` shape's answer stream and its subjects' prefix. */
const OUT_STREAM = "LTBENCH_OUT";
const OUT_PREFIX = "ltbench.out";

/** `core`: memory stream, core reply. `stored`: file streams, the answer stored before the ack. */
type RawJsShape = "core" | "stored";

export interface RawJsOpts {
  /** Default `core`. */
  shape?: RawJsShape;
  url?: string;
  natsPid?: number;
  concurrencies: number[];
  durationMs: number;
  warmupMs?: number;
  payloadBytes?: number;
  timeoutMs?: number;
  log?: (m: string) => void;
}

async function startWorker(url: string, shape: RawJsShape): Promise<Managed> {
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
    ...(shape === "stored" ? ["--stored"] : []),
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
  publish: (data: Uint8Array, h: ReturnType<typeof headers>) => Promise<unknown>,
): Promise<{
  hist: LatencyHistogram;
  ok: number;
  requests: number;
  errors: Record<string, number>;
  duration_s: number;
}> {
  const inbox = o.shape === "stored" ? `${OUT_PREFIX}.${createInbox().slice(7)}` : createInbox();
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
        await publish(payload, h);
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
  const shape = o.shape ?? "core";
  const stored = shape === "stored";
  installExitHooks();
  let nats: Awaited<ReturnType<typeof startNats>> | undefined;
  let url = o.url;
  let natsPid = o.natsPid;
  if (!url) {
    nats = await startNats();
    url = nats.url;
    natsPid = nats.pid;
    log(`  raw-jetstream (${shape}): started nats-server ${url} (pid ${natsPid})`);
  }
  assertLoopback(new URL(url.replace(/^nats:/, "http:")).hostname);
  // The stored shape connects as mcpq's services do.
  const { nc, acked } = await benchConnection(url, "lt-jetstream-client", stored);
  const jsm = await jetstreamManager(nc);
  const storage = stored ? StorageType.File : StorageType.Memory;
  for (const name of [STREAM, OUT_STREAM])
    try {
      await jsm.streams.delete(name);
    } catch {
      /* absent */
    }
  await jsm.streams.add({
    name: STREAM,
    subjects: [SUBJECT],
    retention: RetentionPolicy.Workqueue,
    storage,
  });
  if (stored)
    await jsm.streams.add({
      name: OUT_STREAM,
      subjects: [`${OUT_PREFIX}.>`],
      retention: RetentionPolicy.Limits,
      storage,
      max_age: 120 * 1e9,
    });
  await jsm.consumers.add(STREAM, {
    durable_name: CONSUMER,
    ack_policy: AckPolicy.Explicit,
    max_ack_pending: 20_000,
  });
  const js = jetstream(nc);
  const publish = (data: Uint8Array, h: ReturnType<typeof headers>) =>
    acked
      ? acked.publish(SUBJECT, data, { headers: h })
      : js.publish(SUBJECT, data, { headers: h });
  const worker = await startWorker(url, shape);
  const results: WorkloadResult[] = [];
  try {
    for (const C of o.concurrencies) {
      await jsm.streams.purge(STREAM);
      if (stored) await jsm.streams.purge(OUT_STREAM);
      const cpuN = new CpuMeter(natsPid);
      const cpuW = new CpuMeter(worker.pid);
      const cpuSelf = new CpuMeter("self");
      const warm = o.warmupMs ?? 1000;
      const mt = setTimeout(() => {
        cpuN.start();
        cpuW.start();
        cpuSelf.start();
      }, warm);
      const r = await oneRun(nc, C, o, publish);
      clearTimeout(mt);
      const natsRss = natsPid !== undefined ? readRssBytes(natsPid) : null;
      const cpu = { nats: cpuN.stop(), worker: cpuW.stop(), client: cpuSelf.stop() };
      const callsPerS = r.ok / r.duration_s;
      const us = (pct: number | null) =>
        pct === null || callsPerS <= 0 ? null : Math.round(((pct / 100) * 1e6) / callsPerS);
      const perCall = { client: us(cpu.client), worker: us(cpu.worker), nats: us(cpu.nats) };
      const parts = Object.values(perCall);
      const res = makeResult({
        workload_id: `${stored ? "broker-floor" : "raw-jetstream"}-c${C}`,
        target: stored ? "broker-floor" : "raw-jetstream",
        transport: "nats-jetstream",
        sessions: 1,
        in_flight: C,
        duration_s: r.duration_s,
        requests: r.requests,
        ok: r.ok,
        hist: r.hist,
        errors_by_code: r.errors,
        edge_rss_bytes: null,
        cpu_pct: cpu.nats,
        extra: {
          cpu_of: "nats-server",
          worker_cpu_pct: cpu.worker,
          client_cpu_pct: cpu.client,
          cpu_us_per_call: {
            ...perCall,
            total: parts.every((v) => v !== null) ? parts.reduce((a, b) => a! + b!, 0) : null,
          },
          nats_server_rss_mib: mib(natsRss),
          payload_bytes: o.payloadBytes ?? 32,
          pattern: stored
            ? "publish(+PubAck, file) → pull consume → publish answer (+PubAck, file) → ack; answer read on its subject"
            : "js.publish(+PubAck) → pull consume → core publish reply → ack",
        },
      });
      results.push(res);
    }
  } finally {
    await worker.stop("SIGTERM");
    for (const name of [STREAM, OUT_STREAM])
      try {
        await jsm.streams.delete(name);
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
  const shape = str(flags, "shape", "core");
  if (shape !== "core" && shape !== "stored") throw new Error("--shape must be core or stored");
  const results = await runRawJetStream({
    shape,
    url: str(flags, "url"),
    concurrencies: numList(flags, "c", [16, 64, 256]),
    durationMs: num(flags, "duration", 8) * 1000,
    warmupMs: num(flags, "warmup", 1) * 1000,
    payloadBytes: num(flags, "payload", 32),
  });
  process.stdout.write(`raw-jetstream (${shape}) results:\n`);
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
