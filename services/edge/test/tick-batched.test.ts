import { PassThrough } from "node:stream";
import { describe, expect, it } from "vitest";
import { tickBatched } from "../src/transports/socket-common.js";

describe("tickBatched", () => {
  it("writes made during one tick reach the socket as one chunk, in order; the next tick starts a new one", async () => {
    const socket = new PassThrough();
    const chunks: string[] = [];
    // what the socket hands to the OS: one _writev per uncorked batch
    socket._writev = (batch, cb) => {
      chunks.push(batch.map((b) => String(b.chunk)).join(""));
      cb();
    };
    const write = tickBatched(socket, (t) => void socket.write(t));
    write("a\n");
    write("b\n");
    await Promise.resolve().then(() => write("c\n")); // a microtask of the same tick
    expect(chunks).toEqual([]); // still corked
    await new Promise((r) => setImmediate(r));
    expect(chunks).toEqual(["a\nb\nc\n"]);
    write("d\n");
    write("e\n");
    await new Promise((r) => setImmediate(r));
    expect(chunks).toEqual(["a\nb\nc\n", "d\ne\n"]);
    expect(socket.writableCorked).toBe(0);
  });
});
