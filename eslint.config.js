// @ts-check
// Flat ESLint config for the mcpq monorepo. `pnpm lint` runs `eslint .` from the root.
import js from "@eslint/js";
import { createTypeScriptImportResolver } from "eslint-import-resolver-typescript";
import { importX } from "eslint-plugin-import-x";
import tseslint from "typescript-eslint";

/** Deep imports into another workspace package are forbidden: import its public entry. */
const noDeepImports = [
  "error",
  {
    patterns: [
      {
        group: ["@mcpq/*/src", "@mcpq/*/src/*", "@mcpq/*/dist", "@mcpq/*/dist/*"],
        message: "Import the package entry (@mcpq/<pkg>), not its src/ or dist/ files.",
      },
      {
        group: [
          "../../packages/*",
          "../../services/*",
          "../../../packages/*",
          "../../../services/*",
          "../../../../packages/*",
          "../../../../services/*",
        ],
        message:
          "Do not reach into another workspace package by relative path; import @mcpq/<pkg>.",
      },
      {
        // e.g. packages/bus/src/x.ts -> ../../protocol/src/y.js
        regex:
          "^(\\.\\./){2,}(protocol|bus|worker-sdk|testkit|observability|edge|worker|cli)/(src|dist)(/|$)",
        message:
          "Do not reach into another workspace package by relative path; import @mcpq/<pkg>.",
      },
    ],
  },
];

export default tseslint.config(
  {
    ignores: [
      "**/dist/**",
      "**/node_modules/**",
      ".mcpq/**",
      ".conformance/**",
      "coverage/**",
      "loadtests/results/**",
      "**/*.d.ts",
    ],
  },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    files: ["**/*.{ts,mts,cts,js,mjs,cjs}"],
    plugins: { "import-x": importX },
    languageOptions: {
      ecmaVersion: 2023,
      sourceType: "module",
      globals: {
        // Node 20+ globals used across the repo (avoids a dependency on the `globals` package)
        process: "readonly",
        console: "readonly",
        Buffer: "readonly",
        URL: "readonly",
        URLSearchParams: "readonly",
        AbortController: "readonly",
        AbortSignal: "readonly",
        TextEncoder: "readonly",
        TextDecoder: "readonly",
        fetch: "readonly",
        Headers: "readonly",
        Request: "readonly",
        Response: "readonly",
        setTimeout: "readonly",
        clearTimeout: "readonly",
        setInterval: "readonly",
        clearInterval: "readonly",
        setImmediate: "readonly",
        clearImmediate: "readonly",
        queueMicrotask: "readonly",
        structuredClone: "readonly",
        performance: "readonly",
        crypto: "readonly",
        globalThis: "readonly",
      },
    },
    settings: {
      // Let import-x parse .ts dependencies (needed for no-cycle to follow imports).
      "import-x/extensions": [".ts", ".tsx", ".cts", ".mts", ".js", ".jsx", ".cjs", ".mjs"],
      "import-x/external-module-folders": ["node_modules", "node_modules/@types"],
      "import-x/parsers": { "@typescript-eslint/parser": [".ts", ".tsx", ".cts", ".mts"] },
      // Resolves NodeNext-style "./x.js" specifiers to ./x.ts, and @mcpq/* via workspace links.
      "import-x/resolver-next": [
        createTypeScriptImportResolver({
          alwaysTryTypes: true,
          project: [
            "packages/*/tsconfig.json",
            "services/*/tsconfig.json",
            "loadtests/tsconfig.json",
          ],
          noWarnOnMultipleProjects: true,
        }),
      ],
    },
    rules: {
      "import-x/no-cycle": ["error", { ignoreExternal: true }],
      "import-x/no-self-import": "error",
      "no-restricted-imports": noDeepImports,
      "@typescript-eslint/no-unused-vars": [
        "error",
        { argsIgnorePattern: "^_", varsIgnorePattern: "^_", caughtErrorsIgnorePattern: "^_" },
      ],
    },
  },
  {
    // Libraries log through @mcpq/observability, never console.
    files: ["packages/*/src/**/*.{ts,mts,cts,js,mjs}"],
    rules: { "no-console": "error" },
  },
  {
    // Plain JS/ESM scripts and configs (this file, scripts/*.mjs, ...).
    files: ["**/*.{js,mjs,cjs}"],
    rules: { "@typescript-eslint/no-require-imports": "off" },
  },
);
