// etc/imta.cnf: rules, blocks, comments, includes, continuation, defaults, keywords — and the
// exact file:line and severity of every problem the parser reports.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { join, relative } from 'node:path';
import { parseImtaCnf } from '../../src/config/imta-cnf.js';
import type { Diagnostic } from '../../src/config/types.js';
import { makeInstance, type TestInstance } from '../helpers/instance.js';

const instances: TestInstance[] = [];
after(() => {
  for (const inst of instances) inst.remove();
});

/** Writes the files into a fresh instance and parses etc/imta.cnf. */
function parse(files: Record<string, string>, opts: { noticesInHours?: boolean } = {}) {
  const inst = makeInstance({ files });
  instances.push(inst);
  const diagnostics: Diagnostic[] = [];
  const config = parseImtaCnf(join(inst.root, 'etc/imta.cnf'), diagnostics, opts);
  /** `etc/file:line: severity` of each diagnostic, in report order. */
  const where = diagnostics.map((d) => `${relative(inst.root, d.file)}:${d.line}: ${d.severity}`);
  return { inst, config, diagnostics, where };
}

const lines = (...l: string[]) => `${l.join('\n')}\n`;

const CHANNELS = lines(
  'l',
  'localhost',
  '',
  'tcp_local smtp mx',
  'tcp-daemon',
);

test('a good file: rules up to the first blank line, then channel blocks; no diagnostics', () => {
  const { config, diagnostics } = parse({
    'etc/imta.cnf': lines(
      '! comment',
      'localhost   $U%localhost@localhost',
      '.           $U%$H@tcp-daemon',
      '[]          $U%[$L]@tcp-daemon',
      '',
      '! the local channel',
      'l subdirs 4',
      'localhost',
      '',
      'tcp_local smtp mx single_sys maxjobs 7 daemon relay1.example,relay2.example port 2525',
      'tcp-daemon',
      'tcp-alias',
    ),
  });
  assert.deepEqual(diagnostics, []);
  assert.deepEqual(config.rules.map((r) => [r.pattern, r.template, r.line]), [
    ['localhost', '$U%localhost@localhost', 2],
    ['.', '$U%$H@tcp-daemon', 3],
    ['[]', '$U%[$L]@tcp-daemon', 4],
  ]);
  assert.deepEqual(config.channels.map((c) => [c.name, c.line]), [['l', 7], ['tcp_local', 10]]);
  const tcp = config.channelByName.get('tcp_local')!;
  assert.equal(tcp.smtp, true);
  assert.equal(tcp.mx, 'mx');
  assert.equal(tcp.copies, 'single_sys');
  assert.equal(tcp.maxJobs, 7);
  assert.equal(tcp.port, 2525);
  assert.deepEqual(tcp.daemon, ['relay1.example', 'relay2.example']);
  assert.equal(tcp.officialHost, 'tcp-daemon');
  assert.deepEqual(tcp.hosts, ['tcp-daemon', 'tcp-alias']);
  assert.equal(config.hostTable.get('tcp-alias'), 'tcp_local');
  assert.equal(config.hostTable.get('localhost'), 'l');
  const l = config.channelByName.get('l')!;
  assert.equal(l.subdirs, 4);
  // Defaults of a channel without keywords.
  assert.deepEqual(
    [l.smtp, l.mx, l.copies, l.maxJobs, l.threadDepth, l.pool, l.port, l.daemon, l.backoffMs, l.noticesMs, l.immediate, l.tlsClient, l.tlsServer, l.pipelining, l.rcptPerTransaction, l.maxClientConnections, l.addrsPerFile],
    [false, 'defaultmx', 'multiple', 100, 10, null, null, null, null, null, true, 'notls', 'notls', true, 100, 1000, null],
  );
});

test('"!" is a comment only in column 1; elsewhere it is a literal character', () => {
  const { config, diagnostics, where } = parse({
    'etc/imta.cnf': lines(
      '!x.example  $U%$D@tcp-daemon',
      '  !y.example  $U%$D@tcp-daemon',
      '',
      'tcp_local smtp !nocomment',
      '! a comment inside a block',
      'tcp-daemon',
    ),
  });
  // Line 1 is a comment; line 2 is a rule whose pattern starts with "!".
  assert.deepEqual(config.rules.map((r) => [r.pattern, r.line]), [['!y.example', 2]]);
  // "!nocomment" on the keyword line is a (unknown) keyword, not the start of a comment.
  assert.deepEqual(where, ['etc/imta.cnf:4: warning']);
  assert.match(diagnostics[0]!.message, /unknown channel keyword "!nocomment"/);
  assert.deepEqual(config.channelByName.get('tcp_local')!.hosts, ['tcp-daemon']);
});

