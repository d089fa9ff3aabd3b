import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: [
      "packages/*/test/**/*.test.ts",
      "services/*/test/**/*.test.ts",
      "infra/test/**/*.test.ts",
      "loadtests/test/**/*.test.ts",
    ],
    exclude: ["**/node_modules/**", "**/dist/**"],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // Each file gets its own nats-server; two cores, so keep file parallelism modest.
    maxWorkers: 3,
    reporters: ["default"],
  },
});
