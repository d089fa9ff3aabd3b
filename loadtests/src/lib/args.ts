/** Minimal argv parser: --flag, --key value, --key=value. */
export type Args = Record<string, string | boolean>;

export function parseArgs(argv: string[] = process.argv.slice(2)): {
  flags: Args;
  positional: string[];
} {
  const flags: Args = {};
  const positional: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (!a.startsWith("--")) {
      positional.push(a);
      continue;
    }
    const eq = a.indexOf("=");
    if (eq > 0) {
      flags[a.slice(2, eq)] = a.slice(eq + 1);
      continue;
    }
    const key = a.slice(2);
    const next = argv[i + 1];
    if (next !== undefined && !next.startsWith("--")) {
      flags[key] = next;
      i++;
    } else {
      flags[key] = true;
    }
  }
  return { flags, positional };
}

export function num(flags: Args, key: string, dflt: number): number {
  const v = flags[key];
  if (v === undefined || v === true || v === false) return dflt;
  const n = Number(v);
  if (!Number.isFinite(n)) throw new Error(`--${key} expects a number, got ${String(v)}`);
  return n;
}

export function str(flags: Args, key: string, dflt: string): string;
export function str(flags: Args, key: string, dflt?: undefined): string | undefined;
export function str(flags: Args, key: string, dflt?: string): string | undefined {
  const v = flags[key];
  if (typeof v === "string") return v;
  return dflt;
}

export function bool(flags: Args, key: string): boolean {
  const v = flags[key];
  return v === true || v === "true" || v === "1";
}

export function numList(flags: Args, key: string, dflt: number[]): number[] {
  const v = flags[key];
  if (typeof v !== "string") return dflt;
  return v.split(",").map((s) => {
    const n = Number(s.trim());
    if (!Number.isFinite(n)) throw new Error(`--${key}: bad number ${s}`);
    return n;
  });
}