test('<file includes: relative to the including file, nested three deep, with their own file:line', () => {
  const { config, diagnostics } = parse({
    'etc/imta.cnf': lines(
      '! main',
      '<rules/site.rules',
      '.   $U%$H@tcp-daemon',
      '',
      '<channels.inc',
    ),
    'etc/rules/site.rules': lines('a.example   $U%$D@tcp-daemon', '<deeper/more.rules'),
    'etc/rules/deeper/more.rules': lines('! level 2', '<last.rules', 'b.example   $U%$D@tcp-daemon'),
    'etc/rules/deeper/last.rules': lines('c.example   $U%$D@tcp-daemon'),
    'etc/channels.inc': CHANNELS,
  });
  assert.deepEqual(diagnostics, []);
  assert.deepEqual(config.rules.map((r) => [r.pattern, r.file.split('/etc/')[1], r.line]), [
    ['a.example', 'rules/site.rules', 1],
    ['c.example', 'rules/deeper/last.rules', 1],
    ['b.example', 'rules/deeper/more.rules', 3],
    ['.', 'imta.cnf', 3],
  ]);
  const tcp = config.channelByName.get('tcp_local')!;
  assert.deepEqual([tcp.file.split('/etc/')[1], tcp.line], ['channels.inc', 4]);
});

test('an include four deep is an error at the include line that goes too deep', () => {
  const { diagnostics, where } = parse({
    'etc/imta.cnf': lines('<one.inc', '.   $U%$H@tcp-daemon', '', CHANNELS),
    'etc/one.inc': lines('<two.inc'),
    'etc/two.inc': lines('! two', '<three.inc'),
    'etc/three.inc': lines('! three', 'a.example  $U%$D@tcp-daemon', '<four.inc'),
    'etc/four.inc': lines('b.example  $U%$D@tcp-daemon'),
  });
  assert.deepEqual(where, ['etc/three.inc:3: error']);
  assert.match(diagnostics[0]!.message, /includes nest deeper than 3 levels/);
});

test('a missing include is an error at the include line; "<" alone names no file', () => {
  const { diagnostics, where } = parse({
    'etc/imta.cnf': lines('.   $U%$H@tcp-daemon', '<missing.rules', '', 'l', 'localhost', '', 'tcp_local smtp', 'tcp-daemon', '', '<'),
  });
  assert.deepEqual(where, ['etc/imta.cnf:2: error', 'etc/imta.cnf:10: error']);
  assert.match(diagnostics[0]!.message, /cannot read included file .*missing\.rules: ENOENT/);
  assert.match(diagnostics[1]!.message, /include line names no file/);
});

test('a missing imta.cnf is an error at line 0', () => {
  const inst = makeInstance();
  instances.push(inst);
  const diagnostics: Diagnostic[] = [];
  parseImtaCnf(join(inst.root, 'etc/imta.cnf'), diagnostics);
  assert.deepEqual(diagnostics.map((d) => [d.line, d.severity]), [[0, 'error']]);
  assert.match(diagnostics[0]!.message, /cannot read file: ENOENT/);
});

test('"\\" continues a line; the logical line has the number of its first physical line', () => {
  const { config, diagnostics, where } = parse({
    'etc/imta.cnf': lines(
      '.   $U%$H@tcp-daemon',
      '',
      'l',
      'localhost',
      '',
      'tcp_local smtp \\',
      '! a comment line inside the continuation is skipped',
      '  mx maxjobs 3 \\',
      '  bogus_keyword',
      'tcp-daemon',
      '',
      'hold maxjobs x',
      'hold-daemon',
    ),
  });
  const tcp = config.channelByName.get('tcp_local')!;
  assert.equal(tcp.line, 6);
  assert.deepEqual([tcp.smtp, tcp.mx, tcp.maxJobs], [true, 'mx', 3]);
  // The unknown keyword on physical line 9 is reported at line 6; later lines keep their numbers.
  assert.deepEqual(where, ['etc/imta.cnf:6: warning', 'etc/imta.cnf:12: error']);
  assert.match(diagnostics[0]!.message, /unknown channel keyword "bogus_keyword"/);
  assert.match(diagnostics[1]!.message, /keyword maxjobs needs an integer ≥ 1, found "x"/);
});

