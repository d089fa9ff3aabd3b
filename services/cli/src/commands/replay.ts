import { readFile, writeFile } from "node:fs/promises";
import { setTimeout as sleep } from "node:timers/promises";
import { parseArgs } from "node:util";
import {
  BusEnvSchema,
  busAuthFromEnv,
  INBOX_PREFIX,
  busLimitsFromEnv,
  connectBus,
  type Bus,
  type RequestRecord,
} from "@mcpq/bus";
import {
  NoRecordsStreamError,
  NoWorkersError,
  SelectionSchema,
  parseTimeArg,
  formatReport,
  matchesSelection,
  readFixtures,
  readRecords,
  replayRecords,
  reportToJson,
  resolveSelection,
  selectionFilterSubject,
  toSavedSelection,
  writeFixtures,
  type ReplayReport,
  type ResolvedSelection,
  type Selection,
} from "@mcpq/replay";
import { UsageError, explainBootError } from "../args.js";
import type { CliEnv } from "../env.js";

export const REPLAY_USAGE = `mcpq replay — re-run recorded requests (MCPQ_REC) against workers and diff the answers

Usage: mcpq replay [selection] [--list | --export FILE | --against POOL | --diff] [options]

Selection (all optional; combined with AND):
  --since T            received at or after T: ISO-8601 or a duration before now (15m, 2h, 1d)
  --until T            received at or before T
  --pool NAME          records of this pool only
  --session ID         one client session
  --principal NAME     one principal
  --method M           tools/call | resources/read | prompts/get | completion/complete
  --name NAME          tool / prompt name or resource URI
  --errors-only        only requests that ended in an error
  --id REQUEST_ID      exactly this request (repeatable)
  --limit N            at most N records
  --selection FILE     start from a saved selection (JSON); flags override its fields
  --from FILE.jsonl    read records from a fixture file instead of MCPQ_REC
  --save-selection F   write the selection (absolute times + the matched request ids) to F

Actions:
  --list               print the selected records (one line each)
  --export FILE.jsonl  write the selected records, with their recorded responses, as fixtures
  --against POOL       replay against this pool (or mcpq.req.POOL); default: each record's pool
  --diff               replay and compare each response with the recording; exit 1 if any differs

Replay options:
  --pace original|fast keep the recorded spacing, or go as fast as --rate/--concurrency allow (default fast)
  --rate N[/s]         at most N requests started per second
  --concurrency N      at most N requests in flight (default 16)
  --timeout MS         per-request deadline (default 30000)
  --wait-workers S     wait up to S seconds for a live worker in each target pool, e.g. one just
                       started in the background (default 10; 0 = exit 4 at once)
  --ignore PATH        response path expected to vary, e.g. result.structuredContent.now, **.timestamp (repeatable)
  --force              also replay side-effecting tools (replayable: false / destructiveHint)
  --json               print the report as JSON on stdout
  --verbose            also list unchanged requests
  --quiet              no progress on stderr
  --allow-empty        exit 0 when nothing is selected (default: exit 3)

Exit status: 0 same, 1 responses differ or did not arrive, 2 usage error, 3 nothing selected,
4 could not run (NATS unreachable, no MCPQ_REC, no live worker in a target pool).
Reads MCPQ_NATS_URL (default nats://127.0.0.1:4222). See docs/replay.md.`;

/** Exit statuses of `mcpq replay` (stable: CI scripts depend on them). */
export const REPLAY_EXIT = { same: 0, differs: 1, usage: 2, empty: 3, cannotRun: 4 } as const;

