import fc from "fast-check";

/** One generated input: the bytes to send and the generator class it came from. */
export interface FuzzInput {
  cls: "schema" | "batch" | "mutation" | "bomb" | "junk";
  text: string;
}

const METHODS = [
  "initialize",
  "ping",
  "tools/list",
  "tools/call",
  "resources/list",
  "resources/read",
  "resources/templates/list",
  "resources/subscribe",
  "resources/unsubscribe",
  "prompts/list",
  "prompts/get",
  "completion/complete",
  "logging/setLevel",
  "notifications/initialized",
  "notifications/cancelled",
  "notifications/progress",
  "notifications/roots/list_changed",
  "$/mcpq/resume",
  "$/mcpq/event",
] as const;

const shortString = fc.string({ maxLength: 40 });
const weirdString = fc.oneof(
  shortString,
  fc.string({ unit: "grapheme", maxLength: 60 }),
  fc.string({ unit: "binary", maxLength: 60 }),
  fc.constantFrom(
    "",
    " ",
    "\n",
    "\r\n",
    "\u0000",
    "..",
    "*",
    ">",
    "mcpq.req.>",
    "$JS.API.>",
    "a.b.c",
    "~7e",
    "echo\nx",
    "\ud800",
  ),
  fc.string({ minLength: 200, maxLength: 3000 }),
);
const id = fc.oneof(
  fc.integer(),
  shortString,
  fc.constant(null),
  fc.double(),
  fc.boolean(),
  fc.constant("mcpq-1"),
  fc.jsonValue({ maxDepth: 1 }),
);
const toolName = fc.oneof(fc.constantFrom("echo", "add", "nope", "echo ", "ECHO"), weirdString);
const uri = fc.oneof(
  fc.constantFrom(
    "mcpq://example/readme",
    "mcpq://example/items/1",
    "mcpq://example/items/",
    "file:///etc/passwd",
  ),
  fc.webUrl(),
  weirdString.map((s) => `mcpq://example/items/${s}`),
  weirdString,
);
const meta = fc.option(
  fc.record(
    {
      "io.mcpq/timeoutMs": fc.oneof(
        fc.integer({ min: -10, max: 3_000 }),
        shortString,
        fc.constant(null),
      ),
      "io.mcpq/deadline": fc.oneof(fc.integer(), fc.double(), shortString),
      progressToken: fc.oneof(fc.integer(), shortString),
      traceparent: weirdString,
    },
    { requiredKeys: [] },
  ),
  { nil: undefined },
);
const args = fc.oneof(
  fc.record({ text: fc.oneof(shortString, fc.jsonValue({ maxDepth: 1 })) }),
  fc.record({
    a: fc.oneof(fc.double(), fc.constantFrom(1e308, -1e308), fc.integer()),
    b: fc.oneof(fc.double(), fc.constantFrom(1e308), fc.integer()),
  }),
  fc.dictionary(shortString, fc.jsonValue({ maxDepth: 2 }), { maxKeys: 5 }),
  fc.jsonValue({ maxDepth: 2 }),
);

/** Params shaped for each method, then loosened: every field optional, any field any value sometimes. */
const params = fc.oneof(
  {
    weight: 4,
    arbitrary: fc.record({ name: toolName, arguments: args, _meta: meta }, { requiredKeys: [] }),
  },
  { weight: 2, arbitrary: fc.record({ uri, _meta: meta }, { requiredKeys: [] }) },
  {
    weight: 1,
    arbitrary: fc.record(
      {
        name: fc.oneof(fc.constant("greet"), weirdString),
        arguments: fc.dictionary(shortString, fc.jsonValue({ maxDepth: 1 }), { maxKeys: 3 }),
      },
      { requiredKeys: [] },
    ),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      ref: fc.oneof(
        fc.record({ type: fc.constant("ref/prompt"), name: weirdString }),
        fc.record({ type: fc.constant("ref/resource"), uri }),
        fc.jsonValue({ maxDepth: 1 }),
      ),
      argument: fc.oneof(
        fc.record({ name: shortString, value: shortString }),
        fc.jsonValue({ maxDepth: 1 }),
      ),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      level: fc.oneof(fc.constantFrom("debug", "info", "emergency"), shortString),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({ cursor: fc.oneof(shortString, fc.base64String({ maxLength: 40 })) }),
  },
  { weight: 1, arbitrary: fc.record({ requestId: id, reason: shortString }) },
  {
    weight: 1,
    arbitrary: fc.record(
      {
        sessionId: fc.oneof(shortString, fc.base64String({ minLength: 43, maxLength: 44 })),
        lastEventId: fc.oneof(shortString, fc.array(shortString, { maxLength: 3 })),
        authorization: shortString,
      },
      { requiredKeys: [] },
    ),
  },
  {
    weight: 1,
    arbitrary: fc.record(
      {
        protocolVersion: fc.oneof(
          fc.constantFrom("2025-11-25", "2024-11-05", "1999-01-01"),
          shortString,
        ),
        capabilities: fc.jsonValue({ maxDepth: 2 }),
        clientInfo: fc.jsonValue({ maxDepth: 1 }),
      },
      { requiredKeys: [] },
    ),
  },
  { weight: 1, arbitrary: fc.jsonValue({ maxDepth: 3 }) },
);

