// Lint rules that protect the runbooks' guarantees, not style: workflows stay deterministic
// (no Node built-ins, only types from activities) and no promise is left floating.
import tseslint from 'typescript-eslint';
import { builtinModules } from 'node:module';

const nodeBuiltins = [...builtinModules, ...builtinModules.map((name) => `node:${name}`)];

export default tseslint.config(
  { ignores: ['node_modules/**', '.tools/**', '.lifeboat/**', 'dist/**', 'test/fixtures/**'] },
  {
    files: ['**/*.ts'],
    extends: [tseslint.configs.base],
    languageOptions: { parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname } },
    rules: {
      '@typescript-eslint/no-floating-promises': [
        'error',
        // node:test runs what describe/test return itself.
        { allowForKnownSafeCalls: [{ from: 'package', package: 'node:test', name: ['describe', 'test', 'it', 'before', 'after', 'beforeEach', 'afterEach'] }] },
      ],
      '@typescript-eslint/no-misused-promises': ['error', { checksVoidReturn: false }],
      '@typescript-eslint/no-explicit-any': 'error',
    },
  },
  {
    // Every workflow-side file: the generic runbooks and each kind's half (workflows/kinds/), all
    // bundled into the deterministic sandbox. Paths are matched wherever the importing file sits.
    files: ['workflows/**/*.ts'],
    rules: {
      '@typescript-eslint/consistent-type-imports': 'error',
      '@typescript-eslint/no-restricted-imports': [
        'error',
        {
          paths: nodeBuiltins.map((name) => ({ name, message: 'Workflows are deterministic: do side effects in an activity.' })),
          patterns: [
            {
              regex: '^(\\.\\./)+activities/',
              allowTypeImports: true,
              message: 'Workflows import only types from activities/ (import type); activities run through the proxies of workflows/runbook.ts.',
            },
            {
              regex: '^(\\.\\./)+src/(?!backup-id\\.js$|repository/format\\.js$|notify/events\\.js$)',
              allowTypeImports: true,
              message: 'Workflows import only types from src/, or values from its pure, deterministic modules (backup-id.js, repository/format.js, notify/events.js).',
            },
          ],
        },
      ],
    },
  },
);
