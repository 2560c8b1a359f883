// ESLint: typescript-eslint's type-checked rules over src/, test/, bench/ and the scripts, run by
// `npm run lint` (so by `npm test`). A rule turned off or changed here says why in one line.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['dist/', 'node_modules/', 'test-artifacts/', 'log/', 'queue/', 'run/'] },
  js.configs.recommended,
  tseslint.configs.recommendedTypeChecked,
  tseslint.configs.stylisticTypeChecked,
  {
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    linterOptions: { reportUnusedDisableDirectives: 'error' },
    rules: {
      // node:test's test() and describe() return promises the runner itself awaits.
      '@typescript-eslint/no-floating-promises': ['error', { allowForKnownSafeCalls: [{ from: 'package', package: 'node:test', name: ['test', 'it', 'describe', 'suite'] }] }],
      // An MTA looks for control characters in wire data on purpose (NUL, bare CR, 8-bit checks).
      'no-control-regex': 'off',
      // The code's convention: T[] for a simple element type, Array<…> for a union or an object type.
      '@typescript-eslint/array-type': ['error', { default: 'array-simple' }],
      // No-ops are deliberate here: best-effort cleanup (.catch(() => {})), listeners that keep an 'error' event from throwing, null objects.
      '@typescript-eslint/no-empty-function': 'off',
      // An empty string or false falls back on purpose (an option set to nothing is unset): `x || fallback` stays for them.
      '@typescript-eslint/prefer-nullish-coalescing': ['error', { ignorePrimitives: { string: true, boolean: true }, ignoreBooleanCoercion: true }],
      // async marks functions that implement a Promise-returning interface (channel jobs, directories, command mains): a throw must become a rejection.
      '@typescript-eslint/require-await': 'off',
      // A rejection passes on what a callee threw, as it was (only-throw-error allows the same).
      '@typescript-eslint/prefer-promise-reject-errors': ['error', { allowThrowingUnknown: true }],
      // A leading _ marks a parameter or a destructured field left out on purpose.
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_', ignoreRestSiblings: true }],
      // Records of parsed fields are read alike in brackets, names with dashes or not (r['status'], r['final-recipient']).
      '@typescript-eslint/dot-notation': ['error', { allowIndexSignaturePropertyAccess: true }],
    },
  },
  {
    files: ['test/**/*.ts'],
    rules: {
      // Tests assert on the fields of the JSON a command printed (JSON.parse is any): the assertion is the check.
      '@typescript-eslint/no-unsafe-member-access': 'off',
      '@typescript-eslint/no-unsafe-argument': 'off',
      '@typescript-eslint/no-unsafe-assignment': 'off',
      '@typescript-eslint/no-explicit-any': 'off',
      // A test's assertions stay as written: their regular expressions and bracket reads are not rewritten for style.
      '@typescript-eslint/prefer-includes': 'off',
      '@typescript-eslint/prefer-string-starts-ends-with': 'off',
      '@typescript-eslint/prefer-regexp-exec': 'off',
      '@typescript-eslint/dot-notation': 'off',
      '@typescript-eslint/prefer-optional-chain': 'off',
      // Tests keep a method itself on purpose: to restore a patched prototype, to check which handler is installed.
      '@typescript-eslint/unbound-method': 'off',
      // An assertion's message shows the arrays and buffers it is about as JavaScript prints them.
      '@typescript-eslint/restrict-template-expressions': 'off',
    },
  },
  {
    // The ETRN benchmark's report prints a result gathered from logs and status replies (untyped JSON).
    files: ['bench/etrn.ts'],
    rules: {
      '@typescript-eslint/no-explicit-any': 'off',
      '@typescript-eslint/no-unsafe-member-access': 'off',
      '@typescript-eslint/no-unsafe-assignment': 'off',
      '@typescript-eslint/no-unsafe-call': 'off',
    },
  },
  {
    // The plain JavaScript of scripts/ and the tools' configurations: no types to check, Node's globals.
    files: ['**/*.js', '**/*.mjs', '**/*.cjs'],
    extends: [tseslint.configs.disableTypeChecked],
    languageOptions: {
      globals: { process: 'readonly', console: 'readonly', URL: 'readonly', module: 'writable', require: 'readonly' },
    },
  },
);
