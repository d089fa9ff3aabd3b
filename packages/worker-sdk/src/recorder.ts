import { silentLogger, type Logger } from "@mcpq/protocol";
import {
  REDACTED,
  RECORD_VERSION,
  isReplaySession,
  maskAtPaths,
  parsePathPatterns,
  recordHeaders,
  recordMaxBytes,
  recordSubject,
  type Bus,
  type PathPattern,
  type RequestRecord,
} from "@mcpq/bus";
import type { RecordEntry } from "./worker.js";

/** One `name=rate` rule of a sampling spec; `name` may use `*` as a wildcard. */
export interface SampleRule {
  readonly pattern: string;
  readonly rate: number;
  readonly re: RegExp;
}

/**
 * Parses a sampling spec like `*=1,echo=0.1,mcpq://example/*=0`: keys are targets (tool or prompt
 * names, resource URIs; `*` wildcards), values are probabilities in [0, 1]. Targets no rule
 * matches are recorded (rate 1). Throws on a malformed spec, so a bad env fails the boot.
 */
export function parseSampleSpec(spec: string): SampleRule[] {
  const rules: SampleRule[] = [];
  for (const part of spec
    .split(",")
    .map((s) => s.trim())
    .filter(Boolean)) {
    const eq = part.lastIndexOf("=");
    const pattern = eq > 0 ? part.slice(0, eq).trim() : "";
    const rate = Number(eq > 0 ? part.slice(eq + 1).trim() : NaN);
    if (!pattern || !Number.isFinite(rate) || rate < 0 || rate > 1) {
      throw new Error(
        `invalid sampling rule ${JSON.stringify(part)}: expected name=rate with rate in [0, 1]`,
      );
    }
    const re = new RegExp(
      `^${pattern
        .split("*")
        .map((s) => s.replace(/[.+?^${}()|[\]\\]/g, "\\$&"))
        .join(".*")}$`,
    );
    rules.push({ pattern, rate, re });
  }
  return rules;
}

/** The sampling rate of `target`: an exact rule wins, else the longest matching wildcard rule, else 1. */
export function sampleRate(rules: readonly SampleRule[], target: string): number {
  let best: SampleRule | undefined;
  for (const r of rules) {
    if (r.pattern === target) return r.rate;
    if (r.re.test(target) && (!best || r.pattern.length > best.pattern.length)) best = r;
  }
  return best ? best.rate : 1;
}

/** What happened to one finished request: stored, sampled out, dropped (over a bound), or the publish failed. */
export type RecordResult = "stored" | "sampled_out" | "dropped" | "failed";

export interface RecorderMetrics {
  record(result: RecordResult): void;
}

export interface RecorderOptions {
  bus: Bus;
  /** Sampling spec (see `parseSampleSpec`) or parsed rules. Default: record everything. */
  sample?: string | readonly SampleRule[];
  /**
   * Paths masked before storing (see `@mcpq/bus` json-path): relative to the request's `params`
   * (`arguments.password`), or to the response when they start with `result` / `error`; a leading
   * `**` applies everywhere. `authorization` keys and bearer tokens are always masked.
   */
  redact?: readonly string[];
  /**
   * Targets (tool or prompt names, resource URIs; `*` wildcards) whose records keep values under
   * common secret keys (see `isSecretKey`) in clear, for tools whose `token` or `password`
   * arguments are not secrets. `authorization` keys and bearer tokens stay masked regardless.
   */
  keepSecretsFor?: readonly string[];
  /** Also store the notifications sent before the response (progress, logs). Default false. */
  notifications?: boolean;
  /** Records queued or awaiting their PubAck; beyond this, records are dropped (counted). Default 512. */
  maxInFlight?: number;
  logger?: Logger;
  metrics?: RecorderMetrics;
  /** For tests: the random source sampling uses. */
  random?: () => number;
}

/** A `WorkerOptions.recorder` with a way to wait for records still being stored (graceful stop). */
export interface Recorder {
  (entry: RecordEntry): void;
  /** Resolves when every started publish has its PubAck or failed (bounded by `timeoutMs`). */
  flush(timeoutMs?: number): Promise<void>;
  readonly inFlight: number;
}

/** Records of one subject waiting to be published together (see `createRecorder`). */
interface Batch {
  parts: string[];
  /** Their bytes, with a separator each. */
  bytes: number;
  /** The first record's request id: a one-record message's `Nats-Msg-Id`. */
  firstId: string;
}

/** How long a record's PubAck may take before the record counts as failed. */
const ACK_TIMEOUT_MS = 5_000;

