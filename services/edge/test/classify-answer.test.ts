import { describe, expect, it } from "vitest";
import { classifyAnswer } from "../src/core/answer-outcome.js";

/** Pure-logic seam: how an answer's JSON is classified for the outcome label, without parsing results. */
describe("classifyAnswer", () => {
  it("tells results, tool errors, protocol errors and refusals apart", () => {
    expect(
      classifyAnswer(
        "tools/call",
        JSON.stringify({ jsonrpc: "2.0", id: 1, result: { content: [] } }),
      ),
    ).toEqual({ outcome: "ok" });
    expect(
      classifyAnswer(
        "tools/call",
        JSON.stringify({ jsonrpc: "2.0", id: 1, result: { content: [], isError: true } }),
      ),
    ).toEqual({ outcome: "tool_error" });
    expect(
      classifyAnswer(
        "tools/call",
        JSON.stringify({
          jsonrpc: "2.0",
          id: 1,
          error: { code: -32602, message: "Unknown tool: x" },
        }),
      ),
    ).toEqual({
      outcome: "error",
      code: -32602,
      message: "Unknown tool: x",
    });
    expect(
      classifyAnswer(
        "tools/call",
        JSON.stringify({ jsonrpc: "2.0", id: 1, error: { code: -32012, message: "unavailable" } }),
      ),
    ).toMatchObject({
      outcome: "rejected",
      code: -32012,
    });
  });

  it("is not fooled by the words inside results or ids", () => {
    const tricky = {
      jsonrpc: "2.0",
      id: '"error":',
      result: {
        content: [{ type: "text", text: '"error":{"code":1} "isError":true' }],
        structuredContent: { error: { code: 5 } },
      },
    };
    expect(classifyAnswer("tools/call", JSON.stringify(tricky))).toEqual({ outcome: "ok" });
    // A nested isError key that is not the result's own is parsed and found not to be one.
    const nested = {
      jsonrpc: "2.0",
      id: 2,
      result: { content: [], structuredContent: { isError: true } },
    };
    expect(classifyAnswer("tools/call", JSON.stringify(nested))).toEqual({ outcome: "ok" });
    // isError only matters for tools/call.
    expect(
      classifyAnswer(
        "prompts/get",
        JSON.stringify({ jsonrpc: "2.0", id: 3, result: { isError: true } }),
      ),
    ).toEqual({ outcome: "ok" });
    // Error data may hold a "result" key; the top-level member decides.
    const errWithResult = {
      jsonrpc: "2.0",
      id: 4,
      error: { code: -32603, message: "Internal error", data: { result: 1 } },
    };
    expect(classifyAnswer("tools/call", JSON.stringify(errWithResult))).toMatchObject({
      outcome: "error",
      code: -32603,
    });
  });
});
