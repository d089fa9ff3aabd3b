import type { CatalogDefinition } from "@mcpq/worker-sdk";
import { benchCatalog } from "./bench.js";
import { conformanceCatalog } from "./conformance.js";
import { exampleCatalog } from "./example.js";

/** Catalogs a worker process can serve, by name (`--catalog a,b` / MCPQ_CATALOGS). */
export const CATALOGS: Readonly<Record<string, CatalogDefinition>> = Object.freeze({
  example: exampleCatalog,
  conformance: conformanceCatalog,
  bench: benchCatalog,
});

export function resolveCatalogs(names: readonly string[]): CatalogDefinition[] {
  return names.map((n) => {
    const c = CATALOGS[n];
    if (!c)
      throw new Error(
        `unknown catalog ${JSON.stringify(n)}; known: ${Object.keys(CATALOGS).join(", ")}`,
      );
    return c;
  });
}