/** A JSON-RPC message over the MCP schemas: requests, notifications, responses, with fields dropped or wrong. */
const message = fc
  .record(
    {
      jsonrpc: fc.oneof(
        { weight: 8, arbitrary: fc.constant("2.0") },
        { weight: 1, arbitrary: fc.jsonValue({ maxDepth: 0 }) },
      ),
      id,
      method: fc.oneof(
        { weight: 6, arbitrary: fc.constantFrom(...METHODS) },
        { weight: 1, arbitrary: weirdString },
      ),
      params,
      result: fc.jsonValue({ maxDepth: 2 }),
      error: fc.oneof(
        fc.record({ code: fc.integer(), message: shortString }),
        fc.jsonValue({ maxDepth: 1 }),
      ),
    },
    { requiredKeys: ["jsonrpc"] },
  )
  .map((m) => {
    // Most generated messages are requests or notifications; a response sometimes.
    const out: Record<string, unknown> = { ...m };
    if ("method" in out && Math.abs(hash(JSON.stringify(out))) % 5 !== 0) {
      delete out["result"];
      delete out["error"];
    }
    return out;
  });

function hash(s: string): number {
  let h = 0;
  for (let i = 0; i < s.length; i++) h = (Math.imul(31, h) + s.charCodeAt(i)) | 0;
  return h;
}

/** Deterministic PRNG (mulberry32) for byte mutations. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const VALID = [
  '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"text":"hello"}}}',
  '{"jsonrpc":"2.0","id":"r","method":"resources/read","params":{"uri":"mcpq://example/items/7"}}',
  '{"jsonrpc":"2.0","id":2,"method":"tools/list","params":{}}',
  '{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":1}}',
  '{"jsonrpc":"2.0","id":3,"method":"prompts/get","params":{"name":"greet","arguments":{"name":"x"}}}',
];

/** Byte-level mutations of valid messages: flips, inserts, deletes, truncations, duplications. */
function mutate(rand: () => number): string {
  const bytes = [...Buffer.from(VALID[Math.floor(rand() * VALID.length)]!, "utf8")];
  const ops = 1 + Math.floor(rand() * 6);
  for (let i = 0; i < ops; i++) {
    const at = Math.floor(rand() * bytes.length);
    const op = Math.floor(rand() * 6);
    if (op === 0) bytes[at] = Math.floor(rand() * 256);
    else if (op === 1) bytes.splice(at, 0, Math.floor(rand() * 256));
    else if (op === 2) bytes.splice(at, 1);
    else if (op === 3) bytes.length = Math.max(0, at);
    else if (op === 4) bytes.splice(at, 0, ...bytes.slice(at, at + Math.floor(rand() * 40)));
    else
      bytes[at] = [0x22, 0x5c, 0x7b, 0x7d, 0x5b, 0x5d, 0x3a, 0x2c, 0x00][Math.floor(rand() * 9)]!;
  }
  // Socket frames are text: invalid UTF-8 arrives as replacement characters.
  return Buffer.from(bytes).toString("utf8");
}

/** Nesting bombs: arrays/objects 600 to 100,000 deep, closed or not, bare or inside a valid request. */
function bomb(rand: () => number): string {
  const depth = [600, 1_000, 10_000, 100_000][Math.floor(rand() * 4)]!;
  const kind = Math.floor(rand() * 5);
  const arr = `${"[".repeat(depth)}${"]".repeat(depth)}`;
  const obj = `${'{"a":'.repeat(depth)}1${"}".repeat(depth)}`;
  switch (kind) {
    case 0:
      return arr;
    case 1:
      return obj;
    case 2:
      return "[".repeat(depth);
    case 3:
      return `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"text":"x","deep":${arr}}}}`;
    default:
      return `{"jsonrpc":"2.0","id":"mcpq-1","result":${obj}}`;
  }
}

