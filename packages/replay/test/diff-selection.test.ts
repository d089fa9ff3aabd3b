import { describe, expect, it } from "vitest";
import {
  formatPath,
  maskAtPaths,
  parsePathPattern,
  parsePathPatterns,
  pathMatches,
  type RequestRecord,
} from "@mcpq/bus";
import {
  diffJson,
  matchesSelection,
  parseAgainst,
  parseFixtures,
  formatFixtures,
  parseTimeArg,
  resolveSelection,
  selectionFilterSubject,
} from "../src/index.js";
import { diffResponses } from "../src/diff.js";

describe("json paths (shared by redaction and --ignore)", () => {
  it("parses keys, indices, wildcards, deep and quoted segments", () => {
    const m = (p: string, path: (string | number)[]) => pathMatches(parsePathPattern(p), path);
    expect(m("arguments.password", ["arguments", "password"])).toBe(true);
    expect(m("$.result.content[0].text", ["result", "content", 0, "text"])).toBe(true);
    expect(m("result.content[*].text", ["result", "content", 3, "text"])).toBe(true);
    expect(m("result.*.text", ["result", "content", "text"])).toBe(true);
    expect(m("**.token", ["a", "b", "token"])).toBe(true);
    expect(m("**.token", ["token"])).toBe(true);
    expect(m("$..token", ["x", "token"])).toBe(true);
    expect(m('a["odd.key"]', ["a", "odd.key"])).toBe(true);
    expect(m("arguments.password", ["arguments", "passwords"])).toBe(false);
    expect(m("result.content[0]", ["result", "content", 1])).toBe(false);
    expect(() => parsePathPattern("a[")).toThrow(/unclosed/);
    expect(() => parsePathPattern("")).toThrow(/empty/);
    expect(formatPath(["result", "content", 0, "text"])).toBe("result.content[0].text");
    expect(formatPath(["a", "odd.key"])).toBe('a["odd.key"]');
  });

  it("masks in place and reports the locations", () => {
    const v = { arguments: { password: "p", nested: [{ token: "t" }], keep: 1 } };
    const masked = maskAtPaths(v, parsePathPatterns(["arguments.password", "**.token"]), "X");
    expect(v).toEqual({ arguments: { password: "X", nested: [{ token: "X" }], keep: 1 } });
    expect(masked.sort()).toEqual(["arguments.nested[0].token", "arguments.password"]);
  });
});

describe("diffJson", () => {
  it("reports changed, added and removed locations; ignores covered subtrees; key order is irrelevant", () => {
    const a = {
      result: { content: [{ type: "text", text: "hi" }], structuredContent: { now: 1, x: 1 } },
    };
    const b = {
      result: {
        structuredContent: { x: 2, now: 2 },
        content: [
          { text: "HI", type: "text" },
          { type: "text", text: "more" },
        ],
      },
    };
    expect(diffJson(a, b)).toEqual([
      { path: "result.content[0].text", kind: "changed", before: "hi", after: "HI" },
      { path: "result.content[1]", kind: "added", after: { type: "text", text: "more" } },
      { path: "result.structuredContent.now", kind: "changed", before: 1, after: 2 },
      { path: "result.structuredContent.x", kind: "changed", before: 1, after: 2 },
    ]);
    const ignore = parsePathPatterns(["result.content", "**.now"]);
    expect(diffJson(a, b, ignore)).toEqual([
      { path: "result.structuredContent.x", kind: "changed", before: 1, after: 2 },
    ]);
    expect(diffJson({ error: { code: 1 } }, { result: {} }).map((c) => c.kind)).toEqual([
      "removed",
      "added",
    ]);
    expect(diffJson({ a: [1, 2] }, { a: [1, 2] })).toEqual([]);
  });
});

