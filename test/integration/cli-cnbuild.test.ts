// `bin/imsimta cnbuild` as an operator runs it, on temporary instances (`--root`): exit codes,
// one `path:line: severity: message` line per problem, never a stack trace, and `--json`.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { makeInstance, runCli, type TestInstance } from '../helpers/instance.js';

const instances: TestInstance[] = [];
after(() => {
  for (const inst of instances) inst.remove();
});
function instance(opts: Parameters<typeof makeInstance>[0]): TestInstance {
  const inst = makeInstance(opts);
  instances.push(inst);
  // The host's name as an operator sets it: the machine's own may be a short one (its own test below).
  if (opts?.shipped) inst.write('etc/option.dat', `${inst.read('etc/option.dat')}\nLOCAL_HOST=mx.cnbuild.test\n`);
  return inst;
}
const lines = (...l: string[]) => `${l.join('\n')}\n`;
/** cnbuild's notes for the shipped submission services, off without a certificate (they follow the summary). */
const SUBMISSION_OFF_NOTES = String.raw`\S+/etc/dispatcher\.cnf:\d+: note: \[SERVICE=SUBMISSION\] \(port 587\) is off: .*set TLS_CERT and TLS_KEY in etc/option\.dat to turn it on.*\n\S+/etc/dispatcher\.cnf:\d+: note: \[SERVICE=SUBMISSIONS\] \(port 465\) is off: .*\n`;
const noStackTrace = (text: string) => assert.ok(!text.split('\n').some((l) => l.startsWith('    at ')), `stack trace in:\n${text}`);

test('the shipped etc/ passes: exit 0, a summary on stdout, nothing on stderr', async () => {
  const inst = instance({ shipped: true });
  const r = await runCli('imsimta', ['cnbuild', '--root', inst.root]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stderr, '');
  assert.match(r.stdout, new RegExp(String.raw`^configuration OK: 3 rewrite rules, 9 channels, 1 services \(SUBMISSION, SUBMISSIONS off: no certificate\), 3 pools\n${SUBMISSION_OFF_NOTES}$`));
});

test('a broken configuration: exit 1, every error as path:line: error: message on stderr, no stack trace', async () => {
  const inst = instance({ shipped: true });
  inst.write('etc/imta.cnf', inst.read('etc/imta.cnf').replace('tcp_local smtp mx', 'tcp_local smtp mx maxjobs none frobnicate').replace('.                        $U%$H@tcp-daemon', '.                        $U%$H@tcp-deamon'));
  inst.write('etc/dispatcher.cnf', `${inst.read('etc/dispatcher.cnf')}\n[SERVICE=SUBMIT]\nPORT=2587\nMIN_PROCS=9\nPARAMETER=CHANNEL=tcp_nowhere\n`);
  inst.write('etc/option.dat', `${inst.read('etc/option.dat')}TLS_KEY=/nowhere/key.pem\n`);
  const imta = inst.read('etc/imta.cnf').split('\n');
  const dispatcher = inst.read('etc/dispatcher.cnf').split('\n');
  const option = inst.read('etc/option.dat').split('\n');
  const lineOf = (text: string[], start: string) => text.findIndex((l) => l.startsWith(start)) + 1;
  const etc = join(inst.root, 'etc');

  const r = await runCli('imsimta', ['cnbuild', '--root', inst.root]);
  assert.equal(r.code, 1);
  assert.equal(r.stdout, '');
  noStackTrace(r.stderr);
  const errLines = r.stderr.split('\n').filter((l) => l.includes(': error: '));
  const want = [
    `${etc}/option.dat:${lineOf(option, 'TLS_KEY=')}: error: TLS_KEY and TLS_CERT must be set together`,
    `${etc}/imta.cnf:${lineOf(imta, 'tcp_local ')}: error: keyword maxjobs needs an integer ≥ 1, found "none"`,
    `${etc}/imta.cnf:${lineOf(imta, '.  ')}: error: rule . routes to "tcp-deamon", which is no channel's host (add it under a channel or fix the template)`,
    `${etc}/dispatcher.cnf:${lineOf(dispatcher, 'MIN_PROCS=9')}: error: MIN_PROCS (9) is above MAX_PROCS (4)`,
    `${etc}/dispatcher.cnf:${lineOf(dispatcher, '[SERVICE=SUBMIT]')}: error: [SERVICE=SUBMIT] runs as channel tcp_nowhere, which imta.cnf does not define`,
  ];
  assert.deepEqual(errLines, want);
  // The warning is reported too, and a last line counts them.
  assert.ok(r.stderr.includes(`${etc}/imta.cnf:${lineOf(imta, 'tcp_local ')}: warning: unknown channel keyword "frobnicate" (ignored)\n`), r.stderr);
  assert.match(r.stderr, /\n5 errors, 1 warning: configuration not usable\n$/);
});