test('defaults: merged into every later block, overridden by the block\'s own keywords', () => {
  const { config, diagnostics } = parse({
    'etc/imta.cnf': lines(
      '.   $U%$H@tcp-daemon',
      '',
      'early maxjobs 2',
      'early-daemon',
      '',
      'defaults notices 1 2 4 7 maxjobs 7 single_sys maytls',
      '',
      'l',
      'localhost',
      '',
      'tcp_local smtp multiple maxjobs 3 notls',
      'tcp-daemon',
      '',
      'defaults periodic',
      '',
      'late',
      'late-daemon',
    ),
  });
  assert.deepEqual(diagnostics, []);
  assert.equal(config.channelByName.has('defaults'), false);
  const early = config.channelByName.get('early')!;
  const l = config.channelByName.get('l')!;
  const tcp = config.channelByName.get('tcp_local')!;
  const late = config.channelByName.get('late')!;
  // A block before `defaults` does not get them (but takes l's notices, as every channel without its own).
  assert.deepEqual([early.maxJobs, early.copies, early.tlsServer], [2, 'multiple', 'notls']);
  assert.deepEqual([l.maxJobs, l.copies, l.tlsClient, l.tlsServer], [7, 'single_sys', 'maytls', 'maytls']);
  assert.deepEqual(l.noticesMs, [1, 2, 4, 7].map((d) => d * 86400e3));
  assert.deepEqual(l.keywords.maxjobs, ['7']);
  // The block's own keywords win: multiple over single_sys, maxjobs 3 over 7, notls over maytls.
  assert.deepEqual([tcp.maxJobs, tcp.copies, tcp.tlsClient, tcp.tlsServer], [3, 'multiple', 'notls', 'notls']);
  assert.deepEqual(tcp.noticesMs, l.noticesMs);
  // A second `defaults` block replaces the first for the blocks after it.
  assert.deepEqual([late.immediate, late.maxJobs, late.copies], [false, 100, 'multiple']);
});