/** Keys whose values are always masked, at any depth. */
const ALWAYS_MASKED_KEYS = /^(authorization|proxy-authorization)$/i;
/**
 * Common secret keys, masked by default at any depth (case, `-`, `_` and spaces ignored; a key
 * that ends in one of these counts too: `db_password`, `clientSecret`, `x-api-key`,
 * `refresh_token`). A replay store kept `"password":"hunter2"` for its whole retention when
 * redaction was opt-in.
 */
const SECRET_KEY_SUFFIX =
  /(password|passwd|passphrase|secret|token|apikey|accesskey|privatekey|authorization|cookie|credentials?|sessionid)$/;

/** Keys already classified by `isSecretKey` (records repeat the same few keys; bounded). */
const secretKeyMemo = new Map<string, boolean>();
const SECRET_KEY_MEMO_MAX = 4_096;

/** Whether `key` names a common secret (masked in records unless the target opted out). */
function isSecretKey(key: string): boolean {
  let secret = secretKeyMemo.get(key);
  if (secret === undefined) {
    secret = SECRET_KEY_SUFFIX.test(key.toLowerCase().replace(/[-_\s]/g, ""));
    if (secretKeyMemo.size >= SECRET_KEY_MEMO_MAX) secretKeyMemo.clear();
    secretKeyMemo.set(key, secret);
  }
  return secret;
}
const BEARER = /\b(Bearer)\s+[A-Za-z0-9\-._~+/]+=*/gi;

/**
 * Builds the recorder a worker calls after each finished request. It publishes one record per
 * request to MCPQ_REC — the records of one subject finished in the same run of callbacks in one
 * message (`decodeRecords`) — and does not wait for the PubAck on the response path (the worker
 * calls it after the response is published and the request acked). A JetStream publish (a reply
 * subject for the PubAck) rather than a bare one: a full or missing MCPQ_REC, or an oversized
 * record, then shows up as a counted, logged failure instead of vanishing silently, and a
 * one-record message's `Nats-Msg-Id` dedups redeliveries. The records queued or awaiting a
 * PubAck are bounded by `maxInFlight`; beyond it records are dropped (counted), so recording
 * cannot grow a worker's memory or slow its answers. Requests of replay runs (`replay-*`
 * sessions) are never recorded.
 */
