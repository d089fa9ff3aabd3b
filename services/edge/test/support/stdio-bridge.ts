import { spawn, type ChildProcess } from "node:child_process";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import type { Message } from "./socket-client.js";

/** The built CLI (`pnpm mcpq` runs the same file). */
export const CLI = fileURLToPath(new URL("../../../cli/dist/main.js", import.meta.url));

/** `mcpq stdio` as a child process, spoken to line by line like a stdio MCP client would. */
export class StdioPeer {
  readonly received: Message[] = [];
  readonly stderr: string[] = [];
  readonly proc: ChildProcess;
  readonly exited: Promise<number | null>;
  #pending = new Map<string, (m: Message) => void>();

  constructor(args: string[], env: Record<string, string> = {}) {
    this.proc = spawn(process.execPath, [CLI, "stdio", ...args], {
      stdio: ["pipe", "pipe", "pipe"],
      env: { ...process.env, ...env },
    });
    this.exited = new Promise((r) => this.proc.once("exit", (code) => r(code)));
    createInterface({ input: this.proc.stdout! }).on("line", (line) => {
      const m = JSON.parse(line) as Message;
      this.received.push(m);
      if (m.method === undefined && m.id !== undefined && m.id !== null) {
        const key = `${typeof m.id}:${m.id}`;
        this.#pending.get(key)?.(m);
        this.#pending.delete(key);
      }
    });
    createInterface({ input: this.proc.stderr! }).on("line", (line) => this.stderr.push(line));
  }

  send(msg: Record<string, unknown>): void {
    this.proc.stdin!.write(`${JSON.stringify({ jsonrpc: "2.0", ...msg })}\n`);
  }

  call(id: string | number, method: string, params?: Record<string, unknown>): Promise<Message> {
    const p = new Promise<Message>((resolve) => this.#pending.set(`${typeof id}:${id}`, resolve));
    this.send(params === undefined ? { id, method } : { id, method, params });
    return p;
  }

  async initialize(): Promise<Message> {
    const r = await this.call(0, "initialize", {
      protocolVersion: "2025-11-25",
      capabilities: {},
      clientInfo: { name: "stdio-test", version: "1" },
    });
    this.send({ method: "notifications/initialized" });
    return r;
  }

  progress(token: string | number): number[] {
    return this.received
      .filter((m) => m.method === "notifications/progress" && m.params?.["progressToken"] === token)
      .map((m) => m.params!["progress"] as number);
  }

  /** Closes stdin (the client went away) and waits for the bridge to exit. */
  async end(): Promise<number | null> {
    this.proc.stdin!.end();
    return this.exited;
  }

  kill(): void {
    this.proc.kill("SIGKILL");
  }
}
