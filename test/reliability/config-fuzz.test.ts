// Configuration fuzz: thousands of random edits of the shipped etc/ files (lines deleted,
// duplicated, swapped, characters flipped, garbage and random keywords inserted, numbers cut,
// files truncated, line ends changed) go through the loader in this process, and ~50 through
// `bin/imsimta cnbuild` as an operator runs it. Nothing may throw, every diagnostic must point at a
// real file:line, and the command must answer with one-line diagnostics and exit 0 or 1.
// Reproduce a run with FUZZ_SEED=<seed> (printed on failure).
// Live reload fuzz (a running instance keeps its last good configuration): reload-fuzz.test.ts.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync, rmSync, mkdirSync, existsSync, statSync, cpSync } from 'node:fs';
import { join } from 'node:path';
import { makeInstance, runCli, type TestInstance } from '../helpers/instance.js';
import { loadInstanceConfig } from '../../src/config/load.js';
import { formatDiagnostic, type Diagnostic } from '../../src/config/types.js';
import { Prng, fuzzSeed } from './helpers.js';
import { CONFIG_FILES as FILES, mutateConfig, type ConfigFile, type ConfigTexts } from './config-mutations.js';

const IN_PROCESS_RUNS = 4000;
const IN_PROCESS_BUDGET_MS = 20_000;
const CLI_RUNS = 50;
const SLOW_LOAD_MS = 2000;

const seed = fuzzSeed();
let inst: TestInstance;
let shipped: ConfigTexts;

before(() => {
  inst = makeInstance({ shipped: true });
  shipped = Object.fromEntries(FILES.map((f) => [f, readFileSync(join(inst.root, 'etc', f), 'utf8')])) as ConfigTexts;
});
after(() => inst?.remove());

/** Lines of a file as the parsers count them (physical lines split on LF). */
function lineCount(path: string): number | null {
  try {
    if (!statSync(path).isFile()) return 0;
    return readFileSync(path, 'latin1').split('\n').length;
  } catch {
    return null;
  }
}

/** What is wrong with one diagnostic, or null. */
function diagnosticProblem(d: Diagnostic): string | null {
  if (typeof d.file !== 'string' || d.file === '') return `no file: ${JSON.stringify(d)}`;
  if (!Number.isInteger(d.line) || d.line < 0) return `bad line ${d.line}: ${JSON.stringify(d)}`;
  if (d.severity !== 'error' && d.severity !== 'warning') return `bad severity: ${JSON.stringify(d)}`;
  if (typeof d.message !== 'string' || d.message.trim() === '') return `no message: ${JSON.stringify(d)}`;
  // what the operator sees: one line, nothing that moves the cursor or starts an escape sequence
  if (/[\x00-\x08\x0a-\x1f\x7f]/.test(formatDiagnostic(d))) return `control characters in ${JSON.stringify(formatDiagnostic(d))}`;
  if (d.line > 0) {
    const lines = lineCount(d.file);
    if (lines === null) return `line ${d.line} in a file that does not exist: ${JSON.stringify(d)}`;
    if (d.line > lines) return `line ${d.line} past the end (${lines} lines): ${JSON.stringify(d)}`;
  }
  return null;
}

/** Loads the instance; returns a problem (thrown error, bad diagnostic, slow load, inconsistent result) or null. */
function checkLoad(root: string): { problem: string | null; ok: boolean; ms: number } {
  const started = performance.now();
  let result: ReturnType<typeof loadInstanceConfig>;
  try {
    result = loadInstanceConfig(root);
  } catch (err) {
    return { problem: `threw ${(err as Error).stack ?? String(err)}`, ok: false, ms: performance.now() - started };
  }
  const ms = performance.now() - started;
  const errors = result.diagnostics.filter((d) => d.severity === 'error');
  if ((result.config === null) !== errors.length > 0) return { problem: `config ${result.config ? 'given' : 'null'} with ${errors.length} errors`, ok: false, ms };
  for (const d of result.diagnostics) {
    const p = diagnosticProblem(d);
    if (p) return { problem: p, ok: false, ms };
  }
  if (ms > SLOW_LOAD_MS) return { problem: `load took ${ms.toFixed(0)} ms`, ok: result.config !== null, ms };
  return { problem: null, ok: result.config !== null, ms };
}

/** Writes 1–3 random edits of one or two files into `root`/etc (from the shipped text). */
function mutateInstance(root: string, rng: Prng): { what: string[]; files: readonly ConfigFile[] } {
  const m = mutateConfig(shipped, rng);
  for (const f of m.files) writeFileSync(join(root, 'etc', f), m.texts[f]!, 'latin1');
  return { what: m.what, files: m.files };
}

function restore(root: string, files: readonly ConfigFile[] = FILES): void {
  for (const f of files) writeFileSync(join(root, 'etc', f), shipped[f]);
}

test('the shipped etc/ loads without errors (the fuzz starts from a good configuration)', () => {
  const { config, diagnostics } = loadInstanceConfig(inst.root);
  assert.ok(config, diagnostics.map((d) => `${d.file}:${d.line}: ${d.message}`).join('\n'));
  assert.equal(diagnostics.filter((d) => d.severity === 'error').length, 0);
});