export function createRecorder(opts: RecorderOptions): Recorder {
  const { bus } = opts;
  const log = opts.logger ?? silentLogger;
  const rules =
    typeof opts.sample === "string" ? parseSampleSpec(opts.sample) : (opts.sample ?? []);
  const redact = parsePathPatterns(opts.redact ?? []);
  const keepSecrets = parseSampleSpec((opts.keepSecretsFor ?? []).map((t) => `${t}=1`).join(","));
  const maxInFlight = opts.maxInFlight ?? 512;
  const maxBytes = recordMaxBytes(bus.limits.maxMessageBytes);
  const random = opts.random ?? Math.random;
  // Record PubAcks come back on the connection's shared PubAck subscription (`bus.publisher`):
  // no request object, promise or timer per record.
  let inFlight = 0;
  let drained: (() => void)[] = [];
  let lastWarn = 0;
  const warn = (obj: Record<string, unknown>, msg: string) => {
    // A broken MCPQ_REC must not flood the log at request rate.
    const now = Date.now();
    if (now - lastWarn < 10_000) return;
    lastWarn = now;
    log.warn(obj, msg);
  };
  const count = (r: RecordResult) => opts.metrics?.record(r);
  /** The PubAck (or failure) of a message holding `n` records. */
  const acked = (err: Error | undefined, n: number) => {
    inFlight -= n;
    for (let i = 0; i < n; i++) count(err ? "failed" : "stored");
    if (err) warn({ err, records: n }, "record publish failed");
    if (inFlight > 0 || drained.length === 0) return;
    const waiters = drained;
    drained = [];
    for (const w of waiters) w();
  };
  // The records finished in one run of the event loop's callbacks (a read of PubAcks answers
  // many calls at once under load) leave as one message per subject: one publish, one PubAck and
  // one stored message for all of them instead of one each. `process.nextTick` runs once that
  // run's promise continuations are done, before the connection's batched write goes out.
  const batches = new Map<string, Batch>();
  let scheduled = false;
  const publish = (subject: string, b: Batch) => {
    const n = b.parts.length;
    const cb = (err: Error | undefined) => acked(err, n);
    // Runs from process.nextTick: whatever goes wrong is counted, never thrown into the loop.
    try {
      if (n === 1)
        bus.publisher.send(
          subject,
          b.parts[0]!,
          { headers: recordHeaders(b.firstId), timeoutMs: ACK_TIMEOUT_MS },
          cb,
        );
      else bus.publisher.send(subject, `[${b.parts.join(",")}]`, { timeoutMs: ACK_TIMEOUT_MS }, cb);
    } catch (err) {
      cb(err instanceof Error ? err : new Error(String(err)));
    }
  };
  const publishBatches = () => {
    scheduled = false;
    for (const [subject, b] of batches) publish(subject, b);
    batches.clear();
  };
  const enqueue = (subject: string, requestId: string, data: string, bytes: number) => {
    let b = batches.get(subject);
    // A batch stays within MCPQ_REC's message size and the server's max_payload (which may be
    // smaller: then records that fit alone still go alone), with its brackets and commas.
    const serverMax = bus.nc.info?.max_payload;
    const limit = serverMax ? Math.min(maxBytes, serverMax) : maxBytes;
    if (b && b.bytes + bytes + 3 > limit) {
      publish(subject, b);
      batches.delete(subject);
      b = undefined;
    }
    if (!b) batches.set(subject, (b = { parts: [], bytes: 0, firstId: requestId }));
    b.parts.push(data);
    b.bytes += bytes + 1;
    if (!scheduled) {
      scheduled = true;
      process.nextTick(publishBatches);
    }
  };

  const recorder = ((entry: RecordEntry) => {
    if (isReplaySession(entry.envelope.session)) return;
    const rate = sampleRate(rules, entry.envelope.target);
    if (rate < 1 && !(random() < rate)) return count("sampled_out");
    if (inFlight >= maxInFlight) {
      warn({ maxInFlight }, "record dropped: too many records awaiting a PubAck");
      return count("dropped");
    }
    const secrets = !keepSecrets.some((r) => r.re.test(entry.envelope.target));
    const record = toRecord(entry, { redact, notifications: opts.notifications === true, secrets });
    let data = JSON.stringify(record);
    if (data.length > maxBytes && record.notifications) {
      delete record.notifications;
      data = JSON.stringify(record);
    }
    const bytes = Buffer.byteLength(data);
    if (bytes > maxBytes) {
      warn(
        { requestId: record.requestId, bytes, maxBytes },
        "record dropped: larger than MCPQ_REC's max message size",
      );
      return count("dropped");
    }
    inFlight++;
    enqueue(recordSubject(record), record.requestId, data, bytes);
  }) as Recorder;
  recorder.flush = async (timeoutMs = 5_000) => {
    if (scheduled) publishBatches();
    if (inFlight === 0) return;
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      new Promise<void>((r) => drained.push(r)),
      new Promise<void>((r) => {
        timer = setTimeout(r, timeoutMs);
        timer.unref();
      }),
    ]);
    clearTimeout(timer);
  };
  Object.defineProperty(recorder, "inFlight", { get: () => inFlight });
  return recorder;
}

/**
 * A deep copy through JSON: what is recorded is JSON on the wire anyway (requests came from it,
 * answers go out as it), and the round trip costs about half a structuredClone per call.
 */
function jsonClone<T>(v: T): T {
  return JSON.parse(JSON.stringify(v)) as T;
}

/**
 * Converts a worker's `RecordEntry` into the stored `RequestRecord`, masking redacted paths,
 * `authorization` keys and bearer tokens. Never mutates the entry.
 */