/** `mcpq replay ...`; sets `process.exitCode` (see `REPLAY_EXIT`). Progress on stderr, summary on stdout. */
export async function replay(
  argv: string[],
  env: Readonly<Pick<CliEnv, "MCPQ_DEBUG">> = {},
): Promise<void> {
  let args: ReturnType<typeof parse>;
  let selection: ResolvedSelection;
  try {
    args = parse(argv);
    if (args.values.help) {
      console.log(REPLAY_USAGE);
      return;
    }
    selection = await buildSelection(args.values);
  } catch (err) {
    console.error(
      `mcpq replay: ${err instanceof Error ? err.message : String(err)}\n\n${REPLAY_USAGE}`,
    );
    process.exitCode = REPLAY_EXIT.usage;
    return;
  }
  const v = args.values;
  const progress = v.quiet ? () => undefined : (msg: string) => process.stderr.write(`${msg}\n`);
  const replaying = v.diff === true || v.against !== undefined;
  let bus: Bus | undefined;
  try {
    if (!v.from || replaying) bus = await connect();
    const records = await selectRecords(bus, selection, v.from, progress);
    if (v["save-selection"]) {
      const saved = toSavedSelection(
        selection,
        records.map((r) => r.requestId),
      );
      await writeFile(v["save-selection"], `${JSON.stringify(saved, null, 2)}\n`, "utf8");
      progress(`saved the selection (${records.length} request ids) to ${v["save-selection"]}`);
    }
    if (records.length === 0) {
      console.log("mcpq replay: no recorded requests match the selection");
      process.exitCode = v["allow-empty"] ? REPLAY_EXIT.same : REPLAY_EXIT.empty;
      return;
    }
    if (v.list) {
      for (const r of records) {
        console.log(
          `${new Date(r.receivedAt).toISOString()}  ${r.requestId}  ${r.pool}  ${r.method} ${r.target}  ${r.outcome}  ${r.durationMs} ms` +
            `  session ${r.session}  principal ${r.principal}${r.replayable ? "" : "  (side-effecting)"}`,
        );
      }
    }
    if (v.export) {
      await writeFixtures(v.export, records);
      console.log(
        `mcpq replay: exported ${records.length} fixture${records.length === 1 ? "" : "s"} to ${v.export}`,
      );
    }
    if (!replaying) return;
    const waitMs = seconds(v["wait-workers"], "--wait-workers") * 1000;
    const report = await whenLive(waitMs, progress, () =>
      replayRecords(bus!, records, {
        ...(v.against !== undefined ? { against: v.against } : {}),
        pace: v.pace as "original" | "fast",
        ...(v.rate !== undefined ? { rate: positive(v.rate.replace(/\/s$/, ""), "--rate") } : {}),
        concurrency: positive(v.concurrency, "--concurrency"),
        timeoutMs: positive(v.timeout, "--timeout"),
        ignore: v.ignore ?? [],
        force: v.force === true,
        onWarning: (m) => process.stderr.write(`mcpq replay: warning: ${m}\n`),
        onItem: (item, done, total) =>
          progress(
            `[${done}/${total}] ${item.status.toUpperCase().padEnd(9)} ${item.record.method} ${item.record.target}` +
              (item.replayMs !== undefined ? ` ${item.replayMs.toFixed(1)} ms` : "") +
              (item.reason ? ` — ${item.reason}` : ""),
          ),
      }),
    );
    console.log(
      v.json
        ? JSON.stringify(reportToJson(report), null, 2)
        : formatReport(report, { verbose: v.verbose === true }),
    );
    const gate = v.diff ? report.differs : report.counts.failed > 0;
    process.exitCode = gate ? REPLAY_EXIT.differs : REPLAY_EXIT.same;
  } catch (err) {
    if (err instanceof UsageError) {
      console.error(`mcpq replay: ${err.message}`);
      process.exitCode = REPLAY_EXIT.usage;
      return;
    }
    const known = err instanceof NoWorkersError || err instanceof NoRecordsStreamError;
    console.error(`mcpq replay: ${err instanceof Error ? err.message : String(err)}`);
    if (!known && err instanceof Error && err.stack && env.MCPQ_DEBUG) console.error(err.stack);
    process.exitCode = REPLAY_EXIT.cannotRun;
  } finally {
    await bus?.close();
  }
}

function parse(argv: string[]) {
  return parseArgs({
    args: argv,
    allowPositionals: false,
    options: {
      since: { type: "string" },
      until: { type: "string" },
      pool: { type: "string" },
      session: { type: "string" },
      principal: { type: "string" },
      method: { type: "string" },
      name: { type: "string" },
      "errors-only": { type: "boolean" },
      id: { type: "string", multiple: true },
      limit: { type: "string" },
      selection: { type: "string" },
      from: { type: "string" },
      "save-selection": { type: "string" },
      list: { type: "boolean" },
      export: { type: "string" },
      against: { type: "string" },
      diff: { type: "boolean" },
      pace: { type: "string", default: "fast" },
      rate: { type: "string" },
      concurrency: { type: "string", default: "16" },
      timeout: { type: "string", default: "30000" },
      "wait-workers": { type: "string", default: "10" },
      ignore: { type: "string", multiple: true },
      force: { type: "boolean" },
      json: { type: "boolean" },
      verbose: { type: "boolean" },
      quiet: { type: "boolean" },
      "allow-empty": { type: "boolean" },
      help: { type: "boolean", short: "h" },
    },
  });
}

type Values = ReturnType<typeof parse>["values"];

