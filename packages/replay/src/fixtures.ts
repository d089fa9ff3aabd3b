import { readFile, writeFile } from "node:fs/promises";
import { RecordSchema, type RequestRecord } from "@mcpq/bus";

/**
 * Fixture files are JSONL: one `RequestRecord` (the MCPQ_REC message body) per line, so an
 * export is exactly what was recorded, with its redactions. Blank lines and lines starting with
 * `//` are ignored (room for a comment in a committed fixture).
 */
export function parseFixtures(text: string, source = "fixtures"): RequestRecord[] {
  const out: RequestRecord[] = [];
  text.split("\n").forEach((line, i) => {
    const t = line.trim();
    if (!t || t.startsWith("//")) return;
    let raw: unknown;
    try {
      raw = JSON.parse(t);
    } catch (err) {
      throw new Error(
        `${source}:${i + 1}: not JSON (${err instanceof Error ? err.message : String(err)})`,
      );
    }
    const r = RecordSchema.safeParse(raw);
    if (!r.success)
      throw new Error(
        `${source}:${i + 1}: not a record: ${r.error.issues.map((x) => `${x.path.join(".")}: ${x.message}`).join("; ")}`,
      );
    out.push(r.data);
  });
  return out;
}

export async function readFixtures(path: string | URL): Promise<RequestRecord[]> {
  return parseFixtures(await readFile(path, "utf8"), String(path));
}

export function formatFixtures(records: readonly RequestRecord[]): string {
  return records.map((r) => JSON.stringify(r)).join("\n") + (records.length ? "\n" : "");
}

export async function writeFixtures(
  path: string | URL,
  records: readonly RequestRecord[],
): Promise<void> {
  await writeFile(path, formatFixtures(records), "utf8");
}