test(`up to ${IN_PROCESS_RUNS} random edits through loadInstanceConfig: no exception, every diagnostic at a real file:line`, (t) => {
  const rng = new Prng(seed);
  const failures: string[] = [];
  const started = performance.now();
  let runs = 0;
  let accepted = 0;
  let slowest = 0;
  for (; runs < IN_PROCESS_RUNS && performance.now() - started < IN_PROCESS_BUDGET_MS; runs++) {
    const { what, files } = mutateInstance(inst.root, rng);
    const r = checkLoad(inst.root);
    slowest = Math.max(slowest, r.ms);
    if (r.ok) accepted++;
    if (r.problem && failures.length < 5) failures.push(`run ${runs} [${what.join('; ')}]: ${r.problem}`);
    restore(inst.root, files);
  }
  t.diagnostic(`seed ${seed}: ${runs} runs in ${(performance.now() - started).toFixed(0)} ms, ${accepted} still valid, slowest load ${slowest.toFixed(1)} ms`);
  assert.deepEqual(failures, [], `FUZZ_SEED=${seed}`);
  // 4,000 on an idle machine; a machine busy with other work gets through fewer in the budget
  assert.ok(runs >= 500, `only ${runs} runs within the time budget (FUZZ_SEED=${seed})`);
  // the edits must actually break things most of the time, or the fuzz proves little
  assert.ok(accepted < runs * 0.9, `${accepted} of ${runs} edited configurations were still valid`);
});

test('whole-file damage: missing, empty, a directory, one huge line, binary noise — diagnostics, no exception', () => {
  const rng = new Prng(seed ^ 0x5a5a5a5a);
  const failures: string[] = [];
  for (const f of FILES) {
    const path = join(inst.root, 'etc', f);
    const damages: Array<[string, () => void]> = [
      ['missing', () => rmSync(path)],
      ['empty', () => writeFileSync(path, '')],
      ['a directory', () => {
        rmSync(path);
        mkdirSync(path);
      }],
      ['one 1 MB line', () => writeFileSync(path, 'x'.repeat(1 << 20))],
      ['binary noise', () => writeFileSync(path, Buffer.from(Array.from({ length: 4096 }, () => rng.int(256))))],
      ['includes itself', () => writeFileSync(path, `<${path}\n`)],
    ];
    for (const [name, damage] of damages) {
      damage();
      const r = checkLoad(inst.root);
      if (r.problem) failures.push(`${f} ${name}: ${r.problem}`);
      // imta.cnf is required: no usable configuration without it
      if (f === 'imta.cnf' && (name === 'missing' || name === 'a directory') && r.ok) failures.push(`${f} ${name}: accepted`);
      rmSync(path, { recursive: true, force: true });
      restore(inst.root);
    }
  }
  assert.deepEqual(failures, [], `FUZZ_SEED=${seed}`);
});

/** stderr lines cnbuild may print: diagnostics and the summary. */
const CNBUILD_LINE = /^(.+:\d+: (error|warning): .+|\d+ errors?, \d+ warnings?: configuration not usable)$/;

test(`${CLI_RUNS} edited configurations through bin/imsimta cnbuild: exit 0 or 1, one line per diagnostic, never a stack trace`, async (t) => {
  const rng = new Prng(seed ^ 0x1f1f1f1f);
  const cases = Array.from({ length: CLI_RUNS }, (_, i) => {
    const root = join(inst.root, `cli-${i}`);
    mkdirSync(root);
    cpSync(join(inst.root, 'etc'), join(root, 'etc'), { recursive: true });
    restore(root);
    const { what } = mutateInstance(root, rng);
    const expectOk = loadInstanceConfig(root).config !== null;
    return { root, what, expectOk };
  });
  const failures: string[] = [];
  const started = performance.now();
  let next = 0;
  // two at a time: the machine has two cores
  const worker = async () => {
    while (next < cases.length) {
      const c = cases[next++]!;
      const r = await runCli('imsimta', ['cnbuild', '--root', c.root], { timeoutMs: 20_000 });
      const stderrLines = r.stderr.split('\n').filter(Boolean);
      const bad = stderrLines.find((l) => !CNBUILD_LINE.test(l));
      const problem =
        r.code !== 0 && r.code !== 1 ? `exit ${r.code}`
        : (r.code === 0) !== c.expectOk ? `exit ${r.code} but the loader says ${c.expectOk ? 'valid' : 'invalid'}`
        : /^\s+at /m.test(r.stderr + r.stdout) ? 'stack trace'
        : bad !== undefined ? `unexpected stderr line ${JSON.stringify(bad)}`
        : r.code === 0 && !/^configuration OK: /.test(r.stdout) ? `no OK line: ${JSON.stringify(r.stdout)}`
        : null;
      if (problem) failures.push(`[${c.what.join('; ')}]: ${problem}\n${r.stderr.slice(0, 2000)}`);
    }
  };
  await Promise.all([worker(), worker()]);
  t.diagnostic(`seed ${seed}: ${cases.length} cnbuild runs in ${(performance.now() - started).toFixed(0)} ms, ${cases.filter((c) => c.expectOk).length} valid`);
  for (const c of cases) if (existsSync(c.root)) rmSync(c.root, { recursive: true, force: true });
  assert.deepEqual(failures, [], `FUZZ_SEED=${seed}`);
});