export function toRecord(
  entry: RecordEntry,
  opts: { redact: readonly PathPattern[]; notifications: boolean; secrets?: boolean },
): RequestRecord {
  const env = entry.envelope;
  const secretKeys = opts.secrets !== false;
  const paramPatterns = opts.redact.filter((p) => !startsWithResponseKey(p));
  const responsePatterns = opts.redact.filter(
    (p) => startsWithResponseKey(p) || p.segments[0]?.k === "deep",
  );
  // Copied and masked only when something in it may be masked: most calls carry no secret, and
  // the copy (a JSON round trip) was the largest part of building a record. A part that is not
  // copied has nothing to mask (`hasSecrets` walks as `maskSecrets` does).
  const dirty = (v: unknown, patterns: readonly PathPattern[]) =>
    patterns.length > 0 || hasSecrets(v, secretKeys);
  const rawParams = entry.request.params;
  const paramsDirty = rawParams !== undefined && dirty(rawParams, paramPatterns);
  const params = paramsDirty ? jsonClone(rawParams) : rawParams;
  const rawBody = entry.response
    ? entry.response.error
      ? { error: entry.response.error }
      : { result: entry.response.result ?? {} }
    : null;
  const responseDirty =
    rawBody !== null &&
    dirty("error" in rawBody ? rawBody.error : rawBody.result, responsePatterns);
  const response = (responseDirty ? jsonClone(rawBody) : rawBody) as RequestRecord["response"];
  const rawNotes =
    opts.notifications && entry.notifications?.length ? entry.notifications : undefined;
  const notesDirty = rawNotes !== undefined && dirty(rawNotes, []);
  const notifications = notesDirty ? jsonClone(rawNotes) : rawNotes;

  const masked: string[] = [];
  const under = (label: string) => (p: string) =>
    p.startsWith("[") ? `${label}${p}` : `${label}.${p}`;
  if (params && paramsDirty)
    masked.push(...maskAtPaths(params, paramPatterns, REDACTED).map(under("params")));
  if (response && responseDirty)
    masked.push(...maskAtPaths(response, responsePatterns, REDACTED).map(under("response")));
  if (params && paramsDirty) masked.push(...maskSecrets(params, "params", secretKeys));
  if (response && responseDirty) masked.push(...maskSecrets(response, "response", secretKeys));
  if (notesDirty)
    notifications?.forEach((n, i) =>
      masked.push(...maskSecrets(n, `notifications[${i}]`, secretKeys)),
    );

  const record: RequestRecord = {
    v: RECORD_VERSION,
    requestId: env.requestId,
    pool: entry.pool,
    workerId: entry.workerId,
    method: entry.request.method,
    targetKind: env.targetKind,
    target: env.target,
    session: env.session,
    principal: env.principal,
    protocolVersion: env.protocolVersion,
    edge: env.edge,
    receivedAt: env.receivedAt,
    deadline: env.deadline,
    startedAt: entry.startedAt,
    durationMs: entry.durationMs,
    outcome: entry.outcome,
    replayable: entry.replayable,
    request: { jsonrpc: "2.0", id: entry.request.id, method: entry.request.method },
    response,
  };
  if (env.logLevel) record.logLevel = env.logLevel;
  if (env.traceparent) record.traceparent = env.traceparent;
  if (params) record.request.params = params;
  if (notifications) record.notifications = notifications;
  if (masked.length) record.redacted = [...new Set(masked)];
  return record;
}

function startsWithResponseKey(p: PathPattern): boolean {
  const s = p.segments[0];
  return s?.k === "key" && (s.key === "result" || s.key === "error");
}

/**
 * Masks `authorization` keys, bearer tokens and (with `secretKeys`) values under common secret
 * keys anywhere under `root` (in place); returns the locations.
 */
function maskSecrets(root: unknown, label: string, secretKeys: boolean): string[] {
  const out: string[] = [];
  walkSecrets(root, label, secretKeys, (obj, k, here, masked) => {
    obj[k] = masked;
    out.push(here());
    return false;
  });
  return out;
}

/** Whether `maskSecrets` would mask anything under `root` (reads only; stops at the first). */
function hasSecrets(root: unknown, secretKeys: boolean): boolean {
  let found = false;
  walkSecrets(root, "", secretKeys, () => (found = true));
  return found;
}

/**
 * Visits every value `maskSecrets` masks: `hit(obj, key, path, maskedValue)`, `path()` building
 * its location (`label.a[0].b`) only when asked; a `hit` returning true stops the walk.
 */
function walkSecrets(
  root: unknown,
  label: string,
  secretKeys: boolean,
  hit: (obj: Record<string, unknown>, k: string, here: () => string, masked: unknown) => boolean,
): void {
  // The keys from `root` down to the value visited: array indices as numbers.
  const trail: (string | number)[] = [];
  const here = () =>
    label + trail.map((s) => (typeof s === "number" ? `[${s}]` : `.${s}`)).join("");
  const visit = (
    obj: Record<string, unknown>,
    k: string,
    step: string | number,
    masked: unknown,
  ) => {
    trail.push(step);
    const stop = hit(obj, k, here, masked);
    trail.pop();
    return stop;
  };
  const walk = (node: unknown): boolean => {
    if (node === null || typeof node !== "object") return false;
    const obj = node as Record<string, unknown>;
    const array = Array.isArray(node);
    for (const k of Object.keys(obj)) {
      const step = array ? Number(k) : k;
      const v = obj[k];
      if (
        !array &&
        (ALWAYS_MASKED_KEYS.test(k) || (secretKeys && isSecretKey(k))) &&
        v !== REDACTED
      ) {
        if (visit(obj, k, step, REDACTED)) return true;
      } else if (typeof v === "string") {
        BEARER.lastIndex = 0;
        if (BEARER.test(v)) {
          BEARER.lastIndex = 0;
          if (visit(obj, k, step, v.replace(BEARER, `$1 ${REDACTED}`))) return true;
        }
        BEARER.lastIndex = 0;
      } else if (v !== null && typeof v === "object") {
        trail.push(step);
        const stop = walk(v);
        trail.pop();
        if (stop) return true;
      }
    }
    return false;
  };
  walk(root);
}
