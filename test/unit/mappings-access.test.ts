// The access tables: probe strings built from typed facts, flag arguments read in Messaging
// Server's order, and the decision each SMTP stage applies (verdict, reply, delay, hold, tag).
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { parseMappings } from '../../src/config/mappings.js';
import type { Diagnostic } from '../../src/config/types.js';
import {
  checkAccess, checkFromAccess, checkPortAccess, checkRecipientAccess, compileMappings, firstRefusal, fromAccessProbe, mailAccessProbe,
  portAccessProbe, sendAccessProbe, sessionFlags, type CompiledMappings, type SessionFacts,
} from '../../src/mappings/index.js';
import { makeInstance, type TestInstance } from '../helpers/instance.js';

const instances: TestInstance[] = [];
after(() => instances.forEach((i) => i.remove()));

function tables(...lines: string[]): CompiledMappings {
  const inst = makeInstance({ files: { 'etc/mappings': `${lines.join('\n')}\n` } });
  instances.push(inst);
  const diagnostics: Diagnostic[] = [];
  const config = parseMappings(join(inst.root, 'etc/mappings'), diagnostics);
  assert.deepEqual(diagnostics.filter((d) => d.severity === 'error'), []);
  return compileMappings(config);
}

const CONNECTION = { serverIp: '::ffff:192.0.2.25', serverPort: 25, clientIp: '::ffff:203.0.113.9', clientPort: 40001 };
const SESSION: SessionFacts = { connection: CONNECTION, helo: 'mx.example.net', tls: null };

test('probes: the forms Messaging Server documents, IPv4-mapped addresses written as IPv4', () => {
  assert.equal(portAccessProbe(CONNECTION), 'TCP|192.0.2.25|25|203.0.113.9|40001');
  const rcpt = { sourceChannel: 'tcp_local', from: 'a@example.net', destinationChannel: 'l', to: 'b@example.org' };
  assert.equal(sendAccessProbe(rcpt), 'tcp_local|a@example.net|l|b@example.org');
  assert.equal(mailAccessProbe(SESSION, rcpt), 'TCP|192.0.2.25|25|203.0.113.9|40001|SMTP/mx.example.net|MAIL|tcp_local|a@example.net|l|b@example.org');
  assert.equal(
    fromAccessProbe({ ...SESSION, tls: { protocol: 'TLSv1.3', cipher: 'TLS_AES_256_GCM_SHA384' } }, { sourceChannel: 'tcp_auth', from: 'a@example.net', authenticatedFrom: 'alice' }),
    'TCP|192.0.2.25|25|203.0.113.9|40001|SMTP/TLSv1.3:TLS_AES_256_GCM_SHA384/mx.example.net|MAIL|tcp_auth|a@example.net|alice',
  );
  assert.equal(fromAccessProbe({ connection: null, helo: null, tls: null }, { sourceChannel: 'l', from: '', authenticatedFrom: '' }), '||||||MAIL|l||');
  assert.deepEqual([...sessionFlags({ sasl: true, tls: true, ehlo: true, notify: { failure: true } })].sort(), ['A', 'E', 'F', 'T']);
});

test('no table, or no matching entry: accept, nothing matched', () => {
  const none = checkPortAccess(tables('OTHER', '  *  $Y'), CONNECTION);
  assert.deepEqual([none.verdict, none.matched, none.reply], ['accept', null, null]);
  const m = tables('PORT_ACCESS', '  TCP|*|25|198.51.100.*|*   $N');
  const d = checkPortAccess(m, CONNECTION);
  assert.deepEqual([d.verdict, d.matched, d.probe], ['accept', null, 'TCP|192.0.2.25|25|203.0.113.9|40001']);
});

