// Runs the examples of docs/OPERATIONS.md on a temporary instance started from the shipped etc/:
// every line of every ```sh block (in order, each must exit 0), and the configuration fragments
// (each applied to a copy of etc/ — option.dat, imta.cnf, dispatcher.cnf, mappings or shaping.cnf —
// must pass `imsimta cnbuild`). 127.0.0.1:25 in the examples is replaced by the instance's own address and port.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFileSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { freePort, makeInstance, repoRoot, runCli, waitFor, type TestInstance } from '../helpers/instance.js';
import { parseMailLogLine } from '../../src/common/mail-log.js';

const ADDRESS = '127.0.12.1';
const guide = readFileSync(join(repoRoot, 'docs', 'OPERATIONS.md'), 'utf8');

interface Block {
  lang: string;
  text: string;
  section: string;
}

function blocks(markdown: string): Block[] {
  const out: Block[] = [];
  let section = '';
  const lines = markdown.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const heading = /^##\s+(.*)$/.exec(lines[i]!);
    if (heading) section = heading[1]!;
    const fence = /^```(\S*)\s*$/.exec(lines[i]!);
    if (!fence) continue;
    const body: string[] = [];
    for (i++; i < lines.length && !lines[i]!.startsWith('```'); i++) body.push(lines[i]!);
    out.push({ lang: fence[1]!, text: body.join('\n'), section });
  }
  return out;
}

const all = blocks(guide);
const commands = all.filter((b) => b.lang === 'sh');
const fragments = all.filter((b) => b.lang === '');

const instances: TestInstance[] = [];
after(() => instances.forEach((i) => i.remove()));

function shipped(port: number): TestInstance {
  const inst = makeInstance({ shipped: true });
  instances.push(inst);
  symlinkSync(join(repoRoot, 'bin'), join(inst.root, 'bin'));
  inst.write('etc/dispatcher.cnf', inst.read('etc/dispatcher.cnf').replace(/^PORT=25$/m, `PORT=${port}\nINTERFACE_ADDRESS=${ADDRESS}`));
  inst.write('etc/option.dat', `${inst.read('etc/option.dat')}\nLOCAL_HOST=docs.tsubame.test\n`);
  return inst;
}

function sh(line: string, root: string, port: number): Promise<{ code: number | null; out: string }> {
  const command = line.replaceAll('127.0.0.1:25', `${ADDRESS}:${port}`);
  return new Promise((resolve) => {
    const child = spawn('bash', ['-c', command], { cwd: root, env: { ...process.env, IMTA_ROOT: root } });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (out += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, out });
    });
  });
}

/** Applies a configuration fragment where it belongs; returns false when the fragment is not configuration. */
function apply(inst: TestInstance, fragment: string): boolean {
  const text = fragment.trim();
  if (/^\[DESTINATION=/m.test(text)) {
    inst.write('etc/shaping.cnf', `${text}\n`);
    return true;
  }
  if (/^\S+\s+\$U/.test(text) && /\n\s*\n/.test(text)) {
    // Rewrite rules, a blank line, channel blocks: the rules go before the catch-all, the blocks at the end.
    const [rules, ...blocks] = text.split(/\n\s*\n/);
    inst.write('etc/imta.cnf', `${inst.read('etc/imta.cnf').replace(/^\.\s+\$U%\$H@tcp-daemon$/m, `${rules}\n$&`).trimEnd()}\n\n${blocks.join('\n\n')}\n`);
    return true;
  }
  if (/^[A-Z_]+=/.test(text)) {
    inst.write('etc/option.dat', `${inst.read('etc/option.dat')}\n${text}\n`);
    return true;
  }
  if (/^tcp_local\s/.test(text)) {
    inst.write('etc/imta.cnf', inst.read('etc/imta.cnf').replace(/^tcp_local .*\ntcp-daemon$/m, text));
    return true;
  }
  if (/^\S+\s+\$U/.test(text)) {
    inst.write('etc/imta.cnf', inst.read('etc/imta.cnf').replace(/^\.\s+\$U%\$H@tcp-daemon$/m, `${text}\n$&`));
    return true;
  }
  if (/^\[SERVICE=/.test(text)) {
    inst.write('etc/dispatcher.cnf', `${inst.read('etc/dispatcher.cnf')}\n${text}\n`);
    return true;
  }
  if (/^[A-Z][A-Z0-9_]*_ACCESS\n/.test(text)) {
    inst.write('etc/mappings', `${text}\n`);
    return true;
  }
  return false;
}

test('the guide has examples to run', () => {
  assert.ok(commands.length >= 4, `sh blocks: ${commands.length}`);
  assert.ok(fragments.length >= 4, `fragments: ${fragments.length}`);
});

test('every configuration fragment passes cnbuild; the mail.log example parses', async () => {
  for (const f of fragments) {
    if (/^\d{4}-\d\d-\d\dT/.test(f.text.trim())) {
      const record = parseMailLogLine(f.text.trim());
      assert.ok(record, f.text);
      assert.equal(record.event, 'E');
      continue;
    }
    const inst = shipped(2525);
    if (!apply(inst, f.text)) continue; // shell one-liners shown for reference (setcap)
    const r = await runCli('imsimta', ['cnbuild', '--root', inst.root]);
    assert.equal(r.code, 0, `${f.section}: ${f.text}\n${r.stderr}`);
  }
});

test('every sh example runs on a started instance', { timeout: 240_000 }, async () => {
  const port = await freePort(ADDRESS);
  const inst = shipped(port);
  // Section 3's rule is what its examples rely on.
  const rule = fragments.find((f) => /^example\.com\s/.test(f.text.trim()));
  assert.ok(rule, 'the example.com rule of section 3');
  apply(inst, rule.text);
  let started = false;
  try {
    for (const block of commands) {
      for (const raw of block.text.split('\n')) {
        const line = raw.replace(/\s+#.*$/, '').trim();
        if (!line) continue;
        if (line === 'npm start') {
          await npmStart();
          continue;
        }
        if (line.startsWith('bin/start-msg')) started = true;
        // Delivery is asynchronous: a listing of a mailbox is retried until the message is there.
        const patient = line.startsWith('ls mailbox/');
        const result = patient
          ? await waitFor(async () => {
              const r = await sh(line, inst.root, port);
              return r.code === 0 && r.out.trim() ? r : null;
            }, { timeoutMs: 20_000, what: line })
          : await sh(line, inst.root, port);
        assert.equal(result.code, 0, `${block.section}: ${line}\n${result.out}`);
      }
    }
    assert.ok(started, 'the guide starts the instance');
  } finally {
    await runCli('stop-msg', ['--root', inst.root], { timeoutMs: 30_000 });
  }
});

/** `npm start` in the repository on the instance: it must build and report that it started, then stop on SIGTERM. */
async function npmStart(): Promise<void> {
  const inst = shipped(await freePort(ADDRESS)); // an instance of its own: the guide starts another one next
  const child = spawn('npm', ['start'], { cwd: repoRoot, env: { ...process.env, IMTA_ROOT: inst.root }, detached: true });
  let out = '';
  child.stdout.on('data', (d) => (out += d));
  child.stderr.on('data', (d) => (out += d));
  const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
  try {
    await waitFor(() => /tsubame started/.test(out), { timeoutMs: 120_000, what: `npm start to report "tsubame started"\n${out}` });
  } finally {
    process.kill(-child.pid!, 'SIGTERM'); // npm, its shell and start-msg: one process group, ours
  }
  await exited;
  assert.ok(!/^\s+at /m.test(out), out);
}
