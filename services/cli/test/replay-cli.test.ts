import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect } from "vitest";
import { natsTest as it, eventually, replayFixtures } from "@mcpq/testkit";
import { H, REDACTED, RecordSchema, STREAMS, connectBus, type Bus } from "@mcpq/bus";
import type { RunningEdge } from "@mcpq/edge";
import type { RunningWorker } from "@mcpq/worker";
import { CATALOGS } from "@mcpq/worker";
import {
  candidateCatalogs,
  runCli,
  sdkClient,
  shopCatalog,
  startTestEdge,
  startTestWorker,
} from "./support/replay-stack.js";

const SECRET = "hunter2-very-secret";
const RECORDED = 9;

describe("mcpq replay: record SDK traffic, replay it, diff it, export fixtures", () => {
  let bus: Bus;
  let edge: RunningEdge;
  const workers: RunningWorker[] = [];
  let dir: string;
  let env: Record<string, string>;

  afterAll(async () => {
    await edge?.close();
    await Promise.allSettled(workers.map((w) => w.close()));
    await bus?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  const recordCount = async () => (await bus.jsm.streams.info(STREAMS.records)).state.messages;

  it("records every routed SDK-client request with its envelope headers; redacted fields never reach MCPQ_REC", async ({
    nats,
  }) => {
    dir = await mkdtemp(join(tmpdir(), "mcpq-replay-"));
    env = { MCPQ_NATS_URL: nats.url };
    workers.push(
      await startTestWorker(nats.url, "main", { MCPQ_RECORD_REDACT: "arguments.password" }, [
        CATALOGS["example"]!,
        shopCatalog,
      ]),
    );
    edge = await startTestEdge(nats.url);
    bus = await connectBus({ url: nats.url, name: "replay-test" });
    const { client } = await sdkClient(edge.url);
    for (const text of ["alpha", "beta", "gamma"])
      await client.callTool({ name: "echo", arguments: { text } });
    await client.callTool({ name: "add", arguments: { a: 2, b: 40 } });
    await client.readResource({ uri: "mcpq://example/readme" });
    await client.getPrompt({ name: "greet", arguments: { name: "Ada" } });
    expect(
      await client.callTool({ name: "login", arguments: { user: "ada", password: SECRET } }),
    ).toEqual({ content: [{ type: "text", text: "welcome ada" }] });
    await client.callTool({ name: "delete_item", arguments: { id: "42" } });
    await client.callTool({ name: "charge", arguments: { cents: 100 } });
    await client.listTools(); // answered by the edge: never recorded
    await client.close();
    await eventually(async () => (await recordCount()) === RECORDED, {
      what: `${RECORDED} records`,
    });

    // Read MCPQ_REC raw: bodies, headers, and that the secret is nowhere.
    const consumer = await bus.js.consumers.get(STREAMS.records);
    const msgs = [];
    for await (const m of await consumer.fetch({ max_messages: RECORDED, expires: 2_000 })) {
      msgs.push(m);
      if (msgs.length === RECORDED) break;
    }
    expect(msgs).toHaveLength(RECORDED);
    const workerId = workers[0]!.worker.workerId;
    for (const m of msgs) {
      const raw = new TextDecoder().decode(m.data);
      const headerText = [...m.headers!.keys()].map((k) => `${k}: ${m.headers!.get(k)}`).join("\n");
      expect(raw).not.toContain(SECRET);
      expect(headerText).not.toContain(SECRET);
      const rec = RecordSchema.parse(JSON.parse(raw));
      expect(rec).toMatchObject({ pool: "main", workerId, principal: "anonymous", outcome: "ok" });
      expect(m.subject).toBe(
        `mcpq.rec.main.${rec.targetKind}.${rec.target.replace(/[^A-Za-z0-9_-]/g, (c) => `~${c.charCodeAt(0).toString(16)}`)}`,
      );
      // the body is the record; the one header is the dedup id (the request id)
      expect([...m.headers!.keys()]).toEqual([H.msgId]);
      expect(m.headers!.get(H.msgId)).toBe(rec.requestId);
    }
    const login = msgs.map((m) => RecordSchema.parse(m.json())).find((r) => r.target === "login")!;
    expect(login.request.params).toMatchObject({ arguments: { user: "ada", password: REDACTED } });
    expect(login.redacted).toEqual(["params.arguments.password"]);
    const replayable = Object.fromEntries(
      msgs.map((m) => RecordSchema.parse(m.json())).map((r) => [r.target, r.replayable]),
    );
    expect(replayable).toMatchObject({
      echo: true,
      login: true,
      delete_item: false,
      charge: false,
    });
  });

  it("replay against the same worker: all unchanged, side-effecting tools skipped and reported, exit 0, replays not recorded", async () => {
    const r = await runCli(
      ["replay", "--since", "10m", "--against", "main", "--diff", "--pace", "original"],
      env,
    );
    expect(r.stderr).toContain("reading MCPQ_REC");
    expect(r.stdout).toMatch(/unchanged\s+7/);
    expect(r.stdout).toMatch(/changed\s+0/);
    expect(r.stdout).toMatch(/skipped\s+2/);
    expect(r.stdout).toMatch(
      /SKIPPED\s+tools\/call delete_item .*\n\s+side-effecting tool \(destructiveHint\); --force replays it/,
    );
    expect(r.stdout).toMatch(
      /SKIPPED\s+tools\/call charge .*\n\s+side-effecting tool \(replayable: false\); --force replays it/,
    );
    expect(r.stdout).toContain("RESULT: SAME");
    expect(r.code, r.stdout + r.stderr).toBe(0);
    // Replayed requests run as their own session and are not recorded again.
    await new Promise((res) => setTimeout(res, 300));
    expect(await recordCount()).toBe(RECORDED);
  });

  it("a candidate pool whose echo uppercases: the diff names exactly the changed responses and the command exits non-zero", async ({
    nats,
  }) => {
    workers.push(
      await startTestWorker(
        nats.url,
        "candidate",
        { MCPQ_WORKER_SHADOW: "on" },
        candidateCatalogs(),
      ),
    );
    const r = await runCli(
      ["replay", "--since", "10m", "--against", "candidate", "--diff", "--json"],
      env,
    );
    expect(r.code, r.stderr).toBe(1);
    expect(r.stderr).not.toContain("warning");
    const report = JSON.parse(r.stdout) as {
      differs: boolean;
      counts: Record<string, number>;
      items: { target: string; status: string; changes?: unknown[] }[];
    };
    expect(report.differs).toBe(true);
    expect(report.counts).toEqual({
      unchanged: 4,
      changed: 3,
      "new-error": 0,
      failed: 0,
      skipped: 2,
    });
    const changed = report.items.filter((i) => i.status === "changed");
    expect(changed.map((i) => i.target)).toEqual(["echo", "echo", "echo"]);
    expect(changed.map((i) => i.changes)).toEqual(
      ["alpha", "beta", "gamma"].map((t) => [
        { path: "result.content[0].text", kind: "changed", before: t, after: t.toUpperCase() },
      ]),
    );

    const text = await runCli(
      [
        "replay",
        "--since",
        "10m",
        "--against",
        "mcpq.req.candidate",
        "--diff",
        "--name",
        "echo",
        "--quiet",
      ],
      env,
    );
    expect(text.code).toBe(1);
    expect(text.stderr).toBe("");
    expect(text.stdout).toContain('result.content[0].text: "alpha" -> "ALPHA"');
    expect(text.stdout).toContain("RESULT: DIFFERENT — 3 of 3 replayed responses differ or failed");

    const ignored = await runCli(
      [
        "replay",
        "--since",
        "10m",
        "--against",
        "candidate",
        "--diff",
        "--ignore",
        "result.content[*].text",
      ],
      env,
    );
    expect(ignored.stdout).toContain("RESULT: SAME");
    expect(ignored.code).toBe(0);

    const forced = await runCli(
      [
        "replay",
        "--since",
        "10m",
        "--against",
        "candidate",
        "--diff",
        "--name",
        "delete_item",
        "--force",
        "--json",
      ],
      env,
    );
    expect(JSON.parse(forced.stdout).counts).toMatchObject({ unchanged: 1, skipped: 0 });
  });

  it("selection flags, --list, saved selections, empty selections and missing workers", async () => {
    const list = await runCli(
      [
        "replay",
        "--method",
        "tools/call",
        "--name",
        "echo",
        "--list",
        "--save-selection",
        join(dir, "sel.json"),
      ],
      env,
    );
    expect(list.code).toBe(0);
    expect(list.stdout.trim().split("\n")).toHaveLength(3);
    const saved = JSON.parse(await readFile(join(dir, "sel.json"), "utf8")) as {
      requestIds: string[];
    };
    expect(saved.requestIds).toHaveLength(3);
    const again = await runCli(
      ["replay", "--selection", join(dir, "sel.json"), "--diff", "--against", "main", "--quiet"],
      env,
    );
    expect(again.stdout).toMatch(/unchanged\s+3/);
    expect(again.code).toBe(0);

    const none = await runCli(["replay", "--until", "2000-01-01T00:00:00Z", "--diff"], env);
    expect(none.code).toBe(3);
    expect(
      (await runCli(["replay", "--until", "2000-01-01T00:00:00Z", "--diff", "--allow-empty"], env))
        .code,
    ).toBe(0);
    const errorsOnly = await runCli(["replay", "--errors-only", "--list"], env);
    expect(errorsOnly.code).toBe(3);

    const noWorker = await runCli(
      ["replay", "--since", "10m", "--against", "nobody", "--diff", "--wait-workers", "0"],
      env,
    );
    expect(noWorker.code).toBe(4);
    expect(noWorker.stderr).toContain('no live worker in pool "nobody"');
    const usage = await runCli(["replay", "--since", "yesterday", "--diff"], env);
    expect(usage.code).toBe(2);
    const badWait = await runCli(["replay", "--diff", "--wait-workers", "soon"], env);
    expect(badWait.code).toBe(2);
    expect(badWait.stderr).toContain(
      '--wait-workers must be a number of seconds 0-3600, not "soon"',
    );
  });

  it("a replay started before its pool's worker (`mcpq worker … &` then `mcpq replay`) waits for it", async ({
    nats,
  }) => {
    let stderr = "";
    const run = runCli(
      ["replay", "--since", "10m", "--against", "late", "--diff", "--wait-workers", "600"],
      env,
      (s) => (stderr = s),
    );
    await eventually(
      () => stderr.includes('waiting up to 600 s for a live worker in pool "late"'),
      {
        what: "the replay waiting for pool late",
        timeoutMs: 120_000,
      },
    );
    // A shadow worker, so the edge keeps routing client traffic to pool main.
    const late = await startTestWorker(nats.url, "late", { MCPQ_WORKER_SHADOW: "on" }, [
      CATALOGS["example"]!,
      shopCatalog,
    ]);
    try {
      const r = await run;
      expect(r.stdout).toMatch(/unchanged\s+7/);
      expect(r.stdout).toContain("RESULT: SAME");
      expect(r.code, r.stderr).toBe(0);
    } finally {
      await late.close();
    }
  });

  it("exported fixtures replay in a vitest test (and fail against the candidate)", async () => {
    const file = join(dir, "fixtures.jsonl");
    const exp = await runCli(["replay", "--since", "10m", "--export", file], env);
    expect(exp.code).toBe(0);
    expect(exp.stdout).toContain(`exported ${RECORDED} fixtures`);
    const text = await readFile(file, "utf8");
    expect(text.trim().split("\n")).toHaveLength(RECORDED);
    expect(text).not.toContain(SECRET);

    const report = await replayFixtures(file, { bus, pool: "main" });
    expect(report.counts).toMatchObject({ unchanged: 7, skipped: 2 });
    await expect(replayFixtures(file, { bus, pool: "candidate" })).rejects.toThrow(
      /replayed fixtures differ[\s\S]*"alpha" -> "ALPHA"/,
    );
    await replayFixtures(file, {
      natsUrl: env["MCPQ_NATS_URL"]!,
      pool: "candidate",
      ignore: ["result.content[0].text"],
    });

    // The CLI replays a fixture file too (CI without MCPQ_REC).
    const fromFile = await runCli(
      ["replay", "--from", file, "--against", "main", "--diff", "--quiet"],
      env,
    );
    expect(fromFile.stdout).toContain("RESULT: SAME");
    expect(fromFile.code).toBe(0);
  });

  it("a shadow candidate never receives client traffic; a routable one is flagged", async ({
    nats,
  }) => {
    const { client } = await sdkClient(edge.url);
    for (let i = 0; i < 5; i++)
      expect(await client.callTool({ name: "echo", arguments: { text: `live ${i}` } })).toEqual({
        content: [{ type: "text", text: `live ${i}` }],
      });
    await client.close();
    await eventually(async () => (await recordCount()) === RECORDED + 5, { what: "live records" });
    const live = await runCli(
      ["replay", "--since", "1m", "--name", "echo", "--list", "--quiet"],
      env,
    );
    // --list prints in stream order: the last five lines are the live calls just made.
    const pools = live.stdout
      .trim()
      .split("\n")
      .slice(-5)
      .map((l) => l.split(/\s+/)[2]);
    expect(pools).toEqual(["main", "main", "main", "main", "main"]);

    workers.push(await startTestWorker(nats.url, "routable", {}, candidateCatalogs()));
    const flagged = await runCli(
      ["replay", "--since", "10m", "--name", "add", "--against", "routable", "--diff", "--quiet"],
      env,
    );
    expect(flagged.stderr).toContain(
      "warning: pool routable has 1 worker(s) that edges route client traffic to",
    );
    expect(flagged.code).toBe(0);
  });
});