test('PORT_ACCESS: $N with text refuses at connect, 554 5.7.1, or 421 when the text starts with a 4xx code', () => {
  const m = tables(
    'PORT_ACCESS',
    '  TCP|*|25|203.0.113.9|*     $NGo$ away',
    '  TCP|*|25|203.0.113.10|*    $N421$ 4.7.0$ Busy,$ come$ back$ later',
    '  TCP|*|25|203.0.113.11|*    $F',
    '  TCP|*|25|203.0.113.12|*    $N$T500$ No|blocked$ by$ rule$ 5',
    '  TCP|*|25|$(203.0.113.0/24)|*   $Y',
  );
  const at = (clientIp: string) => checkPortAccess(m, { ...CONNECTION, clientIp });
  const a = at('203.0.113.9');
  assert.deepEqual([a.verdict, a.reply, a.smtpCode, a.enhancedCode, a.text, a.temporary], ['refuse', '554 5.7.1 Go away', 554, '5.7.1', 'Go away', false]);
  assert.deepEqual({ ...a.matched }, { table: 'PORT_ACCESS', file: a.matched!.file, line: 2, pattern: 'TCP|*|25|203.0.113.9|*', template: '$NGo$ away' });
  assert.match(a.matched!.file, /etc\/mappings$/);
  const b = at('203.0.113.10');
  assert.deepEqual([b.reply, b.temporary], ['421 4.7.0 Busy, come back later', true]);
  assert.equal(at('203.0.113.11').reply, '554 5.7.1 connection refused by policy');
  const c = at('203.0.113.12');
  assert.deepEqual([c.reply, c.smtpCode, c.log.connection], ['554 5.7.1 No', 554, 'blocked by rule 5'], 'at connect a code of the text is 554 or 421, as the SMTP server answers');
  const ok = at('203.0.113.77');
  assert.deepEqual([ok.verdict, ok.matched?.line, ok.reply], ['accept', 6, null]);
});

test('the documented ORIG_SEND_ACCESS example: $N$D30|text and its reorderings give the same decision', () => {
  const templates = ['$N$D30|Relaying$ not$ allowed', '30|Relaying$ not$ allowed$D$N', '$N30|Relaying$ not$ allowed$D', '30|$N$DRelaying$ not$ allowed'];
  for (const template of templates) {
    const m = tables('ORIG_SEND_ACCESS', `  tcp_local|*|tcp_local|*     ${template}`);
    const d = checkAccess(m, 'ORIG_SEND_ACCESS', 'tcp_local|a@example.net|tcp_local|b@example.com', { address: 'b@example.com' });
    assert.deepEqual(
      [d.verdict, d.reply, d.smtpCode, d.enhancedCode, d.text, d.delaySeconds, d.delayEveryCommand],
      ['refuse', '550 5.7.1 Relaying not allowed: b@example.com', 550, '5.7.1', 'Relaying not allowed', 0.3, true],
      template,
    );
  }
});

test('address tables: default text, $X temporary codes, negative delays, $H, $B, $T, $< and $>', () => {
  const m = tables(
    'SEND_ACCESS',
    '  *|*|*|plain@*                 $N',
    '  *|*|*|later@*                 $N$X4.7.1|Greylisted,$ try$ again',
    '  *|*|*|badx@*                  $N$X9.9|Nope',
    '  *|*|*|slow@*                  $Y$D-250',
    '  *|*|*|badd@*                  $Y$Dsoon',
    '  *|*|*|held@*                  $H',
    '  *|*|*|void@*                  $B$Y',
    '  *|*|*|tagged@*                $Y$Tinternal',
    '  *|*|*|logged@*                $N$<$>matched$ $3|refused$ $3|Go$ away',
    '  *|*|*|own@*                   $N452$ 4.5.3$ Too$ many',
  );
  const rcpt = (to: string) => checkAccess(m, 'SEND_ACCESS', `tcp_local|a@example.net|l|${to}`, { address: to });
  assert.equal(rcpt('plain@x').reply, '550 5.7.1 you are not allowed to use this address: plain@x');
  const later = rcpt('later@x');
  assert.deepEqual([later.reply, later.temporary], ['450 4.7.1 Greylisted, try again: later@x', true]);
  const badx = rcpt('badx@x');
  assert.deepEqual([badx.reply, badx.problems.length], ['550 5.7.1 Nope: badx@x', 1]);
  const slow = rcpt('slow@x');
  assert.deepEqual([slow.verdict, slow.delaySeconds, slow.delayEveryCommand], ['accept', 2.5, false]);
  const badd = rcpt('badd@x');
  assert.deepEqual([badd.delaySeconds, badd.problems], [null, ['$D argument "soon" is not a number of hundredths of seconds (no delay)']]);
  const held = rcpt('held@x');
  assert.deepEqual([held.verdict, held.hold, held.discard], ['accept', true, false]);
  assert.deepEqual([rcpt('void@x').discard, rcpt('void@x').verdict], [true, 'accept']);
  assert.equal(rcpt('tagged@x').tag, 'internal');
  const logged = rcpt('logged@x');
  assert.deepEqual([logged.log.onMatch, logged.log.onRefusal, logged.reply], ['matched x', 'refused x', '550 5.7.1 Go away: logged@x']);
  const own = rcpt('own@x');
  assert.deepEqual([own.reply, own.temporary], ['452 4.5.3 Too many: own@x', true]);
});

