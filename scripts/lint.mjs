#!/usr/bin/env node
// `npm run lint`: the project's habits checked by the tools made for them, each run even when
// another fails, and the run fails when any does (`npm test` runs it first, so CI does):
//   lint:eslint  ESLint with typescript-eslint's type-checked rules (eslint.config.js)
//   lint:layers  dependency-cruiser: the layering of docs/ARCHITECTURE.md, no cycles (.dependency-cruiser.cjs)
//   lint:unused  knip: unused files, exports and dependencies (knip.json)
//   lint:test-names  every test file named after the part of src/ it tests (lint-test-names.mjs)
import { spawnSync } from 'node:child_process';

const root = new URL('..', import.meta.url).pathname;
const npm = process.env.npm_execpath ? [process.execPath, process.env.npm_execpath] : ['npm'];
let failed = 0;
for (const step of ['lint:eslint', 'lint:layers', 'lint:unused', 'lint:test-names']) {
  const started = Date.now();
  const run = spawnSync(npm[0], [...npm.slice(1), 'run', '--silent', step], { cwd: root, stdio: 'inherit' });
  const seconds = ((Date.now() - started) / 1000).toFixed(1);
  const ok = run.status === 0;
  if (!ok) failed++;
  console.log(`lint: ${step} ${ok ? 'passed' : run.error ? `could not run (${run.error.message})` : 'found problems'} (${seconds} s)`);
}
process.exit(failed ? 1 : 0);
