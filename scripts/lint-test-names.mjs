#!/usr/bin/env node
// `npm run lint:test-names`: the tests mirror src/ (docs/ARCHITECTURE.md, "Layers"): every test
// file of test/unit and test/integration is named after the part it tests, its name being a folder
// of src/ or starting with one and a dash (`queue-store.test.ts`, `farm.test.ts`). The parts are
// read from src/ itself, so a new folder brings its prefix with it. test/reliability is left out:
// its tests are named after the failure they provoke (fuzz, crash, disk full), across parts.
// One line per file that breaks the rule, and the run fails.
import { readdirSync } from 'node:fs';
import { join } from 'node:path';

const root = new URL('..', import.meta.url).pathname;
// Shorter prefixes a part goes by, where its folder name is long or says less than the short one.
const aliases = { 'smtp-server': ['smtp'] };
// Files whose rename waits for work in progress on them elsewhere; empty this list, not extend it.
const allowed = new Set([]);

const parts = readdirSync(join(root, 'src'), { withFileTypes: true })
  .filter((entry) => entry.isDirectory())
  .map((entry) => entry.name);
const prefixes = parts.flatMap((part) => [part, ...(aliases[part] ?? [])]);

const named = (stem) => prefixes.some((prefix) => stem === prefix || stem.startsWith(`${prefix}-`));
const problems = [];
for (const dir of ['test/unit', 'test/integration']) {
  for (const name of readdirSync(join(root, dir)).sort()) {
    if (!name.endsWith('.test.ts')) continue;
    const path = `${dir}/${name}`;
    const ok = named(name.slice(0, -'.test.ts'.length));
    if (allowed.delete(path)) {
      if (ok) problems.push(`${path}: named after a part now; take it off the allow-list in scripts/lint-test-names.mjs`);
    } else if (!ok) problems.push(`${path}: not named after a part of src/`);
  }
}
// An entry left for a file that is gone would let that name come back unchecked.
for (const path of allowed) problems.push(`${path}: on the allow-list of scripts/lint-test-names.mjs but not found`);
for (const problem of problems) console.log(problem);
if (problems.length) console.log(`lint-test-names: a test's name is a folder of src/ or starts with one and a dash: ${prefixes.join(', ')}`);
process.exit(problems.length ? 1 : 0);