test('FROM_ACCESS at MAIL: the sender in the reply, <> for the null sender, $:A for authenticated sessions', () => {
  const m = tables(
    'FROM_ACCESS',
    '  *|SMTP/*|MAIL|tcp_local|*@example.com|    $NNot$ from$ outside$:T',
    '  *|SMTP/*|MAIL|tcp_local|*@example.com|    $NLocal$ sender$ needs$ AUTH$;A',
    '  *|*|*|*||*                                $NNo$ bounces$ here',
  );
  const sender = (from: string) => ({ sourceChannel: 'tcp_local', from, authenticatedFrom: '' });
  const plain = checkFromAccess(m, SESSION, sender('joe@example.com'), sessionFlags({}));
  assert.deepEqual([plain.reply, plain.matched?.line], ['550 5.7.1 Local sender needs AUTH: joe@example.com', 3]);
  const tls = checkFromAccess(m, SESSION, sender('joe@example.com'), sessionFlags({ tls: true }));
  assert.equal(tls.matched?.line, 2);
  assert.equal(checkFromAccess(m, SESSION, sender('joe@example.com'), sessionFlags({ sasl: true })).verdict, 'accept');
  assert.equal(checkFromAccess(m, SESSION, sender(''), new Set()).reply, '550 5.7.1 No bounces here: <>');
});

test('recipient tables: ORIG_ tables see the address as given, the others the expanded one; the first refusal ends', () => {
  const m = tables(
    'ORIG_SEND_ACCESS',
    '  *|*|*|list@example.com     $Y',
    '  *|*|*|secret@example.com   $NNo$ such$ list',
    '',
    'SEND_ACCESS',
    '  *|*|*|member@elsewhere.net   $NMember$ blocked',
    '',
    'MAIL_ACCESS',
    '  *|*|*|*|*|*|*|*|*|*|*   $Y',
  );
  const base = { sourceChannel: 'tcp_local', from: 'a@example.net', destinationChannel: 'l' };
  const ok = checkRecipientAccess(m, SESSION, { ...base, to: 'list@example.com' });
  assert.deepEqual(ok.map((d) => [d.table, d.verdict]), [['ORIG_SEND_ACCESS', 'accept'], ['SEND_ACCESS', 'accept'], ['MAIL_ACCESS', 'accept']]);
  assert.equal(firstRefusal(ok), null);
  const secret = checkRecipientAccess(m, SESSION, { ...base, to: 'secret@example.com' });
  assert.deepEqual(secret.map((d) => d.table), ['ORIG_SEND_ACCESS']);
  assert.equal(firstRefusal(secret)?.reply, '550 5.7.1 No such list: secret@example.com');
  const expanded = checkRecipientAccess(m, SESSION, { ...base, to: 'member@elsewhere.net', originalTo: 'list@example.com' });
  assert.deepEqual(expanded.map((d) => [d.table, d.probe.split('|').pop(), d.verdict]), [['ORIG_SEND_ACCESS', 'list@example.com', 'accept'], ['SEND_ACCESS', 'member@elsewhere.net', 'refuse']]);
  assert.equal(firstRefusal(expanded)?.reply, '550 5.7.1 Member blocked: member@elsewhere.net');
});

test('a mapping that cannot finish refuses temporarily (421 at connect, 451 at RCPT), never accepts', () => {
  const m = tables('PORT_ACCESS', '  *   $0$R', '', 'SEND_ACCESS', '  *   $0$R');
  const connect = checkPortAccess(m, CONNECTION);
  assert.deepEqual([connect.verdict, connect.reply, connect.temporary], ['refuse', '421 4.3.0 temporary policy failure, try again later', true]);
  assert.match(connect.error ?? '', /did not end/);
  const rcpt = checkAccess(m, 'SEND_ACCESS', 'a|b|c|d', { address: 'd' });
  assert.equal(rcpt.reply, '451 4.3.0 temporary policy failure, try again later: d');
});

test('a refusal text stays one line whatever a substitution brings', () => {
  const m = tables('SEND_ACCESS', '  *|*|*|*   $N$3');
  const d = checkAccess(m, 'SEND_ACCESS', 'a|b|c|x\r\ny', { address: 'x' });
  assert.equal(d.reply, '550 5.7.1 x??y: x');
});