test('a missing imta.cnf is one error line at line 0, exit 1', async () => {
  const inst = instance({});
  const r = await runCli('imsimta', ['cnbuild', '--root', inst.root]);
  assert.equal(r.code, 1);
  noStackTrace(r.stderr);
  assert.equal(r.stderr.split('\n')[0], `${join(inst.root, 'etc/imta.cnf')}:0: error: cannot read file: ENOENT`);
});

test('warnings alone: exit 0, warnings on stderr, the summary counts them', async () => {
  const inst = instance({ shipped: true });
  inst.write('etc/job_controller.cnf', `${inst.read('etc/job_controller.cnf')}\nFROBNICATE=1\n[PERIODIC_JOB=old]\n`);
  const jc = inst.read('etc/job_controller.cnf').split('\n');
  const r = await runCli('imsimta', ['cnbuild', '--root', inst.root]);
  assert.equal(r.code, 0, r.stderr);
  const file = join(inst.root, 'etc/job_controller.cnf');
  assert.deepEqual(r.stderr.trim().split('\n'), [
    `${file}:${jc.indexOf('FROBNICATE=1') + 1}: warning: unknown option FROBNICATE in [CHANNEL=tcp_*] (ignored)`,
    `${file}:${jc.indexOf('[PERIODIC_JOB=old]') + 1}: warning: [PERIODIC_JOB=…] sections are deprecated and ignored`,
  ]);
  assert.match(r.stdout, new RegExp(String.raw`^configuration OK: .*, 2 warnings\n${SUBMISSION_OFF_NOTES}$`));
});

test('--json: one object with ok, counts and every diagnostic with file and line; exit code as without', async () => {
  const inst = instance({ shipped: true });
  inst.write('etc/option.dat', 'INTERNAL_IP=127.0.0.0/8,not-a-net\nFROBNICATE=1\n');
  const r = await runCli('imsimta', ['cnbuild', '--json', '--root', inst.root]);
  assert.equal(r.code, 1);
  assert.equal(r.stderr, '');
  const out = JSON.parse(r.stdout) as { ok: boolean; errors: number; warnings: number; diagnostics: Array<Record<string, unknown>> };
  const file = join(inst.root, 'etc/option.dat');
  assert.deepEqual(out, {
    ok: false,
    errors: 1,
    warnings: 1,
    notes: [],
    diagnostics: [
      { file, line: 2, severity: 'warning', message: 'unknown option FROBNICATE (ignored)' },
      { file, line: 1, severity: 'error', message: 'INTERNAL_IP: "not-a-net" is not an IP address or network (such as 192.0.2.0/24)' },
    ],
  });
  const good = await runCli('imsimta', ['cnbuild', '--root', instance({ shipped: true }).root, '--json']);
  assert.equal(good.code, 0);
  const goodOut = JSON.parse(good.stdout) as { notes: Array<{ file: string; message: string }> };
  assert.deepEqual({ ...goodOut, notes: goodOut.notes.map((n) => n.message.split(':')[0]) }, { ok: true, errors: 0, warnings: 0, diagnostics: [], notes: ['[SERVICE=SUBMISSION] (port 587) is off', '[SERVICE=SUBMISSIONS] (port 465) is off'] });
});