const rec = (over: Partial<RequestRecord> = {}): RequestRecord => ({
  v: 1,
  requestId: "r1",
  pool: "example",
  workerId: "w",
  method: "tools/call",
  targetKind: "tool",
  target: "echo",
  session: "s1",
  principal: "anonymous",
  protocolVersion: "2025-11-25",
  edge: "e",
  receivedAt: Date.parse("2026-01-01T00:00:00Z"),
  deadline: 0,
  startedAt: Date.parse("2026-01-01T00:00:00Z"),
  durationMs: 1,
  outcome: "ok",
  replayable: true,
  request: {
    jsonrpc: "2.0",
    id: 1,
    method: "tools/call",
    params: { name: "echo", arguments: { text: "a" } },
  },
  response: { result: { content: [] } },
  ...over,
});

describe("selection", () => {
  it("parses relative and ISO times", () => {
    expect(parseTimeArg("15m", 1_000_000)).toBe(1_000_000 - 900_000);
    expect(parseTimeArg("2h", 10_000_000)).toBe(10_000_000 - 7_200_000);
    expect(parseTimeArg("2026-01-01T00:00:00Z")).toBe(Date.parse("2026-01-01T00:00:00Z"));
    expect(() => parseTimeArg("yesterday")).toThrow(/invalid time/);
  });

  it("narrows the filter subject and matches per record", () => {
    const sel = resolveSelection({ method: "tools/call", name: "my.tool", pool: "p1" });
    expect(selectionFilterSubject(sel)).toBe("mcpq.rec.p1.tool.my~2etool");
    expect(selectionFilterSubject(resolveSelection({}))).toBe("mcpq.rec.*.*.*");
    expect(() => resolveSelection({ method: "tools/list" })).toThrow(/never recorded/);
    const s = resolveSelection({
      since: "2025-12-31T00:00:00Z",
      until: "2026-01-02T00:00:00Z",
      session: "s1",
    });
    expect(matchesSelection(rec(), s)).toBe(true);
    expect(matchesSelection(rec({ session: "s2" }), s)).toBe(false);
    expect(matchesSelection(rec({ receivedAt: Date.parse("2026-02-01T00:00:00Z") }), s)).toBe(
      false,
    );
    expect(matchesSelection(rec({ session: "replay-abc" }), resolveSelection({}))).toBe(false);
    const errs = resolveSelection({ errorsOnly: true });
    expect(matchesSelection(rec(), errs)).toBe(false);
    expect(
      matchesSelection(rec({ response: { result: { content: [], isError: true } } }), errs),
    ).toBe(true);
    expect(
      matchesSelection(rec({ response: { error: { code: -32602, message: "x" } } }), errs),
    ).toBe(true);
    expect(matchesSelection(rec(), resolveSelection({ requestIds: ["r2"] }))).toBe(false);
  });

  it("parses --against and round-trips fixtures", () => {
    expect(parseAgainst("candidate")).toBe("candidate");
    expect(parseAgainst("mcpq.req.candidate")).toBe("candidate");
    expect(parseAgainst("mcpq.req.candidate.>")).toBe("candidate");
    expect(() => parseAgainst("mcpq.out.x")).toThrow(/expected a pool/);
    const text = formatFixtures([rec(), rec({ requestId: "r2" })]);
    expect(parseFixtures(`// comment\n${text}\n`).map((r) => r.requestId)).toEqual(["r1", "r2"]);
    expect(() => parseFixtures('{"v":1}', "f.jsonl")).toThrow(/f.jsonl:1: not a record/);
  });
});

describe("diffResponses", () => {
  const inputRequired = (state: string | undefined, message = "Your name?") => ({
    result: {
      resultType: "input_required",
      inputRequests: { name: { method: "elicitation/create", params: { message } } },
      ...(state === undefined ? {} : { requestState: state }),
    },
  });

  it("compares an MRTR requestState by presence: sealed afresh per answer, never equal", () => {
    expect(diffResponses(inputRequired("sealed-A"), inputRequired("sealed-B"))).toEqual([]);
    expect(diffResponses(inputRequired("sealed-A"), inputRequired(undefined))).toEqual([
      { path: "result.requestState", kind: "removed", before: "<sealed requestState>" },
    ]);
    expect(
      diffResponses(inputRequired("sealed-A"), inputRequired("sealed-B", "Your email?")),
    ).toEqual([
      {
        path: "result.inputRequests.name.params.message",
        kind: "changed",
        before: "Your name?",
        after: "Your email?",
      },
    ]);
  });
});