test('backoff: quoted ISO 8601 durations (any case, unquoted accepted); bad ones are errors at the keyword line', () => {
  const { config, diagnostics, where } = parse({
    'etc/imta.cnf': lines(
      '.   $U%$H@tcp-daemon',
      '',
      'tcp_local smtp backoff "pt5m" "PT1H30M" "P1D" "P1W" PT10M "PT0.5S" maxjobs 2',
      'tcp-daemon',
      '',
      'bad1 backoff "PT5X"',
      'bad1-daemon',
      '',
      'bad2 backoff maxjobs 2',
      'bad2-daemon',
      '',
      'bad3 backoff "PT1M" "PT2M" "PT3M" "PT4M" "PT5M" "PT6M" "PT7M" "PT8M" "PT9M"',
      'bad3-daemon',
      '',
      'bad4 backoff "P" "PT"',
      'bad4-daemon',
    ),
  });
  const tcp = config.channelByName.get('tcp_local')!;
  assert.deepEqual(tcp.backoffMs, [300e3, 5400e3, 86400e3, 7 * 86400e3, 600e3, 500]);
  assert.equal(tcp.maxJobs, 2);
  assert.deepEqual(where, ['etc/imta.cnf:6: error', 'etc/imta.cnf:9: error', 'etc/imta.cnf:12: error', 'etc/imta.cnf:15: error']);
  assert.match(diagnostics[0]!.message, /keyword backoff: ""PT5X"" is not an ISO 8601 duration/);
  assert.match(diagnostics[1]!.message, /keyword backoff needs quoted ISO 8601 durations/);
  assert.match(diagnostics[2]!.message, /keyword backoff takes at most 8 values, found 9/);
  assert.match(diagnostics[3]!.message, /"P"" is not an ISO 8601 duration/);
  // A channel whose keyword failed is still defined, without that keyword.
  assert.equal(config.channelByName.get('bad1')!.backoffMs, null);
});

test('notices: plain numbers are days, or hours with RETURN_UNITS=1; durations; l\'s apply to channels without', () => {
  const cnf = lines(
    '.   $U%$H@tcp-daemon',
    '',
    'l notices 1 2 3',
    'localhost',
    '',
    'tcp_local smtp notices "PT1H" 2 P3D',
    'tcp-daemon',
    '',
    'hold',
    'hold-daemon',
  );
  const days = parse({ 'etc/imta.cnf': cnf });
  assert.deepEqual(days.diagnostics, []);
  assert.deepEqual(days.config.channelByName.get('l')!.noticesMs, [1, 2, 3].map((d) => d * 86400e3));
  assert.deepEqual(days.config.channelByName.get('tcp_local')!.noticesMs, [3600e3, 2 * 86400e3, 3 * 86400e3]);
  assert.deepEqual(days.config.channelByName.get('hold')!.noticesMs, [1, 2, 3].map((d) => d * 86400e3));
  const hours = parse({ 'etc/imta.cnf': cnf }, { noticesInHours: true });
  assert.deepEqual(hours.config.channelByName.get('l')!.noticesMs, [1, 2, 3].map((h) => h * 3600e3));
  assert.deepEqual(hours.diagnostics, []);
  assert.deepEqual(hours.config.channelByName.get('tcp_local')!.noticesMs, [3600e3, 2 * 3600e3, 3 * 86400e3]);
  assert.deepEqual(hours.config.channelByName.get('hold')!.noticesMs, [1, 2, 3].map((h) => h * 3600e3));
});

test('notices: no l channel and no keyword leaves null (the built-in 3 6 9 12 days); bad lists are errors', () => {
  const { config, diagnostics, where } = parse({
    'etc/imta.cnf': lines(
      '.   $U%$H@tcp-daemon',
      '',
      'tcp_local smtp',
      'tcp-daemon',
      '',
      'down notices 3 2',
      'down-daemon',
      '',
      'many notices 1 2 3 4 5 6',
      'many-daemon',
      '',
      'none notices',
      'none-daemon',
    ),
  });
  assert.equal(config.channelByName.get('tcp_local')!.noticesMs, null);
  assert.deepEqual(where, ['etc/imta.cnf:6: error', 'etc/imta.cnf:9: error', 'etc/imta.cnf:12: error']);
  assert.match(diagnostics[0]!.message, /channel down: notices ages must increase/);
  assert.match(diagnostics[1]!.message, /keyword notices takes at most 5 values, found 6/);
  assert.match(diagnostics[2]!.message, /keyword notices needs ages in days/);
});

test('host lines: a second name on the first host line is the official host; three names are an error', () => {
  const { config, diagnostics, where } = parse({
    'etc/imta.cnf': lines(
      '.   $U%$H@tcp-daemon',
      'fw.test   $U%$D@relay-daemon',
      '',
      'tcp_local smtp',
      'tcp-daemon',
      '',
      'tcp_relay smtp daemon router',
      'relay-daemon fw.example.com',
      'relay2-daemon',
      '',
      'three smtp',
      'three-daemon a.example b.example',
    ),
  });
  const relay = config.channelByName.get('tcp_relay')!;
  assert.equal(relay.officialHost, 'fw.example.com');
  assert.deepEqual(relay.hosts, ['relay-daemon', 'relay2-daemon']);
  assert.equal(config.hostTable.get('relay-daemon'), 'tcp_relay');
  assert.equal(config.hostTable.get('relay2-daemon'), 'tcp_relay');
  assert.equal(config.hostTable.has('fw.example.com'), false);
  assert.equal(config.channelByName.get('tcp_local')!.officialHost, 'tcp-daemon');
  assert.deepEqual(where, ['etc/imta.cnf:12: error']);
  assert.match(diagnostics[0]!.message, /host line has more than two names/);
});

test('duplicate channels are errors at the second block; a host in two channels is a warning', () => {
  const { config, diagnostics, where } = parse({
    'etc/imta.cnf': lines(
      '.   $U%$H@tcp-daemon',
      '',
      'tcp_local smtp maxjobs 1',
      'tcp-daemon',
      '',
      'TCP_LOCAL smtp maxjobs 2',
      'tcp2-daemon',
      '',
      'other',
      'TCP-daemon',
      'other-daemon',
    ),
  });
  assert.deepEqual(where, ['etc/imta.cnf:6: error', 'etc/imta.cnf:10: warning']);
  assert.match(diagnostics[0]!.message, new RegExp(`channel TCP_LOCAL is defined twice \\(first at .*etc/imta\\.cnf:3\\)`));
  assert.match(diagnostics[1]!.message, /host TCP-daemon already belongs to channel tcp_local/);
  assert.equal(config.channelByName.get('tcp_local')!.maxJobs, 1);
  assert.equal(config.hostTable.get('tcp-daemon'), 'tcp_local');
  assert.equal(config.hostTable.get('other-daemon'), 'other');
  assert.equal(config.hostTable.has('tcp2-daemon'), false);
});

test('a rule that routes to no channel\'s host is an error at the rule line; variable and meta rules are not checked', () => {
  const { diagnostics, where } = parse({
    'etc/imta.cnf': lines(
      'ok.example      $U%$D@TCP-DAEMON',
      'typo.example    $U%$D@tcp-deamon',
      'meta.example    $U%other.example',
      'var.example     $U%$D@$D',
      'route.example   $U@$D@relay.example@tcp-daemon',
      'route2.example  $U@$D@tcp-daemon@nowhere',
      '.               $U%$H@tcp-daemon',
      '',
      'tcp_local smtp',
      'tcp-daemon',
    ),
  });
  assert.deepEqual(where, ['etc/imta.cnf:2: error', 'etc/imta.cnf:6: error']);
  assert.match(diagnostics[0]!.message, /rule typo\.example routes to "tcp-deamon", which is no channel's host/);
  assert.match(diagnostics[1]!.message, /routes to "nowhere"/);
});

test('$? error templates may contain spaces; other templates may not; a rule needs a template', () => {
  const { config, diagnostics, where } = parse({
    'etc/imta.cnf': lines(
      'bad.example     $?No mail is accepted for bad.example, sorry',
      'spam.example    $E$?Rejected: see https://example.com/policy',
      'two.example     $U%$D@tcp-daemon extra words',
      'lonely.example',
      '.               $U%$H@tcp-daemon',
      '',
      'tcp_local smtp',
      'tcp-daemon',
    ),
  });
  assert.deepEqual(config.rules.map((r) => [r.pattern, r.template]), [
    ['bad.example', '$?No mail is accepted for bad.example, sorry'],
    ['spam.example', '$E$?Rejected: see https://example.com/policy'],
    ['.', '$U%$H@tcp-daemon'],
  ]);
  assert.deepEqual(where, ['etc/imta.cnf:3: error', 'etc/imta.cnf:4: error']);
  assert.match(diagnostics[0]!.message, /rewrite rule has text after its template: "extra words"/);
  assert.match(diagnostics[1]!.message, /rewrite rule "lonely\.example" has no template/);
});

test('a template that does not compile is an error at its line', () => {
  const { where, diagnostics } = parse({
    'etc/imta.cnf': lines('a.example   $U%$D@tcp-daemon$', '.   $U%$H@tcp-daemon', '', 'tcp_local smtp', 'tcp-daemon'),
  });
  assert.deepEqual(where, ['etc/imta.cnf:1: error']);
  assert.match(diagnostics[0]!.message, /^bad template for a\.example: /);
});

test('unknown keywords are warnings; bad arguments, names and missing host lines are errors', () => {
  const { config, diagnostics, where } = parse({
    'etc/imta.cnf': lines(
      '.   $U%$H@tcp-daemon',
      '',
      'tcp_local smtp frobnicate MX',
      'tcp-daemon',
      '',
      'ports port 70000',
      'ports-daemon',
      '',
      'nopool pool',
      'nopool-daemon',
      '',
      'bad/name smtp',
      'bad-daemon',
      '',
      'nohost smtp',
    ),
  });
  assert.deepEqual(where, [
    'etc/imta.cnf:3: warning',
    'etc/imta.cnf:6: error',
    'etc/imta.cnf:9: error',
    'etc/imta.cnf:12: error',
    'etc/imta.cnf:15: error',
  ]);
  assert.match(diagnostics[0]!.message, /unknown channel keyword "frobnicate" \(ignored\)/);
  assert.match(diagnostics[1]!.message, /keyword port needs an integer from 1 to 65535, found "70000"/);
  assert.match(diagnostics[2]!.message, /keyword pool needs an argument/);
  assert.match(diagnostics[3]!.message, /"bad\/name" is not a valid channel name/);
  assert.match(diagnostics[4]!.message, /channel nohost has no host line/);
  // Keywords are case-insensitive; the channel with a warning is still defined.
  assert.equal(config.channelByName.get('tcp_local')!.mx, 'mx');
  assert.equal(config.channelByName.get('ports')!.port, null);
  assert.equal(config.channelByName.has('nohost'), false);
});

test('keywords that set typed fields: TLS sides, debug, periodic, pipelining, limits, sender', () => {
  const { config, diagnostics } = parse({
    'etc/imta.cnf': lines(
      '.   $U%$H@tcp-daemon',
      '',
      'tcp_local smtp maytlsserver musttlsclient master_debug slave_debug periodic nopipelining',
      'tcp-daemon',
      '',
      'tcp_fml smtp lmtp nomx single addrsperfile 50 rcptpertransaction 10 maxclientthreads 4 envelopesender owner@list.example',
      'fml-daemon',
      '',
      'tcp_tls smtp musttls pool SMTP_POOL threaddepth 5 filesperjob 20 addrsperjob 30 randommx',
      'tls-daemon',
    ),
  });
  assert.deepEqual(diagnostics, []);
  const a = config.channelByName.get('tcp_local')!;
  assert.deepEqual([a.tlsServer, a.tlsClient, a.masterDebug, a.slaveDebug, a.immediate, a.pipelining], ['maytls', 'musttls', true, true, false, false]);
  const b = config.channelByName.get('tcp_fml')!;
  assert.deepEqual([b.lmtp, b.mx, b.copies, b.addrsPerFile, b.rcptPerTransaction, b.maxClientConnections, b.senderRewrite], [true, 'nomx', 'single', 50, 10, 4, 'owner@list.example']);
  const c = config.channelByName.get('tcp_tls')!;
  assert.deepEqual([c.tlsServer, c.tlsClient, c.pool, c.threadDepth, c.filesPerJob, c.addrsPerJob, c.mx], ['musttls', 'musttls', 'SMTP_POOL', 5, 20, 30, 'randommx']);
});

test('dmarc*/spffail* overrides: one of each group per block (two are an error at the block\'s line); a block\'s own replaces the defaults\'', () => {
  const { config, diagnostics, where } = parse({
    'etc/imta.cnf': lines(
      '.   $U%$H@tcp-daemon',
      '',
      'defaults dmarcaccept spffail4',
      '',
      'l',
      'localhost',
      '',
      'tcp_local smtp DMARCHOLD spffailH',
      'tcp-daemon',
      '',
      'tcp_both smtp dmarchold dmarcaccept spffail2 spffail2',
      'both-daemon',
      '',
      'tcp_three smtp dmarcrefuse spffail5 spffail2 dmarchold',
      'three-daemon',
    ),
  });
  assert.deepEqual(where, ['etc/imta.cnf:11: error', 'etc/imta.cnf:14: error', 'etc/imta.cnf:14: error']);
  assert.deepEqual(diagnostics.map((d) => d.message), [
    'keywords dmarchold and dmarcaccept conflict: a channel takes one of dmarcrefuse, dmarchold, dmarcaccept',
    'keywords spffail5 and spffail2 conflict: a channel takes one of spffail2, spffail4, spffail5, spffailh',
    'keywords dmarcrefuse and dmarchold conflict: a channel takes one of dmarcrefuse, dmarchold, dmarcaccept',
  ]);
  const keywords = (name: string) => Object.keys(config.channelByName.get(name)!.keywords).filter((k) => /^(dmarc|spffail)/.test(k));
  assert.deepEqual(keywords('l'), ['dmarcaccept', 'spffail4'], 'the defaults apply where the block writes none');
  assert.deepEqual(keywords('tcp_local'), ['dmarchold', 'spffailh'], 'the block\'s own (any case) replace the defaults\', no conflict with them');
});

test('a blank line among the rewrite rules: one error at the blank line that says so, not errors about channels', () => {
  const { diagnostics, where } = parse({
    'etc/imta.cnf': lines(
      'localhost   $U%localhost@localhost',
      '.           $U%$H@tcp-daemon',
      '',
      '[]          $U%[$L]@tcp-daemon',
      'example.com $U%$D@localhost',
      '',
      CHANNELS,
    ),
  });
  assert.deepEqual(where, ['etc/imta.cnf:3: error']);
  assert.match(diagnostics[0]!.message, /^blank line ends the rewrite rules; the lines after it are read as channel blocks, but line 4 \("\[\]\s+\$U%\[\$L\]@tcp-daemon"\) is a rewrite rule: remove the blank line/);
  assert.doesNotMatch(diagnostics[0]!.message, /not a valid channel name|unknown channel keyword/);
});
