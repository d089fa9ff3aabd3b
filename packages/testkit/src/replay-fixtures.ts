import { expect } from "vitest";
import { connectBus, type Bus } from "@mcpq/bus";
import {
  formatItem,
  formatReport,
  readFixtures,
  replayRecords,
  type ReplayReport,
} from "@mcpq/replay";

export interface ReplayFixturesOptions {
  /** A connected bus (the test's), or `natsUrl` to connect one for this call. */
  bus?: Bus;
  natsUrl?: string;
  /** Pool to replay against (the worker the test started); default: each fixture's recorded pool. */
  pool?: string;
  /** Response paths expected to vary, same syntax as `mcpq replay --ignore`. */
  ignore?: readonly string[];
  /** Per-request deadline (ms). Default 10 000. */
  timeoutMs?: number;
  /** Also replay fixtures of side-effecting tools. */
  force?: boolean;
  concurrency?: number;
}

/**
 * Replays every request of a JSONL fixture file (`mcpq replay --export`) against a pool served
 * by a worker the test started (real NATS), and fails the test with a readable report when any
 * response differs from the recording (after `ignore`), newly errors, or does not arrive.
 * Side-effecting fixtures are skipped unless `force`. Uses the same code as `mcpq replay --diff`.
 */
export async function replayFixtures(
  file: string | URL,
  opts: ReplayFixturesOptions,
): Promise<ReplayReport> {
  const records = await readFixtures(file);
  if (records.length === 0) throw new Error(`${String(file)}: no fixtures`);
  let bus = opts.bus;
  if (!bus) {
    if (!opts.natsUrl) throw new Error("replayFixtures: pass `bus` or `natsUrl`");
    bus = await connectBus({ url: opts.natsUrl, name: "testkit-replay" });
  }
  try {
    const report = await replayRecords(bus, records, {
      timeoutMs: opts.timeoutMs ?? 10_000,
      ...(opts.pool !== undefined ? { against: opts.pool } : {}),
      ...(opts.ignore ? { ignore: opts.ignore } : {}),
      ...(opts.force ? { force: true } : {}),
      ...(opts.concurrency !== undefined ? { concurrency: opts.concurrency } : {}),
    });
    const problems = report.items.filter(
      (i) => i.status === "changed" || i.status === "new-error" || i.status === "failed",
    );
    expect(
      problems.map((i) => formatItem(i).join("\n")),
      `replayed fixtures differ from ${String(file)}\n${formatReport(report)}`,
    ).toEqual([]);
    return report;
  } finally {
    if (!opts.bus) await bus.close();
  }
}
