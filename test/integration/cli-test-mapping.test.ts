// `bin/imsimta test -mapping` on a temporary instance with its own etc/mappings: the text and
// JSON forms, probes from stdin, session flags, an alternative file, and its errors.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { makeInstance, runCli, type TestInstance } from '../helpers/instance.js';

const IMTA_CNF = `.   $U%$H@tcp-daemon

l
localhost

tcp_local smtp mx
tcp-daemon
`;

const MAPPINGS = `! mappings for the CLI test
PORT_ACCESS

  *|*|*|*|*                  $C$|INTERNAL_IP;$3|$Y$E
  TCP|*|25|203.0.113.*|*     $NGo$ away
  *                          $YEXTERNAL

INTERNAL_IP

  $(127.0.0.0/8)   $Y
  *                $N

ORIG_SEND_ACCESS

  tcp_local|*|tcp_local|*    $N$D30|Relaying$ not$ allowed

FROM_ACCESS

  *|*|*|*|*@example.com|     $NAuthenticate$ first$;A
`;

const instances: TestInstance[] = [];
after(() => instances.forEach((i) => i.remove()));
function instance(mappings = MAPPINGS): TestInstance {
  const inst = makeInstance({ files: { 'etc/imta.cnf': IMTA_CNF, 'etc/mappings': mappings } });
  instances.push(inst);
  return inst;
}
const jsonLines = (stdout: string) => stdout.trim().split('\n').map((l) => JSON.parse(l) as Record<string, any>);

test('text form: each matched entry with file:line, the output string and flags, and the access decision', async () => {
  const inst = instance();
  const file = join(inst.root, 'etc/mappings');
  const r = await runCli('imsimta', ['test', '-mapping', '-table', 'PORT_ACCESS', 'TCP|192.0.2.1|25|203.0.113.7|40000', 'TCP|192.0.2.1|25|127.0.0.9|40001'], { root: inst.root });
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stderr, '');
  assert.equal(
    r.stdout,
    [
      'input string = TCP|192.0.2.1|25|203.0.113.7|40000',
      `    entry ${file}:4  *|*|*|*|*  $C$|INTERNAL_IP;$3|$Y$E`,
      '        substitution failed (INTERNAL_IP did not answer $Y for "203.0.113.7"): output is the input; continue',
      `    entry ${file}:5  TCP|*|25|203.0.113.*|*  $NGo$ away`,
      '        output "Go away", flags [N]; end',
      'output string = Go away',
      'output flags = [N]',
      'access = refuse at connect: 554 5.7.1 Go away',
      'input string = TCP|192.0.2.1|25|127.0.0.9|40001',
      `    entry ${file}:4  *|*|*|*|*  $C$|INTERNAL_IP;$3|$Y$E`,
      '        output "", flags [Y]; end',
      'output string = (empty)',
      'output flags = [Y]',
      'access = accept at connect',
      '',
    ].join('\n'),
  );
});

test('--json: one object per probe with the deciding entry, every step, and the decision', async () => {
  const inst = instance();
  const file = join(inst.root, 'etc/mappings');
  const r = await runCli('imsimta', ['test', '-mapping', '-table=orig_send_access', '--json', 'tcp_local|a@example.net|tcp_local|b@example.org', 'l|a@x|tcp_local|b@y'], { root: inst.root });
  assert.equal(r.code, 0, r.stderr);
  const [refused, other] = jsonLines(r.stdout);
  assert.deepEqual(refused!.entry, { file, line: 15, pattern: 'tcp_local|*|tcp_local|*', template: '$N$D30|Relaying$ not$ allowed' });
  assert.deepEqual([refused!.table, refused!.matched, refused!.output, refused!.flags, refused!.error], ['ORIG_SEND_ACCESS', true, '30|Relaying not allowed', ['N', 'D'], null]);
  assert.equal(refused!.steps.length, 1);
  assert.deepEqual(refused!.access, {
    verdict: 'refuse', stage: 'rcpt', reply: '550 5.7.1 Relaying not allowed: b@example.org', smtp_code: 550, enhanced_code: '5.7.1',
    text: 'Relaying not allowed', temporary: false, delay_seconds: 0.3, delay_every_command: true, hold: false, discard: false, tag: null,
    log: { on_match: null, on_refusal: null, connection: null }, problems: [],
  });
  assert.deepEqual([other!.matched, other!.output, other!.entry, other!.steps, other!.access.verdict, other!.access.reply], [false, null, null, [], 'accept', null]);
});