/**
 * `n` inputs from `seed`, deterministically: JSON-RPC/MCP messages from fast-check (some as
 * batches), byte mutations of valid messages, nesting bombs, and raw junk strings.
 */
export function fuzzInputs(n: number, seed: number): FuzzInput[] {
  const rand = prng(seed);
  const nSchema = Math.ceil(n * 0.55);
  const nBatch = Math.ceil(n * 0.05);
  const nMut = Math.ceil(n * 0.25);
  const nBomb = Math.max(1, Math.ceil(n * 0.02));
  const nJunk = Math.max(0, n - nSchema - nBatch - nMut - nBomb);
  const out: FuzzInput[] = [];
  for (const m of fc.sample(message, { numRuns: nSchema, seed }))
    out.push({ cls: "schema", text: JSON.stringify(m) });
  for (const b of fc.sample(fc.array(message, { minLength: 0, maxLength: 4 }), {
    numRuns: nBatch,
    seed: seed + 1,
  }))
    out.push({ cls: "batch", text: JSON.stringify(b) });
  for (let i = 0; i < nMut; i++) out.push({ cls: "mutation", text: mutate(rand) });
  for (let i = 0; i < nBomb; i++) out.push({ cls: "bomb", text: bomb(rand) });
  for (const j of fc.sample(weirdString, { numRuns: nJunk, seed: seed + 2 }))
    out.push({ cls: "junk", text: j });
  // Interleave the classes (deterministically) so every transport sees each kind.
  const shuffled = out
    .map((x, i) => ({ x, k: prng(seed + i)() }))
    .sort((a, b) => a.k - b.k)
    .map((e) => e.x);
  return shuffled.slice(0, n);
}

/**
 * `n` raw HTTP/1.1 requests to the edge's HTTP port: a valid POST /mcp with byte mutations over
 * its request line, headers and body (methods, paths, header names and values, lengths,
 * encodings), deterministically from `seed`.
 */
export function rawHttpInputs(n: number, seed: number, host: string): string[] {
  const rand = prng(seed);
  const body = VALID[0]!;
  const templates = [
    `POST /mcp HTTP/1.1\r\nHost: ${host}\r\nContent-Type: application/json\r\nAccept: application/json, text/event-stream\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n${body}`,
    `POST /mcp HTTP/1.1\r\nHost: ${host}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n${body.length.toString(16)}\r\n${body}\r\n0\r\n\r\n`,
    `GET /mcp HTTP/1.1\r\nHost: ${host}\r\nAccept: text/event-stream\r\nMcp-Session-Id: x\r\nConnection: close\r\n\r\n`,
    `DELETE /mcp HTTP/1.1\r\nHost: ${host}\r\nMcp-Session-Id: ${"A".repeat(43)}\r\nConnection: close\r\n\r\n`,
  ];
  const out: string[] = [];
  for (let i = 0; i < n; i++) {
    const bytes = [...Buffer.from(templates[Math.floor(rand() * templates.length)]!, "latin1")];
    const ops = 1 + Math.floor(rand() * 4);
    for (let k = 0; k < ops; k++) {
      const at = Math.floor(rand() * bytes.length);
      const op = Math.floor(rand() * 5);
      if (op === 0) bytes[at] = Math.floor(rand() * 256);
      else if (op === 1)
        bytes.splice(
          at,
          0,
          ...Buffer.from(
            [":", "\r\n", " ", "\u0000", "Host: x\r\n", "Content-Length: 99\r\n"][
              Math.floor(rand() * 6)
            ]!,
            "latin1",
          ),
        );
      else if (op === 2) bytes.splice(at, 1 + Math.floor(rand() * 8));
      else if (op === 3) bytes.splice(at, 0, ...bytes.slice(at, at + Math.floor(rand() * 30)));
      else bytes[at] = [0x0d, 0x0a, 0x3a, 0x20, 0x7b][Math.floor(rand() * 5)]!;
    }
    out.push(Buffer.from(bytes).toString("latin1"));
  }
  return out;
}

/** Text that gives away the edge's internals: a stack frame, a source path, a Node internal. */
export function leaksInternals(text: string): boolean {
  return /\bat [^\s()]+ \(|\bat (?:async )?[^\s]+:\d+:\d+|node:internal|\/src\/[^\s"]+\.[tj]s|node_modules|FST_ERR_/.test(
    text,
  );
}