async function buildSelection(v: Values): Promise<ResolvedSelection> {
  if (v.pace !== "original" && v.pace !== "fast")
    throw new UsageError(`--pace must be original or fast, not ${JSON.stringify(v.pace)}`);
  if (!v.list && !v.export && !v.against && !v.diff && !v["save-selection"]) {
    throw new UsageError("nothing to do: give --list, --export FILE, --against POOL and/or --diff");
  }
  // Replay options are checked here too, so a bad value is reported before anything connects.
  if (v.rate !== undefined) positive(v.rate.replace(/\/s$/, ""), "--rate");
  positive(v.concurrency, "--concurrency");
  positive(v.timeout, "--timeout");
  seconds(v["wait-workers"], "--wait-workers");
  for (const flag of ["since", "until"] as const) {
    const t = v[flag];
    if (t === undefined) continue;
    try {
      parseTimeArg(t);
    } catch (err) {
      throw new UsageError(`--${flag}: ${err instanceof Error ? err.message : String(err)}`);
    }
  }
  let base: Selection = {};
  if (v.selection) {
    let raw: unknown;
    try {
      raw = JSON.parse(await readFile(v.selection, "utf8")) as unknown;
    } catch (err) {
      throw new UsageError(
        `--selection ${v.selection}: ${err instanceof Error ? err.message : String(err)}`,
      );
    }
    const r = SelectionSchema.safeParse(raw);
    if (!r.success)
      throw new UsageError(
        `${v.selection}: not a selection: ${r.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`).join("; ")}`,
      );
    base = r.data;
  }
  const sel: Selection = { ...base };
  if (v.since !== undefined) sel.since = v.since;
  if (v.until !== undefined) sel.until = v.until;
  if (v.pool !== undefined) sel.pool = v.pool;
  if (v.session !== undefined) sel.session = v.session;
  if (v.principal !== undefined) sel.principal = v.principal;
  if (v.method !== undefined) sel.method = v.method;
  if (v.name !== undefined) sel.name = v.name;
  if (v["errors-only"]) sel.errorsOnly = true;
  if (v.id?.length) sel.requestIds = v.id;
  if (v.limit !== undefined) sel.limit = positive(v.limit, "--limit");
  try {
    return resolveSelection(sel);
  } catch (err) {
    throw new UsageError(err instanceof Error ? err.message : String(err));
  }
}

async function selectRecords(
  bus: Bus | undefined,
  sel: ResolvedSelection,
  from: string | undefined,
  progress: (m: string) => void,
): Promise<RequestRecord[]> {
  if (from) {
    const all = await readFixtures(from);
    const picked = all.filter((r) => matchesSelection(r, sel)).slice(0, sel.limit ?? Infinity);
    progress(`read ${all.length} records from ${from}; ${picked.length} match the selection`);
    return picked;
  }
  const since =
    sel.since === undefined ? "the start of MCPQ_REC" : new Date(sel.since).toISOString();
  progress(`reading MCPQ_REC (filter ${selectionFilterSubject(sel)}, since ${since}) ...`);
  const out: RequestRecord[] = [];
  let invalid = 0;
  let seen = 0;
  for await (const r of readRecords(bus!, sel, {
    onProgress: (p) => ((invalid = p.invalid), (seen = p.seen)),
  }))
    out.push(r);
  progress(
    `read ${seen} records; ${out.length} match the selection${invalid ? `; ${invalid} invalid records ignored` : ""}`,
  );
  return out;
}

async function connect(): Promise<Bus> {
  const env = BusEnvSchema.parse(process.env);
  // provision: false — a CLI must never reconfigure the deployment's streams.
  try {
    return await connectBus({
      url: env.MCPQ_NATS_URL,
      auth: busAuthFromEnv(env),
      inboxPrefix: INBOX_PREFIX.replay,
      name: "mcpq-replay",
      limits: busLimitsFromEnv(env),
      provision: false,
    });
  } catch (err) {
    throw explainBootError(err, { natsUrl: env.MCPQ_NATS_URL });
  }
}

function positive(value: string, flag: string): number {
  const n = Number(value);
  if (!Number.isFinite(n) || n <= 0)
    throw new UsageError(`${flag} must be a positive number, not ${JSON.stringify(value)}`);
  return n;
}

/** `--wait-workers`: seconds (`10` or `10s`), 0 allowed, at most an hour. */
function seconds(value: string, flag: string): number {
  const n = Number(value.replace(/s$/, ""));
  if (value.trim() === "" || !Number.isFinite(n) || n < 0 || n > 3600)
    throw new UsageError(
      `${flag} must be a number of seconds 0-3600, not ${JSON.stringify(value)}`,
    );
  return n;
}

/**
 * Runs a replay, trying again while a target pool has no live worker, for at most `waitMs`: a
 * worker started just before (`mcpq worker --pool candidate … &` then `mcpq replay --against
 * candidate`) needs a moment to register. replayRecords throws NoWorkersError before it sends
 * anything, so another try never sends a request twice.
 */
async function whenLive(
  waitMs: number,
  progress: (msg: string) => void,
  run: () => Promise<ReplayReport>,
): Promise<ReplayReport> {
  const deadline = Date.now() + waitMs;
  let told = false;
  for (;;) {
    try {
      return await run();
    } catch (err) {
      if (!(err instanceof NoWorkersError) || Date.now() >= deadline) throw err;
      if (!told) {
        progress(
          `waiting up to ${waitMs / 1000} s for a live worker in pool ${JSON.stringify(err.pool)} (--wait-workers) ...`,
        );
        told = true;
      }
      await sleep(Math.min(250, Math.max(1, deadline - Date.now())));
    }
  }
}