test('PORT_ACCESS with a code in its text: the reply shown is the one the greeting gets, 554 or 421', async () => {
  const inst = instance('PORT_ACCESS\n\n  TCP|*|*|198.51.100.1|*   $N550$ 5.7.1$ Not$ here\n  TCP|*|*|198.51.100.2|*   $N451$ 4.3.2$ Later\n');
  const r = await runCli('imsimta', ['test', '-mapping', '-table', 'PORT_ACCESS', '--json', 'TCP|192.0.2.1|25|198.51.100.1|40000', 'TCP|192.0.2.1|25|198.51.100.2|40000'], { root: inst.root });
  assert.equal(r.code, 0, r.stderr);
  const [refused, later] = jsonLines(r.stdout);
  assert.deepEqual([refused!.access.reply, refused!.access.smtp_code, refused!.access.temporary], ['554 5.7.1 Not here', 554, false]);
  assert.deepEqual([later!.access.reply, later!.access.smtp_code, later!.access.temporary], ['421 4.3.2 Later', 421, true]);
});

test('probes on stdin, one per line; --flags sets what $:x and $;x test', async () => {
  const inst = instance();
  const probe = 'TCP|192.0.2.1|25|203.0.113.7|40000|SMTP/mx.example.net|MAIL|tcp_local|joe@example.com|';
  const plain = await runCli('imsimta', ['test', '-mapping', '-table', 'FROM_ACCESS', '--json'], { root: inst.root, input: `${probe}\n\n` });
  assert.equal(plain.code, 0, plain.stderr);
  const lines = jsonLines(plain.stdout);
  assert.equal(lines.length, 1);
  assert.equal(lines[0]!.access.reply, '550 5.7.1 Authenticate first: joe@example.com');
  const authenticated = await runCli('imsimta', ['test', '-mapping', '-table', 'FROM_ACCESS', '--flags', 'at', '--json', probe], { root: inst.root });
  assert.deepEqual([authenticated.code, jsonLines(authenticated.stdout)[0]!.matched], [0, false]);
});

test('--mapping_file tests another file (an edit before it goes live); its errors are one file:line line', async () => {
  const inst = instance();
  inst.write('etc/new.mappings', 'SEND_ACCESS\n  *|*|*|*@blocked.test   $NNo\n');
  const r = await runCli('imsimta', ['test', '-mapping', '-table', 'SEND_ACCESS', '--mapping_file', join(inst.root, 'etc/new.mappings'), '--json', 'a|b|c|x@blocked.test'], { root: inst.root });
  assert.equal(r.code, 0, r.stderr);
  assert.equal(jsonLines(r.stdout)[0]!.access.reply, '550 5.7.1 No: x@blocked.test');
  inst.write('etc/bad.mappings', 'SEND_ACCESS\n  *|*|*|*   $NNo\n  *   $Q\n');
  const bad = await runCli('imsimta', ['test', '-mapping', '-table', 'SEND_ACCESS', '--mapping_file', join(inst.root, 'etc/bad.mappings'), 'x'], { root: inst.root });
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, new RegExp(`^imsimta: ${join(inst.root, 'etc/bad.mappings')}:3: error: \\$Q is not a SEND_ACCESS flag`));
  assert.equal(bad.stdout, '');
});

test('errors: no -table (exit 2), an unknown table and a broken etc/mappings (exit 1), never a stack trace', async () => {
  const inst = instance();
  const noTable = await runCli('imsimta', ['test', '-mapping', 'x'], { root: inst.root });
  assert.equal(noTable.code, 2);
  assert.match(noTable.stderr, /needs -table NAME/);
  const unknown = await runCli('imsimta', ['test', '-mapping', '-table', 'NOPE', 'x'], { root: inst.root });
  assert.equal(unknown.code, 1);
  assert.match(unknown.stderr, /no mapping table named NOPE in .*etc\/mappings \(tables: PORT_ACCESS, INTERNAL_IP, ORIG_SEND_ACCESS, FROM_ACCESS\)/);
  const broken = instance(MAPPINGS.replace('$NGo$ away', '$NGo away'));
  const r = await runCli('imsimta', ['test', '-mapping', '-table', 'PORT_ACCESS', 'x'], { root: broken.root });
  assert.equal(r.code, 1);
  assert.match(r.stderr, /etc\/mappings:5: error: entry has text after its template: "away"/);
  for (const out of [noTable, unknown, r]) assert.doesNotMatch(out.stderr, /^\s+at /m);
});

test('a mapping that loops: exit 1, the error shown with the temporary refusal', async () => {
  const inst = instance('SEND_ACCESS\n  *   $0$R\n');
  const r = await runCli('imsimta', ['test', '-mapping', '-table', 'SEND_ACCESS', 'a|b|c|d'], { root: inst.root });
  assert.equal(r.code, 1);
  assert.match(r.stdout, /error = mapping SEND_ACCESS did not end after 100 matched entries/);
  assert.match(r.stdout, /access = refuse at rcpt: 451 4\.3\.0 temporary policy failure, try again later: d/);
});
