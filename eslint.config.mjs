/**
 * Lint and format rules, as in Effect's own repositories: eslint's and typescript-eslint's recommended sets, and the
 * formatter (dprint, run by @effect/eslint-plugin's `@effect/dprint` rule: 120 columns, no semicolons, double quotes).
 * Not type-aware (`tsc --noEmit` does the type checking), so a run stays within seconds.
 */
import * as effectEslint from "@effect/eslint-plugin"
import js from "@eslint/js"
import { defineConfig } from "eslint/config"
import tseslint from "typescript-eslint"

const nodeGlobals = {
  AbortController: "readonly",
  Buffer: "readonly",
  clearTimeout: "readonly",
  console: "readonly",
  process: "readonly",
  setTimeout: "readonly",
  URL: "readonly"
}

export default defineConfig(
  { ignores: ["dist/**", "node_modules/**", "mlruns/**", "**/*.md"] },
  js.configs.recommended,
  tseslint.configs.recommended,
  ...effectEslint.configs.dprint,
  {
    languageOptions: { ecmaVersion: 2022, sourceType: "module" },
    linterOptions: { reportUnusedDisableDirectives: "error" },
    rules: {
      "@effect/dprint": ["error", {
        config: {
          indentWidth: 2,
          lineWidth: 120,
          semiColons: "asi",
          quoteStyle: "alwaysDouble",
          trailingCommas: "never",
          operatorPosition: "maintain",
          "arrowFunction.useParentheses": "force"
        }
      }],
      // the checks of paths, names and terminal output look for control characters on purpose
      "no-control-regex": "off",
      "no-fallthrough": "off",
      "object-shorthand": "error",
      "prefer-rest-params": "off",
      "prefer-spread": "off",
      "require-yield": "off",
      "@typescript-eslint/array-type": ["error", { default: "generic", readonly: "generic" }],
      "@typescript-eslint/consistent-type-imports": "error",
      "@typescript-eslint/no-empty-object-type": "off",
      "@typescript-eslint/no-namespace": "off",
      "@typescript-eslint/no-unused-vars": ["error", { argsIgnorePattern: "^_", varsIgnorePattern: "^_" }],
      // bench/ is compiled by itself (tsconfig.bench.json) and references the declarations it shares with test/
      "@typescript-eslint/triple-slash-reference": ["error", { path: "always", types: "prefer-import", lib: "always" }]
    }
  },
  {
    // the library may be handed any number of runs or files: spreading them into arguments can overflow the stack
    files: ["src/**/*.ts"],
    rules: {
      "no-restricted-syntax": ["error", {
        selector: "CallExpression[callee.property.name='push'] > SpreadElement.arguments",
        message: "Do not use spread arguments in Array.push"
      }]
    }
  },
  {
    files: ["**/*.js", "**/*.mjs", "**/*.cjs"],
    languageOptions: { globals: { ...nodeGlobals, __filename: "readonly", require: "readonly" } }
  },
  {
    // injected into the CommonJS bundle of the command, where require is the way to load a module
    files: ["scripts/import-meta-url.js"],
    rules: { "@typescript-eslint/no-require-imports": "off" }
  }
)
