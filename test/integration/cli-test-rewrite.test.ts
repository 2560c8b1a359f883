// `bin/imsimta test -rewrite` on a temporary instance with its own imta.cnf.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { makeInstance, runCli, type TestInstance } from '../helpers/instance.js';

const IMTA_CNF = `! rewrite rules for the CLI test
mail.ex.com     $U%mail.ex.com@mail.ex.com
ex.com          $U%$D@mail.ex.com
.ex.com         $U%$H.ex.com@tcp_intranet-daemon
routed.test     $U@$D@relay.ex.com@tcp-daemon
bad.test        $?No mail for bad.test
.               $U%$H@tcp-daemon

l
mail.ex.com

tcp_local smtp mx single_sys maxjobs 7
tcp-daemon

tcp_intranet smtp mx single_sys
tcp_intranet-daemon
`;

const instances: TestInstance[] = [];
function instance(imtaCnf: string): TestInstance {
  const inst = makeInstance({ files: { 'etc/imta.cnf': imtaCnf } });
  instances.push(inst);
  return inst;
}
after(() => {
  for (const inst of instances) inst.remove();
});

function jsonLines(stdout: string): Array<Record<string, unknown>> {
  return stdout.trim().split('\n').map((line) => JSON.parse(line) as Record<string, unknown>);
}

test('--json prints one object per address, in order', async () => {
  const inst = instance(IMTA_CNF);
  const r = await runCli('imsimta', ['test', '-rewrite', '--json', 'Joe@EX.com', 'u@sc.cs.ex.com', 'v@routed.test', 'w@Example.NET'], { root: inst.root });
  assert.equal(r.code, 0, r.stderr);
  const [a, b, c, d] = jsonLines(r.stdout);
  assert.deepEqual([a!.address, a!.channel, a!.rewritten, a!.error], ['Joe@EX.com', 'l', 'Joe@EX.com', null]);
  assert.equal(a!.official_host, 'mail.ex.com');
  assert.ok(Array.isArray(a!.steps) && (a!.steps as unknown[]).length > 0);
  assert.deepEqual([b!.channel, b!.rewritten], ['tcp_intranet', 'u@sc.cs.ex.com']);
  assert.deepEqual([c!.channel, c!.rewritten, c!.route], ['tcp_local', '@relay.ex.com:v@routed.test', 'relay.ex.com']);
  assert.deepEqual([d!.channel, d!.rewritten], ['tcp_local', 'w@Example.NET']);
  assert.deepEqual((d!.keywords as Record<string, string[]>).maxjobs, ['7']);
});

test('addresses on stdin, one per line; exit 1 when one does not route, JSON still printed', async () => {
  const inst = instance(IMTA_CNF);
  const r = await runCli('imsimta', ['test', '--rewrite', '--json', '--root', inst.root], {
    input: 'u@mail.ex.com\n\n  x@bad.test  \npostmaster\n',
  });
  assert.equal(r.code, 1, r.stderr);
  const lines = jsonLines(r.stdout);
  assert.equal(lines.length, 3);
  assert.deepEqual([lines[0]!.channel, lines[0]!.error], ['l', null]);
  assert.deepEqual([lines[1]!.address, lines[1]!.channel, lines[1]!.error], ['x@bad.test', null, 'No mail for bad.test']);
  assert.deepEqual([lines[2]!.channel, lines[2]!.rewritten], ['l', 'postmaster@mail.ex.com']);
});

test('text mode shows the probes, the rule file:line, channel, flags, official host and envelope To/From', async () => {
  const inst = instance(IMTA_CNF);
  const r = await runCli('imsimta', ['test', '-rewrite', '--from', 'sender@Example.org', 'u@sc.cs.ex.com'], { root: inst.root });
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /probe \*\.cs\.ex\.com: no rule/);
  assert.match(r.stdout, /probe \.ex\.com \[.*imta\.cnf:4 \.ex\.com \$U%\$H\.ex\.com@tcp_intranet-daemon\]/);
  assert.match(r.stdout, /^ {4}channel = tcp_intranet$/m);
  assert.match(r.stdout, /channel flags #1 = .*SMTP/);
  assert.match(r.stdout, /channel official host = tcp_intranet-daemon/);
  assert.match(r.stdout, /envelope To: u@sc\.cs\.ex\.com/);
  assert.match(r.stdout, /envelope From: sender@Example\.org \(backward channel = tcp_local\)/);
});

test('an unroutable address: exit 1 with the error in the output', async () => {
  const inst = instance(IMTA_CNF.replace(/^\.\s+.*$/m, '! no match-all rule'));
  const r = await runCli('imsimta', ['test', '-rewrite', '--json', 'u@foo.invalid'], { root: inst.root });
  assert.equal(r.code, 1);
  const [line] = jsonLines(r.stdout);
  assert.deepEqual([line!.channel, line!.rewritten, line!.error], [null, null, 'illegal host/domain: foo.invalid']);
});

test('wrong usage exits 2 with one line of usage', async () => {
  const inst = instance(IMTA_CNF);
  const unknown = await runCli('imsimta', ['test', '-rewrite', '--bogus', 'u@ex.com'], { root: inst.root });
  assert.equal(unknown.code, 2);
  assert.match(unknown.stderr, /unknown option --bogus/);
  assert.equal(unknown.stdout, '');
  const noRewrite = await runCli('imsimta', ['test', 'u@ex.com'], { root: inst.root });
  assert.equal(noRewrite.code, 2);
  assert.match(noRewrite.stderr, /-rewrite/);
});

test('a broken imta.cnf: exit 1 with file:line on stderr and no stack trace', async () => {
  const inst = instance(IMTA_CNF.replace('tcp_local smtp mx single_sys maxjobs 7', 'tcp_local smtp mx single_sys maxjobs seven'));
  const r = await runCli('imsimta', ['test', '-rewrite', '--json', 'u@ex.com'], { root: inst.root });
  assert.equal(r.code, 1);
  assert.match(r.stderr, /imta\.cnf:12: /);
  assert.doesNotMatch(r.stderr, /^\s+at /m);
  assert.equal(r.stdout, '');
});
