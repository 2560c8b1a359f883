// `--help` (and `-h`) on every command and subcommand, and `imsimta help [COMMAND]`: the usage
// text on stdout, exit 0, nothing on stderr, nothing started and nothing read from stdin.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { makeInstance, runCli, type TestInstance } from '../helpers/instance.js';
import { IMSIMTA_SUBCOMMANDS } from '../../src/cli/usage.js';

const instances: TestInstance[] = [];
after(() => instances.forEach((i) => i.remove()));

function instance(): TestInstance {
  // A configuration that could start: --help must not start it.
  const inst = makeInstance({ shipped: true });
  instances.push(inst);
  return inst;
}

function assertHelp(r: { code: number | null; stdout: string; stderr: string }, usage: RegExp, what: string): void {
  assert.equal(r.code, 0, `${what}: exit ${r.code}\n${r.stderr}`);
  assert.equal(r.stderr, '', what);
  assert.match(r.stdout, usage, what);
}

test('start-msg --help and stop-msg -h print their usage, exit 0 and start nothing', async () => {
  const inst = instance();
  for (const args of [['--help'], ['-h'], ['dispatcher', '--help'], ['--foreground', '--help']]) {
    const r = await runCli('start-msg', [...args, '--root', inst.root]);
    assertHelp(r, /^usage: start-msg \[dispatcher\|job_controller\] \[--root DIR\] \[--foreground\]\n/, `start-msg ${args.join(' ')}`);
  }
  assertHelp(await runCli('stop-msg', ['-h', '--root', inst.root]), /^usage: stop-msg /, 'stop-msg -h');
  assert.deepEqual(existsSync(join(inst.root, 'run')) ? readdirSync(join(inst.root, 'run')) : [], [], 'nothing started');
});

test('imsimta --help, imsimta help: the list of commands; each subcommand --help and help COMMAND: its usage', async () => {
  const inst = instance();
  const list = /^usage: imsimta COMMAND /;
  assertHelp(await runCli('imsimta', ['--help']), list, 'imsimta --help');
  assertHelp(await runCli('imsimta', ['-h']), list, 'imsimta -h');
  const all = await runCli('imsimta', ['help']);
  assertHelp(all, list, 'imsimta help');
  for (const name of Object.keys(IMSIMTA_SUBCOMMANDS)) {
    assert.match(all.stdout, new RegExp(`^  ${name} `, 'm'), `imsimta help lists ${name}`);
    const usage = new RegExp(`^usage: imsimta ${name}\\b`);
    // submit would read a message on stdin: it must not wait for one.
    assertHelp(await runCli('imsimta', [name, '--help', '--root', inst.root], { timeoutMs: 10_000 }), usage, `imsimta ${name} --help`);
    assertHelp(await runCli('imsimta', ['help', name]), usage, `imsimta help ${name}`);
  }
  assertHelp(await runCli('imsimta', ['qm', 'directory', '-h', '--root', inst.root]), /^usage: imsimta qm /, 'imsimta qm directory -h');
  assert.deepEqual(existsSync(join(inst.root, 'run')) ? readdirSync(join(inst.root, 'run')) : [], [], 'nothing started');
});

test('imsimta help NOSUCH and a bare imsimta are usage errors (exit 2)', async () => {
  const r = await runCli('imsimta', ['help', 'nosuch']);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /^imsimta: unknown command "nosuch"\n/);
  const bare = await runCli('imsimta', []);
  assert.equal(bare.code, 2);
  assert.match(bare.stderr, /imsimta help/);
});
