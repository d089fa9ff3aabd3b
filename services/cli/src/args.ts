import { parseArgs, type ParseArgsConfig } from "node:util";

/**
 * A mistake in how the command was called (a bad flag or value): `mcpq` prints the message and
 * the command's usage and exits 2, with no stack trace.
 */
export class UsageError extends Error {
  override readonly name = "UsageError";
  constructor(
    message: string,
    readonly usage?: string,
  ) {
    super(message);
  }
}

type Options = NonNullable<ParseArgsConfig["options"]>;

/**
 * `parseArgs` for one command with `--help`/`-h` added: returns undefined after printing `usage`
 * on stdout when help was asked for; an unknown or malformed flag becomes a UsageError naming it.
 */
export function parseFlags<const O extends Options>(
  argv: string[],
  options: O,
  usage: string,
): FlagValues<O> | undefined {
  let values: Record<string, unknown>;
  try {
    values = parseArgs({
      args: argv,
      options: { ...options, help: { type: "boolean", short: "h" } },
      allowPositionals: false,
      strict: true,
    }).values;
  } catch (err) {
    throw new UsageError(err instanceof Error ? err.message : String(err), usage);
  }
  if (values["help"] === true) {
    console.log(usage);
    return undefined;
  }
  return values as FlagValues<O>;
}

/** The values `parseArgs` returns for `options` (absent flags are undefined). */
export type FlagValues<O extends Options> = {
  [K in keyof O]?: O[K] extends { type: "boolean" }
    ? O[K] extends { multiple: true }
      ? boolean[]
      : boolean
    : O[K] extends { multiple: true }
      ? string[]
      : string;
};

/** `--flag N` as a TCP port (0-65535, 0 = random); anything else is a UsageError naming the flag. */
export function portFlag(flag: string, value: string): number {
  const n = Number(value);
  if (value.trim() === "" || !Number.isInteger(n) || n < 0 || n > 65_535)
    throw new UsageError(`${flag} must be a port number 0-65535, not ${JSON.stringify(value)}`);
  return n;
}

/** `--catalog a,b` as a list of names; an empty list is a UsageError. */
export function listFlag(flag: string, value: string): string[] {
  const names = value
    .split(",")
    .map((s) => s.trim())
    .filter(Boolean);
  if (names.length === 0)
    throw new UsageError(`${flag} needs at least one name, not ${JSON.stringify(value)}`);
  return names;
}

const NATS_CONNECT_CODES = new Set([
  "ENOTFOUND",
  "EAI_AGAIN",
  "ECONNREFUSED",
  "ECONNRESET",
  "ETIMEDOUT",
  "EHOSTUNREACH",
  "ENETUNREACH",
]);

/**
 * Rewrites an error thrown while a service boots so it names the setting at fault: a failed NATS
 * connect names MCPQ_NATS_URL and its value, a taken or forbidden port names the flag or variable
 * that chose it (`ports`: port number -> setting). Other errors pass through unchanged.
 */
export function explainBootError(
  err: unknown,
  ctx: { natsUrl: string; ports?: Record<number, string> },
): unknown {
  if (!(err instanceof Error)) return err;
  const code =
    (err as { code?: unknown }).code ?? (err.cause as { code?: unknown } | undefined)?.code;
  if (err.name === "ConnectionError" || (typeof code === "string" && NATS_CONNECT_CODES.has(code)))
    return new Error(
      `cannot connect to NATS at MCPQ_NATS_URL=${JSON.stringify(ctx.natsUrl)}: ${err.message}`,
      { cause: err },
    );
  const inUse =
    code === "EADDRINUSE" ||
    code === "EACCES" ||
    /EADDRINUSE|address already in use/i.test(err.message);
  if (inUse && ctx.ports) {
    const port =
      (err as { port?: unknown }).port ?? Number(/:(\d+)\b(?!.*:\d)/.exec(err.message)?.[1]);
    const setting = typeof port === "number" ? ctx.ports[port] : undefined;
    const hint = setting
      ? `port ${port} is ${setting}; choose a free one`
      : `choose free ports (${[...new Set(Object.values(ctx.ports))].join(", ")})`;
    return new Error(`${err.message} (${hint})`, { cause: err });
  }
  return err;
}
