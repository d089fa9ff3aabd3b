import { describe, expect, it } from "vitest";
import { REDACTED, RecordSchema, parsePathPatterns, type RequestEnvelope } from "@mcpq/bus";
import { parseSampleSpec, sampleRate, toRecord, type RecordEntry } from "../src/index.js";

const envelope: RequestEnvelope = {
  requestId: "req-1",
  session: "sess",
  principal: "alice",
  protocolVersion: "2025-11-25",
  deadline: 2_000,
  replyTo: "mcpq.out.sess.1",
  logLevel: undefined,
  targetKind: "tool",
  target: "login",
  edge: "edge-1",
  receivedAt: 1_000,
  traceparent: undefined,
};

const entry = (
  params: Record<string, unknown>,
  result: Record<string, unknown> = { content: [] },
): RecordEntry => ({
  envelope,
  request: { id: 7, method: "tools/call", params },
  response: { result },
  outcome: "ok",
  workerId: "w-1",
  pool: "p",
  startedAt: 1_010,
  durationMs: 5,
  replayable: true,
});

describe("recorder: sampling spec", () => {
  it("exact names beat wildcards, the longest wildcard wins, unmatched targets are recorded", () => {
    const rules = parseSampleSpec("*=0.5, echo=0.1, mcpq://example/*=0");
    expect(sampleRate(rules, "echo")).toBe(0.1);
    expect(sampleRate(rules, "add")).toBe(0.5);
    expect(sampleRate(rules, "mcpq://example/readme")).toBe(0);
    expect(sampleRate(parseSampleSpec(""), "x")).toBe(1);
    expect(() => parseSampleSpec("echo=2")).toThrow(/invalid sampling rule/);
    expect(() => parseSampleSpec("echo")).toThrow(/invalid sampling rule/);
  });
});

describe("recorder: toRecord", () => {
  it("masks listed params paths, response paths, authorization keys and bearer tokens; never mutates the entry", () => {
    const params = {
      name: "login",
      arguments: {
        user: "ada",
        password: "hunter2",
        headers: { Authorization: "Basic abc" },
        note: "use Bearer eyJhbGciOi.x-y_z",
      },
    };
    const e = entry(params, {
      content: [{ type: "text", text: "ok" }],
      structuredContent: { sessionToken: "tok-123" },
    });
    const r = toRecord(e, {
      redact: parsePathPatterns(["arguments.password", "result.structuredContent.sessionToken"]),
      notifications: false,
    });
    expect(RecordSchema.parse(r)).toEqual(r);
    const json = JSON.stringify(r);
    for (const secret of ["hunter2", "Basic abc", "eyJhbGciOi", "tok-123"])
      expect(json).not.toContain(secret);
    expect(r.request.params).toMatchObject({
      arguments: {
        user: "ada",
        password: REDACTED,
        headers: { Authorization: REDACTED },
        note: `use Bearer ${REDACTED}`,
      },
    });
    expect(r.redacted?.sort()).toEqual([
      "params.arguments.headers.Authorization",
      "params.arguments.note",
      "params.arguments.password",
      "response.result.structuredContent.sessionToken",
    ]);
    expect(params.arguments.password).toBe("hunter2");
    expect(r).toMatchObject({
      requestId: "req-1",
      pool: "p",
      workerId: "w-1",
      target: "login",
      principal: "alice",
      startedAt: 1_010,
      durationMs: 5,
      outcome: "ok",
    });
  });
});

describe("recorder: default secret redaction (issue 14 hole 8)", () => {
  it("masks common secret keys at any depth with no redact list configured, unless the target opted out", () => {
    const params = {
      name: "login",
      arguments: {
        user: "ada",
        password: "hunter2",
        nested: { api_key: "k-1", clientSecret: "s-1", "X-Api-Key": "k-2", Cookie: "c=1" },
        max_tokens: 5,
      },
    };
    const r = toRecord(
      entry(params, { content: [], structuredContent: { refresh_token: "rt-1" } }),
      { redact: [], notifications: false },
    );
    const text = JSON.stringify(r);
    for (const secret of ["hunter2", "k-1", "s-1", "k-2", "c=1", "rt-1"])
      expect(text).not.toContain(secret);
    expect(r.request.params).toMatchObject({
      arguments: { user: "ada", password: REDACTED, max_tokens: 5 },
    });
    expect(r.redacted).toEqual(
      expect.arrayContaining([
        "params.arguments.password",
        "response.result.structuredContent.refresh_token",
      ]),
    );
    // Opted out (a tool whose `token` argument is not a secret): kept; authorization still masked.
    const kept = toRecord(
      entry({ ...params, arguments: { ...params.arguments, authorization: "Basic x" } }),
      { redact: [], notifications: false, secrets: false },
    );
    expect(kept.request.params).toMatchObject({
      arguments: { password: "hunter2", authorization: REDACTED },
    });
  });
});