test('etc/mappings: absent is fine (no tables); a broken one is refused with file:line; a good one is counted', async () => {
  const inst = instance({ shipped: true });
  inst.write('etc/mappings', lines(
    'PORT_ACCESS',
    '',
    '  TCP|*|25|$(192.0.2.0/33)|*   $NGo$ away',
    '  *                           $Y',
    '',
    'ORIG_SEND_ACCESS',
    '  tcp_local|*|tcp_local|*     $NRelaying not allowed',
    '  *|*|*|*                     $J$1|$Y',
    '<extra.mappings',
  ));
  inst.write('etc/extra.mappings', lines('FROM_ACCESS', '  *  $Q'));
  const file = join(inst.root, 'etc/mappings');
  const r = await runCli('imsimta', ['cnbuild', '--root', inst.root]);
  assert.equal(r.code, 1);
  assert.equal(r.stdout, '');
  noStackTrace(r.stderr);
  assert.deepEqual(r.stderr.trim().split('\n'), [
    `${file}:3: error: pattern TCP|*|25|$(192.0.2.0/33)|*: bad bit count "33" in $(192.0.2.0/33… (0 to 32)`,
    `${file}:7: error: entry has text after its template: "not allowed" (write a space inside a pattern or template as "$ ")`,
    `${file}:8: warning: $J (replacing the envelope From) is not applied by tsubame (ignored)`,
    `${join(inst.root, 'etc/extra.mappings')}:2: error: $Q is not a FROM_ACCESS flag (FROM_ACCESS knows $Y $N $F $B $H $D $T $X $< $> and more)`,
    '3 errors, 1 warning: configuration not usable',
  ]);

  inst.write('etc/mappings', lines('PORT_ACCESS', '', '  TCP|*|25|$(192.0.2.0/24)|*   $NGo$ away', '', 'INTERNAL_IP', '  *  $Y'));
  const good = await runCli('imsimta', ['cnbuild', '--root', inst.root]);
  assert.equal(good.code, 0, good.stderr);
  assert.match(good.stdout, new RegExp(String.raw`^configuration OK: 3 rewrite rules, 9 channels, 1 services \(SUBMISSION, SUBMISSIONS off: no certificate\), 3 pools, 2 mapping tables\n${SUBMISSION_OFF_NOTES}$`));
});

test('IMTA_ROOT selects the instance when --root is not given', async () => {
  const inst = instance({ files: { 'etc/imta.cnf': lines('.  $U%$H@nowhere', '', 'l', 'localhost') } });
  const r = await runCli('imsimta', ['cnbuild'], { root: inst.root });
  assert.equal(r.code, 1);
  assert.match(r.stderr, new RegExp(`^${join(inst.root, 'etc/imta.cnf')}:1: error: rule \\. routes to "nowhere"`));
});

test('usage errors: an unknown command or option exits 2 with one usage line, no stack trace', async () => {
  for (const args of [['frobnicate'], ['cnbuild', '--frobnicate'], ['cnbuild', '--root'], []]) {
    const r = await runCli('imsimta', args);
    assert.equal(r.code, 2, args.join(' '));
    assert.equal(r.stdout, '');
    noStackTrace(r.stderr);
    const errLines = r.stderr.trim().split('\n');
    assert.equal(errLines.length, 2, r.stderr);
    assert.match(errLines[0]!, /^imsimta: /);
    assert.match(errLines[1]!, /^usage: imsimta .*cnbuild/);
  }
  const r = await runCli('imsimta', ['frobnicate']);
  assert.match(r.stderr, /^imsimta: unknown command "frobnicate"\n/);
});

test('LOCAL_HOST unset on a machine with a short name, or set to one: a warning that says to set it (exit 0)', async () => {
  const unset = instance({ shipped: true });
  unset.write('etc/option.dat', unset.read('etc/option.dat').replace(/^LOCAL_HOST=.*$/m, ''));
  // The machine's name is hostname(2)'s: with a fully qualified one there is nothing to warn of.
  const { hostname } = await import('node:os');
  const r = await runCli('imsimta', ['cnbuild', '--root', unset.root]);
  assert.equal(r.code, 0, r.stderr);
  if (hostname().includes('.')) assert.equal(r.stderr, '');
  else assert.equal(r.stderr, `${join(unset.root, 'etc/option.dat')}:0: warning: LOCAL_HOST is not set, and this machine's name "${hostname()}" is not a fully qualified domain name; the SMTP banner, EHLO and notices would say "${hostname()}": set LOCAL_HOST=mail.example.com (this host's name in DNS) in etc/option.dat\n`);

  const short = instance({ shipped: true });
  short.write('etc/option.dat', `${short.read('etc/option.dat')}LOCAL_HOST=mailhost\n`);
  const lineNo = short.read('etc/option.dat').split('\n').lastIndexOf('LOCAL_HOST=mailhost') + 1;
  const s = await runCli('imsimta', ['cnbuild', '--root', short.root]);
  assert.equal(s.code, 0, s.stderr);
  assert.equal(s.stderr, `${join(short.root, 'etc/option.dat')}:${lineNo}: warning: LOCAL_HOST "mailhost" is not a fully qualified domain name; the SMTP banner, EHLO and notices say it: set LOCAL_HOST=mail.example.com (this host's name in DNS)\n`);
  assert.match(s.stdout, new RegExp(String.raw`, 1 warning\n${SUBMISSION_OFF_NOTES}$`));
});
