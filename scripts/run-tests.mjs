#!/usr/bin/env node
// Runs the compiled test files (dist/test/**/*.test.js) with node's test runner.
// Arguments narrow the run: `npm run test:file -- queue` runs files whose path contains "queue".
import { readdirSync, statSync, existsSync } from 'node:fs';
import { join, relative } from 'node:path';
import { spawn } from 'node:child_process';

const root = new URL('..', import.meta.url).pathname;
const testDir = join(root, 'dist', 'test');
if (!existsSync(testDir)) {
  console.error('run-tests: dist/test is missing; run `npm run build` first');
  process.exit(1);
}
const files = [];
(function walk(dir) {
  for (const name of readdirSync(dir).sort()) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) walk(path);
    else if (name.endsWith('.test.js')) files.push(path);
  }
})(testDir);
const filters = process.argv.slice(2);
const selected = filters.length ? files.filter((f) => filters.some((s) => relative(root, f).includes(s))) : files;
if (selected.length === 0) {
  console.error(`run-tests: no test file matches ${filters.join(' ')}`);
  process.exit(1);
}
// Instances the tests start run as the user who runs the tests, also as root (the service user
// is root then); test/integration/common-service-user.test.ts starts them as root with the service user.
const env = { ...process.env, TSUBAME_SERVER_USER: process.env.TSUBAME_SERVER_USER ?? 'root' };
const child = spawn(process.execPath, ['--test', '--test-reporter=spec', ...selected], { stdio: 'inherit', cwd: root, env });
child.on('exit', (code, signal) => process.exit(code ?? (signal ? 1 : 0)));
